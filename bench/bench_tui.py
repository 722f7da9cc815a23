"""TUI benchmarks (run on demand: `python bench/bench_tui.py`; not a timed test).

1. First paint with 10,000 runs in the store (goal < 1 s), two ways:
   - in a real terminal: `run_app` (what `rltui` opens) in a fresh interpreter on a pseudo-terminal,
     timed from process start to the first frame written (the runs screen, loading) and to the first
     frame showing the newest run's row from the store; the peer is a bare Textual app's first frame;
   - in-process: from `RlTuiApp(...)` (imports already done) to the runs table filled, via a pilot.
2. A 1,000,000-point metric plotted (goal < 200 ms): the downsampling query (stored rollups for the
   inside of each bucket, store/rollups.py) plus the plotext drawing, beside the same query with no
   rollups (every row read raw) and the naive path (read every point, then draw), as ratios.
3. UI stall while four processes write (goal: no stall over 100 ms): the app runs headless; a 10 ms
   timer records how late it fires on the runs screen (500 finished runs under the 4 live ones),
   while a live run's screen opens, and while it is watched. The writers own their runs as workers
   do (pid, heartbeat), so the lab keeps them live (a run without a heartbeat is marked crashed,
   and a finished run's screen stops polling). Beside each round, a bare Textual app opens a screen
   of the same widgets under the same writers; the share of CPU time the hypervisor stole during
   the bench is printed, since it stalls every process alike.

Every figure is measured on this machine, in this run; numbers vary with the machine's load.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from rltui.recorder import StoreRecorder, utcnow  # noqa: E402
from rltui.store import open_store  # noqa: E402
from rltui.store.models import Episode, Run  # noqa: E402


def fill_runs(store, n: int) -> None:
    now = utcnow()
    rows = [
        {"name": f"run-{i}", "env_id": ["maze", "cliff", "cartpole"][i % 3], "algo_id": ["q_learning", "sarsa", "ppo"][i % 3],
         "config_toml": "", "config": {}, "seed": i % 5, "device": "cpu", "status": "completed",
         "created_at": now, "started_at": now, "finished_at": now, "progress": 1.0, "summary": {}, "tags": [],
         "notes": "", "versions": {}, "cancel_requested": False}
        for i in range(n)
    ]
    with store.write_connection() as conn, conn.begin():
        conn.execute(insert(Run), rows)
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM runs ORDER BY id")]
        conn.execute(insert(Episode), [
            {"run_id": rid, "index": k, "phase": "train", "return": float(k), "length": 10, "step": 10 * k,
             "wall_time": 0.0, "has_trajectory": False}
            for rid in ids for k in range(5)
        ])


async def first_paint(store, size=(160, 48)) -> tuple[float, int]:
    from rltui.tui.app import RlTuiApp

    t0 = time.perf_counter()
    app = RlTuiApp(store, poll_interval=3600)
    async with app.run_test(size=size) as pilot:
        while True:
            screen = app.screen
            table = screen.query("#runs-table")
            if table and table.first().row_count:
                # The next refresh paints them. (Not pilot.pause(): it waits until the process is idle,
                # that is until the rest of the runs have loaded in the background.)
                await screen.wait_for_refresh()
                return time.perf_counter() - t0, table.first().row_count
            await asyncio.sleep(0.002)


async def bare_first_paint(size=(160, 48)) -> float:
    """The peer: a bare Textual app (header, a 200-row DataTable, footer) to its first paint."""
    from textual.app import App
    from textual.widgets import DataTable, Footer, Header

    class Bare(App):
        def compose(self):
            yield Header()
            yield DataTable()
            yield Footer()

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns(*[f"c{i}" for i in range(13)])
            for r in range(200):
                table.add_row(*[f"{r}-{i}" for i in range(13)])

    t0 = time.perf_counter()
    app = Bare()
    async with app.run_test(size=size):
        await app.screen.wait_for_refresh()  # the rows added on mount are painted
        return time.perf_counter() - t0


LAB = "import sys; from rltui.tui.app import run_app; run_app(sys.argv[1])"
BARE = """
from textual.app import App
from textual.widgets import DataTable, Footer, Header
class Bare(App):
    TITLE = "bare textual"
    def compose(self):
        yield Header(); yield DataTable(); yield Footer()
    def on_mount(self):
        table = self.query_one(DataTable)
        table.add_columns(*[f"c{i}" for i in range(13)])
        for r in range(200):
            table.add_row(*[f"{r}-{i}" for i in range(13)])
