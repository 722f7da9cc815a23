"""Run configuration: one TOML file per run, checked at the door.

    name = "maze-vi"            # optional
    seed = 0
    device = "auto"             # auto | cpu | cuda | cuda:N | mps
    [env]                       # id + the env's parameters; gamma lives here: M = (S, A, P, r, γ)
    id = "maze"
    gamma = 0.9
    [algo]                      # id + hyperparameters
    id = "value_iteration"
    theta = 1e-8
    [record]                    # optional: which trajectories to keep
    last = 5

Every problem (unknown key, wrong type, out-of-range value, unknown id) raises ConfigError naming the
file, the key and what is allowed, before anything is stored.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rltui import registry
from rltui.errors import ConfigError, read_regular_text  # noqa: F401 — ConfigError: its home for everyone who imports it from here
from rltui.recorder import RecordPolicy

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
TOP_LEVEL_KEYS = ("name", "seed", "device", "env", "algo", "record")


class Params(BaseModel):
    """Base of every env and algorithm parameter schema: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordParams(Params):
    every: int = Field(0, ge=0, description="keep the trajectory of every Nth training episode (0: off)")
    last: int = Field(5, ge=0, description="keep the trajectories of the last K training episodes")
    eval: bool = Field(True, description="keep the trajectory of every evaluation episode")
    max_steps: int = Field(10_000, ge=1, description="longest trajectory stored, in steps")
    max_metric_points: int = Field(
        1_000_000, ge=100, description="rows kept per metric; past it older points are thinned into min/max/mean buckets")
    max_episodes: int = Field(
        1_000_000, ge=100, description="episode rows kept per phase; past it older ones are thinned into buckets")

    def policy(self) -> RecordPolicy:
        return RecordPolicy(every=self.every, last=self.last, eval=self.eval, max_steps=self.max_steps,
                            max_metric_points=self.max_metric_points, max_episodes=self.max_episodes)


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration: everything a worker needs to build and run it."""

    name: str
    seed: int
    device: str
    env_id: str
    algo_id: str
    env: Params
    algo: Params
    record: RecordParams
    source_text: str
    source_path: str | None

    def to_dict(self) -> dict[str, Any]:
        """The full config with defaults filled in and paths resolved; it reproduces the run."""
        return {
            "name": self.name,
            "seed": self.seed,
            "device": self.device,
            "env": {"id": self.env_id, **_plain(self.env.model_dump(mode="json"))},
            "algo": {"id": self.algo_id, **_plain(self.algo.model_dump(mode="json"))},
            "record": self.record.model_dump(mode="json"),
        }

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def dump_toml(data: dict[str, Any]) -> str:
    return tomli_w.dumps(_plain_tree(data))


def _plain_tree(value: Any) -> Any:
    # TOML has no null: drop None entries so the file still parses.
    if isinstance(value, dict):
        return {k: _plain_tree(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain_tree(v) for v in value]
    return value


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _allowed(choices: list[str]) -> str:
    return ", ".join(sorted(choices))


def parse_override(text: str) -> tuple[list[str], Any]:
    """'algo.alpha=0.5' -> (['algo', 'alpha'], 0.5). The value is read as TOML, else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", text, "expected KEY=VALUE, for example --set algo.alpha=0.5")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError("--set", text, f"{'.'.join(path[:-1])} is not a table")
        node[path[-1]] = value
    return data


