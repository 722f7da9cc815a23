"""The runs table's reads, in plain SQL on `store.sql` (see store/sql.py).

The lab paints its first rows without importing SQLAlchemy (its ORM alone costs about 0.35 s of
start-up), and decoding 10,000 rows skips the ORM's per-value result processing. The same
statements run on SQLite's own driver or, for other backends, through SQLAlchemy `text()`.
"""

from __future__ import annotations

from typing import Any

from datetime import datetime, timezone

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


def run_returns(tx: Tx, ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """Per run: last and best training return, episode count and steps (max global step).

    One grouped read over the episodes index; `ids` limits it to the runs being refreshed.
    """
    where, params = "phase = 'train'", {}
    if ids is not None:
        if not ids:
            return {}
        placeholders, params = _in_list("run", ids)
        where += f" AND run_id IN {placeholders}"
    sql = (
        "SELECT agg.run_id, e.\"return\", agg.best, agg.n, agg.steps, agg.length_sum FROM "
        # A thinned row stands for bucket_size episodes (rltui/store/thinning.py).
        "(SELECT run_id, max(id) AS last_id, max(coalesce(return_max, \"return\")) AS best, "
        "sum(coalesce(bucket_size, 1)) AS n, max(step) AS steps, "
        "sum(coalesce(length_mean * bucket_size, length)) AS length_sum "
        f"FROM episodes WHERE {where} GROUP BY run_id) AS agg "
        "JOIN episodes AS e ON e.id = agg.last_id"
    )
    return {
        run_id: {"last_return": last, "best_return": best, "episodes": n,
                 "steps": steps if steps is not None else (None if length_sum is None else round(length_sum))}
        for run_id, last, best, n, steps, length_sum in tx.all(sql, **params)
    }


def runs_fingerprint(tx: Tx) -> tuple[int, int]:
    """(count, max id) of runs: a cheap check for rows created or deleted by another process."""
    count, max_id = tx.first("SELECT count(id), max(id) FROM runs")
    return int(count or 0), int(max_id or 0)
