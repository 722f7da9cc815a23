"""The runs table's reads, in plain SQL on `store.sql` (see store/sql.py).

The lab paints its first rows without importing SQLAlchemy (its ORM alone costs about 0.35 s of
start-up), and decoding 10,000 rows skips the ORM's per-value result processing. The same
statements run on SQLite's own driver or, for other backends, through SQLAlchemy `text()`.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from rltui.store.sql import Tx, as_datetime, as_json
from rltui.store.status import QUEUED, RUNNING, status_note

RUN_ROW_KEYS = ("id", "name", "env", "algo", "status", "progress", "seed", "device", "device_used",
                "created_at", "started_at", "finished_at", "heartbeat_at", "summary", "tags", "notes", "waits_for")
_RUN_ROW_SELECT = ("SELECT id, name, env_id, algo_id, status, progress, seed, device, device_used, created_at, "
                   "started_at, finished_at, heartbeat_at, summary, tags, notes, waits_for FROM runs")
_RUN_ROW_TIMES = ("created_at", "started_at", "finished_at", "heartbeat_at")


def _as_json(value: Any) -> Any:
    if value == "{}" or value == "[]":  # most tags and many summaries: skip the decoder
        return {} if value == "{}" else []
    return as_json(value)


def _in_list(name: str, values: list[int]) -> tuple[str, dict[str, int]]:
    """`IN (:name0, :name1, ...)` and its parameters: plain SQL has no expanding list parameter."""
    params = {f"{name}{i}": int(v) for i, v in enumerate(values)}
    return "(" + ", ".join(f":{k}" for k in params) + ")", params


# Further columns a reader may ask run_rows for (`rltui ls` and `show` print them); JSON ones decoded.
DETAIL_KEYS = ("pid", "host", "parent_id", "sweep_id", "trial", "node", "versions", "error")
SHOW_KEYS = DETAIL_KEYS + ("config", "traceback", "log_path")
_EXTRA_COLUMNS = frozenset(SHOW_KEYS)
_JSON_COLUMNS = frozenset({"versions", "config"})


def run_rows(
    tx: Tx, ids: list[int] | None = None, after_id: int | None = None, limit: int | None = None,
    before_id: int | None = None, extra: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Light run rows (no config, no traceback) for the runs table, newest first.

    `ids` reads just those runs (the live ones being polled); `after_id` only runs created since;
    `limit` the newest few (the first screenful, before the rest arrives); `before_id` with `limit`
    the next few older ones (the whole table read a chunk at a time). `extra`: more columns
    (DETAIL_KEYS, SHOW_KEYS), by their column names.
    """
    unknown = set(extra) - _EXTRA_COLUMNS
    if unknown:
        raise ValueError(f"run_rows: no column {sorted(unknown)}")
    where, params = [], {}
    if ids is not None:
        if not ids:
            return []
        placeholders, params = _in_list("id", ids)
        where.append(f"id IN {placeholders}")
    if after_id is not None:
        where.append("id > :after_id")
        params["after_id"] = after_id
    if before_id is not None:
        where.append("id < :before_id")
        params["before_id"] = before_id
    select = _RUN_ROW_SELECT.replace(" FROM runs", "".join(f", {c}" for c in extra) + " FROM runs")
    sql = select + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
    if limit:
        sql += " LIMIT :limit"
        params["limit"] = int(limit)
    rows = []
    for values in tx.all(sql, **params):
        row = dict(zip(RUN_ROW_KEYS + extra, values))
        for key in _JSON_COLUMNS.intersection(extra):
            row[key] = as_json(row[key])
        for key in _RUN_ROW_TIMES:
            row[key] = as_datetime(row[key])
        row["summary"] = _as_json(row["summary"]) or {}
        row["tags"] = _as_json(row["tags"]) or []
        row["waits_for"] = _as_json(row["waits_for"])
        rows.append(row)
    return rows


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def run_json(row: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A run as plain JSON-able data, what `rltui ls --json` and `show --json` print: a run_rows row
    read with DETAIL_KEYS (or any mapping with those keys: queries.run_dict passes an ORM run's)."""
    now = now or utcnow()
    started, finished = row["started_at"], row["finished_at"]
    return {
        "id": row["id"],
        "name": row["name"],
        "env": row["env"],
        "algo": row["algo"],
        "status": row["status"],
        "seed": row["seed"],
        "device": row["device"],
        "device_used": row["device_used"],
        "progress": row["progress"],
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "heartbeat_at": _iso(row["heartbeat_at"]),
        "duration_s": ((finished or now) - started).total_seconds() if started else None,
        "pid": row["pid"],
        "host": row["host"],
        "summary": row["summary"] or {},
        "tags": row["tags"] or [],
        "notes": row["notes"] or "",
        "parent_id": row["parent_id"],
        "sweep_id": row["sweep_id"],  # a sweep's trial: its sweep, trial number and Ray node (if any)
        "trial": row["trial"],
        "node": row["node"],
        "versions": row["versions"] or {},
        "error": row["error"],
        "waits_for": row["waits_for"],
        # "stalled: no heartbeat for 42 s" (a live worker gone silent) or "waits for run 12".
        "status_note": run_status_note(row["status"], row["heartbeat_at"], row["waits_for"], row["env"], now),
    }


def latest_artifact(tx: Tx, run_id: int, name: str) -> Any | None:
    """The newest artifact `name` of a run, decoded (None if it has none)."""
    row = tx.first("SELECT kind, data FROM artifacts WHERE run_id = :run_id AND name = :name ORDER BY id DESC LIMIT 1",
                   run_id=run_id, name=name)
    if row is None:
        return None
    # The recorder (and numpy with it) loads only when an artifact is read.
    from rltui.recorder import decode_artifact

    return decode_artifact(row[0], row[1])


def run_status_note(status: str, heartbeat_at: datetime | None, waits_for: Any, env_id: str | None = None,
                    now: datetime | None = None) -> str | None:
    """ "stalled: no heartbeat for 42 s" or "waits for run 12" (status.status_note), from a run row."""
    if status not in (RUNNING, QUEUED):
        return None
    age = ((now or utcnow()) - heartbeat_at).total_seconds() if heartbeat_at is not None else None
    return status_note(status, age, waits_text(waits_for, env_id) if status == QUEUED else None)


def waits_text(waits_for: Any, env_id: str | None = None) -> str | None:
    """ "waits for run 12" / "waits for runs 12, 13" / "waits for a lm_pretrain run on lm-reviews"."""
    waits = as_json(waits_for) or {}
    ids = sorted({v for v in waits.values() if isinstance(v, int) and not isinstance(v, bool)})
    latest = sorted({v.split(":", 1)[1] for v in waits.values() if isinstance(v, str) and ":" in v})
    parts = []
    if ids:
        parts.append(("run " if len(ids) == 1 else "runs ") + ", ".join(map(str, ids)))
    parts += [f"a {algo} run" + (f" on {env_id}" if env_id else "") for algo in latest]
    return "waits for " + " and ".join(parts) if parts else None


def utcnow() -> datetime:
    """Naive UTC, as the store keeps times (the recorder's utcnow, without importing the recorder)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


_RETURNS_SUMS = (
    # A thinned row stands for bucket_size episodes (rltui/store/thinning.py).
    "max(id) AS last_id, max(coalesce(return_max, \"return\")) AS best, sum(coalesce(bucket_size, 1)) AS n, "
    "max(step) AS steps, sum(coalesce(length_mean * bucket_size, length)) AS length_sum"
)


def run_returns(tx: Tx, ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """Per run: last and best training return, episode count and steps (max global step).

    One grouped read over the episodes index; `ids` limits it to the runs being refreshed. It reads
    every episode row of those runs: a lab polling live runs keeps a ReturnsReader instead.
    """
    return {run_id: sums.row() for run_id, sums in _read_sums(tx, ids).items() if sums is not None}


class _Sums:
    __slots__ = ("last_id", "last_return", "best", "n", "steps", "length_sum")

    def __init__(self, last_id: int, last_return: Any, best: Any, n: int, steps: Any, length_sum: Any) -> None:
        self.last_id, self.last_return, self.best, self.n = last_id, last_return, best, int(n or 0)
        self.steps, self.length_sum = steps, length_sum

    def add(self, newer: "_Sums") -> None:
        """Fold in the sums of rows added since (all with larger ids)."""
        self.last_id, self.last_return, self.n = newer.last_id, newer.last_return, self.n + newer.n
        self.best = _max(self.best, newer.best)
        self.steps = _max(self.steps, newer.steps)
        self.length_sum = None if self.length_sum is None and newer.length_sum is None else \
            (self.length_sum or 0) + (newer.length_sum or 0)

    def row(self) -> dict[str, Any]:
        steps = self.steps if self.steps is not None else (None if self.length_sum is None else round(self.length_sum))
        return {"last_return": self.last_return, "best_return": self.best, "episodes": self.n, "steps": steps}


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def _read_sums(tx: Tx, ids: list[int] | None, after: dict[int, int] | None = None) -> dict[int, _Sums | None]:
    """The sums over each run's training episodes (a run with none is absent); with `after` ({run id:
    episode id}), only over its rows with larger ids, and None for a run with a thinned (bucket) row
    among them (its sums must be read whole: that bucket absorbed rows already summed)."""
    where, params = "phase = 'train'", {}
    if ids is not None:
        if not ids:
            return {}
        placeholders, params = _in_list("run", ids)
        where += f" AND run_id IN {placeholders}"
    buckets, run, group = "", "run_id", "run_id"
    if after is not None:
        # `+run_id` (an expression, not the column) keeps SQLite off the (run, phase, index) index,
        # whose every entry of these runs it would walk for the filter or the grouping: the id range
        # (the primary key) holds only the rows added since the last look. GROUP BY 1 is that expression.
        where = where.replace("run_id IN", "+run_id IN")
        run, group = "+run_id AS run_id", "1"
        assert ids is not None  # the runs whose rows since `after` are summed
        cases = " ".join(f"WHEN :run{i} THEN :after{i}" for i in range(len(ids)))
        where += f" AND id > :after_min AND id > (CASE run_id {cases} END)"
        params.update({f"after{i}": after[run_id] for i, run_id in enumerate(ids)}, after_min=min(after.values()))
        buckets = ", max(CASE WHEN bucket_size IS NULL THEN 0 ELSE 1 END)"
    sql = (f"SELECT agg.*, e.\"return\" FROM (SELECT {run}, {_RETURNS_SUMS}{buckets} "
           f"FROM episodes WHERE {where} GROUP BY {group}) AS agg JOIN episodes AS e ON e.id = agg.last_id")
    out: dict[int, _Sums | None] = {}
    for row in tx.all(sql, **params):
        run_id, last_id, best, n, steps, length_sum = row[:6]
        out[run_id] = None if after is not None and row[6] else _Sums(last_id, row[-1], best, n, steps, length_sum)
    return out


class ReturnsReader:
    """run_returns for a lab polling live runs: after the first read of a run, each look reads only
    the episode rows added since (a range of the primary key), not all of them again.

    That holds because episode rows are only ever appended, and thinning merges old rows into the
    last row of each bucket, keeping the count (bucket_size), the best (return_max) and the length
    sum: sums read before stay right. A run is read whole again when a bucket row turns up among its
    new rows (it absorbed rows summed before), or when its last row seen is gone (a resume deleted
    the episodes after its checkpoint, or thinning merged that row away). Thread-safe.
    """

    def __init__(self) -> None:
        self._known: dict[int, _Sums] = {}
        self._lock = threading.Lock()

    def read(self, tx: Tx, ids: list[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        with self._lock:  # one look at a time: two would fold the same new rows in twice
            return self._read(tx, ids)

    def _read(self, tx: Tx, ids: list[int]) -> dict[int, dict[str, Any]]:
        known = {i: self._known[i] for i in ids if i in self._known}
        if known:
            placeholders, params = _in_list("e", [s.last_id for s in known.values()])
            present = {r[0] for r in tx.all(f"SELECT id FROM episodes WHERE id IN {placeholders}", **params)}
            known = {i: s for i, s in known.items() if s.last_id in present}
        newer = _read_sums(tx, list(known), after={i: s.last_id for i, s in known.items()}) if known else {}
        whole = [i for i in ids if i not in known or (i in newer and newer[i] is None)]
        fresh = _read_sums(tx, whole) if whole else {}
        for run_id, sums in known.items():
            if newer.get(run_id) is not None:
                sums.add(newer[run_id])
        for run_id in whole:
            if fresh.get(run_id) is not None:
                self._known[run_id] = fresh[run_id]
            else:
                self._known.pop(run_id, None)  # no training episode yet
        return {i: self._known[i].row() for i in ids if i in self._known}


def runs_fingerprint(tx: Tx) -> tuple[int, int]:
    """(count, max id) of runs: a cheap check for rows created or deleted by another process."""
    count, max_id = tx.first("SELECT count(id), max(id) FROM runs")
    return int(count or 0), int(max_id or 0)
