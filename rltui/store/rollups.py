"""Stored rollups: pre-aggregated blocks of each metric, so a plot of any length reads a few thousand
rows instead of every point.

A rollup is one aligned block of steps [start, start + width) of one run's metric key, its width a
power of four from 16 to 2**30, holding the aggregate of the stored metric rows whose step falls in
it (a thinned row counts for the `bucket_size` points it stands for):

    points, nans           how many finite and NaN points
    total                  the sum of the finite ones (the mean is total / points)
    low, high              their min and max
    last_step, last_wall   the largest step and wall time

The one rule: where a rollup row exists, it equals that aggregate. A missing one is always allowed:
the reader reads the raw rows of that block instead. Who keeps the rule:

- the recorder (`RollupWriter.record`, inside each flush's transaction) writes a block once the
  series has moved past it, and only if it holds at least MIN_ROWS rows (sparser blocks are as cheap
  to read raw); a row written into a block already passed deletes that block's rollup. A recorder
  that finds rows of a key already stored (a resumed run: `resume` cut the rows after the
  checkpoint) deletes the rollups from the block holding the last stored step on, and never writes
  those blocks again. `finish` writes the last, open blocks when the run ends;
- the thinner (thinning.py) merges rows within aligned power-of-two buckets of width w: a block of
  width >= w keeps its aggregate exactly; the finer ones it deletes where it merges
  (`drop_finer`), and the recorder writes none finer than w from then on;
- migration 0009 backfills the runs stored before it (`backfill`).

The reader (`bucket_aggregates`) cuts each plot bucket into the fewest aligned blocks (the segment
tree's decomposition: at most a few per level), reads the stored ones in one statement and the raw
rows of the rest (the bucket's ragged edges, blocks not written yet) in a second, aggregated in SQL.
Both statements are written once for SQLite and PostgreSQL.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from rltui.store.sql import Tx

SHIFTS = tuple(range(4, 31, 2))  # block widths 16, 64, ..., 2**30 (steps are 32-bit integers)
WIDTHS = tuple(1 << s for s in SHIFTS)
MIN_ROWS = 8  # a block of fewer stored rows is not written: reading its rows raw costs no more

_COLUMNS = "run_id, key, width, start, points, nans, total, low, high, last_step, last_wall"
UPSERT_SQL = (
    f"INSERT INTO metric_rollups ({_COLUMNS}) VALUES (:run, :key, :width, :start, :points, :nans, :total, "
    ":low, :high, :last_step, :last_wall) ON CONFLICT (run_id, key, width, start) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[4:])
)
DELETE_BLOCK_SQL = "DELETE FROM metric_rollups WHERE run_id = :run AND key = :key AND width = :width AND start = :start"
DELETE_FROM_SQL = "DELETE FROM metric_rollups WHERE run_id = :run AND key = :key AND width = :width AND start >= :start"
DELETE_RANGE_SQL = (
    "DELETE FROM metric_rollups WHERE run_id = :run AND key = :key AND width = :width AND start >= :lo AND start < :hi"
)

# An accumulator (a block being summed up) is a list, for speed in the flush's loop:
START, ROWS, POINTS, NANS, TOTAL, LOW, HIGH, LAST_STEP, LAST_WALL = range(9)


def _merge(acc: list, item: list) -> None:
    """Add `item` (a row or a finer block, as an accumulator) into `acc`."""
    acc[ROWS] += item[ROWS]
    acc[POINTS] += item[POINTS]
    acc[NANS] += item[NANS]
    acc[TOTAL] += item[TOTAL]
    low, high = item[LOW], item[HIGH]
    if low is not None and (acc[LOW] is None or low < acc[LOW]):
        acc[LOW] = low
    if high is not None and (acc[HIGH] is None or high > acc[HIGH]):
        acc[HIGH] = high
    if item[LAST_STEP] > acc[LAST_STEP]:
        acc[LAST_STEP] = item[LAST_STEP]
    if item[LAST_WALL] > acc[LAST_WALL]:
        acc[LAST_WALL] = item[LAST_WALL]


class _Key:
    """One key's blocks being summed up: per level the open block and the last block passed."""

    __slots__ = ("open", "passed")

    def __init__(self, prior_step: int | None) -> None:
        self.open: list[list | None] = [None] * len(SHIFTS)
        # Blocks starting at or before `passed` are never written again (None: none passed yet).
        self.passed: list[int | None] = [None if prior_step is None else (prior_step >> s) << s for s in SHIFTS]


