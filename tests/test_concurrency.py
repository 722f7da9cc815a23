"""Several processes on one SQLite store: writers through StoreRecorder, a reader polling like the
TUI. Nobody may ever see "database is locked", every row must arrive, and the file must stay sound."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
import traceback

from sqlalchemy import func, select

from rltui.recorder import RecordPolicy, StepRecord, StoreRecorder
from rltui.store import open_store
from rltui.store.models import Artifact, Episode, Metric, Run, Step
from rltui.store.queries import episodes, list_runs, metric_series
from test_store import make_run

N_LOGS = 3000  # per writer, 2 metrics each
N_EPISODES = 60  # per writer, 5 steps each
KEEP_LAST = 3

# fork: the children start in milliseconds and inherit this process's engines, which the store
# drops in the child at fork (rltui.store.engine registers that); each child opens its own store.
CTX = mp.get_context("fork")


def writer(db: str, run_id: int, errors) -> None:  # noqa: ANN001
    try:
        store = open_store(db)
        # A tiny flush interval: hundreds of small IMMEDIATE transactions interleave with the other
        # writer's and with the reader's snapshots.
        rec = StoreRecorder(store, run_id, policy=RecordPolicy(last=KEEP_LAST, eval=True), flush_every=0.005)
        for step in range(N_LOGS):
            rec.log(step, loss=1.0 / (step + 1), epsilon=0.1)
            if step % 50 == 0:
                i = step // 50
                steps = [StepRecord(t, t, t % 4, -1.0, t == 4, {"Q": [0.0, 1.0, 2.0, 3.0]}) for t in range(5)]
                rec.episode(i, -5.0, 5, steps=steps, step=step)
                rec.progress(step / N_LOGS)
                rec.should_stop()  # a read between writes, like every algorithm does
            if step % 1000 == 999:
                rec.checkpoint(step, b"weights" * 100)  # insert + delete-with-subquery in one go
        rec.episode(0, 3.0, 1, phase="eval", steps=[StepRecord(0, 0, 0, 3.0, True)])
        rec.artifact("V", [1.0, 2.0])
        rec.summary(final=1.0)
        rec.close()
        store.dispose()
    except BaseException:  # noqa: BLE001
        errors.put(traceback.format_exc())
        raise


def reader(db: str, run_ids: list[int], stop, errors, seen) -> None:  # noqa: ANN001
    try:
        store = open_store(db)
        last = {(r, k): None for r in run_ids for k in ("loss", "epsilon")}
        rows = polls = 0
        while True:
            done = stop.is_set()
            with store.read() as s:  # short read transactions: WAL checkpoints are not starved
                for (run_id, key), since in last.items():
                    new = metric_series(s, run_id, key, since_step=since)
                    if new:
                        assert new[0][0] > (since if since is not None else -1)
                        last[(run_id, key)] = new[-1][0]
                        rows += len(new)
            with store.read() as s:
                list_runs(s)
                for run_id in run_ids:
                    episodes(s, run_id)
            polls += 1
            if done:
                break
            time.sleep(0.01)
        seen.put((rows, polls))
        store.dispose()
    except BaseException:  # noqa: BLE001
        errors.put(traceback.format_exc())
        raise


def test_two_writers_and_a_polling_reader(store, db_path):
    run_ids = [make_run(store), make_run(store)]
    with store.read() as s:  # the parent holds a pooled connection across the fork
        assert s.scalar(select(func.count(Run.id))) == 2
    errors, seen, stop = CTX.Queue(), CTX.Queue(), CTX.Event()
    read = CTX.Process(target=reader, args=(str(db_path), run_ids, stop, errors, seen))
    writers = [CTX.Process(target=writer, args=(str(db_path), r, errors)) for r in run_ids]
    read.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    stop.set()
    read.join(timeout=60)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, "\n".join(problems)
    assert [w.exitcode for w in writers] == [0, 0] and read.exitcode == 0
    rows, polls = seen.get(timeout=5)
    assert polls > 1
    assert rows == 2 * N_LOGS * 2  # the reader's incremental reads saw every point exactly once

    with store.read() as s:
        for run_id in run_ids:
            assert s.scalar(select(func.count(Metric.id)).where(Metric.run_id == run_id)) == 2 * N_LOGS
            loss = metric_series(s, run_id, "loss")
            assert [r[0] for r in loss] == list(range(N_LOGS))
            assert s.scalar(select(func.count(Episode.id)).where(Episode.run_id == run_id)) == N_EPISODES + 1
            kept = s.scalars(
                select(Episode.index).where(Episode.run_id == run_id, Episode.phase == "train", Episode.has_trajectory)
            ).all()
            assert sorted(kept) == list(range(N_EPISODES - KEEP_LAST, N_EPISODES))
            n_steps = s.scalar(select(func.count(Step.id)).join(Episode).where(Episode.run_id == run_id))
            assert n_steps == KEEP_LAST * 5 + 1
            run = s.get(Run, run_id)
            assert run.summary == {"final": 1.0}
            names = s.scalars(select(Artifact.name).where(Artifact.run_id == run_id)).all()
            assert sorted(names) == ["V", "checkpoint", "checkpoint"]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    store.dispose()
    raw = sqlite3.connect(db_path, isolation_level=None)  # outside any transaction
    try:
        busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0  # nobody is left holding a snapshot that would starve checkpoints
    finally:
        raw.close()


def _write_through_inherited_store(store, run_id: int) -> None:  # noqa: ANN001
    rec = StoreRecorder(store, run_id)
    rec.log(1, from_child=1.0)
    rec.close()


def test_a_forked_child_never_uses_its_parents_connections(store, db_path):
    run_id = make_run(store)
    with store.engine.connect() as conn:  # check a connection in and out of the parent's pool
        conn.exec_driver_sql("SELECT 1")
    parent_conn = store.engine.pool.checkedin()
    assert parent_conn >= 1
    child = CTX.Process(target=_write_through_inherited_store, args=(store, run_id))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    # The parent's pool still holds its own connection and works as before.
    assert store.engine.pool.checkedin() == parent_conn
    with store.read() as s:
        assert metric_series(s, run_id, "from_child") == [(1, 1.0, metric_series(s, run_id, "from_child")[0][2])]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def _open(db: str, barrier, errors) -> None:  # noqa: ANN001
    try:
        barrier.wait(timeout=30)
        open_store(db).dispose()
    except BaseException:  # noqa: BLE001
        errors.put(traceback.format_exc())
        raise


def test_two_processes_opening_an_old_store_at_once_upgrade_it_once(store, db_path):
    from rltui.store.migrate import downgrade, head_revision

    run_id = make_run(store)
    rec = StoreRecorder(store, run_id)
    rec.log(0, loss=1.0)
    rec.close()
    downgrade(store.engine, "0001")
    store.dispose()
    barrier, errors = CTX.Barrier(2), CTX.Queue()
    procs = [CTX.Process(target=_open, args=(str(db_path), barrier, errors)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, "\n".join(problems)
    assert [p.exitcode for p in procs] == [0, 0]
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("SELECT version_num FROM rltui_alembic_version").fetchall() == [(head_revision(),)]
        assert raw.execute("SELECT count(*) FROM metrics").fetchone() == (1,)
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        raw.close()
    assert 1 <= len(list(db_path.parent.glob("*.bak"))) <= 2


def test_a_backlog_is_written_in_transactions_of_bounded_rows_in_order(store):
    """However much is pending (a backlog while a peer held the lock), one write transaction takes
    at most batch_rows rows (trajectory steps counted), so other writers wait for one batch only."""
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, policy=RecordPolicy(every=1, last=0, max_steps=100), flush_every=1e9)
    rec.batch_rows = 100
    rec.log(1, loss=1.0)  # the first report is written at once; the backlog is what follows it
    with store.sql.write() as tx:  # a pooled connection now, whose statements we can watch
        tx.run("SELECT 1")
    conn = store.sql._idle[-1]
    begins: list[str] = []
    conn.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN IMMEDIATE") else None)
    for s in range(2, 451):
        rec.log(s, loss=float(s))
    for i in range(20):  # 20 episodes of 9 steps: 10 rows each
        rec.episode(i, float(i), 9, steps=[StepRecord(t, 0, 0, 1.0, t == 8) for t in range(9)])
    rec.flush()
    conn.set_trace_callback(None)
    # 449 points and 200 episode rows with steps, 100 rows a transaction: 7 transactions.
    assert len(begins) == 7, begins
    with store.read() as s:
        assert [step for step, _v, _w in metric_series(s, run_id, "loss")] == list(range(1, 451))
        assert [e.index for e in episodes(s, run_id)] == list(range(20))
        assert s.scalar(select(func.count()).select_from(Step)) == 180
