"""The sweep driver: asks the sampler for a trial's parameters, submits one ordinary run per seed,
watches the runs in the store, prunes, retries crashed runs, and tells the sampler each result.

    python -m rltui.sweeps.driver SWEEP_ID      (the store's URL from $RLTUI_DB, never argv)

Everything it knows lives in the store, so a killed driver loses nothing: `rltui sweep resume ID`
starts a new driver that rebuilds the sampler from the stored trials (an in-memory Optuna study fed
with optuna.trial.create_trial; Optuna keeps no tables in rltui's store), adopts the runs still in
flight, re-queues trials the old driver left crashed or cancelled, and carries on with the budget.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rltui.errors import ConfigError
from rltui.store.engine import Store
from rltui.store.status import CANCELLED, COMPLETED, CRASHED, FAILED, FINAL_STATUSES, QUEUED, RUNNING
from rltui.sweeps.spec import SweepSpec
from rltui.sweeps.trials import (
    PRUNED,
    SWEEP_CANCELLED,
    SWEEP_COMPLETED,
    SWEEP_CRASHED,
    SWEEP_RUNNING,
    SweepRow,
    Trial,
    best_trial,
    get_sweep,
    load_trials,
    should_prune,
    this_host,
    update_sweep,
)

MAX_RETRIES = 3  # a run whose worker (or Ray node) died is resumed this many times before its trial fails
LIVENESS_EVERY = 0.5  # s between the driver's checks for dead workers and pruning


class SweepError(Exception):
    """A sweep that cannot be driven (no such sweep, already finished, a running driver)."""


def spec_of(sweep: SweepRow) -> SweepSpec:
    return SweepSpec.from_stored(sweep.spec, sweep.spec_toml, sweep.base_toml, sweep.spec_path)


# --- samplers --------------------------------------------------------------------------------------
class GridSampler:
    """Every point of the grid once, in order; points already stored are skipped."""

    def __init__(self, spec: SweepSpec, trials: list[Trial]) -> None:
        self.points = spec.grid()
        self.used = {self._key(t.params) for t in trials}

    @staticmethod
    def _key(params: dict[str, Any]) -> str:
        return repr(sorted((k, float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                           for k, v in params.items()))

    def suggest(self, number: int) -> dict[str, Any] | None:
        for point in self.points:
            key = self._key(point)
            if key not in self.used:
                self.used.add(key)
                return point
        return None

    def record(self, trial: Trial) -> None:
        pass


class OptunaSampler:
    """Optuna's RandomSampler or TPESampler over an in-memory study (ask/tell), rebuilt on resume."""

    def __init__(self, spec: SweepSpec, trials: list[Trial]) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        dist = optuna.distributions
        self.distributions = {
            p.key: (dist.CategoricalDistribution(list(p.choices)) if p.kind == "choice"
                    else dist.IntDistribution(int(p.low), int(p.high)) if p.kind == "int"
                    else dist.FloatDistribution(p.low, p.high, log=p.kind == "log_uniform"))
            for p in spec.parameters
        }
        # A resumed random sampler must not replay the first trials' draws: its seed moves on.
        seed = spec.sampler_seed + len(trials)
        sampler = (optuna.samplers.RandomSampler(seed=seed) if spec.method == "random"
                   else optuna.samplers.TPESampler(seed=seed))
        direction = "maximize" if spec.objective.mode == "max" else "minimize"
        self.study = optuna.create_study(direction=direction, sampler=sampler)  # in memory: no storage
        self.asked: dict[int, int] = {}  # our trial number → the study's
        for t in trials:
            if t.status in (COMPLETED, PRUNED, FAILED):
                self.record(t)

    def suggest(self, number: int) -> dict[str, Any]:
        trial = self.study.ask(self.distributions)
        self.asked[number] = trial.number
        return dict(trial.params)

    def record(self, trial: Trial) -> None:
        TrialState = self.optuna.trial.TrialState
        state = {COMPLETED: TrialState.COMPLETE, PRUNED: TrialState.PRUNED}.get(trial.status, TrialState.FAIL)
        value = trial.value if state == TrialState.COMPLETE else None
        if trial.trial in self.asked:
            self.study.tell(self.asked.pop(trial.trial), value, state=state)
            return
        params = {k: v for k, v in trial.params.items() if k in self.distributions}
        if len(params) != len(self.distributions):
            return  # a stored trial without every parameter (not one of ours): nothing to learn from
        self.study.add_trial(self.optuna.trial.create_trial(
            params=params, distributions=self.distributions, value=value, state=state))


