"""Ids → factories and parameter schemas, for every env and algorithm the lab knows.

The TOML loader, the CLI and the TUI's forms are all generated from these schemas (pydantic models).
Factories are named as "module:function" strings and imported only when a run is built, so reading
the registry (the TUI does) never imports torch or gymnasium.

Each family of the lab declares its own specs in rltui/schemas/<family>.py; this module gathers them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, Literal

from pydantic import BaseModel

EnvKind = Literal["tabular", "control", "text", "diagnostic"]


@dataclass(frozen=True)
class EnvSpec:
    id: str
    params: type[BaseModel]
    factory: str  # "module:function", called as factory(params, base_dir) -> env
    kind: EnvKind
    summary: str = ""


@dataclass(frozen=True)
class AlgoSpec:
    id: str
    params: type[BaseModel]
    entry: str  # "module:function", called as train(env, params, recorder, seed=, device=)
    env_kinds: frozenset[str]  # which env kinds it can run on
    summary: str = ""
    uses_torch: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)


def load_callable(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_FAMILIES = ("rltui.schemas.tabular", "rltui.schemas.control", "rltui.schemas.lm", "rltui.schemas.diagnostics")


@cache
def _gather() -> tuple[dict[str, EnvSpec], dict[str, AlgoSpec]]:
    envs: dict[str, EnvSpec] = {}
    algos: dict[str, AlgoSpec] = {}
    for family in _FAMILIES:
        try:
            module = importlib.import_module(family)
        except ModuleNotFoundError as exc:
            if exc.name == family:  # a family not built yet
                continue
            raise
        for spec in getattr(module, "ENVS", ()):
            envs[spec.id] = spec
        for spec in getattr(module, "ALGOS", ()):
            algos[spec.id] = spec
    return envs, algos


def envs() -> dict[str, EnvSpec]:
    return _gather()[0]


def algos() -> dict[str, AlgoSpec]:
    return _gather()[1]


def env_spec(env_id: str) -> EnvSpec:
    return envs()[env_id]


def algo_spec(algo_id: str) -> AlgoSpec:
    return algos()[algo_id]
