"""A tabular MDP as a file a person can read and edit (TOML or JSON), and back.

    gamma = 0.9                      # optional (0.9); [env].gamma in a run's config overrides it
    states = ["A", "B", "C"]
    actions = ["left", "right"]
    start = "A"                      # a state name, or a table {A = 0.5, B = 0.5}; default: first state
    terminal = ["C"]                 # optional
    transitions = [                  # [state, action, next_state, probability, reward r(s,a,s')]
      ["A", "right", "B", 1.0, 0.0],
      ["A", "left",  "A", 1.0, -1.0],
      ["B", "right", "C", 0.8, 1.0],
      ["B", "right", "A", 0.2, 0.0],
    ]

An action with no transitions from a state is unavailable there; every non-terminal state needs at
least one; terminal states have none (value 0). Every problem raises ConfigError(file, key, message)
naming the entry. `dump_mdp(env, "toml"|"json")` writes any TabularMDP in this format, so a built-in
MDP can be exported, edited and loaded back as `custom` with identical P and r.
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from rltui.config import MAX_DEPTH, MAX_NAME, ConfigError, check_depth, parse_toml
from rltui.errors import read_regular_text
from rltui.envs.tabular import TabularMDP, from_outcomes

KEYS = ("gamma", "states", "actions", "start", "terminal", "transitions")
PROB_TOLERANCE = 1e-6


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def read_mdp_data(path: str | Path) -> dict[str, Any]:
    """Parse the file (TOML by default, JSON for *.json) into a dict; errors name the file."""
    path = Path(path)
    src = str(path)
    text = read_regular_text(path, "MDP file", encoding="utf-8", not_found="MDP file not found")  # a FIFO, a device, a folder: refused
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise ConfigError(src, "", f"not valid JSON: {exc}") from None
        except RecursionError:
            raise ConfigError(src, "", f"nested too deeply; at most {MAX_DEPTH} levels") from None
        except ValueError as exc:  # NaN / Infinity, which JSON does not have
            raise ConfigError(src, "", f"not valid JSON: {exc}") from None
    else:
        data = parse_toml(text, src)
    if not isinstance(data, dict):
        raise ConfigError(src, "", "the MDP file must hold one table/object with states, actions, transitions")
    check_depth(data, src)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows; probabilities and rewards must be finite")


def load_mdp(path: str | Path, gamma: float | None = None) -> TabularMDP:
    """Read and validate an MDP file; `gamma` (from [env]) overrides the file's gamma."""
    return mdp_from_data(read_mdp_data(path), source=str(path), gamma=gamma)


