"""Store write-path benchmark: sustained StoreRecorder rates while a second process reads.

    .venv/bin/python bench/bench_store.py [--points 1000000] [--steps 300000] [--repeat 3]
    PGPASSWORD=... .venv/bin/python bench/bench_store.py --db postgresql+psycopg://me@host/scratch

For metric points and for trajectory steps it prints our rate (through StoreRecorder, the path
algorithms use: recorder.log(step, **4 metrics) and recorder.episode(..., steps=[StepRecord...]))
beside the raw `sqlite3` executemany rate for the same rows into the same schema, and the ratio.
With --db URL it does the same on that PostgreSQL database after SQLite, beside raw psycopg COPY
(the same rows, JSON already serialized, in the same batches). The database may be empty or an
rltui store: the benchmark adds its own runs and deletes them again. Give the password through
PGPASSWORD or ~/.pgpass, not on the command line.
Every measurement runs on a fresh run while a reader process polls it the way the TUI does
(metric_series(since_step=last seen) for every key, 10 times a second, each poll a short read
transaction). Goals: SQLite (issue 2) >= 200,000 metric points/s and >= 50,000 trajectory steps/s;
PostgreSQL (issue 12) >= 150,000 points/s and >= 50,000 steps/s, and >= 0.6 of raw COPY.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rltui.recorder import RecordPolicy, StepRecord, StoreRecorder, utcnow  # noqa: E402
from rltui.store import open_store  # noqa: E402
from rltui.store.engine import display_url  # noqa: E402
from rltui.store.models import Run  # noqa: E402
from rltui.store.queries import metric_series  # noqa: E402

KEYS = ("loss", "q_values", "epsilon", "learning_rate")
POLL_S = 0.1
FLUSH_ROWS = 50_000  # StoreRecorder's default max_pending: the raw side uses the same batches


def _server_cpu() -> float:
    return 0.0


def cpu_now() -> float:
    """CPU seconds of this process, plus those of the local PostgreSQL server's processes when
    measuring one: the work a write costs, whoever does it, and whatever else loads the machine."""
    return time.process_time() + _server_cpu()


def watch_server_cpu(url: str) -> bool:
    """Count the CPU of every child of the server's postmaster (found from our backend's parent)."""
    global _server_cpu
    conn = psycopg_connect(url)
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.close()
    try:
        postmaster = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    except OSError:  # not a local server
        return False
    tick = os.sysconf("SC_CLK_TCK")

    def server_cpu() -> float:
        total = 0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if fields[1] == postmaster:
                    total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / tick

    _server_cpu = server_cpu
    return True


def make_run(store) -> int:  # noqa: ANN001
    with store.write() as s:
        run = Run(name="bench", env_id="bench", algo_id="bench", config_toml="", config={},
                  created_at=utcnow(), summary={}, tags=[], notes="", versions={})
        s.add(run)
        s.flush()
        return run.id


def reader(db: str, run_id: int, stop, result) -> None:  # noqa: ANN001
    """The TUI's live-plot loop: incremental reads of every key, short transactions."""
    store = open_store(db)
    last = {k: None for k in KEYS}
    rows = polls = 0
    while not stop.is_set():
        with store.read() as s:
            for key in KEYS:
                new = metric_series(s, run_id, key, since_step=last[key])
                if new:
                    last[key] = new[-1][0]
                    rows += len(new)
        polls += 1
        time.sleep(POLL_S)
    result.put((rows, polls))
    store.dispose()


class Reading:
    """A reader process for the duration of a `with` block."""

    def __init__(self, db: str, run_id: int) -> None:
        ctx = mp.get_context("spawn")
        self.stop, self.result = ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(target=reader, args=(db, run_id, self.stop, self.result))

    def __enter__(self) -> "Reading":
        self.proc.start()
        time.sleep(1.0)  # let it import and start polling
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.stop.set()
        self.rows, self.polls = self.result.get(timeout=60)
        self.proc.join()


