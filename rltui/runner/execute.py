"""Creating a run row and executing it. The foreground CLI and the detached worker share this path.

execute_run(): load the run's stored config, resolve the device, seed everything, build the env and
the algorithm from the registry, run it against a StoreRecorder, and record how it ended.
"""

from __future__ import annotations

import os
import socket
import traceback
from typing import Any, Callable

from sqlalchemy import select, update

from rltui import registry
from rltui.config import RunConfig, validate_config
from rltui.recorder import StoreRecorder, utcnow
from rltui.runner.devices import resolve_device, seed_everything, versions
from rltui.store.engine import Store
from rltui.store.models import CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING, Run


def create_run(store: Store, config: RunConfig, status: str = QUEUED, parent_id: int | None = None) -> int:
    """Store a validated config as a new run row; returns its id."""
    with store.write() as session:
        run = Run(
            name=config.name,
            env_id=config.env_id,
            algo_id=config.algo_id,
            config_toml=config.source_text,
            config=config.to_dict(),
            config_path=config.source_path,
            seed=config.seed,
            device=config.device,
            status=status,
            created_at=utcnow(),
            summary={},
            tags=[],
            notes="",
            versions={},
            parent_id=parent_id,
        )
        session.add(run)
        session.flush()
        return run.id


def stored_config(store: Store, run_id: int) -> RunConfig:
    with store.read() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise KeyError(run_id)
        data, text = run.config, run.config_toml
    return validate_config(dict(data), source=f"run {run_id}", source_text=text)


def execute_run(
    store: Store,
    run_id: int,
    on_progress: Callable[[float], None] | None = None,
    recorder_factory: Callable[[Store, int, Any], StoreRecorder] | None = None,
) -> str:
    """Run `run_id` in this process to its end; returns the final status."""
    config = stored_config(store, run_id)
    algo = registry.algo_spec(config.algo_id)
    env_spec = registry.env_spec(config.env_id)
    device = resolve_device(config.device, algo.uses_torch)
    with store.write() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status=RUNNING,
                started_at=utcnow(),
                heartbeat_at=utcnow(),
                pid=os.getpid(),
                host=socket.gethostname(),
                device_used=device,
                versions=versions(algo.uses_torch),
            )
        )
    make_recorder = recorder_factory or (lambda s, r, p: StoreRecorder(s, r, policy=p))
    recorder = make_recorder(store, run_id, config.record.policy())
    if on_progress is not None:
        _forward_progress(recorder, on_progress)
    try:
        seed_everything(config.seed, algo.uses_torch)
        env = registry.load_callable(env_spec.factory)(config.env)
        train = registry.load_callable(algo.entry)
        result = train(env, config.algo, recorder, seed=config.seed, device=device)
        if isinstance(result, dict) and result:
            recorder.summary(**result)
        recorder.close()
    except BaseException as exc:  # noqa: BLE001 — record every way a run can end
        try:
            recorder.close()
        finally:
            status = CANCELLED if isinstance(exc, KeyboardInterrupt) else FAILED
            finish_run(store, run_id, status, error=f"{type(exc).__name__}: {exc}", tb=traceback.format_exc())
        if isinstance(exc, KeyboardInterrupt):
            return CANCELLED
        return FAILED
    status = CANCELLED if recorder.should_stop() else COMPLETED
    finish_run(store, run_id, status)
    return status


def _forward_progress(recorder: StoreRecorder, on_progress: Callable[[float], None]) -> None:
    original = recorder.progress

    def progress(fraction: float) -> None:
        original(fraction)
        on_progress(fraction)

    recorder.progress = progress  # type: ignore[method-assign]


def finish_run(store: Store, run_id: int, status: str, error: str | None = None, tb: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow()}
    if status == COMPLETED:
        values["progress"] = 1.0
    if error is not None:
        values["error"] = error
        values["traceback"] = tb
    with store.write() as session:
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def run_status(store: Store, run_id: int) -> str | None:
    with store.read() as session:
        return session.scalar(select(Run.status).where(Run.id == run_id))
