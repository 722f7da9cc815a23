"""A sweep file, checked at the door as strictly as a run config.

    name = "ppo lr x clip"
    base = "../cartpole_ppo.toml"       # a run config, relative to this file
    method = "tpe"                      # grid | random | tpe
    seeds = [0, 1, 2]                   # each trial runs every seed; its objective is their mean
    trials = 24                         # budget (grid: every point, at most `trials` of them)
    max_minutes = 30                    # optional second budget
    objective = { metric = "eval_return", mode = "max", use = "last" }   # last | best | mean_last_k (+ k)
    prune = "median"                    # optional
    engine = "local"                    # local | ray (+ address, else $RAY_ADDRESS)
    [parameters]
    "algo.learning_rate" = { log_uniform = [1e-4, 1e-2] }
    "algo.clip_range"    = [0.1, 0.2, 0.3]
    "algo.n_epochs"      = { int = [4, 20] }

Every problem raises ConfigError naming the file and the key, before anything is stored. Parameter
keys must name a field of the base config's schema, and every choice and both ends of every range
must themselves pass the base config's checks.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltui.errors import ConfigError

METHODS = ("grid", "random", "tpe")
ENGINES = ("local", "ray")
MODES = ("max", "min")
USES = ("last", "best", "mean_last_k")
PRUNERS = ("median",)
RANGES = ("log_uniform", "uniform", "int")
TOP_LEVEL_KEYS = ("name", "base", "method", "seeds", "trials", "max_minutes", "objective", "prune", "engine",
                  "address", "parallel", "sampler_seed", "parameters")
OBJECTIVE_KEYS = ("metric", "mode", "use", "k")
SECTIONS = ("env", "algo", "record")


@dataclass(frozen=True)
class Parameter:
    key: str  # "algo.learning_rate"
    kind: str  # choice | log_uniform | uniform | int
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"key": self.key, "kind": "choice", "choices": list(self.choices)}
        return {"key": self.key, "kind": self.kind, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Parameter:
        return cls(key=d["key"], kind=d["kind"], choices=tuple(d.get("choices", ())),
                   low=d.get("low", 0.0), high=d.get("high", 0.0))

    def grid_values(self) -> list[Any]:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        raise ValueError(f"{self.key}: a {self.kind} range has no grid")


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str = "max"
    use: str = "last"
    k: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"metric": self.metric, "mode": self.mode, "use": self.use}
        if self.k is not None:
            d["k"] = self.k
        return d

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base_path: str  # absolute
    base_toml: str
    method: str
    seeds: tuple[int, ...]
    trials: int
    objective: Objective
    parameters: tuple[Parameter, ...]
    max_minutes: float | None = None
    prune: str | None = None
    engine: str = "local"
    address: str | None = None
    parallel: int | None = None
    sampler_seed: int = 0
    source_text: str = ""
    source_path: str | None = None
    base: dict[str, Any] = field(default_factory=dict)  # the base config's TOML, parsed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "base_path": self.base_path, "method": self.method, "seeds": list(self.seeds),
            "trials": self.trials, "objective": self.objective.to_dict(),
            "parameters": [p.to_dict() for p in self.parameters], "max_minutes": self.max_minutes,
            "prune": self.prune, "engine": self.engine, "address": self.address, "parallel": self.parallel,
            "sampler_seed": self.sampler_seed,
        }

    @classmethod
    def from_stored(cls, spec: dict[str, Any], spec_toml: str, base_toml: str, spec_path: str | None) -> SweepSpec:
        o = spec["objective"]
        return cls(
            name=spec["name"], base_path=spec["base_path"], base_toml=base_toml, method=spec["method"],
            seeds=tuple(spec["seeds"]), trials=spec["trials"],
            objective=Objective(o["metric"], o["mode"], o["use"], o.get("k")),
            parameters=tuple(Parameter.from_dict(p) for p in spec["parameters"]),
            max_minutes=spec.get("max_minutes"), prune=spec.get("prune"), engine=spec.get("engine", "local"),
            address=spec.get("address"), parallel=spec.get("parallel"), sampler_seed=spec.get("sampler_seed", 0),
            source_text=spec_toml, source_path=spec_path, base=tomllib.loads(base_toml),
        )

    def grid(self) -> list[dict[str, Any]]:
        """Every point of the grid, in a fixed order (the first parameter varies slowest)."""
        keys = [p.key for p in self.parameters]
        return [dict(zip(keys, values)) for values in itertools.product(*(p.grid_values() for p in self.parameters))]

    def trial_config(self, params: dict[str, Any], seed: int, label: str) -> dict[str, Any]:
        """The base config (as parsed from its file) with the trial's parameters and seed set."""
        data = apply_params(self.base, params)
        data["seed"] = seed
        data["name"] = label
        return data


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for key, value in params.items():
        section, name = key.split(".", 1)
        data.setdefault(section, {})[name] = value
    return data


# --- checking --------------------------------------------------------------------------------------
def _allowed(choices: tuple[str, ...] | list[str]) -> str:
    return ", ".join(choices)


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def load_sweep_file(path: str | Path) -> SweepSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(str(path), "", "no such file") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    return load_sweep_text(text, source=str(path), base_dir=path.resolve().parent)