Bare().run()
"""


def paint_in_terminal(code: str, args: list[str], first: bytes, rows: bytes | None, repo: Path = REPO,
                      size: tuple[int, int] = (160, 48), timeout: float = 30.0) -> tuple[float, float | None, list[str]]:
    """Start `python -c code args` on a pseudo-terminal of `size`; seconds from just before the process
    starts until the screen output first holds `first` and, if given, `rows`. Then ctrl+q.

    Also returns which of torch, gymnasium and sqlalchemy the process had imported when it quit.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "PYTHONPATH": str(repo)}
    report = ("import atexit, sys; atexit.register(lambda: open(sys.argv[-1], 'w').write("
              "' '.join(m for m in ('torch', 'gymnasium', 'sqlalchemy') if m in sys.modules)))\n")
    with tempfile.NamedTemporaryFile("r", suffix=".modules") as modules:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", report + code, *args, modules.name], stdin=slave,
                                stdout=slave, stderr=slave, cwd=repo, env=env, start_new_session=True)
        os.close(slave)
        out, t_first, t_rows = b"", None, None
        try:
            while time.perf_counter() - t0 < timeout:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    continue
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:
                    break
                out += chunk
                now = time.perf_counter()
                if t_first is None and first in out:
                    t_first = now - t0
                if t_rows is None and rows is not None and rows in out:
                    t_rows = now - t0
                if t_first is not None and (rows is None or t_rows is not None):
                    break
            os.write(master, b"\x11")  # ctrl+q
            deadline = time.perf_counter() + 10
            while proc.poll() is None and time.perf_counter() < deadline:
                if select.select([master], [], [], 0.05)[0]:
                    try:
                        os.read(master, 1 << 16)
                    except OSError:
                        break
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            os.close(master)
        imported = modules.read().split()
    if t_first is None or (rows is not None and t_rows is None):
        raise RuntimeError(f"the screen never showed {first!r}/{rows!r}; output tail: {out[-2000:]!r}")
    return t_first, t_rows, imported


def bench_first_paint(repeats: int = 5) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = f"{d}/runs.db"
        store = open_store(db)
        fill_runs(store, 10_000)
        newest = b"run-9999"
        frames, rows_seen, bare_frames, imported = [], [], [], []
        for _ in range(repeats):
            t_first, t_rows, imported = paint_in_terminal(LAB, [db], b"a terminal laboratory", newest)
            frames.append(t_first)
            rows_seen.append(t_rows)
            bare_frames.append(paint_in_terminal(BARE, [], b"40-12", None)[0])
        times, bare = [], []
        for _ in range(3):
            seconds, rows = asyncio.run(first_paint(store))
            times.append(seconds)
            bare.append(asyncio.run(bare_first_paint()))
        store.dispose()
    ms = lambda xs: f"best {min(xs) * 1000:7.1f} ms  median {statistics.median(xs) * 1000:7.1f} ms"  # noqa: E731
    print(f"first paint, 10,000 runs, fresh process on a 160x48 pseudo-terminal ({repeats} starts):")
    print(f"  first frame (runs screen, loading):    {ms(frames)}")
    print(f"  first frame with rows from the store:  {ms(rows_seen)}  goal < 1000 ms -> "
          f"{'ok' if min(rows_seen) < 1 else 'MISSED'}")
    print(f"  peer: bare Textual app (header, 200-row table, footer), first frame: {ms(bare_frames)} "
          f"-> rltui rows/bare = {min(rows_seen) / min(bare_frames):.2f}")
    print(f"  imported by the lab process when it quit: {', '.join(imported) or 'none of them'} "
          "(of torch, gymnasium, sqlalchemy)")
    print(f"in-process, RlTuiApp() to a filled runs table: {ms(times)} (first page of {rows} rows)")
    print(f"  peer: bare Textual app, 200-row DataTable: best {min(bare) * 1000:.1f} ms "
          f"-> rltui/bare = {min(times) / min(bare):.2f}")


