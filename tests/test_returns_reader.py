"""The lab's incremental read of each run's returns (runs_table.ReturnsReader) against the whole read
(run_returns), look after look, while two runs write episodes, thinning merges old ones into buckets
and a resume deletes a run's newest episodes. Real SQLite store, the real recorder and thinner."""

from __future__ import annotations

import pytest

from rltui.recorder import RecordPolicy, StoreRecorder
from rltui.store import thinning
from rltui.store.runs_table import ReturnsReader, run_returns


def _two_runs(store):
    from conftest import SAMPLE_RUNS

    from rltui.config import load_config_file
    from rltui.runner.execute import create_run

    config = load_config_file(SAMPLE_RUNS / "maze_q_learning.toml")
    return [create_run(store, config) for _ in range(2)]


@pytest.fixture
def any_store(store_url):
    from rltui.store import open_store

    s = open_store(store_url)
    yield s
    s.dispose()


def test_an_incremental_look_matches_the_whole_read_through_thinning_and_a_resume(any_store, monkeypatch):
    """On SQLite and on PostgreSQL (the statements are written once for both)."""
    store, two_runs = any_store, _two_runs(any_store)
    monkeypatch.setattr(thinning, "CHUNK", 150)  # thinning in many short passes, buckets cut across looks
    reader = ReturnsReader()
    recorders = {run_id: StoreRecorder(store, run_id, RecordPolicy(last=0, every=0, max_episodes=120),
                                       flush_every=1e9, max_pending=10**9) for run_id in two_runs}
    index = dict.fromkeys(two_runs, 0)
    best = dict.fromkeys(two_runs, float("-inf"))
    looks = []

    def look():
        with store.sql.read() as tx:
            got, whole = reader.read(tx, two_runs), run_returns(tx, two_runs)
        assert got == whole
        looks.append(whole)

    look()  # before any episode: nothing for either run
    assert looks[-1] == {}
    for burst in range(40):
        for k, (run_id, rec) in enumerate(recorders.items()):
            for _ in range(17 + 13 * k + burst % 7):  # the two runs at different rates
                i = index[run_id]
                ret = float((i * 7919 + run_id) % 103) - 50.0 + (200.0 if i == 333 else 0.0)
                rec.episode(i, ret, length=i % 11 + 1, step=(i + 1) * 10)
                best[run_id] = max(best[run_id], ret)
                index[run_id] += 1
            rec.flush()
        look()
        if burst == 25:  # a resume from a checkpoint at step 3000: what came after it is deleted
            with store.sql.write() as tx:
                tx.run("DELETE FROM episodes WHERE run_id = :r AND step > 3000", r=two_runs[0])
            index[two_runs[0]] = 300
            look()
            assert looks[-1][two_runs[0]]["episodes"] <= 300 < looks[-2][two_runs[0]]["episodes"]
    with store.sql.read() as tx:
        buckets = tx.first("SELECT count(*) FROM episodes WHERE bucket_size IS NOT NULL")[0]
    assert buckets > 0  # thinning did merge, so the looks above went through it
    last = looks[-1]
    assert last[two_runs[1]]["episodes"] == index[two_runs[1]] and last[two_runs[1]]["best_return"] == best[two_runs[1]] > 150


def test_an_incremental_look_reads_only_the_new_rows(store):
    """After the first look, a look reads the episodes table by its primary key from the last row seen
    (SQLite's query plan says so), not each run's every row through the (run, phase, index) index."""
    import sqlite3

    two_runs = _two_runs(store)
    rec = StoreRecorder(store, two_runs[0], RecordPolicy(), flush_every=1e9, max_pending=10**9)
    for i in range(50):
        rec.episode(i, float(i), length=3, step=i)
    rec.flush()
    reader = ReturnsReader()
    statements = []
    with store.sql.read() as tx:
        reader.read(tx, two_runs)
    for i in range(50, 60):
        rec.episode(i, float(i), length=3, step=i)
    rec.flush()
    with store.sql.read() as tx:
        tx.conn.set_trace_callback(statements.append)
        try:
            assert reader.read(tx, two_runs)[two_runs[0]]["episodes"] == 60
        finally:
            tx.conn.set_trace_callback(None)
    incremental = [s for s in statements if "GROUP BY 1" in s]
    assert len(incremental) == 1  # (the run without episodes is read whole: it has no rows to walk)
    conn = sqlite3.connect(store.path)
    try:
        plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + incremental[0]))
    finally:
        conn.close()
    assert "INTEGER PRIMARY KEY (rowid>?)" in plan, plan


def test_metric_keys_seeks_each_name_and_finds_what_distinct_finds(any_store):
    """The run screen's metric names come from a skip scan of the (run, key, step) index (one seek a
    name): the same names in the same order as SELECT DISTINCT, on SQLite and on PostgreSQL."""
    from rltui.store.queries import metric_keys

    store = any_store
    runs = _two_runs(store)
    rec = StoreRecorder(store, runs[0], RecordPolicy(), flush_every=1e9, max_pending=10**9)
    names = ["loss", "sys/rss_mb", "eval_return", "Z", "a b", "ünïcode", "loss_2"]
    for step in range(40):
        rec.log(step, **{name: float(step) for name in names[: 1 + step % len(names)]})
    rec.flush()
    with store.sql.read() as tx:
        distinct = [r[0] for r in tx.all("SELECT DISTINCT key FROM metrics WHERE run_id = :r ORDER BY key", r=runs[0])]
    with store.read() as session:
        assert metric_keys(session, runs[0]) == distinct and sorted(distinct) == sorted(names)
        assert metric_keys(session, runs[1]) == []
