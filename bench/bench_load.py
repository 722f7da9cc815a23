"""Eight runs writing as hard as they can, readers polling, the lab open: does the store hold?

On a fresh SQLite store in a temporary directory, with RLTUI_MAX_RUNS=8:

  * 3 diagnostic probe floods (heartbeat_probe, no sleep: a metric every step, an episode every 5);
  * 3 trajectory-heavy TD runs (cliff Q-learning, every episode's trajectory recorded);
  * 2 PPO runs (CartPole-v1);
  * `rltui ls` run again and again, 0.2 s apart, as a user watching would;
  * the lab (the TUI) open headless in a child process (Textual's run_test), polling the runs.

For --minutes (default 5; 1–2 on a shared machine), then every run is cancelled. Reported: false
crashes (runs that ended `crashed` or a worker that stopped as "no longer ours": nothing was killed),
"locked" errors (in any `ls` output, the TUI's or any run's log), the slowest `ls`, the largest WAL,
the store's growth in MB/s, how long the runs waited for the write lock, and how long each took to
end once cancelled (a run forced by SIGTERM is marked). Goals: 0 false crashes, 0 locked errors, `ls` ≤ 2 s at its slowest,
WAL ≤ 128 MB.

    .venv/bin/python bench/bench_load.py [--minutes 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLOOD = ('name = "flood-{i}"\nseed = {i}\n[env]\nid = "ticker"\nepisode_length = 5\n[algo]\nid = "heartbeat_probe"\n'
         "steps = 100000000\nstep_seconds = 0\nprint_every = 0\n")
TD = ('name = "td-{i}"\nseed = {i}\n[env]\nid = "cliff"\n[algo]\nid = "q_learning"\nepisodes = 10000000\n'
      "epsilon = 0.2\n[record]\nevery = 1\nlast = 5\neval = true\nmax_steps = 10000\n")
PPO = ('name = "ppo-{i}"\nseed = {i}\ndevice = "cpu"\n[env]\nid = "CartPole-v1"\nnum_envs = 8\n[algo]\nid = "ppo"\n'
       "total_timesteps = 10000000\nn_steps = 64\nbatch_size = 256\nn_epochs = 4\neval_every = 5000\n")

TUI = """
import asyncio, sys, time
from rltui.tui.app import RlTuiApp

async def main():
    app = RlTuiApp(db=sys.argv[1], poll_interval=0.5)
    async with app.run_test(size=(120, 30)) as pilot:
        deadline = time.monotonic() + float(sys.argv[2])
        while time.monotonic() < deadline:
            await pilot.pause(0.5)
    print("tui ok", flush=True)
asyncio.run(main())
"""


class WalSampler:
    """The largest size of the store's WAL file, sampled every 0.1 s in a thread."""

    def __init__(self, path: Path) -> None:
        import threading

        self.path, self.largest, self.done = path, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                self.largest = max(self.largest, self.path.stat().st_size)
            except FileNotFoundError:
                pass
            time.sleep(0.1)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.largest


