"""The store: where it lives, how it opens, and the recorder's batched writes."""

from __future__ import annotations

import math
import os
import stat

import numpy as np
import pytest
from sqlalchemy import func, select

from rltui.recorder import RecordPolicy, StepRecord, StoreRecorder, utcnow
from rltui.store import open_store, resolve_url
from rltui.store.models import Episode, Metric, Run, Step
from rltui.store.queries import artifact_series, episode_returns, latest_artifact, metric_series


@pytest.fixture
def any_store(store_url):
    """The same store tests on a SQLite file and on a real PostgreSQL database."""
    s = open_store(store_url)
    yield s
    s.dispose()


def make_run(store) -> int:
    with store.write() as session:
        run = Run(name="t", env_id="maze", algo_id="q_learning", config_toml="", config={},
                  created_at=utcnow(), summary={}, tags=[], notes="", versions={})
        session.add(run)
        session.flush()
        return run.id


def test_default_store_is_under_xdg_data_home_and_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    store = open_store()
    path = tmp_path / "data" / "rltui" / "rltui.db"
    assert store.url == f"sqlite:///{path}"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    store.dispose()


def test_db_flag_beats_env_var_beats_default(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTUI_DB", str(tmp_path / "env.db"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'env.db'}"
    assert resolve_url(str(tmp_path / "flag.db")) == f"sqlite:///{tmp_path / 'flag.db'}"
    assert resolve_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_sqlite_is_tuned(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_recorder_batches_metrics_episodes_and_artifacts(any_store):
    store = any_store
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, policy=RecordPolicy(last=2, eval=True), flush_every=60)
    for step in range(100):
        rec.log(step, loss=1.0 / (step + 1), epsilon=0.1)
    with store.read() as s:  # the first report goes out at once (a launch shows life); the rest wait
        assert s.scalar(select(func.count(Metric.id))) == 2
    for i in range(5):
        steps = [StepRecord(t=t, state=[t, 0], action=1, reward=-0.01, extras={"Q": np.zeros(4)}) for t in range(3)]
        rec.episode(i, ret=-0.03, length=3, steps=steps)
    rec.episode(0, ret=1.0, length=1, phase="eval", steps=[StepRecord(0, [0, 0], 2, 1.0, True)])
    rec.artifact("V", np.arange(4.0), step=0)
    rec.artifact("V", np.arange(4.0) * 2, step=1)
    rec.summary(best_return=1.0)
    rec.close()
    with store.read() as s:
        assert s.scalar(select(func.count(Metric.id))) == 200
        series = metric_series(s, run_id, "loss")
        assert [r[0] for r in series] == list(range(100))
        assert series[3][1] == 0.25
        kept = s.scalars(select(Episode.index).where(Episode.phase == "train", Episode.has_trajectory)).all()
        assert sorted(kept) == [3, 4]  # the last K=2 training trajectories
        assert s.scalar(select(func.count(Step.id))) == 2 * 3 + 1
        assert latest_artifact(s, run_id, "V").tolist() == [0.0, 2.0, 4.0, 6.0]
        assert [step for step, _ in artifact_series(s, run_id, "V")] == [0, 1]
        assert s.get(Run, run_id).summary == {"best_return": 1.0}


def test_deleting_a_run_cascades(any_store):
    store = any_store
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id)
    rec.log(0, x=1.0)
    rec.episode(0, 1.0, 1, steps=[StepRecord(0, 0, 0, 1.0, True)])
    rec.close()
    with store.write() as s:
        s.delete(s.get(Run, run_id))
    with store.read() as s:
        for model in (Metric, Episode, Step):
            assert s.scalar(select(func.count(model.id))) == 0


def test_checkpoints_keep_the_newest_two(any_store):
    store = any_store
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id)
    assert rec.last_checkpoint() is None
    for step in (100, 200, 300):
        rec.checkpoint(step, f"state@{step}".encode())
    assert rec.last_checkpoint() == (300, b"state@300")
    with store.read() as s:
        assert [st for st, _ in artifact_series(s, run_id, "checkpoint")] == [200, 300]


