"""Plots read from stored rollups (rltui/store/rollups.py): every bucket's mean, min, max and NaN
count must equal a brute-force numpy computation over the stored rows, however much of the series
is rolled up (complete, live with open blocks, written out of order, resumed, thinned, none at all),
on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from rltui.recorder import RecordPolicy, StoreRecorder
from rltui.store import open_store
from rltui.store.queries import bucket_edges, metric_downsampled
from rltui.store.rollups import WIDTHS, backfill, plan
from rltui.store.sql import AlchemyTx
from test_store import make_run


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.dispose()


def spiky_series(rng: np.random.Generator, n: int, max_gap: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Steps with random gaps (and one long gap), values of noise with rare large spikes and NaN runs."""
    steps = np.cumsum(rng.integers(1, max_gap, n))
    steps[n // 2:] += 40_000  # a gap in the steps: empty buckets
    values = rng.normal(0.0, 1.0, n)
    spikes = rng.choice(n, 12, replace=False)
    values[spikes] = rng.choice([-1.0, 1.0], 12) * rng.uniform(50, 500, 12)
    for start in rng.choice(n - 5, 6, replace=False):
        values[start:start + rng.integers(1, 5)] = np.nan
    return steps, values


def log(rec: StoreRecorder, steps, values, key: str = "loss", per_flush: int = 1_777) -> None:
    """Log through the recorder, flushing every `per_flush` points (blocks span flushes)."""
    for i in range(0, len(steps), per_flush):
        rec.log_many(key, steps[i:i + per_flush].tolist(), values[i:i + per_flush].tolist())
        rec.flush()


def stored_rows(store, run_id: int, key: str = "loss") -> np.ndarray:
    """(step, wall, weight, mean, low, high) of every stored row; NaN mean: NaN point(s)."""
    with store.sql.read() as tx:
        rows = tx.all("SELECT step, wall_time, bucket_size, value, value_min, value_max, value_mean FROM metrics "
                      "WHERE run_id = :run AND key = :key ORDER BY step, id", run=run_id, key=key)
    out = []
    for step, wall, size, value, vmin, vmax, vmean in rows:
        v = np.nan if value is None else value
        mean = v if size is None else (np.nan if vmean is None else vmean)
        out.append((step, wall, size or 1, mean, v if vmin is None else vmin, v if vmax is None else vmax))
    return np.array(out, dtype=float)


def brute_force(rows: np.ndarray, max_points: int, x: str = "step") -> list[tuple]:
    """What metric_downsampled must return, computed from every stored row with numpy."""
    if len(rows) <= max_points:
        return [(r[0] if x == "step" else r[1], r[3], r[3], r[3], int(np.isnan(r[3]))) for r in rows]
    step = rows[:, 0]
    edges = bucket_edges(int(step[0]), int(step[-1]), max_points)
    out = []
    for a, b in zip(edges, edges[1:]):
        sel = rows[(step >= a) & (step < b)]
        if not len(sel):
            continue
        finite = ~np.isnan(sel[:, 3])
        w = sel[finite, 2]
        mean = float((sel[finite, 3] * w).sum() / w.sum()) if finite.any() else None
        low = float(sel[finite, 4].min()) if finite.any() else None
        high = float(sel[finite, 5].max()) if finite.any() else None
        out.append((float(sel[:, 0 if x == "step" else 1].max()), mean, low, high, int(sel[~finite, 2].sum())))
    last = rows[-1]
    v = None if np.isnan(last[3]) else last[3]
    out.append((last[0] if x == "step" else last[1], v, v, v, int(v is None)))
    return out


def assert_matches(store, run_id: int, key: str = "loss", sizes=(3, 40, 150, 400)) -> None:
    rows = stored_rows(store, run_id, key)
    for max_points in sizes:
        for x in ("step", "wall"):
            with store.read() as s:
                got = metric_downsampled(s, run_id, key, max_points, x=x)
            want = brute_force(rows, max_points, x)
            assert len(got) == len(want), (max_points, x)
            for g, w in zip(got, want):
                assert g.x == pytest.approx(w[0]) and g.nans == w[4], (max_points, x, g, w)
                for got_v, want_v in zip(g[1:4], w[1:4]):
                    if want_v is None or (isinstance(want_v, float) and np.isnan(want_v)):
                        assert got_v is None, (max_points, x, g, w)
                    else:
                        assert got_v == pytest.approx(want_v, rel=1e-9, abs=1e-9), (max_points, x, g, w)


def assert_rollups_hold(store, run_id: int, key: str = "loss") -> None:
    """The rule itself: every stored rollup is the aggregate of the stored rows of its block."""
    rows = stored_rows(store, run_id, key)
    with store.sql.read() as tx:
        rollups = tx.all("SELECT width, start, points, nans, total, low, high, last_step, last_wall FROM metric_rollups "
                         "WHERE run_id = :run AND key = :key", run=run_id, key=key)
    assert rollups
    for width, start, points, nans, total, low, high, last_step, last_wall in rollups:
        sel = rows[(rows[:, 0] >= start) & (rows[:, 0] < start + width)]
        finite = ~np.isnan(sel[:, 3])
        assert (points, nans) == (sel[finite, 2].sum(), sel[~finite, 2].sum()), (width, start)
        assert total == pytest.approx((sel[finite, 3] * sel[finite, 2]).sum(), rel=1e-9, abs=1e-9)
        assert (low, high) == ((sel[finite, 4].min(), sel[finite, 5].max()) if finite.any() else (None, None))
        assert (last_step, last_wall) == (sel[:, 0].max(), pytest.approx(sel[:, 1].max()))


def rollup_count(store, run_id: int) -> int:
    with store.sql.read() as tx:
        return tx.scalar("SELECT count(*) FROM metric_rollups WHERE run_id = :run", run=run_id)


def test_plan_covers_a_bucket_exactly_with_aligned_blocks():
    rng = np.random.default_rng(1)
    for _ in range(300):
        a = int(rng.integers(0, 10**7))
        b = a + int(rng.integers(1, 10**6))
        blocks, raws = plan(a, b)
        spans = sorted([(s, s + w) for w, s in blocks] + raws)
        assert spans[0][0] == a and spans[-1][1] == b
        assert all(x[1] == y[0] for x, y in zip(spans, spans[1:]))  # no gap, no overlap
        assert all(s % w == 0 and w in WIDTHS for w, s in blocks)
        assert all(hi - lo < 2 * WIDTHS[0] for lo, hi in raws)  # raw rows only at the ragged edges
        assert len(blocks) <= 6 * len(WIDTHS)


def test_buckets_match_brute_force_when_rolled_up(store):
    rng = np.random.default_rng(7)
    steps, values = spiky_series(rng, 30_000)
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, flush_every=1e9)
    log(rec, steps, values)
    rec.close()
    assert rollup_count(store, run_id) > 30_000 // 40  # the reads below do use rollups
    assert_rollups_hold(store, run_id)
    assert_matches(store, run_id)
    with store.read() as s:  # every spike shows in its bucket
        pts = metric_downsampled(s, run_id, "loss", 100)
    assert max(p.high for p in pts if p.high is not None) == np.nanmax(values)
    assert min(p.low for p in pts if p.low is not None) == np.nanmin(values)
    assert sum(p.nans for p in pts) == np.isnan(values).sum()