class RollupWriter:
    """Keeps one run's rollups as its recorder flushes (see the module's docstring for the rule)."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.keys: dict[str, _Key] = {}
        self._writes: dict[tuple[str, int, int], list] = {}
        self._deletes: set[tuple[str, int, int]] = set()
        self._finest = 1

    def record(self, tx: Tx, rows: Iterable[tuple], finest: Callable[[str], int] = lambda key: 1) -> None:
        """Sum up a flush's metric rows, (run_id, key, step, value, wall_time) with value None for NaN,
        and write the blocks they completed, in the flush's transaction `tx` (before its rows go in).
        `finest(key)`: the thinner's bucket width for the key; no finer block is written."""
        rows = rows if isinstance(rows, list) else list(rows)
        keys = set(map(itemgetter(1), rows))
        for key in keys:  # a flush holds a few keys, interleaved: each one's rows, in order
            mine = rows if len(keys) == 1 else [r for r in rows if r[1] == key]
            _runs, _keys, steps, values, walls = (list(c) for c in zip(*mine))
            state = self.keys.get(key)
            if state is None:
                state = self.keys[key] = self._start(tx, key)
            self._finest = finest(key)
            if (steps[-1] - steps[0]) < 4 * len(steps) and steps == sorted(steps):
                self._add_dense(key, state, steps, values, walls)
            else:
                for step, value, wall in zip(steps, values, walls):
                    self._add(key, state, 0, step, _row(step, value, wall))
        self._write(tx)

    def finish(self, tx: Tx, finest: Callable[[str], int] = lambda key: 1) -> int:
        """The run is over: its open blocks are complete; write them. Returns how many it wrote."""
        for key, state in self.keys.items():
            self._finest = finest(key)
            for level in range(len(SHIFTS)):  # bottom up: each closed block into its parent first
                acc = state.open[level]
                if acc is not None:
                    state.open[level] = None
                    state.passed[level] = acc[START]
                    self._keep(key, level, acc)
                    self._add(key, state, level + 1, acc[START], acc)
        return self._write(tx)

    # --- summing up --------------------------------------------------------------------------------
    def _add_dense(self, key: str, state: _Key, steps: list[int], values: list, walls: list[float]) -> None:
        """Rows in step order, several to a finest block: each block's rows summed at once (by numpy
        when the run has loaded it, else by builtins), the finest level's bookkeeping inline."""
        open_, passed = state.open, state.passed
        for item in _finest_blocks(steps, values, walls):
            start, acc = item[START], open_[0]
            if acc is not None and acc[START] == start:
                _merge(acc, item)
            elif (acc is None or start > acc[START]) and (passed[0] is None or start > passed[0]):
                if acc is not None:
                    passed[0] = acc[START]
                    self._keep(key, 0, acc)
                    self._add(key, state, 1, acc[START], acc)
                open_[0] = item
            else:
                self._add(key, state, 0, start, item)

    def _start(self, tx: Tx, key: str) -> _Key:
        """A key this recorder meets for the first time: rows of it may be stored already."""
        prior = tx.scalar("SELECT max(step) FROM metrics WHERE run_id = :run AND key = :key", run=self.run_id, key=key)
        if prior is None:  # a fresh key, or one a resume deleted whole: no rollup of it holds
            tx.run("DELETE FROM metric_rollups WHERE run_id = :run AND key = :key", run=self.run_id, key=key)
        else:  # the blocks from the last stored step on may hold rows cut by a resume, or miss some
            tx.run_many(DELETE_FROM_SQL, [{"run": self.run_id, "key": key, "width": w, "start": (prior >> s) << s}
                                          for s, w in zip(SHIFTS, WIDTHS)])
        return _Key(None if prior is None else int(prior))

    def _add(self, key: str, state: _Key, level: int, position: int, item: list) -> None:
        """Add a row or a finished finer block (`item`, at step `position`) from `level` up."""
        while level < len(SHIFTS):
            start = (position >> SHIFTS[level]) << SHIFTS[level]
            acc = state.open[level]
            if acc is not None and acc[START] == start:
                _merge(acc, item)
                return
            passed = state.passed[level]
            if (acc is None or start > acc[START]) and (passed is None or start > passed):
                if acc is not None:  # the series moved past the open block: it is complete
                    state.open[level] = None
                    state.passed[level] = acc[START]
                    self._keep(key, level, acc)
                    self._add(key, state, level + 1, acc[START], acc)
                state.open[level] = [start, *item[1:]]
                return
            # Into a block already passed (a step logged again, out of order, or before a resumed
            # run's last stored step): its rollup no longer holds, nor its parent's if passed too.
            block = (key, WIDTHS[level], start)
            self._writes.pop(block, None)
            self._deletes.add(block)
            level += 1

    def _keep(self, key: str, level: int, acc: list) -> None:
        if acc[ROWS] >= MIN_ROWS and WIDTHS[level] >= self._finest:
            self._writes[(key, WIDTHS[level], acc[START])] = acc

    def _write(self, tx: Tx) -> int:
        """Deletes, then writes, what the sums so far decided; returns how many rollups it wrote."""
        written = len(self._writes)
        if self._deletes:
            tx.run_many(DELETE_BLOCK_SQL, [{"run": self.run_id, "key": k, "width": w, "start": s}
                                           for k, w, s in self._deletes])
        if self._writes:
            tx.run_many(UPSERT_SQL, [
                {"run": self.run_id, "key": k, "width": w, "start": s, "points": a[POINTS], "nans": a[NANS],
                 "total": a[TOTAL], "low": a[LOW], "high": a[HIGH], "last_step": a[LAST_STEP],
                 "last_wall": a[LAST_WALL]}
                for (k, w, s), a in self._writes.items()
            ])
        self._writes, self._deletes = {}, set()
        return written


