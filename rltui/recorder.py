"""The Recorder: what algorithms report to, and the batched writer that puts it in the store.

Algorithms know nothing of databases. They call

    recorder.log(step, loss=..., epsilon=...)          # scalar metrics at a step
    recorder.episode(index, ret, length, phase, steps)  # an episode, maybe with its trajectory
    recorder.artifact("V_sweep", V, step=k)             # arrays and tables
    recorder.progress(fraction); recorder.should_stop()

and `StoreRecorder` buffers it all and writes in batches (one IMMEDIATE transaction per flush, raw
executemany; COPY on PostgreSQL), so a tight training loop never waits on the store. `record`
settings decide which episodes keep their step-by-step trajectory so a long run cannot flood the
store.
"""

from __future__ import annotations

import io
import json
import copy
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from rltui.store.faults import BUSY, StoreFault, as_fault
from rltui.store.rollups import RollupWriter
from rltui.store.sql import BoundedWrites, Json, SQLiteTx, Tx, WriteLockBusy, as_json, finite_or_none, json_text, to_jsonable  # noqa: F401 — json_text, to_jsonable: re-exported
from rltui.store.thinning import Thinner

if TYPE_CHECKING:
    from rltui.store.engine import Store

# No SQLAlchemy here: algorithms import this module, and on SQLite a run writes through raw
# sqlite3 (Store.sql). Only another backend's flush goes through SQLAlchemy (_write_copy, _write_core).


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class RecordPolicy:
    """Which episodes keep their trajectories (`[record]` in a run's TOML)."""

    every: int = 0  # keep every Nth training episode (0: none by this rule)
    last: int = 5  # keep the last K training episodes (older ones are pruned)
    eval: bool = True  # keep every evaluation episode
    max_steps: int = 10_000  # never store more than this many steps of one episode
    max_metric_points: int = 1_000_000  # rows per metric key; older ones are thinned past it
    max_episodes: int = 1_000_000  # episode rows per phase; older ones are thinned past it

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


def _numpy() -> Any:
    """numpy if something loaded it, else None: then no value can be a numpy array, and the recorder
    (imported by `rltui run --detach` via the config) need not pay for importing it."""
    return sys.modules.get("numpy")


