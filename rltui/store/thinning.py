"""Bounded growth: past `[record]`'s bounds, a run's older metric points and episode rows are thinned
into buckets that keep the min, max, mean and last value, so plots keep their true shape.

A series is one metric key of a run (x: its step) or one phase of a run's episodes (x: the episode
index). Once it holds more rows than its bound B, a pass merges its rows into buckets of `width`
consecutive x values, `width` the smallest power of two that leaves at most B/2 buckets over the
series' x range (it only ever grows, and each doubling merges old buckets pairwise). The bucket the
newest x falls in stays raw. A later pass at the same width starts where the last one ended, so the
raw rows written since are merged on and no row is read twice; at a new width, it starts over.

A bucket is its last row, updated in place: x, value and wall time stay the last point's (a plot's
last point is true), and it gains

    bucket_size   how many raw points it stands for (NULL: a raw row, 1)
    *_min, *_max  the smallest and largest value among them
    *_mean        their mean (weighted by bucket sizes when buckets merge)

NaN points (stored as NULL) are bucketed apart from finite ones, so a bucket is all NaN or none.

the other rows are deleted. Keeping the last row's id keeps ids in time order, so a reader that
follows a series by id never meets a bucket out of place. Episode rows with a stored trajectory are
never merged (the replay needs them; `[record]` bounds those already).

A metric's stored rollups (store/rollups.py) of blocks at least as wide as the buckets keep their
sums (a bucket never straddles such a block); the finer ones are deleted where a chunk merges.

Every chunk of a pass is its own short write transaction of at most CHUNK rows read, so other
writers (heartbeats, other runs) wait at most one chunk; a chunk merges whole buckets only (a bucket
cut by the chunk's end is merged on by the next), so a crash between chunks leaves a consistent
store. A worker's chunk waits a bounded time for the write lock (the flush's wait); one that finds it
taken raises WriteLockBusy with nothing changed, and the pass goes on after a later flush. Each flush runs chunks until it has read a few times what it wrote, which keeps ahead of the
writer; the bound is "about": a series may briefly exceed B by what one flush writes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Iterable

from rltui.store import rollups
from rltui.store.sql import BoundedWrites, in_list

if TYPE_CHECKING:
    from rltui.store.engine import Store
    from rltui.store.sql import Tx

CHUNK = 2_000  # rows read per transaction: a chunk holds the write lock for tens of milliseconds
WORK_FACTOR = 3  # a flush reads up to this many times the rows it wrote (at least one chunk)


@dataclass(frozen=True)
class Table:
    """Where a kind of series lives and what its bucket columns are called."""

    name: str
    series: str  # the column naming the series within a run ("key" or "phase")
    x: str  # the column buckets are cut along
    value: str
    extra: tuple[str, ...] = ()  # further raw columns averaged into `<name>_mean`-style columns
    skip: str = ""  # a condition on rows that are never merged


METRICS = Table("metrics", "key", "step", "value")
EPISODES = Table("episodes", "phase", '"index"', '"return"', extra=("length",), skip="has_trajectory = :kept")


@dataclass
class Series:
    count: int  # rows stored now
    width: int = 1
    done_below: int | None = None  # rows with x below this are buckets at `width` already
    cursor: tuple[int, int] | None = None  # (x, id) a running pass continues after
    cutoff: int = 0  # the running pass stops before this x (the newest bucket stays raw)


@dataclass
class Point:
    """A row as a bucket: raw rows are buckets of one."""

    id: int
    x: int
    value: float | None
    size: int
    low: float | None  # None: NaN point(s)
    high: float | None
    mean: float | None
    extra_means: list[float | None] = field(default_factory=list)


def merge(points: list[Point]) -> Point:
    """One bucket from consecutive points (oldest first): sizes add, min of mins, max of maxes,
    mean weighted by size, and the last point's id, x and value. Points are all finite or all NaN
    (`_chunk` buckets NaN points apart), so the sizes are the weights of the mean."""
    last = points[-1]
    finite = [p for p in points if p.mean is not None and not math.isnan(p.mean)]
    weight = sum(p.size for p in finite)
    extra_means = []
    for i in range(len(last.extra_means)):
        known = [(p.extra_means[i], p.size) for p in points if p.extra_means[i] is not None]
        n = sum(s for _, s in known)
        extra_means.append(sum(v * s for v, s in known) / n if n else None)
    return Point(
        id=last.id,
        x=last.x,
        value=last.value,
        size=sum(p.size for p in points),
        low=min((p.low for p in finite), default=None),
        high=max((p.high for p in finite), default=None),
        mean=sum(p.mean * p.size for p in finite) / weight if weight else None,
        extra_means=extra_means,
    )


def width_for(lo: int, hi: int, bound: int, at_least: int = 1) -> int:
    """The smallest power of two ≥ at_least that cuts [lo, hi] into at most bound/2 buckets."""
    width = max(1, at_least)
    while (hi // width) - (lo // width) + 1 > max(1, bound // 2):
        width *= 2
    return width


class Thinner:
    """Keeps one run's series under their bounds; the recorder calls `after_flush` after each flush."""

    def __init__(self, store: Store, run_id: int, max_metric_points: int, max_episodes: int,
                 writes: BoundedWrites | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.writes = writes or BoundedWrites(store.sql)
        self.bounds = {METRICS: max_metric_points, EPISODES: max_episodes}
        self.series: dict[tuple[Table, str], Series] = {}

    def metric_width(self, key: str) -> int:
        """The bucket width a metric key is thinned at (1: not thinned): no finer rollup is kept."""
        series = self.series.get((METRICS, key))
        return series.width if series is not None else 1

    # --- bookkeeping -------------------------------------------------------------------------------
    def after_flush(self, metric_rows: Iterable[tuple], episode_rows: Iterable[tuple[dict[str, Any], Any]],
                    wait_ms: int | None = None) -> int:
        """Count what a flush wrote, then thin what is over its bound. Returns rows deleted. Each chunk
        waits at most `wait_ms` for the write lock (None: the store's busy timeout), else raises
        WriteLockBusy, the rows counted and the pass where it was."""
        written = 0
        for table, counts in ((METRICS, Counter(map(itemgetter(1), metric_rows))),
                              (EPISODES, Counter(row["phase"] for row, _ in episode_rows if not row["has_trajectory"]))):
            for name, n in counts.items():
                written += n
                series = self.series.get((table, name))
                if series is None:
                    self.series[(table, name)] = Series(count=self._count(table, name))  # a resumed run's too
                else:
                    series.count += n
        budget = max(CHUNK, WORK_FACTOR * written)
        deleted = 0
        for (table, name), series in self.series.items():
            if budget <= 0:
                break
            if series.cursor is None and series.count > self.bounds[table]:
                self._start_pass(table, name, series)
            while series.cursor is not None and budget > 0:
                read, gone = self._chunk(table, name, series, wait_ms)
                budget -= max(read, 1)
                deleted += gone
        return deleted

    def _where(self, table: Table) -> str:
        return f"run_id = :run AND {table.series} = :name" + (f" AND NOT ({table.skip})" if table.skip else "")

    def _params(self, table: Table, name: str) -> dict[str, Any]:
        return {"run": self.run_id, "name": name, **({"kept": True} if table.skip else {})}

    def _count(self, table: Table, name: str) -> int:
        with self.store.sql.read() as tx:
            return int(tx.scalar(f"SELECT count(*) FROM {table.name} WHERE {self._where(table)}",
                                 **self._params(table, name)) or 0)

    def _start_pass(self, table: Table, name: str, series: Series) -> None:
        where, params = self._where(table), self._params(table, name)
        with self.store.sql.read() as tx:  # two index seeks, not a scan
            lo = tx.scalar(f"SELECT {table.x} FROM {table.name} WHERE {where} ORDER BY {table.x} LIMIT 1", **params)
            hi = tx.scalar(f"SELECT {table.x} FROM {table.name} WHERE {where} ORDER BY {table.x} DESC LIMIT 1", **params)
        if lo is None:
            return
        width = width_for(int(lo), int(hi), self.bounds[table], at_least=series.width)
        if width != series.width:
            series.width, series.done_below = width, None  # buckets change: every row is looked at again
        series.cutoff = (int(hi) // width) * width
        start = series.done_below if series.done_below is not None else int(lo)
        if start >= series.cutoff:
            return
        series.cursor = (start - 1, 0)  # rows after (start - 1, any id)

    def _chunk(self, table: Table, name: str, series: Series, wait_ms: int | None = None) -> tuple[int, int]:
        """Merge whole buckets among the next CHUNK rows of a pass, in one write transaction."""
        x, value = table.x, table.value
        prefix = table.value.strip('"')
        columns = [f"{prefix}_min", f"{prefix}_max", f"{prefix}_mean"] + [f"{c}_mean" for c in table.extra]
        select = (
            f"SELECT id, {x}, {value}, bucket_size, {', '.join(columns)}, {', '.join(table.extra) or 'NULL'} "
            # `x >= :x0` alone lets the (run, series, x) index seek to where the pass is; the OR
            # then skips the rows at x0 already done.
            f"FROM {table.name} WHERE {self._where(table)} AND {x} >= :x0 AND {x} < :cutoff "
            f"AND ({x} > :x0 OR id > :id0) ORDER BY {x}, id LIMIT :chunk"
        )
        with self.writes.attempt(wait_ms) as tx:
            rows = tx.all(select, **self._params(table, name), cutoff=series.cutoff,
                          x0=series.cursor[0], id0=series.cursor[1], chunk=CHUNK)
            points = [_point(r, len(table.extra)) for r in rows]
            groups: list[list[Point]] = []
            for p in points:
                # NaN points (NULL) bucket apart from finite ones, so means stay exactly weighted.
                if groups and groups[-1][0].x // series.width == p.x // series.width and \
                        (groups[-1][-1].mean is None) == (p.mean is None):
                    groups[-1].append(p)
                else:
                    groups.append([p])
            full = len(rows) == CHUNK
            cut = full and len(groups) > 1
            if cut:
                groups.pop()  # the bucket the chunk's end cut through: merged whole by the next chunk
            merged = [g for g in groups if len(g) > 1]
            gone = self._write_buckets(tx, table, columns, [merge(g) for g in merged],
                                       [p.id for g in merged for p in g[:-1]])
            if merged and table is METRICS:  # rollups finer than the buckets no longer hold there
                width = series.width
                rollups.drop_finer(tx, self.run_id, name, width, merged[0][0].x // width * width,
                                   (merged[-1][-1].x // width + 1) * width)
        series.count -= gone
        if not full:
            series.cursor, series.done_below = None, series.cutoff  # the pass is over
        else:
            last = groups[-1][-1]
            # After the last whole bucket; when one bucket filled the chunk, at its merged row (kept
            # under the last id), so the rest of that bucket merges into it.
            series.cursor = (last.x, last.id) if cut else (last.x, last.id - 1)
        return len(rows), gone

    def _write_buckets(self, tx: Tx, table: Table, columns: list[str], buckets: list[Point], drop: list[int]) -> int:
        """Each bucket into its last row (one executemany), the rows it absorbed deleted; rows deleted."""
        if buckets:
            update = (f"UPDATE {table.name} SET bucket_size = :size, "
                      + ", ".join(f"{c} = :c{i}" for i, c in enumerate(columns)) + " WHERE id = :id")
            tx.run_many(update, [
                {"size": b.size, "id": b.id, **{f"c{i}": v for i, v in enumerate([b.low, b.high, b.mean] + b.extra_means)}}
                for b in buckets
            ])
        gone = 0
        for start in range(0, len(drop), 500):
            placeholders, ids = in_list("id", drop[start:start + 500])
            gone += tx.run(f"DELETE FROM {table.name} WHERE id IN ({placeholders})", **ids)
        return gone


def _point(row: tuple, extras: int) -> Point:
    id_, x, value, size, low, high, mean = row[:7]
    extra_means = list(row[7:7 + extras])
    raw_extras = list(row[7 + extras:7 + 2 * extras])
    if size is None:  # a raw row: a bucket of one
        value_f = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        return Point(id_, int(x), value, 1, value_f, value_f, value_f, [None if v is None else float(v) for v in raw_extras])
    return Point(id_, int(x), value, int(size), low, high, mean,
                 [m if m is not None else (None if r is None else float(r)) for m, r in zip(extra_means, raw_extras)])