def fresh_store(tmp: Path, name: str, url: str | None = None):  # noqa: ANN201
    """(db, store, run id): a new SQLite file under tmp, or a new run in the PostgreSQL database."""
    db = url or str(tmp / f"{name}.db")
    store = open_store(db)
    return db, store, make_run(store)


def drop_run(db: str, run_id: int) -> None:
    """On a PostgreSQL database the benchmark's runs go again (their rows cascade)."""
    if "://" in db:
        store = open_store(db)
        with store.sql.write() as tx:
            tx.run("DELETE FROM runs WHERE id = :id", id=run_id)
        store.dispose()


# --- metric points ----------------------------------------------------------------------------
def ours_metrics(tmp: Path, n_points: int, url: str | None = None) -> float:
    db, store, run_id = fresh_store(tmp, "ours_metrics", url)
    n_calls = n_points // len(KEYS)
    with Reading(db, run_id) as r:
        rec = StoreRecorder(store, run_id)
        t0, c0 = time.perf_counter(), cpu_now()
        for step in range(n_calls):
            x = step * 1e-6
            rec.log(step, loss=x, q_values=x + 1.0, epsilon=0.1, learning_rate=3e-4)
        rec.close()
        dt, cpu = time.perf_counter() - t0, cpu_now() - c0
    store.dispose()
    drop_run(db, run_id)
    assert 0 < r.rows <= n_calls * len(KEYS)  # the reader really was reading new rows
    return n_calls * len(KEYS) / dt, n_calls * len(KEYS) / cpu