def test_a_live_run_with_open_blocks_and_steps_out_of_order(store):
    rng = np.random.default_rng(11)
    steps, values = spiky_series(rng, 20_000)
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, flush_every=1e9)
    log(rec, steps[:15_000], values[:15_000])
    # Steps logged again and late into blocks already rolled up: those rollups must go.
    again = rng.choice(15_000, 50, replace=False)
    log(rec, steps[again], rng.normal(0, 1000, 50))
    log(rec, steps[15_000:], values[15_000:])
    assert_rollups_hold(store, run_id)
    assert_matches(store, run_id)  # still live: the last blocks are open (not written)
    rec.close()
    assert_rollups_hold(store, run_id)
    assert_matches(store, run_id)


def test_a_resumed_run_cut_at_its_checkpoint(store):
    rng = np.random.default_rng(3)
    steps, values = spiky_series(rng, 20_000)
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, flush_every=1e9)
    log(rec, steps[:12_000], values[:12_000])
    rec.close()
    cut = int(steps[9_000])
    with store.sql.write() as tx:  # what `rltui resume` does at a checkpoint
        tx.run("DELETE FROM metrics WHERE run_id = :run AND step > :cut", run=run_id, cut=cut)
    rec = StoreRecorder(store, run_id, flush_every=1e9)  # the resumed worker's recorder
    log(rec, steps[9_001:], rng.normal(0, 1, 20_000 - 9_001))
    assert_rollups_hold(store, run_id)
    assert_matches(store, run_id)
    rec.close()
    assert_rollups_hold(store, run_id)
    assert_matches(store, run_id)