def bench_big_metric() -> None:
    import numpy as np

    from rltui.store.queries import metric_downsampled, metric_series
    from rltui.tui.widgets.plot import PlotData, Series, downsample_xy, plot_lines

    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"{d}/big.db")
        with store.write() as s:
            run = Run(name="big", env_id="cartpole", algo_id="ppo", config_toml="", config={}, created_at=utcnow(),
                      summary={}, tags=[], notes="", versions={})
            s.add(run)
            s.flush()
            run_id = run.id
        n = 1_000_000
        rec = StoreRecorder(store, run_id, flush_every=1e9, max_pending=200_000)
        steps = np.arange(n)
        rec.log_many("loss", steps.tolist(), (np.sin(steps / 5000.0) + 0.1 * np.cos(steps)).tolist())
        rec.close()
        columns = 150  # a plot in a 160-column terminal

        def timed(repeats: int = 5) -> tuple[tuple[float, float, float, float], list]:
            """Best of `repeats`: (total, query, draw, query CPU) seconds, and the points."""
            runs = []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                with store.read() as s:
                    pts = metric_downsampled(s, run_id, "loss", columns)
                t1, c1 = time.perf_counter(), time.process_time()
                plot_lines(PlotData(title="loss", series=[Series("", [p[0] for p in pts], [p[1] for p in pts])]),
                           columns + 8, 14)
                runs.append((time.perf_counter() - t0, t1 - t0, time.perf_counter() - t1, c1 - c0))
            return min(runs), pts

        best, pts = timed()
        # The peer, on the same store in the same run: no rollups, so every bucket is read from its
        # raw rows (a store from before migration 0009 without its backfill; the query before it).
        with store.sql.write() as tx:
            tx.run("DELETE FROM metric_rollups")
        raw, raw_pts = timed(3)
        assert [p[2:4] for p in raw_pts] == [p[2:4] for p in pts]  # the same min and max either way
        t0 = time.perf_counter()
        with store.read() as s:
            rows = metric_series(s, run_id, "loss")
        xs, ys = downsample_xy([r[0] for r in rows], [r[1] for r in rows], columns)
        plot_lines(PlotData(title="loss", series=[Series("", xs, ys)]), columns + 8, 14)
        naive = time.perf_counter() - t0
        store.dispose()
    print(f"1,000,000-point metric:     {best[0] * 1000:7.1f} ms (query {best[1] * 1000:.1f} ms, {best[3] * 1000:.1f} ms CPU, "
          f"+ draw {best[2] * 1000:.1f} ms, {len(pts)} points, last point kept: {pts[-1][0] == n - 1})  "
          f"goal < 200 ms -> {'ok' if best[0] < 0.2 else 'MISSED'}")
    print(f"  peer: the same buckets from raw rows only (no rollups): query {raw[1] * 1000:.1f} ms, "
          f"{raw[3] * 1000:.1f} ms CPU -> rollups read {raw[1] / best[1]:.0f}x faster ({raw[3] / best[3]:.0f}x in CPU)")
    print(f"  naive (read all {len(rows):,} rows, then downsample and draw): {naive * 1000:.0f} ms  "
          f"-> query downsampling is {naive / best[0]:.0f}x faster")


