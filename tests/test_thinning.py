"""Bounded growth: past [record]'s bounds, older rows become buckets keeping min, max, mean and the
last value; every bucket is checked against the raw points it replaced (real SQLite stores)."""

from __future__ import annotations

import math
import random
import sqlite3

import pytest

from rltui.config import load_config_text
from rltui.errors import ConfigError
from rltui.recorder import RecordPolicy, StoreRecorder, StepRecord
from rltui.store import thinning
from rltui.store.thinning import Point, merge, width_for


def test_merge_keeps_min_max_mean_last_and_adds_counts():
    raw = [Point(1, 10, 3.0, 1, 3.0, 3.0, 3.0), Point(2, 11, -1.0, 1, -1.0, -1.0, -1.0)]
    bucket = Point(5, 15, 2.0, 4, -7.0, 9.0, 0.5)  # an earlier merge of 4 points
    nan = Point(7, 16, None, 1, None, None, None)  # a NaN point (stored as NULL)
    last = Point(9, 17, 4.0, 1, 4.0, 4.0, 4.0)
    m = merge(raw + [bucket, nan, last])
    assert (m.id, m.x, m.value, m.size) == (9, 17, 4.0, 8)
    assert (m.low, m.high) == (-7.0, 9.0)
    assert m.mean == pytest.approx((3 - 1 + 0.5 * 4 + 4) / 7)  # a NaN point has no weight in the mean


def test_width_is_the_smallest_power_of_two_leaving_half_the_bound():
    assert width_for(0, 999, bound=2000) == 1
    assert width_for(0, 999, bound=1000) == 2  # 500 buckets of 2
    assert width_for(0, 999, bound=100) == 32  # ceil(1000/32) = 32 ≤ 50, 1000/16 = 63 > 50
    assert width_for(0, 999, bound=100, at_least=64) == 64  # widths only grow