def _finest_blocks(steps: list[int], values: list, walls: list[float]) -> Iterable[list]:
    """Rows in step order summed up per finest block, as accumulators."""
    shift, width = SHIFTS[0], WIDTHS[0]
    np = sys.modules.get("numpy")  # never imported for this: a tabular worker may not have it
    if np is None:
        i, n = 0, len(steps)
        while i < n:
            start = (steps[i] >> shift) << shift
            j = bisect_left(steps, start + width, i)
            finite = [v for v in values[i:j] if v is not None]
            low, high = (min(finite), max(finite)) if finite else (None, None)
            yield [start, j - i, len(finite), j - i - len(finite), sum(finite), low, high, steps[j - 1], max(walls[i:j])]
            i = j
        return
    starts = (np.asarray(steps, dtype=np.int64) >> shift) << shift
    first = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
    last = np.r_[first[1:], len(steps)] - 1
    v = np.array(values, dtype=float)  # None: NaN
    finite = ~np.isnan(v)
    points = np.add.reduceat(finite, first)
    rows = last - first + 1
    with np.errstate(invalid="ignore"):
        lows, highs = np.fmin.reduceat(v, first), np.fmax.reduceat(v, first)  # NaN only where all are
    totals = np.add.reduceat(np.where(finite, v, 0.0), first)
    wall = np.maximum.reduceat(np.asarray(walls, dtype=float), first)
    for start, n, p, total, low, high, last_i, w in zip(starts[first].tolist(), rows.tolist(), points.tolist(),
                                                        totals.tolist(), lows.tolist(), highs.tolist(),
                                                        last.tolist(), wall.tolist()):
        yield [start, n, p, n - p, total, low if p else None, high if p else None, steps[last_i], w]


def _row(step: int, value: float | None, wall: float) -> list:
    if value is None:
        return [step, 1, 0, 1, 0.0, None, None, step, wall]
    return [step, 1, 1, 0, value, value, value, step, wall]


def drop_finer(tx: Tx, run_id: int, key: str, width: int, lo: int, hi: int) -> None:
    """The thinner merged rows of steps [lo, hi) into buckets of `width`: finer blocks no longer hold."""
    finer = [w for w in WIDTHS if w < width]
    if finer:
        tx.run_many(DELETE_RANGE_SQL, [{"run": run_id, "key": key, "width": w, "lo": lo, "hi": hi} for w in finer])