def make_sampler(spec: SweepSpec, trials: list[Trial]) -> GridSampler | OptunaSampler:
    return GridSampler(spec, trials) if spec.method == "grid" else OptunaSampler(spec, trials)


# --- engines ---------------------------------------------------------------------------------------
class LocalEngine:
    """Trials' runs go to rltui's own queue; local detached workers drain it.

    On a SQLite store a worker is started ahead of each trial (launch.spawn_waiting_worker): it waits
    while this driver lives, and claims the next trial's run at once instead of after a Python
    start-up, if it has had a trial's time to start.
    """

    name = "local"
    EARLY_WORKER_LIFE = 25.0  # s: a waiting worker gives up at 30 s (worker.LAUNCHER_WAIT_LIMIT)

    def __init__(self, store: Store, spec: SweepSpec) -> None:
        self.store = store
        self.early: Any = None
        self.early_since = 0.0

    def _early_waiting(self) -> bool:
        """Whether our early worker still waits (alive, not too old, owning no run)."""
        if self.early is None or self.early.poll() is not None:
            return False
        if time.monotonic() - self.early_since > self.EARLY_WORKER_LIFE:
            return False
        with self.store.sql.read() as tx:
            return not tx.scalar("SELECT count(*) FROM runs WHERE pid = :pid AND status = :running",
                                 pid=self.early.pid, running=RUNNING)

    def dispatch(self, run_ids: list[int]) -> None:
        from rltui.runner import launch

        # the worker started ahead (it holds a slot) gets the first claim, then free slots get new ones
        launch.start_workers(self.store, early=self.early if self._early_waiting() else None)
        self.early = launch.spawn_waiting_worker(self.store)  # for the next trial
        self.early_since = time.monotonic()

    def poll(self, statuses: dict[int, str]) -> None:
        pass

    def close(self) -> None:
        pass


def make_engine(store: Store, spec: SweepSpec) -> Any:
    if spec.engine == "ray":
        from rltui.sweeps.ray_engine import RayEngine

        return RayEngine(store, spec)
    return LocalEngine(store, spec)


