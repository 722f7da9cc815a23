"""Launch latency and worker memory of background runs.

For a numpy-only run (heartbeat_probe, uses_torch=false — the same start-up path as a tabular run)
and a torch run (uses_torch=true), measured on a fresh store in a temporary directory:

  * CLI launch → first metric: from starting `rltui run CONFIG --detach` to the first metric row
    being readable in the store (a separate raw sqlite3 reader polls every 2 ms);
  * submit → first metric: the same from `launch.submit()` inside an already running process
    (what the TUI does; no CLI start-up);
  * CLI returns: how long `rltui run --detach` itself takes;
  * worker RSS: resident memory of the worker process while its run sleeps between steps;
  * worker CPU: CPU seconds (user+sys) the worker had used when its first metric was readable —
    unlike wall time, it barely depends on how loaded the machine is.

Goal: a tabular run's first metric within 0.5 s of launch.

The burst case (--burst N, default 32; 0 skips it) submits N tabular runs (maze Q-learning) at once,
through the TUI's path (N launch.submit() calls in one process) and through the CLI (one command,
`rltui run C1.toml ... CN.toml --detach`), and samples the store's worker processes every 10 ms from /proc:

  * most workers alive at once, and their summed resident memory at its peak;
  * the first run's launch → first metric;
  * drain: launch → the last run finished, against the ideal (the sum of the runs' own times,
    started_at → finished_at, divided by the slots).

Goals: workers ≤ slots at every sample, first metric ≤ 0.5 s, drain ≤ 1.2× the ideal.

    .venv/bin/python bench/bench_launch.py [--repeat 5] [--burst 32] [--burst-only]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rltui.config import load_config_file  # noqa: E402
from rltui.runner import launch  # noqa: E402
from rltui.store import open_store  # noqa: E402

GOAL_S = 0.5


def write_config(directory: Path, uses_torch: bool) -> Path:
    path = directory / f"probe_{'torch' if uses_torch else 'numpy'}.toml"
    path.write_text(
        'name = "bench-launch"\nseed = 0\n[env]\nid = "ticker"\n[algo]\nid = "heartbeat_probe"\n'
        f"steps = 1000\nstep_seconds = 0.2\nprint_every = 0\nuses_torch = {str(uses_torch).lower()}\n"
    )
    return path


def wait_first_metric(db: Path, run_id: int, timeout: float = 120.0, cpu: bool = True) -> tuple[float, float]:
    """(perf_counter when the first metric was readable, the worker's CPU seconds then)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'metrics'").fetchone():
                time.sleep(0.002)
                continue
            if conn.execute("SELECT 1 FROM metrics WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
                seen = time.perf_counter()
                if not cpu:
                    return seen, float("nan")
                pid = conn.execute("SELECT pid FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
                return seen, cpu_seconds(pid)
            time.sleep(0.002)
    finally:
        conn.close()
    raise TimeoutError(f"run {run_id}: no metric after {timeout} s")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def worker_rss_mib(store, run_id: int) -> float:
    from rltui.store.models import Run

    with store.read() as s:
        pid = s.get(Run, run_id).pid
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def latest_run_id(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT max(id) FROM runs").fetchone()[0]
    finally:
        conn.close()


def cancel_and_wait_exit(store, run_id: int) -> None:
    """Cancel the run and wait for its worker to exit, so the next launch meets no idle worker."""
    from rltui.runner.lifecycle import pid_alive
    from rltui.store.models import Run

    with store.read() as s:
        pid = s.get(Run, run_id).pid
    launch.cancel(store, run_id, grace=5, wait=True)
    while pid_alive(pid):
        time.sleep(0.01)


def one_cli_launch(db: Path, config: Path, store) -> tuple[float, float, float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rltui.cli", "--db", str(db), "run", str(config), "--detach", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )
    # The id is not known until the CLI prints it; poll for the new row meanwhile.
    before = latest_run_id(db) or 0
    while (latest_run_id(db) or 0) == before:
        time.sleep(0.002)
    run_id = latest_run_id(db)
    first, worker_cpu = wait_first_metric(db, run_id)
    proc.wait()
    returned = time.perf_counter()  # upper bound; the CLI usually ended before the first metric
    time.sleep(1.0)  # let the worker settle into its sleeping loop
    rss = worker_rss_mib(store, run_id)
    cancel_and_wait_exit(store, run_id)
    return first - t0, returned - t0, rss, worker_cpu


def one_submit(db: Path, config: Path, store) -> float:
    cfg = load_config_file(config)
    t0 = time.perf_counter()
    run_id = launch.submit(store, cfg)
    first, _ = wait_first_metric(db, run_id)
    cancel_and_wait_exit(store, run_id)
    return first - t0


BURST_RUN = ('name = "burst"\nseed = {seed}\n[env]\nid = "maze"\n[algo]\nid = "q_learning"\n'
             'episodes = {episodes}\n')


class WorkerSampler:
    """Every 10 ms: the worker processes of one store (their command line names its path) and their RSS.

    A process known not to be a worker is not read again: only new pids (and pids too young to have
    exec'd yet) are, so sampling costs a few file reads, not one per process on the machine."""

    SETTLED_S = 0.2  # a pid seen this long without a worker's command line has exec'd into something else

    def __init__(self, marker: str) -> None:
        import threading

        self.marker = marker.encode()
        self.most, self.peak_rss_mib, self.samples = 0, 0.0, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _is_worker(self, pid: str) -> bool | None:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            return None
        return b"rltui.runner.worker" in cmd and self.marker in cmd

    def _run(self) -> None:
        first_seen: dict[str, float] = {}  # pid -> when first seen, while its verdict may still change
        not_worker: set[str] = set()
        while not self.done.is_set():
            now = time.monotonic()
            found: dict[str, tuple[str, float]] = {}  # pid -> (parent pid, RSS MiB)
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
            for pid in pids:
                if pid in not_worker:
                    continue
                verdict = self._is_worker(pid)
                if not verdict:
                    if verdict is False and now - first_seen.setdefault(pid, now) > self.SETTLED_S:
                        not_worker.add(pid)
                    continue
                try:
                    with open(f"/proc/{pid}/status") as f:
                        status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
                except OSError:
                    continue
                if status.get("State", "").strip().startswith("Z"):
                    continue
                rss_kib = status.get("VmRSS", "0 kB").split()[0]
                found[pid] = (status.get("PPid", "").strip(), int(rss_kib) / 1024)
            not_worker.intersection_update(pids)  # a pid that ended may be reused by a worker
            # A worker's own child between fork and exec (a subprocess it runs) shows the worker's
            # command line for a moment: it is not another worker.
            workers = {pid: v for pid, v in found.items() if v[0] not in found}
            count, rss = len(workers), sum(v[1] for v in workers.values())
            self.most, self.peak_rss_mib = max(self.most, count), max(self.peak_rss_mib, rss)
            self.samples += 1
            time.sleep(0.01)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def burst(tmp: Path, n: int, via: str, episodes: int) -> dict:
    """N tabular runs submitted at once (`via` "submit": the TUI's path; "cli": one `rltui run ... --detach`)."""
    from rltui.config import load_config_text
    from rltui.runner.scheduler import worker_slots

    db = tmp / f"burst-{via}.db"
    store = open_store(str(db))
    configs = []
    for i in range(n):
        path = tmp / f"burst-{i}.toml"
        path.write_text(BURST_RUN.format(seed=i, episodes=episodes))
        configs.append(path)
    # The peer, measured in the same conditions just before: one run alone, launched the same way.
    single_db = tmp / f"single-{via}.db"
    open_store(str(single_db)).dispose()
    peer_sampler = WorkerSampler(str(single_db))  # the same /proc sampling load as the burst's
    t_single = time.perf_counter()
    if via == "submit":
        single_store = open_store(str(single_db))
        launch.submit(single_store, load_config_text(configs[0].read_text()))
        single_store.dispose()
    else:
        subprocess.Popen([sys.executable, "-m", "rltui.cli", "--db", str(single_db), "run", str(configs[0]), "--detach"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    single_first = wait_first_metric(single_db, 1, cpu=False)[0] - t_single
    _wait_drained(single_db)
    peer_sampler.stop()
    sampler = WorkerSampler(str(db))
    import threading

    first_seen: list[float] = []
    watcher = threading.Thread(target=lambda: first_seen.append(wait_first_metric(db, 1, cpu=False)[0]), daemon=True)
    t0 = time.perf_counter()
    watcher.start()  # from the moment of the first launch, while the others are still submitted
    if via == "submit":
        for path in configs:
            launch.submit(store, load_config_text(path.read_text()))
    else:  # one command for the batch, as a user submits many configs: `rltui run A.toml B.toml ... --detach`
        subprocess.run([sys.executable, "-m", "rltui.cli", "--db", str(db), "run", *map(str, configs), "--detach"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO, check=True)
    watcher.join()
    first = first_seen[0]
    drained = _wait_drained(db)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT status, started_at, finished_at FROM runs").fetchall()
    finally:
        conn.close()
    sampler.stop()
    store.dispose()
    from datetime import datetime

    run_seconds = [(datetime.fromisoformat(f) - datetime.fromisoformat(s)).total_seconds() for _st, s, f in rows]
    slots = worker_slots()
    ideal = sum(run_seconds) / slots
    return {"via": via, "runs": n, "slots": slots, "completed": sum(r[0] == "completed" for r in rows),
            "most_workers": sampler.most, "peak_rss_mib": sampler.peak_rss_mib, "samples": sampler.samples,
            "first_metric_s": first - t0, "single_first_metric_s": single_first, "drain_s": drained - t0, "ideal_s": ideal,
            "mean_run_s": statistics.mean(run_seconds)}


def _wait_drained(db: Path) -> float:
    """perf_counter once no run of the store is queued or running."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        while conn.execute("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')").fetchone()[0]:
            time.sleep(0.01)
        return time.perf_counter()
    finally:
        conn.close()


def report_burst(results: list[dict]) -> None:
    print(f"burst: {results[0]['runs']} maze Q-learning runs at once, {results[0]['slots']} slots, load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'via':<30} {'most workers':>12} {'their RSS':>10} {'1st metric':>11} {'alone':>8} {'drain':>8} {'ideal':>7} "
          f"{'drain/ideal':>11} {'mean run':>9} {'completed':>9}")
    for r in results:
        via = "launch.submit (TUI)" if r["via"] == "submit" else f"rltui run {r['runs']} configs --detach"
        print(f"{via:<30} {r['most_workers']:>12} {r['peak_rss_mib']:>6.0f} MiB {r['first_metric_s']:>9.3f} s "
              f"{r['single_first_metric_s']:>6.3f} s "
              f"{r['drain_s']:>6.2f} s {r['ideal_s']:>5.2f} s {r['drain_s'] / r['ideal_s']:>11.2f} "
              f"{r['mean_run_s']:>7.2f} s {r['completed']:>9}")
    ok = all(r["most_workers"] <= r["slots"] for r in results)
    print(f"goals: workers <= slots {'met' if ok else 'MISSED'}; first metric <= {GOAL_S} s: "
          + ", ".join(f"{r['via']} {'met' if r['first_metric_s'] <= GOAL_S else 'missed'}" for r in results)
          + "; drain <= 1.2x ideal: "
          + ", ".join(f"{r['via']} {'met' if r['drain_s'] <= 1.2 * r['ideal_s'] else 'missed'}" for r in results))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--numpy-only", action="store_true", help="skip the torch run (a quick check of the goal)")
    parser.add_argument("--burst", type=int, default=32, help="runs in the burst case (0: skip it)")
    parser.add_argument("--burst-only", action="store_true", help="only the burst case")
    parser.add_argument("--burst-episodes", type=int, default=2000, help="episodes of each burst run (its length)")
    args = parser.parse_args()
    # Measure what an installed rltui does: its modules byte-compiled. Where PYTHONDONTWRITEBYTECODE is
    # set nothing writes the .pyc files, and every worker would compile rltui from source (~0.05-0.1 s).
    import compileall

    compileall.compile_dir(str(REPO / "rltui"), quiet=1)
    if args.burst_only:
        with tempfile.TemporaryDirectory() as tmp:
            report_burst([burst(Path(tmp), args.burst, via, args.burst_episodes) for via in ("submit", "cli")])
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = tmp / "bench.db"
        store = open_store(str(db))
        rows = []
        for uses_torch in (False,) if args.numpy_only else (False, True):
            config = write_config(tmp, uses_torch)
            one_cli_launch(db, config, store)  # warm the page cache for this kind of run
            cli, returned, rss, cpu = zip(*(one_cli_launch(db, config, store) for _ in range(args.repeat)))
            sub = [one_submit(db, config, store) for _ in range(args.repeat)]
            rows.append(("torch" if uses_torch else "numpy (tabular-style)", cli, returned, sub, rss, cpu))
        store.dispose()
    print(f"bench_launch: {args.repeat} launches each, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} (median [min])")
    print(f"{'run':<22} {'CLI launch→1st metric':>22} {'submit→1st metric':>19} {'CLI returns':>13} "
          f"{'worker CPU':>11} {'worker RSS':>11}")
    for name, cli, returned, sub, rss, cpu in rows:
        print(f"{name:<22} {statistics.median(cli):>12.3f} s [{min(cli):.3f}] "
              f"{statistics.median(sub):>9.3f} s [{min(sub):.3f}] {statistics.median(returned):>11.3f} s "
              f"{statistics.median(cpu):>9.2f} s {statistics.median(rss):>7.1f} MiB")
    numpy_cli, numpy_sub = statistics.median(rows[0][1]), statistics.median(rows[0][3])
    print(f"goal {GOAL_S} s for a tabular run's first metric: CLI launch {numpy_cli / GOAL_S:.2f}x the goal, "
          f"submit (TUI) {numpy_sub / GOAL_S:.2f}x")
    if len(rows) > 1:
        print(f"torch / numpy: launch {statistics.median(rows[1][1]) / numpy_cli:.2f}x, "
          f"RSS {statistics.median(rows[1][4]) / statistics.median(rows[0][4]):.2f}x")
    if args.burst:
        with tempfile.TemporaryDirectory() as tmp:
            report_burst([burst(Path(tmp), args.burst, via, args.burst_episodes) for via in ("submit", "cli")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