def store_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--debug-wal", metavar="FILE", help="write every WAL checkpoint attempt (and, when one "
                        "fails, who held the WAL's locks while it waited) to FILE")
    args = parser.parse_args()
    seconds = args.minutes * 60
    os.environ["RLTUI_MAX_RUNS"] = "8"
    if args.debug_wal:
        os.environ["RLTUI_DEBUG_WAL"] = "1"
    os.environ.setdefault("PYTHONPATH", str(REPO))
    from rltui.config import load_config_text
    from rltui.runner import launch
    from rltui.runner.lifecycle import pid_alive, refresh_liveness
    from rltui.store import open_store
    from rltui.store.runs_table import DETAIL_KEYS, run_json, run_rows

    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        db = Path(tmp) / "load.db"
        store = open_store(str(db))
        configs = ([FLOOD.format(i=i) for i in range(3)] + [TD.format(i=i) for i in range(3)]
                   + [PPO.format(i=i) for i in range(2)])
        ids = [launch.submit(store, load_config_text(text)) for text in configs]
        tui = subprocess.Popen([sys.executable, "-c", TUI, str(db), str(seconds)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t0 = time.monotonic()
        size0 = store_bytes(db)
        ls_times, ls_cpu, read_times, locked, ls_failures = [], [], [], 0, 0
        wal = WalSampler(Path(f"{db}-wal"))
        while time.monotonic() - t0 < seconds:
            start, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
            ls = subprocess.run([sys.executable, "-m", "rltui.cli", "--db", str(db), "ls"],
                                capture_output=True, text=True, cwd=REPO)
            ls_times.append(time.monotonic() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            ls_cpu.append(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime)
            start = time.monotonic()  # what `ls` does once started: liveness, then the runs (no start-up)
            refresh_liveness(store)
            with store.sql.read() as tx:
                [run_json(r) for r in run_rows(tx, extra=DETAIL_KEYS)]
            read_times.append(time.monotonic() - start)
            locked += "locked" in ls.stderr + ls.stdout
            ls_failures += ls.returncode != 0
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        largest_wal = wal.stop()
        grown = store_bytes(db) - size0
        with store.sql.read() as tx:
            before_cancel = dict(tx.all("SELECT id, status FROM runs"))
        cancel_at = time.monotonic()
        for run_id in ids:
            launch.cancel(store, run_id, grace=10)
        cancels_sent = time.monotonic() - cancel_at
        deadline = cancel_at + 180  # cancels end at a safe point, or are forced after 10 s
        ended_at: dict[int, float] = {}  # when each run's end (or its worker's death) was first seen
        gone_at: dict[int, float] = {}
        while time.monotonic() < deadline:
            with store.sql.read() as tx:
                rows = tx.all("SELECT id, status, pid FROM runs")
            now = time.monotonic() - cancel_at
            for run_id, status, pid in rows:
                if status not in ("queued", "running"):
                    ended_at.setdefault(run_id, now)
                elif pid and not pid_alive(pid):
                    gone_at.setdefault(run_id, now)
            if all(status not in ("queued", "running") for _, status, _ in rows):
                break
            time.sleep(0.1)
        with store.sql.read() as tx:
            final = dict(tx.all("SELECT id, status FROM runs"))
            names = dict(tx.all("SELECT id, name FROM runs"))
            errors = dict(tx.all("SELECT id, error FROM runs"))
        tui_out, _ = tui.communicate(timeout=120)
        logs = launch.log_dir(store)
        log_text = "".join(p.read_text(errors="replace") for p in logs.glob("*.log"))
        for run_id in ids:  # a run that failed or crashed: the end of its log says why
            if final[run_id] in ("failed", "crashed") and (logs / f"run-{run_id}.log").exists():
                print(f"  run {run_id} ({final[run_id]}), the end of its log:")
                print("\n".join("    " + line for line in (logs / f"run-{run_id}.log").read_text(errors="replace").splitlines()[-12:]))
                helpers = [line for line in (logs / "workers.log").read_text(errors="replace").splitlines()
                           if f"run {run_id}" in line] if (logs / "workers.log").exists() else []
                print(f"  cancel asked at 0 s; its worker seen gone at {gone_at.get(run_id, float('nan')):.1f} s, "
                      f"its end seen at {ended_at.get(run_id, float('nan')):.1f} s")
                print("  its cancel helper said:\n" + "\n".join("    " + line for line in helpers[-5:]))
        if args.debug_wal:
            attempts = sorted(line for line in log_text.splitlines() if line.startswith("rltui wal"))
            Path(args.debug_wal).write_text("\n".join(attempts) + "\n")
            print(f"  {len(attempts)} checkpoint attempts, each with its holders when it failed: {args.debug_wal}")
        store.dispose()
    false_crashes = [i for i in ids if before_cancel[i] == "crashed" or final[i] == "crashed"]
    not_ours = log_text.count("no longer ours")
    locked += log_text.count("database is locked") + tui_out.count("locked")
    ls_times.sort()
    read_times.sort()
    print(f"bench_load: 8 runs for {elapsed:.0f} s, {os.cpu_count()} CPUs, load average "
          f"{load_at_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(f"  runs while loaded: {sorted(before_cancel.values())}; after cancel: {sorted(final.values())}")
    for run_id in sorted(i for i in ids if final[i] == "failed"):  # a failure is a finding: say what it was
        print(f"  run {run_id} failed: {(errors.get(run_id) or '').strip().splitlines()[-1:]}")
    print(f"  false crashes: {len(false_crashes)} {false_crashes or ''} (workers that stopped as 'no longer ours': {not_ours})")
    print(f"  'locked' errors: {locked}; failed ls: {ls_failures} of {len(ls_times)}")
    print(f"  ls: median {ls_times[len(ls_times) // 2]:.2f} s, slowest {ls_times[-1]:.2f} s "
          f"(its CPU: median {sorted(ls_cpu)[len(ls_cpu) // 2]:.2f} s; the rest is waiting for a core)")
    print(f"  ls's reads in a running process: median {read_times[len(read_times) // 2] * 1000:.0f} ms, "
          f"slowest {read_times[-1] * 1000:.0f} ms")
    print(f"  largest WAL: {largest_wal / 2**20:.1f} MB; store growth: {grown / 2**20 / elapsed:.2f} MB/s "
          f"({grown / 2**20:.0f} MB)")
    import re

    waits = sorted(float(w) for w in re.findall(r"waited ([\d.]+) s in all for the store's write lock", log_text))
    if waits:
        print(f"  time each run waited for the write lock (its log's last line): median {waits[len(waits) // 2]:.0f} s, "
              f"most {waits[-1]:.0f} s")
    forced = {i for i in ids if f"run {i} interrupted (SIGTERM)" in log_text}
    print(f"  cancel: 8 asked in {cancels_sent:.1f} s; each ended (s after the first was asked; * forced by SIGTERM): "
          + ", ".join(f"{names[i]} {ended_at[i]:.1f}{'*' if i in forced else ''}"
                      for i in sorted(ended_at, key=ended_at.get) if i in names))
    print(f"  TUI: {'open throughout' if 'tui ok' in tui_out else 'FAILED: ' + tui_out[-500:]}")
    for run_id in false_crashes:
        print(f"  run {run_id}: {errors[run_id]}")
    goals = (not false_crashes and not not_ours, locked == 0, ls_times[-1] <= 2.0, largest_wal <= 128 * 2**20)
    print("  goals (0 false crashes, 0 locked, ls <= 2 s, WAL <= 128 MB): "
          + ", ".join("met" if g else "MISSED" for g in goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