# --- the driver ------------------------------------------------------------------------------------
class Driver:
    def __init__(self, store: Store, sweep_id: int, on_event: Callable[[str], None] | None = None,
                 poll: float = 0.1) -> None:
        sweep = get_sweep(store, sweep_id)
        if sweep is None:
            raise SweepError(f"no sweep with id {sweep_id}")
        self.store, self.sweep_id, self.poll = store, sweep_id, poll
        self.spec = spec_of(sweep)
        self.say = on_event or (lambda line: None)
        self.retries: dict[int, int] = {}
        self.pruned: set[int] = set(sweep.pruned)
        self.device_checked = False

    # What the driver does each tick: read the trials, act on what changed, top up the trials in flight.
    def run(self) -> str:
        from rltui.recorder import utcnow
        from rltui.runner import launch

        pid, host = this_host()
        update_sweep(self.store, self.sweep_id, status=SWEEP_RUNNING, pid=pid, host=host, heartbeat_at=utcnow(),
                     finished_at=None, error=None, cancel_requested=False)
        sweep = get_sweep(self.store, self.sweep_id)
        trials = load_trials(self.store, sweep)
        t = time.monotonic()
        self.engine = make_engine(self.store, self.spec)
        self.engine_seconds = time.monotonic() - t  # ray.init takes seconds; the local queue nothing
        in_flight: set[int] = set()
        try:
            sampler = make_sampler(self.spec, trials)
            parallel = self.spec.parallel or self._default_parallel()
            started = time.monotonic()
            deadline = started + self.spec.max_minutes * 60 if self.spec.max_minutes else None
            in_flight |= self._adopt(trials)
            next_trial = max((t.trial for t in trials), default=-1) + 1
            exhausted = False
            last_check = 0.0
            while True:
                sweep = get_sweep(self.store, self.sweep_id)
                if sweep.cancel_requested:
                    return self._cancel(in_flight)
                now = time.monotonic()
                check = now - last_check >= LIVENESS_EVERY
                if check:
                    last_check = now
                    launch.refresh_liveness(self.store, kick=self.engine.name == "local")
                    update_sweep(self.store, self.sweep_id, heartbeat_at=utcnow())
                trials = {t.trial: t for t in load_trials(self.store, sweep, with_series=check or bool(in_flight))}
                statuses = {rid: st for t in trials.values() for rid, st in zip(t.run_ids, t.statuses)}
                self.engine.poll(statuses)
                for number in list(in_flight):
                    t = trials[number]
                    if self._retry_crashed(t):
                        continue
                    if t.status in (COMPLETED, FAILED, PRUNED, CANCELLED):
                        in_flight.discard(number)
                        sampler.record(t)
                        best = best_trial(list(trials.values()), self.spec.objective.mode)
                        self.say(f"trial {t.trial} {t.status}: {_fmt(t.value)} {_params(t.params)}"
                                 + (f"  (best: trial {best.trial}, {_fmt(best.value)})" if best else ""))
                    elif check and self.spec.prune and t.status == RUNNING:
                        done = [c for c in trials.values() if c.status == COMPLETED]
                        if should_prune(t, done, self.spec.objective.to_dict()):
                            self._prune(t)
                budget_left = self.spec.trials - len(trials) if not exhausted else 0
                if deadline is not None and time.monotonic() >= deadline:
                    budget_left = 0
                while budget_left > 0 and len(in_flight) < parallel:
                    params = sampler.suggest(next_trial)
                    if params is None:
                        exhausted = True
                        break
                    self._submit(next_trial, params)
                    in_flight.add(next_trial)
                    next_trial += 1
                    budget_left -= 1
                if not in_flight and budget_left <= 0:
                    break
                time.sleep(self.poll)
            update_sweep(self.store, self.sweep_id, status=SWEEP_COMPLETED, finished_at=utcnow())
            return SWEEP_COMPLETED
        except KeyboardInterrupt:
            # Ctrl-C of a foreground sweep: its runs are cancelled, and it can be resumed.
            return self._cancel(in_flight)
        except Exception as exc:
            # The driver itself broke (the store went away...): say so; `sweep resume` can continue it.
            try:
                update_sweep(self.store, self.sweep_id, status=SWEEP_CRASHED,
                             error=f"driver: {type(exc).__name__}: {exc}")
            except Exception:  # noqa: BLE001 — the store itself is what failed: the sweep shows crashed anyway
                pass
            raise
        finally:
            self.engine.close()

    def _default_parallel(self) -> int:
        """Enough trials in flight to fill the run slots (local) or the cluster's CPUs (Ray)."""
        from rltui.runner.lifecycle import max_runs

        slots = getattr(self.engine, "slots", None) or max_runs()
        return max(1, slots // len(self.spec.seeds))

    def _adopt(self, trials: list[Trial]) -> set[int]:
        """A resumed sweep's unfinished trials: runs still running are watched, queued ones handed to
        the engine, and crashed or cancelled ones (the old driver's) queued again."""
        from rltui.runner.lifecycle import prepare_resume

        in_flight = set()
        for t in trials:
            if t.status in (COMPLETED, FAILED, PRUNED):
                continue
            again = []
            for run_id, status in zip(t.run_ids, t.statuses):
                if status in (CRASHED, CANCELLED):
                    prepare_resume(self.store, run_id)
                    again.append(run_id)
                elif status == QUEUED:
                    again.append(run_id)
            if again:
                self.engine.dispatch(again)
            in_flight.add(t.trial)
        return in_flight

    def _submit(self, number: int, params: dict[str, Any]) -> list[int]:
        """One queued run per seed, tagged with the sweep and trial, then handed to the engine."""
        from rltui.config import dump_toml, validate_config
        from rltui.runner import launch

        base_dir = Path(self.spec.base_path).parent
        run_ids = []
        for seed in self.spec.seeds:
            data = self.spec.trial_config(params, seed, f"{self.spec.name} #{number} s{seed}")
            try:
                config = validate_config(data, source=self.spec.base_path, base_dir=base_dir, source_text=dump_toml(data))
            except ConfigError:
                raise  # the spec's checks make this unreachable for a checked sweep
            run_id = launch.submit(self.store, config, check_device=not self.device_checked, start=False)
            self.device_checked = True
            with self.store.sql.write() as tx:
                tx.run("UPDATE runs SET sweep_id = :sid, trial = :trial WHERE id = :id",
                       sid=self.sweep_id, trial=number, id=run_id)
            run_ids.append(run_id)
        self.engine.dispatch(run_ids)
        self.say(f"trial {number} submitted: runs {', '.join(map(str, run_ids))} {_params(params)}")
        return run_ids

    def _retry_crashed(self, t: Trial) -> bool:
        """Resume the trial's crashed runs (same run id: nothing recorded twice); True if it did."""
        from rltui.runner.lifecycle import LifecycleError, prepare_resume

        again = []
        for run_id, status in zip(t.run_ids, t.statuses):
            if status != CRASHED:
                continue
            n = self.retries.get(run_id, 0)
            if n >= MAX_RETRIES:
                continue
            self.retries[run_id] = n + 1
            try:
                prepare_resume(self.store, run_id)
            except LifecycleError:
                continue  # resumed by someone else meanwhile
            again.append(run_id)
            self.say(f"trial {t.trial}: run {run_id} crashed; retry {n + 1} of {MAX_RETRIES}")
        if again:
            self.engine.dispatch(again)
        if any(s == CRASHED and self.retries.get(r, 0) >= MAX_RETRIES for r, s in zip(t.run_ids, t.statuses)):
            t.status = FAILED  # out of retries: the trial failed
            return False
        return bool(again)

    def _prune(self, t: Trial) -> None:
        from rltui.runner import launch

        self.pruned.add(t.trial)
        update_sweep(self.store, self.sweep_id, pruned=sorted(self.pruned))
        for run_id, status in zip(t.run_ids, t.statuses):
            if status not in FINAL_STATUSES:
                launch.cancel(self.store, run_id)  # graceful: the run stops at its next safe point
        self.say(f"trial {t.trial} pruned at {_fmt(t.value)} (below the median of the completed trials)")

    def _cancel(self, in_flight: set[int]) -> str:
        from rltui.recorder import utcnow
        from rltui.runner import launch

        sweep = get_sweep(self.store, self.sweep_id)
        for t in load_trials(self.store, sweep, with_series=False):
            for run_id, status in zip(t.run_ids, t.statuses):
                if status in (QUEUED, RUNNING):
                    launch.cancel(self.store, run_id)
        update_sweep(self.store, self.sweep_id, status=SWEEP_CANCELLED, finished_at=utcnow(), cancel_requested=False)
        self.say("sweep cancelled")
        return SWEEP_CANCELLED


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


# --- detached driver -------------------------------------------------------------------------------
def spawn_driver(store: Store, sweep_id: int) -> tuple[Any, str]:
    """A driver in its own session (it outlives the terminal), output to STORE-logs/sweep-ID.log beside the
    store's run logs; the store's URL travels in the environment, never on the command line."""
    import subprocess

    from rltui.sweeps.trials import sweep_log_path

    log_path = sweep_log_path(store, sweep_id)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(fd, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rltui.sweeps.driver", str(sweep_id)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            env={**os.environ, "RLTUI_DB": store.url},
        )
    # Owned by that process from now on: if it dies before it starts driving, the sweep shows crashed.
    update_sweep(store, sweep_id, log_path=log_path, pid=proc.pid, host=this_host()[1])
    return proc, log_path


def main(argv: list[str] | None = None) -> int:
    import signal

    from rltui.store.engine import resolve_url

    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    store = Store(resolve_url(None))
    sweep_id = int(args[0])
    try:
        status = Driver(store, sweep_id, on_event=lambda line: print(f"sweep {sweep_id}: {line}", flush=True)).run()
        print(f"sweep {sweep_id}: {status}", flush=True)
    finally:
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