def raw_connection(db: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=15000")
    return conn


def metric_rows(run_id: int, n_points: int) -> list[tuple]:
    return [
        (run_id, key, step, value, 0.5)
        for step in range(n_points // len(KEYS))
        for key, value in zip(KEYS, (step * 1e-6, step * 1e-6 + 1.0, 0.1, 3e-4))
    ]


def raw_metrics(tmp: Path, n_points: int) -> float:
    db, store, run_id = fresh_store(tmp, "raw_metrics")
    store.dispose()
    rows = metric_rows(run_id, n_points)
    conn = raw_connection(db)
    with Reading(db, run_id):
        t0, c0 = time.perf_counter(), cpu_now()
        for i in range(0, len(rows), FLUSH_ROWS):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO metrics (run_id, key, step, value, wall_time) VALUES (?, ?, ?, ?, ?)",
                rows[i : i + FLUSH_ROWS],
            )
            conn.execute("COMMIT")
        dt, cpu = time.perf_counter() - t0, cpu_now() - c0
    conn.close()
    return len(rows) / dt, len(rows) / cpu


# --- trajectory steps -------------------------------------------------------------------------
EP_LEN = 200


def episode_steps(e: int) -> list[StepRecord]:
    """A cart-pole-like episode: 4-float observations, discrete actions, Q/V/TD error per step."""
    out = []
    for t in range(EP_LEN):
        x = (e * EP_LEN + t) * 1e-4
        out.append(StepRecord(t=t, state=[x, -x, 0.5 * x, 0.01], action=t % 2, reward=1.0,
                              done=t == EP_LEN - 1,
                              extras={"Q": [x, x + 0.1], "V": x + 0.05, "td_error": 0.01}))
    return out


def ours_steps(tmp: Path, n_steps: int, url: str | None = None) -> float:
    db, store, run_id = fresh_store(tmp, "ours_steps", url)
    n_eps = n_steps // EP_LEN
    episodes = [episode_steps(e) for e in range(n_eps)]  # what the algorithm built, not timed
    with Reading(db, run_id):
        # every=1 keeps every trajectory: the pure insert path, nothing pruned
        rec = StoreRecorder(store, run_id, policy=RecordPolicy(every=1, last=0, max_steps=10_000))
        t0, c0 = time.perf_counter(), cpu_now()
        for e, steps in enumerate(episodes):
            rec.episode(e, ret=float(EP_LEN), length=EP_LEN, steps=steps, step=(e + 1) * EP_LEN)
        rec.close()
        dt, cpu = time.perf_counter() - t0, cpu_now() - c0
    store.dispose()
    drop_run(db, run_id)
    return n_eps * EP_LEN / dt, n_eps * EP_LEN / cpu


def serialized_episodes(n_eps: int) -> list[list[tuple]]:
    """The same rows with their JSON already serialized: the database's own cost, nothing else."""
    dumps = json.dumps
    return [
        [(s.t, dumps(s.state), dumps(s.action), s.reward, int(s.done), dumps(s.extras)) for s in episode_steps(e)]
        for e in range(n_eps)
    ]


def raw_steps(tmp: Path, n_steps: int) -> float:
    db, store, run_id = fresh_store(tmp, "raw_steps")
    store.dispose()
    n_eps = n_steps // EP_LEN
    episodes = serialized_episodes(n_eps)
    per_flush = max(1, FLUSH_ROWS // EP_LEN)
    conn = raw_connection(db)
    with Reading(db, run_id):
        t0, c0 = time.perf_counter(), cpu_now()
        for i in range(0, n_eps, per_flush):
            conn.execute("BEGIN IMMEDIATE")
            for e in range(i, min(n_eps, i + per_flush)):
                cur = conn.execute(
                    'INSERT INTO episodes (run_id, "index", phase, "return", length, step, wall_time, '
                    "has_trajectory) VALUES (?, ?, 'train', ?, ?, ?, 0.5, 1)",
                    (run_id, e, float(EP_LEN), EP_LEN, (e + 1) * EP_LEN),
                )
                eid = cur.lastrowid
                conn.executemany(
                    "INSERT INTO steps (episode_id, t, state, action, reward, done, extras) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(eid, *row) for row in episodes[e]],
                )
            conn.execute("COMMIT")
        dt, cpu = time.perf_counter() - t0, cpu_now() - c0
    conn.close()
    return n_eps * EP_LEN / dt, n_eps * EP_LEN / cpu


# --- PostgreSQL: raw psycopg COPY, the peer of the recorder's COPY path ---------------------
def psycopg_connect(url: str):  # noqa: ANN201
    import psycopg
    from sqlalchemy.engine import make_url

    return psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))


def raw_copy_metrics(tmp: Path, n_points: int, url: str) -> float:
    db, store, run_id = fresh_store(tmp, "raw_metrics", url)
    store.dispose()
    rows = metric_rows(run_id, n_points)
    conn = psycopg_connect(url)
    with Reading(db, run_id):
        t0, c0 = time.perf_counter(), cpu_now()
        for i in range(0, len(rows), FLUSH_ROWS):
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY metrics (run_id, key, step, value, wall_time) FROM STDIN") as copy:
                    for row in rows[i : i + FLUSH_ROWS]:
                        copy.write_row(row)
        dt, cpu = time.perf_counter() - t0, cpu_now() - c0
    conn.close()
    drop_run(db, run_id)
    return len(rows) / dt, len(rows) / cpu