def load_sweep_text(text: str, source: str = "<sweep>", base_dir: Path | None = None) -> SweepSpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    return check_sweep(data, source, base_dir or Path.cwd(), text)


def check_sweep(data: dict[str, Any], source: str, base_dir: Path, text: str = "") -> SweepSpec:
    from rltui.config import ConfigError as _CE, load_config_file  # noqa: F401 — pydantic, only when checking

    def fail(key: str, message: str) -> None:
        raise ConfigError(source, key, message)

    for key in data:
        if key not in TOP_LEVEL_KEYS:
            fail(key, f"unknown key. Allowed at the top level: {_allowed(TOP_LEVEL_KEYS)}." + _suggest(key, list(TOP_LEVEL_KEYS)))

    base = data.get("base")
    if base is None:
        fail("base", "missing: the run config the trials start from, relative to this file")
    if not isinstance(base, str) or not base:
        fail("base", f"must be a path (a string), got {base!r}")
    base_path = Path(base).expanduser()
    base_path = (base_path if base_path.is_absolute() else base_dir / base_path).resolve()
    try:
        base_toml = base_path.read_text()
    except OSError as exc:
        fail("base", f"cannot read {str(base_path)!r}: {exc.strerror}")
    try:
        base_config = load_config_file(base_path)
    except ConfigError as exc:
        fail("base", f"the base config is not valid: {exc}")
    base_data = tomllib.loads(base_toml)

    name = data.get("name", Path(source).stem if not source.startswith("<") else "sweep")
    if not isinstance(name, str) or not name.strip():
        fail("name", f"must be a non-empty string, got {name!r}")

    method = data.get("method")
    if method is None:
        fail("method", f"missing. Allowed: {_allowed(METHODS)}")
    if method not in METHODS:
        fail("method", f"got {method!r}; allowed: {_allowed(METHODS)}." + _suggest(str(method), list(METHODS)))

    seeds = data.get("seeds", [base_config.seed])
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and s >= 0 for s in seeds):
        fail("seeds", f"must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        fail("seeds", f"has a seed twice: {seeds!r}")

    trials = data.get("trials")
    if trials is not None and (not _is_int(trials) or trials < 1):
        fail("trials", f"must be a positive integer, got {trials!r}")
    if trials is None and method != "grid":
        fail("trials", f"missing: how many trials a {method} sweep may run (a positive integer)")

    max_minutes = data.get("max_minutes")
    if max_minutes is not None and (not _is_number(max_minutes) or max_minutes <= 0):
        fail("max_minutes", f"must be a positive number of minutes, got {max_minutes!r}")

    objective = _check_objective(data.get("objective"), fail)

    prune = data.get("prune")
    if prune is not None and prune not in PRUNERS:
        fail("prune", f"got {prune!r}; allowed: {_allowed(PRUNERS)} (or leave it out)")

    engine = data.get("engine", "local")
    if engine not in ENGINES:
        fail("engine", f"got {engine!r}; allowed: {_allowed(ENGINES)}." + _suggest(str(engine), list(ENGINES)))
    address = data.get("address")
    if address is not None:
        if engine != "ray":
            fail("address", "only for engine = \"ray\" (the Ray cluster's address)")
        if not isinstance(address, str) or not address:
            fail("address", f"must be a Ray address such as \"127.0.0.1:6379\", got {address!r}")

    parallel = data.get("parallel")
    if parallel is not None and (not _is_int(parallel) or parallel < 1):
        fail("parallel", f"must be a positive integer (trials in flight at once), got {parallel!r}")
    sampler_seed = data.get("sampler_seed", 0)
    if not _is_int(sampler_seed) or sampler_seed < 0:
        fail("sampler_seed", f"must be a non-negative integer, got {sampler_seed!r}")

    parameters = _check_parameters(data.get("parameters"), method, base_data, str(base_path), fail)
    spec = SweepSpec(
        name=name.strip(), base_path=str(base_path), base_toml=base_toml, method=method, seeds=tuple(seeds),
        trials=0, objective=objective, parameters=parameters, max_minutes=max_minutes, prune=prune,
        engine=engine, address=address, parallel=parallel, sampler_seed=sampler_seed, source_text=text,
        source_path=None if source.startswith("<") else str(Path(source).resolve()), base=base_data,
    )
    budget = len(spec.grid()) if method == "grid" else trials
    if method == "grid" and trials is not None:
        budget = min(budget, trials)
    return SweepSpec(**{**spec.__dict__, "trials": budget})


def _check_objective(obj: Any, fail) -> Objective:  # noqa: ANN001
    if obj is None:
        fail("objective", 'missing, for example objective = { metric = "eval_return", mode = "max", use = "last" }')
    if not isinstance(obj, dict):
        fail("objective", "must be a table: { metric = ..., mode = max|min, use = last|best|mean_last_k }")
    for key in obj:
        if key not in OBJECTIVE_KEYS:
            fail(f"objective.{key}", f"unknown key. Allowed: {_allowed(OBJECTIVE_KEYS)}." + _suggest(key, list(OBJECTIVE_KEYS)))
    metric = obj.get("metric")
    if not isinstance(metric, str) or not metric:
        fail("objective.metric", f"must name a metric the runs log (e.g. \"eval_return\"), got {metric!r}")
    mode = obj.get("mode", "max")
    if mode not in MODES:
        fail("objective.mode", f"got {mode!r}; allowed: {_allowed(MODES)}")
    use = obj.get("use", "last")
    if use not in USES:
        fail("objective.use", f"got {use!r}; allowed: {_allowed(USES)}." + _suggest(str(use), list(USES)))
    k = obj.get("k")
    if use == "mean_last_k":
        if k is None:
            fail("objective.k", "missing: use = \"mean_last_k\" averages the last k values (a positive integer)")
        if not _is_int(k) or k < 1:
            fail("objective.k", f"must be a positive integer, got {k!r}")
    elif k is not None:
        fail("objective.k", f"only with use = \"mean_last_k\" (use is {use!r})")
    return Objective(metric=metric, mode=mode, use=use, k=k)


def _check_parameters(table: Any, method: str, base_data: dict[str, Any], base_source: str, fail) -> tuple[Parameter, ...]:  # noqa: ANN001
    from rltui import registry
    from rltui.config import validate_config

    if table is None:
        fail("[parameters]", 'missing: add a [parameters] table, e.g. "algo.learning_rate" = { log_uniform = [1e-4, 1e-2] }')
    if not isinstance(table, dict) or not table:
        fail("parameters", "must be a table with at least one parameter")
    env_id = (base_data.get("env") or {}).get("id")
    algo_id = (base_data.get("algo") or {}).get("id")
    from rltui.config import RecordParams

    schemas = {"env": registry.env_spec(env_id).params, "algo": registry.algo_spec(algo_id).params,
               "record": RecordParams}
    ids = {"env": env_id, "algo": algo_id, "record": "record"}
    out = []
    for key, value in table.items():
        where = f"parameters.{key}"
        section, _, name = key.partition(".")
        if section not in SECTIONS or not name or "." in name:
            fail(where, f"must be SECTION.KEY with SECTION one of {_allowed(SECTIONS)}, e.g. \"algo.learning_rate\"")
        if name == "id":
            fail(where, f"the {section} id cannot be swept: a sweep varies one algorithm's hyperparameters")
        fields = list(schemas[section].model_fields)
        if name not in fields:
            fail(where, f"unknown key for {section} {ids[section]!r}. Allowed: {', '.join(sorted(fields))}."
                 + _suggest(name, fields))
        param = _check_one(where, key, value, method, fail)
        # Every choice and both ends of a range must pass the base config's own checks.
        for probe in (param.choices if param.kind == "choice" else (param.low, param.high)):
            if param.kind == "int":
                probe = int(probe)
            try:
                validate_config(apply_params(base_data, {key: probe}), source=base_source,
                                base_dir=Path(base_source).parent)
            except ConfigError as exc:
                fail(where, f"{probe!r} is not allowed: {exc.message}")
        out.append(param)
    return tuple(out)


def _check_one(where: str, key: str, value: Any, method: str, fail) -> Parameter:  # noqa: ANN001
    if isinstance(value, list):
        if not value:
            fail(where, "an empty list of choices")
        for v in value:
            if not (isinstance(v, (str, bool)) or _is_number(v)):
                fail(where, f"choices must be numbers, strings or booleans, got {v!r}")
        if len(set(map(repr, value))) != len(value):
            fail(where, f"has a choice twice: {value!r}")
        return Parameter(key=key, kind="choice", choices=tuple(value))
    if not isinstance(value, dict) or len(value) != 1:
        fail(where, "must be a list of choices or one range: { log_uniform = [a, b] }, { uniform = [a, b] } or { int = [a, b] }")
    (kind, bounds), = value.items()
    if kind not in RANGES:
        fail(f"{where}.{kind}", f"unknown range. Allowed: {_allowed(RANGES)}." + _suggest(kind, list(RANGES)))
    if not isinstance(bounds, list) or len(bounds) != 2:
        fail(f"{where}.{kind}", f"must be [low, high], got {bounds!r}")
    low, high = bounds
    if kind == "int":
        if not (_is_int(low) and _is_int(high)):
            fail(f"{where}.int", f"bounds must be integers, got {bounds!r}")
    elif not (_is_number(low) and _is_number(high)):
        fail(f"{where}.{kind}", f"bounds must be numbers, got {bounds!r}")
    if not low < high:
        fail(f"{where}.{kind}", f"low must be below high, got {bounds!r}")
    if kind == "log_uniform" and low <= 0:
        fail(f"{where}.log_uniform", f"bounds must be positive, got {bounds!r}")
    if method == "grid" and kind != "int":
        fail(where, f"a grid needs a list of choices or an int range; {kind} is for random and tpe")
    return Parameter(key=key, kind=kind, low=low, high=high)