# Raw rows as the reader and the backfill aggregate them: a thinned row counts for its bucket.
_VALUE = "NULLIF(m.value, 'NaN')"  # PostgreSQL keeps a NaN written by another client; SQLite stores NULL
_MEAN = f"coalesce(m.value_mean, {_VALUE})"
_WEIGHT = "coalesce(m.bucket_size, 1)"
# A row's finite and NaN point counts, the sum of its finite points, its min and max.
_POINTS = f"CASE WHEN {_MEAN} IS NULL THEN 0 ELSE {_WEIGHT} END"
_NANS = f"CASE WHEN {_MEAN} IS NULL THEN {_WEIGHT} ELSE 0 END"
_TOTAL = f"{_MEAN} * {_WEIGHT}"
_LOW = f"coalesce(m.value_min, {_VALUE})"
_HIGH = f"coalesce(m.value_max, {_VALUE})"


def backfill(tx: Tx, chunk: int = 50_000) -> int:
    """Rollups for every series already stored (migration 0009): one pass per series along the
    (run_id, key, step) index, `chunk` rows at a time. Returns how many rollups it wrote."""
    written = 0
    for run_id, key in tx.all("SELECT DISTINCT run_id, key FROM metrics"):
        writer = RollupWriter(run_id)
        state = writer.keys[key] = _Key(None)
        after = (-(2**31), -1)  # (step, id) the next chunk starts after: before every row
        while True:
            rows = tx.all(
                f"SELECT m.step, m.id, {_POINTS}, {_NANS}, {_TOTAL}, {_LOW}, {_HIGH}, m.wall_time "
                "FROM metrics m WHERE m.run_id = :run AND m.key = :key AND m.step >= :step "
                "AND (m.step > :step OR m.id > :id) ORDER BY m.step, m.id LIMIT :chunk",
                run=run_id, key=key, step=after[0], id=after[1], chunk=chunk,
            )
            for step, _id, points, nans, total, low, high, wall in rows:
                writer._add(key, state, 0, step, [step, 1, points, nans, total or 0.0, low, high, step, wall])
            if len(rows) < chunk:
                break
            after = (rows[-1][0], rows[-1][1])
            written += writer._write(tx)
        # A stored run's last blocks are as complete as it is (a resume redoes them).
        written += writer.finish(tx)
    return written


# --- reading -----------------------------------------------------------------------------------------

@dataclass
class Bucket:
    """The aggregate of one plot bucket's points."""

    last_step: int
    last_wall: float
    points: int  # finite points
    nans: int
    total: float
    low: float | None
    high: float | None

    @property
    def mean(self) -> float | None:
        return self.total / self.points if self.points else None