WRITER = r"""
import os, socket, sys, time, random
from rltui.store import open_store
from rltui.recorder import StoreRecorder, StepRecord, utcnow
store = open_store(sys.argv[1]); run_id = int(sys.argv[2]); seconds = float(sys.argv[3])
# Own the run the way a worker does (pid, host, heartbeat): the lab's liveness check must see it alive.
def beat(**first):
    with store.sql.write() as tx:
        tx.run("UPDATE runs SET heartbeat_at = :now" + "".join(f", {k} = :{k}" for k in first) + " WHERE id = :id",
               now=utcnow(), id=run_id, **first)
beat(pid=os.getpid(), host=socket.gethostname())
rec = StoreRecorder(store, run_id, flush_every=0.25)
t0 = last_beat = time.monotonic(); step = 0; ep = 0
while time.monotonic() - t0 < seconds:
    for _ in range(200):
        step += 1
        rec.log(step, loss=random.random(), td_error=random.random())
    rec.episode(ep, random.random(), 200, step=step,
                steps=[StepRecord(t, t % 16, t % 4, -0.01, t == 199, {"Q": [0.1, 0.2, 0.3, 0.4]}) for t in range(200)])
    ep += 1
    rec.progress(min(1.0, (time.monotonic() - t0) / seconds))
    if time.monotonic() - last_beat > 1.0:
        beat()
        last_beat = time.monotonic()
    time.sleep(0.005)
rec.close()
"""


def peer_run_screen():
    """The peer for opening a run: a bare Textual screen with the run screen's widgets, no data."""
    from textual.binding import Binding
    from textual.containers import VerticalScroll
    from textual.screen import Screen
    from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

    class PeerRunScreen(Screen):
        BINDINGS = [Binding(k, "app.bell", f"key {k}") for k in "xyzuvwR"] + [
            Binding(k, "app.bell", f"key {k}", show=False) for k in "123456"]

        def compose(self):
            yield Header()
            yield Static("run 1 writer-0  running", id="run-header")
            with TabbedContent(initial="plots"):
                with TabPane("Plots", id="plots"):
                    yield Static("x: step")
                    with VerticalScroll():
                        yield Static("plot", classes="plot")
                for pane in ("values", "episodes", "config", "log", "traceback"):
                    with TabPane(pane.title(), id=pane):
                        with VerticalScroll():
                            yield Static(pane)
                        if pane == "episodes":
                            yield DataTable(cursor_type="row")
            yield Footer()

    return PeerRunScreen()


async def measure_lag(store, live_id: int, seconds: float, bare: bool = False) -> dict[str, list[float]]:
    """How late a 10 ms timer fires: watching the runs table, opening a live run, watching it.

    Phases: "runs" (the runs screen polling four live runs), "open" (the first 1.5 s after the run
    screen is pushed: its first reads, plots mounted and drawn), "run" (then watching it live).
    The bare peer opens a screen of the same widgets (peer_run_screen) and reads nothing.
    """
    from textual.app import App

    from rltui.tui.app import RlTuiApp
    from rltui.tui.screens.run import RunScreen

    app = App() if bare else RlTuiApp(store, poll_interval=0.5)
    lags: dict[str, list[float]] = {"runs": [], "open": [], "run": []}
    phase = ["settle"]
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(1.0)
        last = [time.perf_counter()]
        interval = 0.01

        def tick() -> None:
            now = time.perf_counter()
            if phase[0] in lags:
                lags[phase[0]].append(max(0.0, now - last[0] - interval))
            last[0] = now

        app.set_interval(interval, tick)
        phase[0] = "runs"
        await asyncio.sleep(seconds / 2)
        app.push_screen(peer_run_screen() if bare else RunScreen(live_id))
        phase[0] = "open"
        await asyncio.sleep(1.5)
        phase[0] = "run"
        await asyncio.sleep(seconds)
        if not bare:
            status = app.screen.row.get("status")
            assert status == "running", f"the watched run is {status}: the bench measured an idle screen"
    return lags


