"""Diagnostics family: a tiny env and algorithm for checking a machine's runner.

`heartbeat_probe` on the `ticker` env does nothing clever on purpose: it counts steps, logs a metric
and an episode as it goes, sleeps between steps, checks should_stop(), can fail at a chosen step,
and (with uses_torch) trains a one-layer torch model and checkpoints it so resume can be checked.
Run it to see that background runs, heartbeats, cancel, crash detection and resume work on a host:

    rltui run sample_runs/diagnostic_probe.toml --detach
"""

from __future__ import annotations

from pydantic import Field

from rltui.config import Params
from rltui.registry import AlgoSpec, EnvSpec


class TickerParams(Params):
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="discount γ in [0, 1] (the probe's returns use it)")
    episode_length: int = Field(10, ge=1, le=1_000_000, description="steps per episode; reward +1 per step")


class HeartbeatProbeParams(Params):
    steps: int = Field(100, ge=1, le=100_000_000, description="how many steps to run")
    step_seconds: float = Field(0.05, ge=0.0, le=3600.0, description="seconds to sleep at each step")
    fail_at_step: int = Field(-1, ge=-1, description="raise an error at this step (-1: never)")
    uses_torch: bool = Field(
        False, description="train a tiny torch linear model and checkpoint it (tests resume and torch start-up)"
    )
    checkpoint_every: int = Field(10, ge=1, description="steps between checkpoints (with uses_torch)")
    print_every: int = Field(1, ge=0, description="echo 'step N t=UNIX_TIME' to stderr (the run's log) every N steps (0: off)")


ENVS = [
    EnvSpec(
        id="ticker",
        params=TickerParams,
        factory="rltui.envs.ticker:make_ticker",
        kind="diagnostic",
        summary="a one-action step counter: state = steps into the episode, reward +1 per step",
    )
]

ALGOS = [
    AlgoSpec(
        id="heartbeat_probe",
        params=HeartbeatProbeParams,
        entry="rltui.algos.heartbeat_probe:train",
        env_kinds=frozenset({"diagnostic"}),
        summary="the runner's diagnostic: steps, sleeps, logs, checkpoints, fails on request",
        tags=("diagnostic",),
    )
]