def load_config_file(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    path = Path(path)
    text = read_regular_text(path, "config file")  # a FIFO, a device or a folder: refused, never read
    return load_config_text(text, source=str(path), base_dir=path.parent, overrides=overrides)


def load_config_text(
    text: str,
    source: str = "<config>",
    base_dir: Path | None = None,
    overrides: list[str] | None = None,
) -> RunConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    data = apply_overrides(data, overrides or [])
    return validate_config(data, source=source, base_dir=base_dir, source_text=text)


def validate_config(
    data: dict[str, Any],
    source: str = "<config>",
    base_dir: Path | None = None,
    source_text: str | None = None,
) -> RunConfig:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(
                source,
                key,
                f"unknown key. Allowed at the top level: {_allowed(list(TOP_LEVEL_KEYS))}."
                + _suggest(key, list(TOP_LEVEL_KEYS)),
            )
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(source, "seed", f"must be a non-negative integer, got {seed!r}")
    device = data.get("device", "auto")
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ConfigError(
            source, "device", f"got {device!r}; allowed: auto, cpu, cuda, cuda:N (N a number), mps"
        )

    env_table = _table(data, "env", source)
    algo_table = _table(data, "algo", source)
    env_id = _id(env_table, "env", registry.find_env, registry.envs, source)
    algo_id = _id(algo_table, "algo", registry.find_algo, registry.algos, source)
    env_spec, algo_spec = registry.env_spec(env_id), registry.algo_spec(algo_id)
    if env_spec.kind not in algo_spec.env_kinds:
        fitting = sorted(e.id for e in registry.envs().values() if e.kind in algo_spec.env_kinds)
        raise ConfigError(
            source,
            "algo.id",
            f"{algo_id!r} cannot run on {env_id!r} (a {env_spec.kind} env); "
            f"envs it can run on: {_allowed(fitting)}",
        )
    env_params = _validate_table(env_spec.params, env_table, "env", source, base_dir)
    algo_params = _validate_table(algo_spec.params, algo_table, "algo", source, base_dir)
    record = _validate_table(RecordParams, data.get("record", {}), "record", source, base_dir)

    name = data.get("name") or f"{algo_id}-{env_id}"
    if not isinstance(name, str):
        raise ConfigError(source, "name", f"must be a string, got {name!r}")
    return RunConfig(
        name=name,
        seed=seed,
        device=device,
        env_id=env_id,
        algo_id=algo_id,
        env=env_params,
        algo=algo_params,
        record=record,
        source_text=source_text if source_text is not None else dump_toml(data),
        source_path=source if source and not source.startswith("<") else None,
    )


def _table(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    table = data.get(name)
    if table is None:
        raise ConfigError(source, f"[{name}]", f"missing; add a [{name}] table with at least `id`")
    if not isinstance(table, dict):
        raise ConfigError(source, name, "must be a table")
    return table


def _id(table: dict[str, Any], name: str, find: Callable[[str], Any], every: Callable[[], dict], source: str) -> str:
    """The table's `id`, looked up alone (one family's import); every id is listed only for an error."""
    value = table.get("id")
    if isinstance(value, str) and find(value) is not None:
        return value
    choices = sorted(every())
    if value is None:
        raise ConfigError(source, f"{name}.id", f"missing. Allowed: {_allowed(choices)}")
    raise ConfigError(
        source, f"{name}.id", f"unknown id {value!r}. Allowed: {_allowed(choices)}." + _suggest(str(value), choices)
    )


def _resolve_paths(table: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """A relative `path` (or `*_path`) inside a config is relative to the config file."""
    if base_dir is None:
        return table
    out = dict(table)
    for key, value in table.items():
        if (key == "path" or key.endswith("_path")) and isinstance(value, str) and value:
            p = Path(value).expanduser()
            out[key] = str(p if p.is_absolute() else (base_dir / p).resolve())
    return out


def _validate_table(
    model: type[Params], table: dict[str, Any], name: str, source: str, base_dir: Path | None
) -> Any:
    fields = {k: v for k, v in table.items() if k != "id"}
    allowed = list(model.model_fields)
    for key in fields:
        if key not in model.model_fields:
            raise ConfigError(
                source,
                f"{name}.{key}",
                f"unknown key. Allowed in [{name}]: {_allowed(allowed) or '(none)'}."
                + _suggest(key, allowed),
            )
    try:
        return model.model_validate(_resolve_paths(fields, base_dir))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        key = f"{name}.{loc}" if loc else name
        got = err.get("input")
        detail = err["msg"]
        field = model.model_fields.get(str(err["loc"][0])) if err["loc"] else None
        hint = f" ({field.description})" if field is not None and field.description else ""
        raise ConfigError(source, key, f"{detail}; got {got!r}{hint}") from None