def _buckets(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_metrics_past_the_bound_become_buckets_that_keep_their_true_shape(store, db_path, monkeypatch):
    from rltui.config import load_config_file  # noqa: F401 — the schema this store was made with
    from rltui.runner.execute import create_run
    from conftest import SAMPLE_RUNS

    monkeypatch.setattr(thinning, "CHUNK", 700)  # many chunks, cut buckets, and partial passes
    config = load_config_file(SAMPLE_RUNS / "maze_q_learning.toml")
    run_id = create_run(store, config)
    rng = random.Random(0)
    n, bound = 30_000, 1_000
    values = {s: math.sin(s / 300) * s + (500.0 if rng.random() < 0.002 else 0.0) for s in range(n)}
    values[12_345] = float("nan")
    rec = StoreRecorder(store, run_id, RecordPolicy(max_metric_points=bound, max_episodes=10_000),
                        flush_every=1e9, max_pending=10**9)
    for s in range(n):
        rec.log(s, loss=values[s], lr=0.5)
        if s % 997 == 0:
            rec.flush()
    rec.close()

    for key, expect in (("loss", values), ("lr", {s: 0.5 for s in range(n)})):
        rows = _buckets(db_path, f"SELECT step, value, bucket_size, value_min, value_max, value_mean FROM metrics "
                                 f"WHERE run_id = {run_id} AND key = '{key}' ORDER BY step, id")
        assert len(rows) <= bound + 1000, len(rows)  # about the bound: at most one flush over it
        assert len(rows) < n / 10
        assert sum(r[2] or 1 for r in rows) == n  # the counts add up: every point is in one bucket
        assert rows[-1][0] == n - 1 and rows[-1][1] == expect[n - 1]  # the last point is true
        prev = -1
        for step, value, size, low, high, mean in rows:
            covered = [expect[s] for s in range(prev + 1, step + 1)]
            finite = [v for v in covered if not math.isnan(v)]
            assert len(covered) == (size or 1)
            assert not finite or len(finite) == len(covered)  # NaN points bucket apart
            if size is None:
                assert value == covered[0] or (value is None and math.isnan(covered[0]))
            else:
                assert (low, high) == (min(finite), max(finite)), step
                assert mean == pytest.approx(sum(finite) / len(finite), rel=1e-9, abs=1e-9)
                assert value == covered[-1] or (value is None and math.isnan(covered[-1]))
            prev = step
        # The envelope over all rows is the raw series' min and max (spikes included).
        finite = [v for v in expect.values() if not math.isnan(v)]
        from rltui.store.queries import metric_downsampled

        with store.read() as session:
            # one bucket over every step but the last (which comes back as itself): the weighted mean
            (x, mean, low, high, _nans), last = metric_downsampled(session, run_id, key, max_points=2)
            before_last = [v for s, v in expect.items() if s < n - 1 and not math.isnan(v)]
            assert (low, high) == (min(before_last), max(before_last))
            assert mean == pytest.approx(sum(before_last) / len(before_last))  # buckets weigh what they stand for
            assert last[:2] == (n - 1, expect[n - 1])
            columns = metric_downsampled(session, run_id, key, max_points=80)
            assert 40 <= len(columns) <= 80 and columns[-1].x == n - 1
            assert all(p.low <= p.value <= p.high for p in columns if p.value is not None)
            # the envelope over the columns is the raw series' min and max (spikes included)
            assert min(p.low for p in columns if p.low is not None) == min(finite)
            assert max(p.high for p in columns if p.high is not None) == max(finite)
        assert min(r[3] if r[2] else r[1] for r in rows if r[1] is not None or r[2]) == min(finite)
        assert max(r[4] if r[2] else r[1] for r in rows if r[1] is not None or r[2]) == max(finite)


def test_episodes_past_the_bound_are_thinned_and_trajectories_kept(store, db_path, monkeypatch):
    from rltui.config import load_config_file
    from rltui.runner.execute import create_run
    from conftest import SAMPLE_RUNS

    monkeypatch.setattr(thinning, "CHUNK", 300)
    run_id = create_run(store, load_config_file(SAMPLE_RUNS / "maze_q_learning.toml"))
    n, bound = 5_000, 200
    returns = [float((i * 7919) % 101) - 50.0 for i in range(n)]
    rec = StoreRecorder(store, run_id, RecordPolicy(last=3, every=1000, max_episodes=bound),
                        flush_every=1e9, max_pending=10**9)
    for i in range(n):
        rec.episode(i, returns[i], length=i % 17 + 1, steps=[StepRecord(0, 0, 0, returns[i], True)])
        if i % 250 == 0:
            rec.flush()
    rec.close()
    rows = _buckets(db_path, f'SELECT "index", "return", length, has_trajectory, bucket_size, return_min, '
                             f'return_max, return_mean, length_mean FROM episodes WHERE run_id = {run_id} '
                             f'ORDER BY "index"')
    assert len(rows) <= bound + 300 and sum(r[4] or 1 for r in rows) == n
    from rltui.store.runs_table import run_returns

    with store.sql.read() as tx:
        figures = run_returns(tx, [run_id])[run_id]
    assert (figures["episodes"], figures["best_return"]) == (n, max(returns))
    assert figures["steps"] == sum(i % 17 + 1 for i in range(n))  # no step column: the lengths add up
    kept = [r[0] for r in rows if r[3]]
    assert kept == [0, 1000, 2000, 3000, 4000, n - 3, n - 2, n - 1]  # every=1000 and last=3, never merged
    assert all(r[4] is None for r in rows if r[3])
    prev = -1
    for index, ret, length, traj, size, low, high, mean, length_mean in rows:
        if traj:
            continue
        # A row stands for the episodes since the previous such row (kept trajectories are rows apart).
        eps = [i for i in range(prev + 1, index + 1) if i not in kept]
        assert len(eps) == (size or 1), index
        if size:
            assert ret == returns[index] and length == index % 17 + 1  # the last episode's own row
            assert (low, high) == (min(returns[i] for i in eps), max(returns[i] for i in eps))
            assert mean == pytest.approx(sum(returns[i] for i in eps) / len(eps))
            assert length_mean == pytest.approx(sum(i % 17 + 1 for i in eps) / len(eps))
        prev = index


def test_thinning_runs_the_same_statements_on_postgresql_and_sqlite(store_url, monkeypatch):
    from conftest import SAMPLE_RUNS
    from rltui.config import load_config_file
    from rltui.runner.execute import create_run
    from rltui.store import open_store
    from rltui.store.queries import metric_downsampled

    monkeypatch.setattr(thinning, "CHUNK", 400)
    store = open_store(store_url)
    try:
        run_id = create_run(store, load_config_file(SAMPLE_RUNS / "maze_q_learning.toml"))
        n = 3_000
        values = [float((s * 37) % 1000) for s in range(n)]
        rec = StoreRecorder(store, run_id, RecordPolicy(max_metric_points=300, max_episodes=100),
                            flush_every=1e9, max_pending=10**9)
        for s in range(n):
            rec.log(s, loss=values[s])
            rec.episode(s, values[s], length=1)
            if s % 500 == 0:
                rec.flush()
        rec.close()
        with store.sql.read() as tx:
            metrics = tx.all("SELECT count(*), sum(coalesce(bucket_size, 1)), min(coalesce(value_min, value)),"
                             " max(coalesce(value_max, value)) FROM metrics WHERE run_id = :r", r=run_id)[0]
            episodes = tx.all('SELECT count(*), sum(coalesce(bucket_size, 1)), max(coalesce(return_max, "return"))'
                              " FROM episodes WHERE run_id = :r", r=run_id)[0]
        assert metrics[0] <= 300 + 500 and tuple(metrics[1:]) == (n, 0.0, 999.0)
        assert episodes[0] <= 100 + 500 and tuple(episodes[1:]) == (n, 999.0)
        with store.read() as session:
            (_x, mean, low, high, _nans), _last = metric_downsampled(session, run_id, "loss", max_points=2)
        assert (low, high) == (0.0, 999.0) and mean == pytest.approx(sum(values[:-1]) / (n - 1))
    finally:
        store.dispose()


def test_record_bounds_are_checked_like_every_record_key():
    base = '[env]\nid = "maze"\n[algo]\nid = "q_learning"\n[record]\n'
    cfg = load_config_text(base + "max_metric_points = 5000\nmax_episodes = 300\n", source="x.toml")
    assert (cfg.record.policy().max_metric_points, cfg.record.policy().max_episodes) == (5000, 300)
    assert load_config_text(base, source="x.toml").record.max_metric_points == 1_000_000
    with pytest.raises(ConfigError, match=r"^x\.toml: record\.max_metric_points: .*100"):
        load_config_text(base + "max_metric_points = 10\n", source="x.toml")
    with pytest.raises(ConfigError, match=r"^x\.toml: record\.max_episode: unknown key.*Did you mean 'max_episodes'"):
        load_config_text(base + "max_episode = 10\n", source="x.toml")