def mdp_from_data(data: dict[str, Any], source: str = "<mdp>", gamma: float | None = None) -> TabularMDP:
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(source, key, message)

    for key in data:
        if key not in KEYS:
            raise fail(key, f"unknown key. Allowed: {', '.join(KEYS)}." + _suggest(key, list(KEYS)))

    file_gamma = data.get("gamma", 0.9)
    if not _is_finite(file_gamma) or not 0.0 <= file_gamma <= 1.0:
        raise fail("gamma", f"the discount γ must be a number in [0, 1], got {_short(file_gamma)}")
    if gamma is not None and not 0.0 <= gamma <= 1.0:
        raise fail("gamma", f"the discount γ must be in [0, 1], got {gamma!r}")

    states = _names(data, "states", fail)
    actions = _names(data, "actions", fail)
    s_index = {name: i for i, name in enumerate(states)}
    a_index = {name: i for i, name in enumerate(actions)}

    def state(name: Any, key: str, role: str = "state") -> int:
        if not isinstance(name, str) or name not in s_index:
            raise fail(key, f"unknown {role} {_short(name)}. Known states: {_listing(states)}." + _suggest(str(name), states))
        return s_index[name]

    terminal_names = data.get("terminal", [])
    if not isinstance(terminal_names, list):
        raise fail("terminal", f"must be a list of state names, got {_short(terminal_names)}")
    terminal = np.zeros(len(states), dtype=bool)
    for i, name in enumerate(terminal_names):
        terminal[state(name, f"terminal[{i}]")] = True

    start = np.zeros(len(states))
    raw_start = data.get("start", states[0])
    if isinstance(raw_start, str):
        start[state(raw_start, "start", "start state")] = 1.0
    elif isinstance(raw_start, dict) and raw_start:
        for name, p in raw_start.items():
            if not _is_finite(p) or not 0 <= p <= 1 + PROB_TOLERANCE:
                raise fail(f"start.{name}", f"a start probability must be a number in [0, 1], got {_short(p)}")
            start[state(name, f"start.{name}", "start state")] = float(p)
        total = float(start.sum())
        if abs(total - 1.0) > PROB_TOLERANCE:
            raise fail("start", f"start probabilities sum to {total:.6g}; they must sum to 1")
    else:
        raise fail("start", f"must be a state name or a table of probabilities such as {{A = 0.5, B = 0.5}}, got {_short(raw_start)}")
    for s in np.nonzero(start > 0)[0]:
        if terminal[s]:
            raise fail("start", f"start state {states[s]!r} is terminal; an episode there would end before it begins")

    rows = data.get("transitions")
    if not isinstance(rows, list) or not rows:
        raise fail("transitions", "must be a non-empty list of [state, action, next_state, probability, reward]")
    outcomes: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
    seen: dict[tuple[int, int, int], int] = {}
    for i, row in enumerate(rows):
        key = f"transitions[{i}]"
        if not isinstance(row, list) or len(row) != 5:
            raise fail(key, f"must be [state, action, next_state, probability, reward], got {_short(row)}")
        s_name, a_name, s2_name, p, r = row
        s = state(s_name, key)
        if not isinstance(a_name, str) or a_name not in a_index:
            raise fail(key, f"unknown action {_short(a_name)}. Known actions: {_listing(actions)}." + _suggest(str(a_name), actions))
        a = a_index[a_name]
        s2 = state(s2_name, key, "next state")
        if not _is_finite(p):
            raise fail(key, f"probability must be a finite number in [0, 1], got {_short(p)}")
        if p < 0:
            raise fail(key, f"negative probability {_short(p)} for state {_short(s_name)}, action {_short(a_name)}, next state {_short(s2_name)}")
        if p > 1 + PROB_TOLERANCE:  # the same tolerance as a row's sum: 1.0000000000000002 is 1
            raise fail(key, f"probability {_short(p)} is greater than 1")
        if not _is_finite(r):
            raise fail(key, f"reward must be a finite number, got {_short(r)}")
        if terminal[s]:
            raise fail(key, f"state {_short(s_name)} is terminal; terminal states have no transitions (their value is 0)")
        if (s, a, s2) in seen:
            raise fail(key, f"repeats state {_short(s_name)}, action {_short(a_name)}, next state {_short(s2_name)} "
                            f"(first given at transitions[{seen[(s, a, s2)]}]); give each (s, a, s') once")
        seen[(s, a, s2)] = i
        outcomes.setdefault((s, a), []).append((s2, float(p), float(r)))

    for (s, a), outs in outcomes.items():
        total = math.fsum(p for _, p, _ in outs)
        if abs(total - 1.0) > PROB_TOLERANCE:
            raise fail(
                "transitions",
                f"probabilities for state {states[s]!r}, action {actions[a]!r} sum to {total:.6g}; they must sum to 1",
            )
    for s in range(len(states)):
        if not terminal[s] and not any((s, a) in outcomes and any(p > 0 for _, p, _ in outcomes[(s, a)]) for a in range(len(actions))):
            raise fail(
                "transitions",
                f"state {states[s]!r} is not terminal but has no transitions; give it at least one action "
                "or list it in `terminal`",
            )
    return from_outcomes(states, actions, outcomes, terminal, start, gamma if gamma is not None else float(file_gamma),
                         name="custom")


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names):,} in all)"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """A real number, not NaN or ±inf (and not an integer too big for a float)."""
    if not _is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _names(data: dict[str, Any], key: str, fail) -> list[str]:  # noqa: ANN001
    names = data.get(key)
    if not isinstance(names, list) or not names:
        raise fail(key, f"must be a non-empty list of names, got {_short(names)}")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise fail(f"{key}[{i}]", f"must be a non-empty string of at most {MAX_NAME} characters, got {_short(name)}")
        if name in seen:
            raise fail(f"{key}[{i}]", f"{_short(name)} is listed twice")
        seen.add(name)
    return list(names)


# --- writing ---------------------------------------------------------------------------------------
def mdp_to_data(env: TabularMDP) -> dict[str, Any]:
    """The MDP as plain data in the file format (transitions ordered by state, action, k)."""
    states, actions = env.states, env.actions
    nz = np.flatnonzero(env.start)
    start: Any = states[nz[0]] if len(nz) == 1 and env.start[nz[0]] == 1.0 else {
        states[s]: float(env.start[s]) for s in nz
    }
    transitions = []
    for s in range(env.n_states):
        if env.terminal[s]:
            continue
        for a in range(env.n_actions):
            for s2, p, r in env.outcomes(s, a):
                transitions.append([states[s], actions[a], states[s2], float(p), float(r)])
    return {
        "gamma": float(env.gamma),
        "states": list(states),
        "actions": list(actions),
        "start": start,
        "terminal": [states[s] for s in np.flatnonzero(env.terminal)],
        "transitions": transitions,
    }


def dump_mdp(env: TabularMDP, fmt: str = "toml") -> str:
    """The exact MDP in the custom-file format: TOML (one transition per line) or JSON."""
    data = mdp_to_data(env)
    if fmt == "json":
        lines = ["{"]
        for key in ("gamma", "states", "actions", "start", "terminal"):
            lines.append(f"  {json.dumps(key)}: {json.dumps(data[key])},")
        lines.append('  "transitions": [')
        rows = [f"    {json.dumps(t)}" for t in data["transitions"]]
        lines.append(",\n".join(rows))
        lines.append("  ]")
        lines.append("}")
        return "\n".join(lines) + "\n"
    if fmt != "toml":
        raise ValueError(f"format must be 'toml' or 'json', got {fmt!r}")

    def s(x: str) -> str:
        return json.dumps(x, ensure_ascii=False)  # a JSON string is a valid TOML basic string

    start = data["start"]
    start_text = s(start) if isinstance(start, str) else "{" + ", ".join(f"{s(k)} = {v!r}" for k, v in start.items()) + "}"
    out = [
        f"# rltui mdp: {env.name}, {env.n_states} states, {env.n_actions} actions. Load it with",
        '#   [env] id = "custom"  path = "THIS_FILE.toml"',
        "# transitions: [state, action, next_state, probability P(s'|s,a), reward r(s,a,s')]",
        f"gamma = {data['gamma']!r}",
        f"states = [{', '.join(s(x) for x in data['states'])}]",
        f"actions = [{', '.join(s(x) for x in data['actions'])}]",
        f"start = {start_text}",
        f"terminal = [{', '.join(s(x) for x in data['terminal'])}]",
        "transitions = [",
    ]
    out += [f"  [{s(a)}, {s(b)}, {s(c)}, {p!r}, {r!r}]," for a, b, c, p, r in data["transitions"]]
    out.append("]")
    return "\n".join(out) + "\n"