def test_default_store_directory_is_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    open_store().dispose()
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "rltui").st_mode) == 0o700


def test_step_json_fast_path_matches_plain_json():
    import json

    from rltui.recorder import json_text

    assert json_text(3) == "3" and json_text(True) == "true" and json_text(None) == "null"
    assert json.loads(json_text([0.5, -1.25, 3])) == [0.5, -1.25, 3]
    extras = {"Q": np.array([0.25, 0.5], dtype=np.float32), "V": np.float64(0.75), "a": np.int64(2),
              "pi": (0.5, 0.5), 3: "int key", "nan": float("nan"), "big": 2**70}
    assert json.loads(json_text(extras)) == {"Q": [0.25, 0.5], "V": 0.75, "a": 2, "pi": [0.5, 0.5],
                                             "3": "int key", "nan": None, "big": 2**70}
    assert json.loads(json_text(np.arange(4).reshape(2, 2)[:, 0])) == [0, 2]  # non-contiguous view


def test_steps_written_by_the_fast_path_read_back_through_the_models(any_store):
    store = any_store
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, policy=RecordPolicy(every=1))
    steps = [StepRecord(np.int64(t), [0.1 * t, np.float32(0.5)], np.int64(t % 2), np.float32(-1.0), t == 1,
                        {"Q": np.zeros(2), "token": "a"} if t == 0 else None) for t in range(2)]
    rec.episode(np.int64(0), np.float64(-2.0), 2, steps=steps, step=np.int64(2))
    rec.close()
    with store.read() as s:
        (ep,) = s.scalars(select(Episode)).all()
        assert (ep.index, ep.return_, ep.length, ep.step, ep.has_trajectory) == (0, -2.0, 2, 2, True)
        got = [(st.t, st.state, st.action, st.reward, st.done, st.extras) for st in ep.steps]
        assert got == [(0, [0.0, 0.5], 0, -1.0, False, {"Q": [0.0, 0.0], "token": "a"}), (1, [0.1, 0.5], 1, -1.0, True, None)]


def _recorded(store, run_id):
    with store.read() as s:
        metrics = [tuple(r) for r in s.execute(select(Metric.key, Metric.step, Metric.value).where(Metric.run_id == run_id).order_by(Metric.id))]
        eps = [(e.phase, e.index, e.return_, e.length, e.step, e.has_trajectory,
                [(st.t, st.state, st.action, st.reward, st.done, st.extras) for st in e.steps])
               for e in s.scalars(select(Episode).where(Episode.run_id == run_id).order_by(Episode.id))]
        return metrics, eps, s.get(Run, run_id).summary


def test_portable_core_path_writes_what_the_fast_path_writes(any_store, monkeypatch):
    """The Core-insert path of backends without a fast path, against the fast path of this one
    (raw executemany on SQLite, COPY on PostgreSQL), on the same store."""
    from rltui.store import pg_copy
    from rltui.store.engine import Store

    store = any_store

    def record(run_id):
        rec = StoreRecorder(store, run_id, policy=RecordPolicy(last=2, eval=True), flush_every=60)
        for step in range(20):
            rec.log(step, loss=1.0 / (step + 1), nan_at_end=float("nan") if step == 19 else 0.0)
            if step % 4 == 0:
                rec.episode(step // 4, -1.0, 2, steps=[StepRecord(0, [0.5, 1.0], 1, -0.5, False, {"Q": np.ones(2)}),
                                                      StepRecord(1, [0.0, 1.0], 0, -0.5, True)], step=step)
                rec.flush() if step == 8 else None  # pruning across flushes too
        rec.episode(0, 2.0, 1, phase="eval", steps=[StepRecord(0, 0, 0, 2.0, True)])
        rec.artifact("V", np.arange(3.0), step=0)
        rec.summary(best=2.0)
        rec.close()
        return _recorded(store, run_id)

    fast = record(make_run(store))
    monkeypatch.setattr(Store, "is_sqlite", property(lambda self: False))
    monkeypatch.setattr(pg_copy, "usable", lambda conn: False)
    core = record(make_run(store))
    assert fast[0] == core[0] and fast[2] == core[2] == {"best": 2.0}
    assert fast[1] == core[1]
    assert [(p, i) for p, i, *_rest, has, _steps in fast[1] if has] == [("train", 3), ("train", 4), ("eval", 0)]
    assert fast[0][-1] == ("nan_at_end", 19, None)