def encode_artifact(value: Any) -> tuple[str, bytes]:
    """(kind, bytes) for an artifact value: arrays as .npy, bytes as-is, the rest as JSON."""
    np = _numpy()
    if np is not None and isinstance(value, np.ndarray):
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
        import numpy as np

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
        oracle_score: float | None = None,
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
    checkpoints: list[tuple[int, bytes]] = field(default_factory=list)  # (step, data), oldest first
    step_rows: int = 0  # the steps of the episodes' trajectories

    def __len__(self) -> int:
        return len(self.metrics) + len(self.episodes) + len(self.artifacts)

    @property
    def rows(self) -> int:
        """The rows this will write, trajectories' steps counted (a TD run's episode may carry 100)."""
        return len(self.metrics) + len(self.episodes) + len(self.artifacts) + self.step_rows

    def take(self, rows: int) -> tuple[_Pending, bool]:
        """(the oldest records, about `rows` rows counting trajectories' steps; whether more are left
        here). Artifacts, summary and progress go with the first batch, checkpoints with the last (a
        checkpoint is stored with, or after, everything reported before it). Holds no lock: the caller does."""
        budget, cut, steps = rows - len(self.metrics), 0, 0
        while cut < len(self.episodes) and budget > 0:
            n_steps = len(self.episodes[cut][1] or ())
            budget -= 1 + n_steps
            steps += n_steps
            cut += 1
        if len(self.metrics) <= rows and cut == len(self.episodes):
            first = _Pending(self.metrics, self.episodes, self.artifacts, self.summary, self.progress, self.checkpoints,
                             self.step_rows)
            self.metrics, self.episodes, self.artifacts, self.summary, self.progress = [], [], [], {}, None
            self.checkpoints, self.step_rows = [], 0
            return first, False  # all of it (the usual case), without copying
        n = min(len(self.metrics), rows)
        first = _Pending(self.metrics[:n], self.episodes[:cut], self.artifacts, self.summary, self.progress,
                         step_rows=steps)
        self.metrics, self.episodes, self.artifacts, self.summary, self.progress = (
            self.metrics[n:], self.episodes[cut:], [], {}, None)
        self.step_rows -= steps
        return first, True


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
        self._flush_lock = threading.Lock()
        self._t0 = time.monotonic()
        # The first report is written at once (a launched run shows life as soon as it logs); then
        # at most every `flush_every` seconds.
        self._last_flush = float("-inf")
        self._stop_checked_at = 0.0
        self._stop = False
        self._kept_train_episodes: list[int] = []  # episode ids with trajectories, oldest first
        self.fault: StoreFault | None = None  # set when the store stopped taking writes (disk full, ...)
        # Every write goes through this: a worker's waits for the write lock are bounded (RunRecorder).
        self.writes = BoundedWrites(store.sql)
        self._thinner = Thinner(store, run_id, self.policy.max_metric_points, self.policy.max_episodes, self.writes)
        self._rollups = RollupWriter(run_id)  # the plots' pre-aggregated blocks (store/rollups.py)

    # --- reports -------------------------------------------------------------------------------
    def wall_time(self) -> float:
        return time.monotonic() - self._t0

    def log(self, step: int, **metrics: float) -> None:
        # The hot path of every training loop: build the rows, append, count; no other work.
        now = time.monotonic()
        run_id, step, wall = self.run_id, int(step), now - self._t0
        rows = [(run_id, key, step, finite_or_none(value), wall) for key, value in metrics.items()]
        with self._lock:
            pending = self._pending.metrics
            pending += rows
        if now - self._last_flush >= self.flush_every or len(pending) >= self.max_pending:
            self.flush()

    def log_many(self, key: str, steps: Iterable[int], values: Iterable[float]) -> None:
        """A whole series at once (the benchmark's and bulk importers' path)."""
        wall = self.wall_time()
        with self._lock:
            self._pending.metrics.extend(
                (self.run_id, key, int(s), finite_or_none(v), wall) for s, v in zip(steps, values)
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
        oracle_score: float | None = None,
    ) -> None:
        keep = steps is not None and self.wants_trajectory(index, phase)
        row = {
            "run_id": self.run_id,
            "index": int(index),
            "phase": phase,
            "return": finite_or_none(ret),
            "length": int(length),
            "step": None if step is None else int(step),
            "wall_time": self.wall_time(),
            "has_trajectory": keep,
            "oracle_score": oracle_score,
        }
        kept = list(steps[: self.policy.max_steps]) if keep else None
        with self._lock:
            self._pending.episodes.append((row, kept))
            self._pending.step_rows += len(kept or ())
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
        """Written at once, in the transaction that writes everything reported before it (so a resume
        from it finds the data it continues), keeping only the newest two, so a crash loses little.
        If the write lock is taken (a worker's bounded wait), it stays pending like any report."""
        with self._lock:
            checkpoints = self._pending.checkpoints
            checkpoints.append((int(step), bytes(data)))
            del checkpoints[:-self.KEEP_CHECKPOINTS]  # an older one still unwritten would be deleted at once
        self.flush()

    KEEP_CHECKPOINTS = 2

    def _write_checkpoints(self, tx: Tx, pending: _Pending) -> None:
        for step, data in pending.checkpoints:
            tx.run(
                "INSERT INTO artifacts (run_id, name, step, kind, data, created_at)"
                " VALUES (:run_id, 'checkpoint', :step, 'bytes', :data, :now)",
                run_id=self.run_id, step=step, data=data, now=utcnow(),
            )
        if pending.checkpoints:
            tx.run(
                "DELETE FROM artifacts WHERE run_id = :run_id AND name = 'checkpoint' AND id NOT IN"
                " (SELECT id FROM artifacts WHERE run_id = :run_id AND name = 'checkpoint' ORDER BY id DESC LIMIT :keep)",
                run_id=self.run_id, keep=self.KEEP_CHECKPOINTS,
            )

    def last_checkpoint(self) -> tuple[int, bytes] | None:
        with self.store.sql.read() as tx:
            row = tx.first(
                "SELECT step, data FROM artifacts WHERE run_id = :run_id AND name = 'checkpoint'"
                " ORDER BY id DESC LIMIT 1",
                run_id=self.run_id,
            )
        return (int(row[0]), bytes(row[1])) if row else None

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
        if self.fault is not None:
            raise self.fault
        now = time.monotonic()
        if not self._stop and now - self._stop_checked_at > 0.25:
            self._stop_checked_at = now
            with self.store.sql.read() as tx:
                self._stop = bool(tx.scalar("SELECT cancel_requested FROM runs WHERE id = :id", id=self.run_id))
        return self._stop

    # --- writing -------------------------------------------------------------------------------
    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self.flush_every or self._pending.rows >= self.max_pending:
            self.flush()

    # Rows (metric points, episodes and their steps) one write transaction takes at most: however
    # much is pending (a backlog while a peer held the lock), other writers wait for one batch only.
    batch_rows = 20_000

    def flush(self) -> None:
        """Write everything pending, in IMMEDIATE transactions of at most `batch_rows` rows."""
        with self._flush_lock:  # the heartbeat thread may flush too; keep flushes in order
            with self._lock:
                # Over all that waits, not batch by batch: a backlog of trajectories (a peer held the
                # lock) that the last-K rule drops would otherwise fill every batch's row budget, and
                # its flush take hundreds of transactions where a few do.
                self._pending.step_rows -= self._drop_doomed_trajectories(self._pending.episodes)
            more = True
            while more:
                with self._lock:
                    pending, more = self._pending.take(self.batch_rows)
                    self._last_flush = time.monotonic()
                if not len(pending) and not pending.summary and pending.progress is None and not pending.checkpoints:
                    return
                if self.fault is not None:
                    raise self.fault  # the store cannot take more: nothing is tried again
                pending.step_rows -= self._drop_doomed_trajectories(pending.episodes)
                rollups = copy.deepcopy(self._rollups)  # its sums as they were before this batch
                try:
                    self._write(pending)
                except WriteLockBusy:
                    self._rollups = rollups  # nothing was written: the sums and the batch go out later
                    self._requeue(pending)
                    raise
                except Exception as exc:
                    self._rollups = RollupWriter(self.run_id)  # its sums may hold rows that were not stored
                    raise self._fatal(exc) from exc
                try:  # its own short transactions; one that found the lock taken is tried after the next flush
                    self._thinner.after_flush(pending.metrics, pending.episodes, self.write_wait_ms)
                except WriteLockBusy:
                    raise  # this batch is written; what is left stays pending
                except Exception as exc:
                    raise self._fatal(exc) from exc

    # How long a flush may wait for SQLite's write lock (ms) before WriteLockBusy keeps its data
    # pending; None: the store's busy timeout. A worker's RunRecorder bounds it (runner/execute.py).
    write_wait_ms: int | None = None

    def _requeue(self, pending: _Pending) -> None:
        """Put an unwritten batch back in front of what was reported since."""
        with self._lock:
            newer, self._pending = self._pending, pending
            pending.metrics += newer.metrics
            pending.episodes += newer.episodes
            pending.artifacts += newer.artifacts
            pending.summary.update(newer.summary)
            if newer.progress is not None:
                pending.progress = newer.progress
            pending.step_rows += newer.step_rows
            pending.checkpoints += newer.checkpoints
            del pending.checkpoints[:-self.KEEP_CHECKPOINTS]

    def _write(self, pending: _Pending) -> None:
        if self.store.is_sqlite:
            with self.writes.attempt(self.write_wait_ms, self.waiting_note) as tx:
                self._rollups.record(tx, pending.metrics, self._thinner.metric_width)
                self._write_sqlite(tx, pending)
                self._write_run_row(tx, pending)
                self._write_checkpoints(tx, pending)
        else:
            from rltui.store import pg_copy
            from rltui.store.sql import AlchemyTx

            with self.store.write_connection() as conn, conn.begin():
                self._rollups.record(AlchemyTx(conn), pending.metrics, self._thinner.metric_width)
                if pg_copy.usable(conn):
                    self._write_copy(conn, pending)
                else:
                    self._write_core(conn, pending)
                self._write_run_row(AlchemyTx(conn), pending)
                self._write_checkpoints(AlchemyTx(conn), pending)

    def waiting_note(self) -> str:
        """What waits while the write lock is taken (the run's log says it once, after a while)."""
        return f"the run goes on, {self._pending.rows} rows wait in memory"

    def close(self) -> None:
        self.flush()
        self._finish_rollups()

    def _finish_rollups(self) -> None:
        """The run is over: its open rollup blocks are complete; written (a rollup left out is read raw)."""
        with self._flush_lock:  # the heartbeat may still flush
            if self.fault is not None or not self._rollups.keys:
                return
            try:
                self.writes.until_done(lambda tx: self._rollups.finish(tx, self._thinner.metric_width),
                                       self.write_wait_ms, "the run's last plot rollups wait")
            except Exception as exc:  # noqa: BLE001 — never fail a finished run over its plots' shortcut
                print(f"rltui: run {self.run_id}: its last plot rollups were not written: {exc}", file=sys.stderr, flush=True)

    def _fatal(self, exc: Exception) -> Exception:
        """A full disk, a read-only or damaged store: said at once in the run's log, and from then on
        every flush and should_stop() raises it, so the run ends `failed` with this one line."""
        if self.fault is None:
            fault = as_fault(exc, self.store.where)
            if fault is None or fault.kind == BUSY:
                return exc  # not a fault of the store itself: raised as it came
            self.fault = fault
            print(f"rltui: run {self.run_id}: {fault}; the run stops and ends failed", file=sys.stderr, flush=True)
        return self.fault

    def _drop_doomed_trajectories(self, episodes: list[tuple[dict[str, Any], list[StepRecord] | None]]) -> int:
        """Within one flush, trajectories the last-K rule would prune before it ends are not written.
        Returns how many steps were dropped."""
        last, every = self.policy.last, self.policy.every
        if last <= 0:
            return 0
        prunable = [
            i for i, (row, steps) in enumerate(episodes)
            if steps and row["phase"] == "train" and not (every > 0 and row["index"] % every == 0)
        ]
        dropped = 0
        for i in prunable[: max(0, len(prunable) - last)]:
            row, steps = episodes[i]
            row["has_trajectory"] = False
            episodes[i] = (row, None)
            dropped += len(steps or ())
        return dropped

    # SQLite: raw executemany on a sqlite3 cursor, rows as tuples and JSON pre-serialized, so no ORM
    # or per-row Core processing is in the way.
    _METRICS_SQL = "INSERT INTO metrics (run_id, key, step, value, wall_time) VALUES (?, ?, ?, ?, ?)"
    _EPISODE_SQL = (
        'INSERT INTO episodes (run_id, "index", phase, "return", length, step, wall_time, has_trajectory, oracle_score) '
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    _STEPS_SQL = (
        "INSERT INTO steps (episode_id, t, state, action, reward, done, extras) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )

    _ARTIFACT_SQL = (
        "INSERT INTO artifacts (run_id, name, step, kind, data, created_at)"
        " VALUES (:run_id, :name, :step, :kind, :data, :created_at)"
    )

    def _write_sqlite(self, tx: SQLiteTx, pending: _Pending) -> None:
        cur = tx.cursor
        if pending.metrics:
            cur.executemany(self._METRICS_SQL, pending.metrics)
        if pending.episodes:
            steps_rows: list[tuple] = []
            pruned: list[int] = []
            for row, steps in pending.episodes:
                cur.execute(
                    self._EPISODE_SQL,
                    (row["run_id"], row["index"], row["phase"], row["return"], row["length"],
                     row["step"], row["wall_time"], 1 if row["has_trajectory"] else 0, row["oracle_score"]),
                )
                if not steps:
                    continue
                episode_id = cur.lastrowid
                steps_rows.extend(_step_rows(episode_id, steps))
                if row["phase"] == "train":
                    pruned.extend(self._prune(row["index"], episode_id))
            if steps_rows:
                cur.executemany(self._STEPS_SQL, steps_rows)
            if pruned:
                ids = [(i,) for i in pruned]
                cur.executemany("DELETE FROM steps WHERE episode_id = ?", ids)
                cur.executemany("UPDATE episodes SET has_trajectory = 0 WHERE id = ?", ids)
        for artifact in pending.artifacts:
            tx.run(self._ARTIFACT_SQL, **artifact)

    def _write_copy(self, conn, pending: _Pending) -> None:  # noqa: ANN001
        """PostgreSQL through psycopg: the SQLite fast path's rows, streamed by COPY (store/pg_copy.py)."""
        from rltui.store import pg_copy

        if pending.metrics:
            pg_copy.copy_rows(conn, pg_copy.METRICS, pending.metrics)
        if pending.episodes:
            ids = pg_copy.reserve_ids(conn, "episodes", len(pending.episodes))
            episode_rows, steps_rows, pruned = [], [], []
            for episode_id, (row, steps) in zip(ids, pending.episodes):
                episode_rows.append((episode_id, row["run_id"], row["index"], row["phase"], row["return"],
                                     row["length"], row["step"], row["wall_time"], row["has_trajectory"],
                                     row["oracle_score"]))
                if steps:
                    steps_rows.extend(_step_rows(episode_id, steps))
                    if row["phase"] == "train":
                        pruned.extend(self._prune(row["index"], episode_id))
            pg_copy.copy_rows(conn, pg_copy.EPISODES, episode_rows)
            pg_copy.copy_rows(conn, pg_copy.STEPS, steps_rows)
            self._drop_trajectories(conn, pruned)
        self._write_artifacts(conn, pending)

    def _drop_trajectories(self, conn, episode_ids: list[int]) -> None:  # noqa: ANN001
        from sqlalchemy import delete, update

        from rltui.store.models import Episode, Step

        if episode_ids:
            conn.execute(delete(Step).where(Step.episode_id.in_(episode_ids)))
            conn.execute(update(Episode).where(Episode.id.in_(episode_ids)).values(has_trajectory=False))

    def _write_artifacts(self, conn, pending: _Pending) -> None:  # noqa: ANN001
        from sqlalchemy import insert

        from rltui.store.models import Artifact

        if pending.artifacts:
            conn.execute(insert(Artifact), pending.artifacts)

    def _write_core(self, conn, pending: _Pending) -> None:  # noqa: ANN001
        """Any other backend (or PostgreSQL through a driver without COPY): portable Core inserts."""
        from sqlalchemy import insert

        from rltui.store.models import Episode, Metric, Step

        if pending.metrics:
            conn.execute(
                insert(Metric),
                [
                    {"run_id": r, "key": k, "step": s, "value": v, "wall_time": w}
                    for r, k, s, v, w in pending.metrics
                ],
            )
        for row, steps in pending.episodes:
            episode_id = conn.execute(
                insert(Episode).values(
                    run_id=row["run_id"], index=row["index"], phase=row["phase"],
                    return_=row["return"], length=row["length"], step=row["step"],
                    wall_time=row["wall_time"], has_trajectory=row["has_trajectory"],
                    oracle_score=row["oracle_score"],
                )
            ).inserted_primary_key[0]
            if not steps:
                continue
            conn.execute(
                insert(Step),
                [
                    {
                        "episode_id": episode_id, "t": int(s.t), "state": to_jsonable(s.state),
                        "action": to_jsonable(s.action), "reward": finite_or_none(s.reward),
                        "done": bool(s.done), "extras": to_jsonable(s.extras) if s.extras else None,
                    }
                    for s in steps
                ],
            )
            if row["phase"] == "train":
                self._drop_trajectories(conn, self._prune(row["index"], episode_id))
        self._write_artifacts(conn, pending)

    def _write_run_row(self, tx: Tx, pending: _Pending) -> None:
        values: dict[str, Any] = {}
        if pending.progress is not None:
            values["progress"] = pending.progress
        if pending.summary:
            current = as_json(tx.scalar("SELECT summary FROM runs WHERE id = :id", id=self.run_id)) or {}
            values["summary"] = Json({**current, **pending.summary})
        if values:
            tx.run(f"UPDATE runs SET {', '.join(f'{k} = :{k}' for k in values)} WHERE id = :id", **values, id=self.run_id)

    def _prune(self, index: int, episode_id: int) -> list[int]:
        """Episode ids whose trajectories the last-K rule now drops (the `every` rule keeps its own)."""
        policy = self.policy
        if policy.every > 0 and index % policy.every == 0:
            return []
        self._kept_train_episodes.append(episode_id)
        if policy.last <= 0:
            return []
        drop = self._kept_train_episodes[: max(0, len(self._kept_train_episodes) - policy.last)]
        del self._kept_train_episodes[: len(drop)]
        return drop


def _step_rows(episode_id: int, steps: Sequence[StepRecord]) -> list[tuple]:
    enc = json_text
    return [
        (
            episode_id,
            int(s.t),
            enc(s.state),
            enc(s.action),
            finite_or_none(s.reward),
            1 if s.done else 0,
            enc(s.extras) if s.extras else None,
        )
        for s in steps
    ]