def bench_stall(seconds: float = 8.0, rounds: int = 3) -> None:
    """Rounds of (the lab, then the bare peer) beside the same four writers, so both see the same load.

    Each round starts from a fresh store and fresh writers: at ~45,000 metric steps (and as many
    trajectory steps) per second each, a store kept across rounds would grow by gigabytes.
    """
    ours: list[dict[str, list[float]]] = []
    bare: list[dict[str, list[float]]] = []
    ticks_before = _cpu_ticks()
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as d:
            path = f"{d}/live.db"
            store = open_store(path)
            fill_runs(store, 500)  # finished runs fill the rest of the runs table's screen
            ids = []
            with store.write() as s:
                for i in range(4):
                    run = Run(name=f"writer-{i}", env_id="maze", algo_id="q_learning", config_toml="", config={},
                              created_at=utcnow(), started_at=utcnow(), status="running", summary={}, tags=[],
                              notes="", versions={})
                    s.add(run)
                    s.flush()
                    ids.append(run.id)
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, str(rid), str(3 * seconds + 20)], env=env)
                     for rid in ids]
            time.sleep(1.5)
            ours.append(asyncio.run(measure_lag(store, ids[0], seconds)))
            bare.append(asyncio.run(measure_lag(store, ids[0], seconds, bare=True)))
            for p in procs:
                p.terminate()
                p.wait()
            store.dispose()
    ticks_after = _cpu_ticks()
    steal = None
    if ticks_before and ticks_after:
        steal = (ticks_after[0] - ticks_before[0]) / max(1, ticks_after[1] - ticks_before[1])
    print(f"UI stall while 4 processes write, {rounds} rounds of the lab then a bare Textual app beside them "
          f"(how late a 10 ms timer fires, ms; max = worst of all rounds, round max = median of each round's worst):")
    worst = 0.0
    for phase, label in (("runs", "runs screen, 4 live runs"), ("open", "opening a live run (first 1.5 s)"),
                         ("run", "run screen, watching it live")):
        ms = sorted(x * 1000 for r in ours for x in r[phase])
        peer = sorted(x * 1000 for r in bare for x in r[phase])
        round_max = statistics.median(max(r[phase]) * 1000 for r in ours)
        peer_round_max = statistics.median(max(r[phase]) * 1000 for r in bare)
        worst = max(worst, ms[-1])
        print(f"  {label:34s} max {ms[-1]:6.1f}  round max {round_max:6.1f}  p99 {_p99(ms):5.1f}  "
              f"median {statistics.median(ms):4.1f}   (bare: max {peer[-1]:6.1f}  round max {peer_round_max:6.1f}  "
              f"p99 {_p99(peer):5.1f})")
    print(f"  goal: no stall over 100 ms -> {'ok' if worst < 100 else 'MISSED'} (worst {worst:.1f} ms)"
          + (f"; CPU time stolen by the hypervisor meanwhile: {steal:.0%}" if steal is not None else ""))


def _cpu_ticks() -> tuple[int, int] | None:
    """(stolen, total) CPU ticks since boot, from Linux /proc/stat; None elsewhere."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (fields[7], sum(fields)) if len(fields) == 8 else None


def _p99(sorted_ms: list[float]) -> float:
    return sorted_ms[int(0.99 * (len(sorted_ms) - 1))]


if __name__ == "__main__":
    print(f"bench_tui on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          "(other processes' load slows every figure; compare with the peers measured beside them)")
    chosen = set(sys.argv[1:]) or {"paint", "metric", "stall"}  # e.g. `python bench/bench_tui.py metric`
    if "paint" in chosen:
        bench_first_paint()
    if "metric" in chosen:
        bench_big_metric()
    if "stall" in chosen:
        bench_stall()