def test_thinned_series_keep_their_envelope(store):
    rng = np.random.default_rng(5)
    steps, values = spiky_series(rng, 24_000, max_gap=3)
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, policy=RecordPolicy(max_metric_points=4_000), flush_every=1e9)
    log(rec, steps, values, per_flush=1_000)
    rec.close()
    with store.sql.read() as tx:
        thinned = tx.scalar("SELECT count(*) FROM metrics WHERE run_id = :run AND bucket_size IS NOT NULL", run=run_id)
    assert thinned > 0
    assert_rollups_hold(store, run_id)
    assert_matches(store, run_id, sizes=(40, 150, 400))
    with store.read() as s:
        pts = metric_downsampled(s, run_id, "loss", 60)
    assert max(p.high for p in pts if p.high is not None) == np.nanmax(values)  # the spike survives both
    assert min(p.low for p in pts if p.low is not None) == np.nanmin(values)


def test_without_rollups_the_raw_rows_answer_and_backfill_restores_them(store):
    rng = np.random.default_rng(9)
    steps, values = spiky_series(rng, 20_000)
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, flush_every=1e9)
    log(rec, steps, values)
    rec.close()
    with store.sql.read() as tx:
        written = tx.all("SELECT * FROM metric_rollups WHERE run_id = :run ORDER BY key, width, start", run=run_id)
    with store.sql.write() as tx:
        tx.run("DELETE FROM metric_rollups")
    assert_matches(store, run_id, sizes=(40, 150))  # a store without rollups: read raw, same answer
    with store.engine.begin() as conn:  # what migration 0009 runs
        assert backfill(AlchemyTx(conn), chunk=3_000) == len(written)
    with store.sql.read() as tx:
        again = tx.all("SELECT * FROM metric_rollups WHERE run_id = :run ORDER BY key, width, start", run=run_id)
    assert [r[:4] + r[4:6] + r[7:] for r in again] == [r[:4] + r[4:6] + r[7:] for r in written]
    assert [r[6] for r in again] == pytest.approx([r[6] for r in written])  # sums, in another order
    assert_rollups_hold(store, run_id)
    assert_matches(store, run_id, sizes=(150,))


def test_deleting_a_run_deletes_its_rollups(store):
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, flush_every=1e9)
    log(rec, np.arange(5_000), np.ones(5_000))
    rec.close()
    assert rollup_count(store, run_id) > 0
    with store.sql.write() as tx:
        tx.run("DELETE FROM runs WHERE id = :run", run=run_id)
    assert rollup_count(store, run_id) == 0


def test_finest_blocks_sum_the_same_with_and_without_numpy(monkeypatch):
    import sys

    from rltui.store.rollups import _finest_blocks

    rng = np.random.default_rng(2)
    steps = np.cumsum(rng.integers(0, 4, 3_000)).tolist()  # repeated steps too
    values = [None if rng.random() < 0.05 else float(v) for v in rng.normal(0, 1, 3_000)]
    values[100:140] = [None] * 40  # whole blocks of NaN
    walls = (np.arange(3_000) * 0.01).tolist()
    with_numpy = list(_finest_blocks(steps, values, walls))
    monkeypatch.delitem(sys.modules, "numpy")
    without = list(_finest_blocks(steps, values, walls))
    assert [b[:4] + b[5:] for b in with_numpy] == [b[:4] + b[5:] for b in without]
    assert [b[4] for b in with_numpy] == pytest.approx([b[4] for b in without])
    assert any(b[2] == 0 and b[5] is None for b in without)  # an all-NaN block has no min or max