def raw_copy_steps(tmp: Path, n_steps: int, url: str) -> float:
    db, store, run_id = fresh_store(tmp, "raw_steps", url)
    store.dispose()
    n_eps = n_steps // EP_LEN
    episodes = serialized_episodes(n_eps)
    per_flush = max(1, FLUSH_ROWS // EP_LEN)
    conn = psycopg_connect(url)
    with Reading(db, run_id):
        t0, c0 = time.perf_counter(), cpu_now()
        for i in range(0, n_eps, per_flush):
            batch = range(i, min(n_eps, i + per_flush))
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT nextval(pg_get_serial_sequence('episodes', 'id')) FROM generate_series(1, %s)",
                            (len(batch),))
                ids = [r[0] for r in cur.fetchall()]
                with cur.copy('COPY episodes (id, run_id, "index", phase, "return", length, step, wall_time, '
                              "has_trajectory) FROM STDIN") as copy:
                    for eid, e in zip(ids, batch):
                        copy.write_row((eid, run_id, e, "train", float(EP_LEN), EP_LEN, (e + 1) * EP_LEN, 0.5, True))
                with cur.copy("COPY steps (episode_id, t, state, action, reward, done, extras) FROM STDIN") as copy:
                    for eid, e in zip(ids, batch):
                        for row in episodes[e]:
                            copy.write_row((eid, *row))
        dt, cpu = time.perf_counter() - t0, cpu_now() - c0
    conn.close()
    drop_run(db, run_id)
    return n_eps * EP_LEN / dt, n_eps * EP_LEN / cpu


def compare(label: str, peer: str, ours, raw, n: int, repeat: int, goal: int, ratio_goal: float | None,  # noqa: ANN001
            cpu_label: str = "writing process") -> None:
    o, r = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            o.append(ours(Path(tmp), n))
        with tempfile.TemporaryDirectory() as tmp:
            r.append(raw(Path(tmp), n))
    mo, mr = statistics.median(x[0] for x in o), statistics.median(x[0] for x in r)
    co, cr = statistics.median(x[1] for x in o), statistics.median(x[1] for x in r)
    verdict = "met" if mo >= goal and (ratio_goal is None or mo / mr >= ratio_goal) else "NOT met"
    ratio = f" and ours/raw >= {ratio_goal}" if ratio_goal else ""
    print(f"{label:>20}: StoreRecorder {mo:>10,.0f}   {peer} {mr:>10,.0f}   "
          f"ours/raw {mo / mr:4.2f}   goal {goal:,}{ratio} {verdict}   "
          f"(runs: ours {', '.join(f'{x[0]:,.0f}' for x in o)}; raw {', '.join(f'{x[0]:,.0f}' for x in r)})")
    print(f"{'':>20}  per CPU-second of the {cpu_label} (the rate with cores to itself): "
          f"StoreRecorder {co:,.0f}   raw {cr:,.0f}   ours/raw {co / cr:4.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--db", help="also measure this PostgreSQL database (a SQLAlchemy URL, no password in it)")
    ap.add_argument("--no-sqlite", action="store_true", help="with --db: PostgreSQL only")
    args = ap.parse_args()
    print(f"store write path, {os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"a reader process polls metric_series every {POLL_S}s; median of {args.repeat}")
    if not args.no_sqlite:
        print(f"SQLite {sqlite3.sqlite_version}")
        compare("metric points/s", "raw sqlite3 executemany", ours_metrics, raw_metrics, args.points,
                args.repeat, 200_000, None)
        compare("trajectory steps/s", "raw sqlite3 executemany", ours_steps, raw_steps, args.steps,
                args.repeat, 50_000, None)
    if args.db:
        from functools import partial

        store = open_store(args.db)
        with store.sql.read() as tx:
            version = tx.scalar("SHOW server_version")
        store.dispose()
        print(f"PostgreSQL {version} at {display_url(args.db)}")
        cpu_label = "writer and the server's processes" if watch_server_cpu(args.db) else "writing process"
        compare("metric points/s", "raw psycopg COPY", partial(ours_metrics, url=args.db),
                partial(raw_copy_metrics, url=args.db), args.points, args.repeat, 150_000, 0.6, cpu_label)
        compare("trajectory steps/s", "raw psycopg COPY", partial(ours_steps, url=args.db),
                partial(raw_copy_steps, url=args.db), args.steps, args.repeat, 50_000, 0.6, cpu_label)
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        print(f"note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other processes "
              "compete for the CPU, so the wall-clock rates above understate a quiet machine")


if __name__ == "__main__":
    main()