def test_postgresql_flushes_go_through_copy(pg_url, monkeypatch):
    """On PostgreSQL with psycopg the recorder streams metrics, episodes and steps with COPY."""
    from rltui.store import pg_copy

    statements = []
    real = pg_copy.copy_rows
    monkeypatch.setattr(pg_copy, "copy_rows", lambda conn, sql, rows: (statements.append(sql.split()[1]), real(conn, sql, rows)))
    store = open_store(pg_url)
    try:
        run_id = make_run(store)
        rec = StoreRecorder(store, run_id, policy=RecordPolicy(every=1, last=0))
        rec.log(0, loss=0.5)
        rec.episode(0, 1.0, 1, steps=[StepRecord(0, 0, 1, 1.0, True, {"Q": [0.5, float("nan")]})])
        rec.close()
        assert statements == ["metrics", "episodes", "steps"]
        with store.read() as s:
            (ep,) = s.scalars(select(Episode)).all()
            assert [(st.t, st.extras) for st in ep.steps] == [(0, {"Q": [0.5, None]})]
            assert s.scalar(select(Metric.value)) == 0.5
    finally:
        store.dispose()


def test_nan_and_inf_are_stored_as_null(any_store):
    """A NaN or ±inf anywhere in a batch (metrics, returns, rewards, extras, summary) is kept as
    null, and the rest of the batch with it; on PostgreSQL one NaN used to fail the whole flush."""
    store = any_store
    nan, inf = float("nan"), float("inf")
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, policy=RecordPolicy(every=1, last=0), flush_every=60)
    rec.log(0, loss=1.0, q=inf, kl=-inf, g=nan)
    rec.log(1, loss=np.float32("nan"))
    steps = [StepRecord(0, [nan, 0.5], 1, inf, False, {"Q": np.array([0.5, np.nan, -np.inf]), "V": nan, "ok": 2}),
             StepRecord(1, [0.0, 0.5], 0, nan, True)]
    rec.episode(0, nan, 2, steps=steps, step=2)
    rec.episode(1, 3.0, 1, steps=[StepRecord(0, 0, 0, 3.0, True)], step=3)
    rec.summary(best_return=nan, last=3.0)
    rec.close()
    with store.read() as s:
        metrics = s.execute(select(Metric.step, Metric.key, Metric.value).where(Metric.run_id == run_id)).all()
        assert sorted(map(tuple, metrics)) == [(0, "g", None), (0, "kl", None), (0, "loss", 1.0), (0, "q", None),
                                               (1, "loss", None)]
        eps = s.scalars(select(Episode).order_by(Episode.index)).all()
        assert [(e.index, e.return_) for e in eps] == [(0, None), (1, 3.0)]
        assert [(st.state, st.reward, st.extras) for st in eps[0].steps] == [
            ([None, 0.5], None, {"Q": [0.5, None, None], "V": None, "ok": 2}), ([0.0, 0.5], None, None)]
        assert s.get(Run, run_id).summary == {"best_return": None, "last": 3.0}
        returns = [r[4] for r in episode_returns(s, run_id)]  # what the lab plots: NaN, never None
        assert math.isnan(returns[0]) and returns[1] == 3.0


def test_postgresql_store_is_at_head_and_agrees_with_the_models(pg_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from rltui.store.migrate import VERSION_TABLE, current_revision, head_revision
    from rltui.store.models import Base

    store = open_store(pg_url)
    try:
        with store.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        store.dispose()