def plan(a: int, b: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Steps [a, b) as the fewest aligned blocks (width, start) and the raw ranges left at its edges."""
    blocks: list[tuple[int, int]] = []
    raws: list[tuple[int, int]] = []
    todo = [(a, b, len(WIDTHS) - 1)]
    while todo:
        lo, hi, level = todo.pop()
        if lo >= hi:
            continue
        while level >= 0:
            width = WIDTHS[level]
            first, end = -(-lo // width) * width, (hi // width) * width
            if first < end:
                break
            level -= 1
        if level < 0:
            raws.append((lo, hi))
            continue
        blocks.extend((width, s) for s in range(first, end, width))
        todo += [(lo, first, level - 1), (end, hi, level - 1)]
    return blocks, raws


def _ints(values: Iterable[int]) -> str:
    """Integers we computed (never user text), written into a statement."""
    return ", ".join(str(int(v)) for v in values)


PARTS_PER_STATEMENT = 400  # SQLite allows at most 500 SELECTs in one UNION ALL
SHORT_RANGE = 64  # steps: a range this short is read row by row, its steps listed
MAX_STEPS_LISTED = 20_000


def bucket_aggregates(tx: Tx, run_id: int, key: str, edges: list[int]) -> list[Bucket | None]:
    """Each bucket [edges[i], edges[i+1]) of a series' steps, aggregated; None for an empty one.

    Every part of the two statements is a seek on an index with literal bounds ((run_id, key, width,
    start) for rollups, (run_id, key, step) for raw rows), so both backends plan them the same way
    whatever their statistics say. (A join on a VALUES list let PostgreSQL scan the whole series
    once per range when the table had not been analyzed yet.)
    """
    plans = [plan(a, b) for a, b in zip(edges, edges[1:])]
    by_width: dict[int, set[int]] = {}
    for blocks, _ in plans:
        for width, start in blocks:
            by_width.setdefault(width, set()).add(start)
    stored: dict[tuple[int, int], tuple] = {}
    if by_width:
        parts = [
            "SELECT width, start, points, nans, total, low, high, last_step, last_wall FROM metric_rollups "
            f"WHERE run_id = :run AND key = :key AND width = {int(width)} AND start IN ({_ints(sorted(starts))})"
            for width, starts in sorted(by_width.items())
        ]
        for row in tx.all(" UNION ALL ".join(parts), run=run_id, key=key):
            stored[(row[0], row[1])] = row[2:]
    buckets: list[Bucket | None] = []
    ranges: list[tuple[int, int, int]] = []  # (bucket, lo, hi) to read raw
    for i, (blocks, raws) in enumerate(plans):
        bucket = None
        spans = list(raws)
        for width, start in blocks:
            row = stored.get((width, start))
            if row is None:  # not written (yet): its rows are read raw
                spans.append((start, start + width))
            else:
                bucket = _combine(bucket, *row)
        buckets.append(bucket)
        for lo, hi in sorted(spans):
            if ranges and ranges[-1][0] == i and ranges[-1][2] == lo:
                ranges[-1] = (i, ranges[-1][1], hi)
            else:
                ranges.append((i, lo, hi))
    # The short ranges (a bucket's ragged edges: a few steps each) by their steps, in one IN list;
    # the long ones (blocks not rolled up yet, a store without rollups) aggregated in SQL, one part each.
    short_steps, long_ranges = {}, []
    for i, lo, hi in sorted(ranges, key=lambda r: r[2] - r[1]):
        if hi - lo <= SHORT_RANGE and len(short_steps) + hi - lo <= MAX_STEPS_LISTED:
            short_steps.update((step, i) for step in range(lo, hi))
        else:
            long_ranges.append((i, lo, hi))
    if short_steps:
        for step, points, nans, total, low, high, wall in tx.all(
            f"SELECT m.step, {_POINTS}, {_NANS}, {_TOTAL}, {_LOW}, {_HIGH}, m.wall_time FROM metrics m "
            f"WHERE m.run_id = :run AND m.key = :key AND m.step IN ({_ints(sorted(short_steps))})",
            run=run_id, key=key,
        ):
            i = short_steps[step]
            buckets[i] = _combine(buckets[i], points, nans, total, low, high, step, wall)
    for chunk in range(0, len(long_ranges), PARTS_PER_STATEMENT):
        parts = [
            f"SELECT {int(i)}, sum({_POINTS}), sum({_NANS}), sum({_TOTAL}), min({_LOW}), max({_HIGH}), "
            f"max(m.step), max(m.wall_time) FROM metrics m WHERE m.run_id = :run AND m.key = :key "
            f"AND m.step >= {int(lo)} AND m.step < {int(hi)}"
            for i, lo, hi in long_ranges[chunk:chunk + PARTS_PER_STATEMENT]
        ]
        for i, points, nans, total, low, high, last_step, last_wall in tx.all(" UNION ALL ".join(parts),
                                                                             run=run_id, key=key):
            buckets[i] = _combine(buckets[i], points, nans, total, low, high, last_step, last_wall)
    return buckets


def _combine(bucket: Bucket | None, points: Any, nans: Any, total: Any, low: Any, high: Any,
             last_step: Any, last_wall: Any) -> Bucket | None:
    if last_step is None:  # an empty range
        return bucket
    part = Bucket(int(last_step), float(last_wall), int(points or 0), int(nans or 0), float(total or 0.0),
                  None if low is None else float(low), None if high is None else float(high))
    if bucket is None:
        return part
    bucket.last_step = max(bucket.last_step, part.last_step)
    bucket.last_wall = max(bucket.last_wall, part.last_wall)
    bucket.points += part.points
    bucket.nans += part.nans
    bucket.total += part.total
    if part.low is not None and (bucket.low is None or part.low < bucket.low):
        bucket.low = part.low
    if part.high is not None and (bucket.high is None or part.high > bucket.high):
        bucket.high = part.high
    return bucket
