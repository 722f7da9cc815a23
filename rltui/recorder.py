"""The Recorder: what algorithms report to, and the batched writer that puts it in the store.

Algorithms know nothing of databases. They call

    recorder.log(step, loss=..., epsilon=...)          # scalar metrics at a step
    recorder.episode(index, ret, length, phase, steps)  # an episode, maybe with its trajectory
    recorder.artifact("V_sweep", V, step=k)             # arrays and tables
    recorder.progress(fraction); recorder.should_stop()

and `StoreRecorder` buffers it all and writes in batches (one IMMEDIATE transaction per flush, raw
executemany), so a tight training loop never waits on SQLite. `record` settings decide which
episodes keep their step-by-step trajectory so a long run cannot flood the store.
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import delete, insert, select, update

from rltui.store.engine import Store
from rltui.store.models import Artifact, Episode, Metric, Run, Step


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class RecordPolicy:
    """Which episodes keep their trajectories (`[record]` in a run's TOML)."""

    every: int = 0  # keep every Nth training episode (0: none by this rule)
    last: int = 5  # keep the last K training episodes (older ones are pruned)
    eval: bool = True  # keep every evaluation episode
    max_steps: int = 10_000  # never store more than this many steps of one episode

    def wants(self, index: int, phase: str) -> bool:
        if phase != "train":
            return self.eval
        return self.last > 0 or (self.every > 0 and index % self.every == 0)


@dataclass
class StepRecord:
    """One transition as the agent lived it. `extras` holds Q(s,·), π(·|s), V(s), TD error, ..."""

    t: int
    state: Any
    action: Any
    reward: float
    done: bool = False
    extras: dict[str, Any] | None = None


def to_jsonable(value: Any) -> Any:
    """numpy scalars and arrays (and nested containers of them) as plain JSON values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # torch tensors, without importing torch here
        return value.tolist()
    return value


def encode_artifact(value: Any) -> tuple[str, bytes]:
    """(kind, bytes) for an artifact value: arrays as .npy, bytes as-is, the rest as JSON."""
    if isinstance(value, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return "npy", buf.getvalue()
    if isinstance(value, (bytes, bytearray)):
        return "bytes", bytes(value)
    if isinstance(value, str):
        return "text", value.encode()
    return "json", json.dumps(to_jsonable(value)).encode()


def decode_artifact(kind: str, data: bytes) -> Any:
    if kind == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "json":
        return json.loads(data)
    if kind == "text":
        return data.decode()
    return data


class Recorder:
    """What an algorithm reports to. The base class records nothing; subclasses store it.

    Algorithms must call `should_stop()` at safe points (between episodes or updates) and return
    promptly when it is true.
    """

    policy: RecordPolicy = RecordPolicy()

    def log(self, step: int, **metrics: float) -> None: ...

    def episode(
        self,
        index: int,
        ret: float,
        length: int,
        phase: str = "train",
        steps: Sequence[StepRecord] | None = None,
        step: int | None = None,
    ) -> None: ...

    def wants_trajectory(self, index: int, phase: str = "train") -> bool:
        return self.policy.wants(index, phase)

    def artifact(self, name: str, value: Any, step: int | None = None) -> None: ...

    def progress(self, fraction: float) -> None: ...

    def checkpoint(self, step: int, data: bytes) -> None:
        """Save a resumable state (bytes the algorithm made, e.g. torch.save of its state dicts)."""

    def last_checkpoint(self) -> tuple[int, bytes] | None:
        """(step, bytes) of this run's latest checkpoint, for `rltui resume`; None on a fresh run."""
        return None

    def summary(self, **figures: Any) -> None: ...

    def should_stop(self) -> bool:
        return False

    def flush(self) -> None: ...

    def close(self) -> None:
        self.flush()


@dataclass
class _Pending:
    metrics: list[tuple[int, str, int, float, float]] = field(default_factory=list)
    episodes: list[tuple[dict[str, Any], list[StepRecord] | None]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    progress: float | None = None

    def __len__(self) -> int:
        return len(self.metrics) + len(self.episodes) + len(self.artifacts)


class StoreRecorder(Recorder):
    """Buffers reports and writes them to the store in batches.

    A flush happens when `flush_every` seconds have passed or `max_pending` items are waiting, at
    the latest on the next report; the runner also calls `flush()` on heartbeat. At most about
    `flush_every` seconds of data are lost if the process is killed.
    """

    def __init__(
        self,
        store: Store,
        run_id: int,
        policy: RecordPolicy | None = None,
        flush_every: float = 0.5,
        max_pending: int = 50_000,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.policy = policy or RecordPolicy()
        self.flush_every = flush_every
        self.max_pending = max_pending
        self._pending = _Pending()
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._last_flush = self._t0
        self._stop_checked_at = 0.0
        self._stop = False
        self._kept_train_episodes: list[int] = []  # episode ids with trajectories, oldest first

    # --- reports -------------------------------------------------------------------------------
    def wall_time(self) -> float:
        return time.monotonic() - self._t0

    def log(self, step: int, **metrics: float) -> None:
        wall = self.wall_time()
        with self._lock:
            self._pending.metrics.extend(
                (self.run_id, key, int(step), float(value), wall) for key, value in metrics.items()
            )
        self._maybe_flush()

    def log_many(self, key: str, steps: Iterable[int], values: Iterable[float]) -> None:
        """A whole series at once (the benchmark's and bulk importers' path)."""
        wall = self.wall_time()
        with self._lock:
            self._pending.metrics.extend(
                (self.run_id, key, int(s), float(v), wall) for s, v in zip(steps, values)
            )
        self._maybe_flush()

    def episode(
        self,
        index: int,
        ret: float,
        length: int,
        phase: str = "train",
        steps: Sequence[StepRecord] | None = None,
        step: int | None = None,
    ) -> None:
        keep = steps is not None and self.wants_trajectory(index, phase)
        row = {
            "run_id": self.run_id,
            "index": int(index),
            "phase": phase,
            "return": float(ret),
            "length": int(length),
            "step": None if step is None else int(step),
            "wall_time": self.wall_time(),
            "has_trajectory": keep,
        }
        with self._lock:
            self._pending.episodes.append((row, list(steps[: self.policy.max_steps]) if keep else None))
        self._maybe_flush()

    def artifact(self, name: str, value: Any, step: int | None = None) -> None:
        kind, data = encode_artifact(value)
        with self._lock:
            self._pending.artifacts.append(
                {
                    "run_id": self.run_id,
                    "name": name,
                    "step": step,
                    "kind": kind,
                    "data": data,
                    "created_at": utcnow(),
                }
            )
        self._maybe_flush()

    def checkpoint(self, step: int, data: bytes) -> None:
        """Write at once (not batched) and keep only the newest two, so a crash loses little."""
        self.flush()
        with self.store.write_connection() as conn, conn.begin():
            conn.execute(
                insert(Artifact).values(
                    run_id=self.run_id, name="checkpoint", step=int(step), kind="bytes",
                    data=bytes(data), created_at=utcnow(),
                )
            )
            keep = select(Artifact.id).where(
                Artifact.run_id == self.run_id, Artifact.name == "checkpoint"
            ).order_by(Artifact.id.desc()).limit(2)
            conn.execute(
                delete(Artifact).where(
                    Artifact.run_id == self.run_id,
                    Artifact.name == "checkpoint",
                    Artifact.id.not_in(keep.scalar_subquery()),
                )
            )

    def last_checkpoint(self) -> tuple[int, bytes] | None:
        with self.store.read() as session:
            row = session.execute(
                select(Artifact.step, Artifact.data)
                .where(Artifact.run_id == self.run_id, Artifact.name == "checkpoint")
                .order_by(Artifact.id.desc())
                .limit(1)
            ).first()
        return (int(row.step), bytes(row.data)) if row else None

    def progress(self, fraction: float) -> None:
        with self._lock:
            self._pending.progress = max(0.0, min(1.0, float(fraction)))
        self._maybe_flush()

    def summary(self, **figures: Any) -> None:
        with self._lock:
            self._pending.summary.update(to_jsonable(figures))
        self._maybe_flush()

    def should_stop(self) -> bool:
        """True once someone asked this run to stop (checked in the store at most every 0.25 s)."""
        now = time.monotonic()
        if not self._stop and now - self._stop_checked_at > 0.25:
            self._stop_checked_at = now
            with self.store.read() as session:
                self._stop = bool(
                    session.scalar(select(Run.cancel_requested).where(Run.id == self.run_id))
                )
        return self._stop

    # --- writing -------------------------------------------------------------------------------
    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self.flush_every or len(self._pending) >= self.max_pending:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, _Pending()
            self._last_flush = time.monotonic()
        if not len(pending) and not pending.summary and pending.progress is None:
            return
        with self.store.write_connection() as conn, conn.begin():
            if pending.metrics:
                conn.execute(
                    insert(Metric),
                    [
                        {"run_id": r, "key": k, "step": s, "value": v, "wall_time": w}
                        for r, k, s, v, w in pending.metrics
                    ],
                )
            for row, steps in pending.episodes:
                self._write_episode(conn, row, steps)
            if pending.artifacts:
                conn.execute(insert(Artifact), pending.artifacts)
            values: dict[str, Any] = {}
            if pending.progress is not None:
                values["progress"] = pending.progress
            if pending.summary:
                current = conn.scalar(select(Run.summary).where(Run.id == self.run_id)) or {}
                values["summary"] = {**current, **pending.summary}
            if values:
                conn.execute(update(Run).where(Run.id == self.run_id).values(**values))

    def _write_episode(self, conn, row: dict[str, Any], steps: list[StepRecord] | None) -> None:  # noqa: ANN001
        episode_id = conn.execute(
            insert(Episode).values(
                run_id=row["run_id"],
                index=row["index"],
                phase=row["phase"],
                return_=row["return"],
                length=row["length"],
                step=row["step"],
                wall_time=row["wall_time"],
                has_trajectory=row["has_trajectory"],
            )
        ).inserted_primary_key[0]
        if not steps:
            return
        conn.execute(
            insert(Step),
            [
                {
                    "episode_id": episode_id,
                    "t": s.t,
                    "state": to_jsonable(s.state),
                    "action": to_jsonable(s.action),
                    "reward": float(s.reward),
                    "done": bool(s.done),
                    "extras": to_jsonable(s.extras) if s.extras else None,
                }
                for s in steps
            ],
        )
        if row["phase"] == "train":
            self._prune_trajectories(conn, row["index"], episode_id)

    def _prune_trajectories(self, conn, index: int, episode_id: int) -> None:  # noqa: ANN001
        """Keep the last K training trajectories, plus those the `every` rule keeps for good."""
        policy = self.policy
        if policy.every > 0 and index % policy.every == 0:
            return
        self._kept_train_episodes.append(episode_id)
        if policy.last <= 0:
            return
        while len(self._kept_train_episodes) > policy.last:
            old = self._kept_train_episodes.pop(0)
            conn.execute(delete(Step).where(Step.episode_id == old))
            conn.execute(update(Episode).where(Episode.id == old).values(has_trajectory=False))
