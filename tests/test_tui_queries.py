"""The TUI's read queries against a real SQLite store filled through the real StoreRecorder."""

from __future__ import annotations

import numpy as np

from rltui.recorder import StoreRecorder
from rltui.store.queries import (
    artifact_at,
    artifact_names,
    episode_returns,
    metric_downsampled,
    run_returns,
    run_rows,
    runs_fingerprint,
)
from rltui.tui.demo import add_run
from test_tui_common import demo_store  # noqa: F401 — fixture


def _series(store, n: int, key: str = "loss", stride: int = 1) -> int:
    run_id = add_run(store, "big", {"id": "maze"}, {"id": "q_learning"})
    rec = StoreRecorder(store, run_id, flush_every=1e9)
    steps = np.arange(n) * stride
    rec.log_many(key, steps.tolist(), np.sin(steps / 50.0).tolist())
    rec.close()
    return run_id


def test_small_series_comes_back_whole(store):
    run_id = _series(store, 50)
    with store.read() as s:
        pts = metric_downsampled(s, run_id, "loss", 100)
    assert len(pts) == 50
    assert pts[0] == (0.0, 0.0, 0.0, 0.0, 0)  # x, value, min, max, NaNs: a raw point is a bucket of one
    assert pts[-1][0] == 49.0


def test_mid_series_is_bucketed_in_sql_and_keeps_the_last_point(store):
    run_id = _series(store, 20_000)
    with store.read() as s:
        pts = metric_downsampled(s, run_id, "loss", 80)
    assert 40 <= len(pts) <= 80
    assert pts[-1][:2] == (19_999.0, float(np.sin(19_999 / 50.0)))
    xs = [p[0] for p in pts]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    # A bucket mean of sin stays within [-1, 1]; the first bucket averages steps 0..~250.
    assert all(-1.0 <= p[1] <= 1.0 for p in pts)
    first_bucket = np.sin(np.arange(0, 20_000 * 1 // 79 + 1) / 50.0)
    assert abs(pts[0][1] - first_bucket[: len(first_bucket)].mean()) < 0.05


def test_huge_step_span_is_bucketed_with_each_buckets_min_and_max(store):
    run_id = _series(store, 30_000, stride=10)  # steps up to ~300k
    with store.read() as s:
        pts = metric_downsampled(s, run_id, "loss", 60)
        wall = metric_downsampled(s, run_id, "loss", 60, x="wall")
    assert len(pts) <= 60 and len(wall) <= 60
    assert pts[-1][0] == 299_990.0
    for x, mean, low, high, nans in pts:  # sin's buckets: each spans whole periods, so -1 .. 1
        assert low <= mean <= high and nans == 0
    assert min(p.low for p in pts) < -0.999 and max(p.high for p in pts) > 0.999


def test_run_rows_returns_and_fingerprint(demo_store):
    store, ids = demo_store, demo_store.demo_ids
    with store.sql.read() as tx:
        rows = run_rows(tx)
        count, max_id = runs_fingerprint(tx)
        returns = run_returns(tx)
        newer = run_rows(tx, after_id=ids["lm"])
        some = run_rows(tx, ids=[ids["vi"], ids["ppo"]])
        assert run_returns(tx, [ids["q0"]]) == {ids["q0"]: returns[ids["q0"]]} and run_rows(tx, ids=[]) == []
    assert count == len(rows) == len(ids) and max_id == max(ids.values())
    assert [r["id"] for r in newer] == sorted((i for i in ids.values() if i > ids["lm"]), reverse=True)
    assert {r["id"] for r in some} == {ids["vi"], ids["ppo"]}
    q0 = returns[ids["q0"]]
    with store.read() as s:
        eps = episode_returns(s, ids["q0"])
    assert q0["episodes"] == len(eps) == 300
    assert q0["last_return"] == eps[-1][4]
    assert q0["best_return"] == max(e[4] for e in eps)
    assert ids["vi"] not in returns  # value iteration has no training episodes


def test_incremental_episode_reads_and_sweeps(demo_store):
    store, ids = demo_store, demo_store.demo_ids
    with store.read() as s:
        first = episode_returns(s, ids["q1"])
        later = episode_returns(s, ids["q1"], after_id=first[100][0])
        names = artifact_names(s, ids["vi"])
        v0 = artifact_at(s, ids["vi"], "V", 0)
        v_last = artifact_at(s, ids["vi"], "V", names["V"] - 1)
    assert later == first[101:]
    assert names["layout"] == 1 and names["tabular"] == 1 and names["V"] >= 5
    assert v0[0] == 0 and not np.any(v0[1])
    # The seeds' maze: the goal's neighbours are worth +1 at convergence (terminal V = 0).
    assert abs(float(v_last[1].max()) - 1.0) < 1e-9
