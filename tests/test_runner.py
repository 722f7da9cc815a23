"""The background runner with real processes and a real SQLite store: detached workers, the queue,
heartbeats and crash detection, cancel, resume. No mocks: workers are `python -m rltui.runner.worker`
processes started by `rltui run --detach` (or launch.submit), killed with real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from rltui.config import load_config_file
from rltui.runner import launch
from rltui.runner.devices import DeviceError
from rltui.runner.lifecycle import pid_alive, queue_positions, refresh_liveness, slot_of
from rltui.store.models import Episode, Run
from rltui.store.queries import metric_series
from tests.conftest import REPO, rltui_cli

STEP_LINE = re.compile(r"heartbeat_probe step (\d+) t=([\d.]+)")


@pytest.fixture(autouse=True)
def _fast_lifecycle(monkeypatch):
    # Short heartbeats so crash detection is quick in tests; workers inherit the environment.
    monkeypatch.setenv("RLTUI_HEARTBEAT_INTERVAL", "0.3")
    monkeypatch.setenv("RLTUI_HEARTBEAT_TIMEOUT", "5")
    monkeypatch.setenv("RLTUI_CANCEL_GRACE", "5")
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def probe_config(tmp_path: Path, name: str = "probe", episode_length: int = 10, **algo) -> Path:
    algo = {"steps": 20, "step_seconds": 0.01, **algo}
    lines = [f'name = "{name}"', "seed = 3", "", "[env]", 'id = "ticker"', f"episode_length = {episode_length}",
             "", "[algo]", 'id = "heartbeat_probe"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in algo.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def submit(store, config: Path) -> int:
    """Queue a run and start its worker from this process (what the TUI does)."""
    return launch.submit(store, load_config_file(config))


def detach(db: Path, config: Path, *extra: str) -> int:
    proc = rltui_cli("run", str(config), "--detach", "--json", *extra, db=db, check=True)
    data = json.loads(proc.stdout)
    assert data["status"] in ("queued", "running")
    return data["id"]


def wait_for(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def run_row(store, run_id: int) -> Run:
    with store.read() as s:
        return s.get(Run, run_id)


def status(store, run_id: int) -> str:
    refresh_liveness(store, kick=False)
    return run_row(store, run_id).status


def wait_status(store, run_id: int, wanted: set[str], timeout: float = 30) -> Run:
    wait_for(lambda: status(store, run_id) in wanted, timeout, f"run {run_id} to be {wanted}")
    return run_row(store, run_id)


def counts(store, run_id: int) -> list[int]:
    with store.read() as s:
        return [int(step) for step, _, _ in metric_series(s, run_id, "count")]


def echoed_steps(log_path: str) -> list[tuple[int, float]]:
    return [(int(m[1]), float(m[2])) for m in STEP_LINE.finditer(Path(log_path).read_text())]


def integrity_ok(db: Path) -> bool:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


# --- a launcher that hangs up and dies does not take the run with it -----------------------------
def test_run_completes_after_its_launcher_is_hung_up_and_killed(tmp_path, db_path, store):
    config = probe_config(tmp_path, steps=20, step_seconds=0.05)
    cmd = f"{sys.executable} -m rltui.cli --db {db_path} run {config} --detach --json; sleep 60"
    launcher = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=REPO)
    out = ""
    while not out.rstrip().endswith("}"):
        line = launcher.stdout.readline()
        assert line, "the launcher printed no run id"
        out += line
    run_id = json.loads(out)["id"]
    os.killpg(launcher.pid, signal.SIGHUP)  # the SSH connection drops...
    os.killpg(launcher.pid, signal.SIGKILL)  # ...and the launcher's whole session is gone
    launcher.wait(timeout=10)
    run = wait_status(store, run_id, {"completed", "failed", "crashed"}, timeout=40)
    assert run.status == "completed", run.error
    assert os.getsid(0) != run.pid  # the worker was never in the launcher's session
    assert counts(store, run_id) == list(range(1, 21))
    assert run.log_path and Path(run.log_path).is_file()


# --- crash detection -----------------------------------------------------------------------------
def test_sigkilled_worker_is_crashed_at_once_loses_under_a_second_and_restarts_on_resume(tmp_path, db_path, store):
    run_id = submit(store, probe_config(tmp_path, steps=300, step_seconds=0.005))
    wait_for(lambda: len(counts(store, run_id)) >= 100, 40, "the first 100 metrics")
    run = run_row(store, run_id)
    os.kill(run.pid, signal.SIGKILL)
    killed = time.monotonic()
    run = wait_status(store, run_id, {"crashed"}, timeout=5)
    assert time.monotonic() - killed < 5  # within the heartbeat timeout
    assert "is gone" in run.error
    assert integrity_ok(db_path)
    reached = echoed_steps(run.log_path)
    when = dict(reached)
    last_stored = max(counts(store, run_id))
    last_reached, t_reached = reached[-1]
    assert last_stored <= last_reached
    assert t_reached - when[last_stored] <= 1.2, f"lost steps {last_stored}..{last_reached}"

    # No checkpoint (a numpy-only run): resume starts over, without doubling the series.
    resumed = json.loads(rltui_cli("resume", str(run_id), "--json", db=db_path, check=True).stdout)
    assert resumed["resumed_from_step"] is None
    run = wait_status(store, run_id, {"completed", "failed", "crashed"}, timeout=60)
    assert run.status == "completed", run.error
    assert counts(store, run_id) == list(range(1, 301))


def test_a_stopped_worker_is_stalled_never_crashed_and_crashed_once_it_is_gone(tmp_path, db_path, store):
    run_id = submit(store, probe_config(tmp_path, steps=100_000, step_seconds=0.01))
    wait_for(lambda: len(counts(store, run_id)) >= 10, 40, "the first metrics")
    pid = run_row(store, run_id).pid
    os.kill(pid, signal.SIGSTOP)  # alive, but silent (a closed laptop lid)
    try:
        def stalled():
            listed = json.loads(rltui_cli("ls", "--json", db=db_path, check=True).stdout)
            return next(r for r in listed if r["id"] == run_id)

        row = wait_for(lambda: (r := stalled())["status_note"] and r, 30, "the run to show stalled")
        assert row["status"] == "running"  # on its own host, a live worker is never declared crashed
        assert re.fullmatch(r"stalled: no heartbeat for \d+ s", row["status_note"])
        assert "no heartbeat for" in rltui_cli("ls", db=db_path, check=True).stdout
        assert "no heartbeat for" in rltui_cli("show", str(run_id), db=db_path, check=True).stdout
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: not stalled()["status_note"], 20, "the woken worker to heartbeat again")
    assert stalled()["status"] == "running"
    os.kill(pid, signal.SIGKILL)  # now it is gone: crashed at the next look, whatever the heartbeat says
    run = wait_status(store, run_id, {"crashed"}, timeout=10)
    assert f"worker process {pid}" in run.error and "is gone" in run.error


# --- concurrency ---------------------------------------------------------------------------------
def test_four_runs_writing_while_a_reader_polls_never_see_a_locked_database(tmp_path, db_path, store, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "4")
    ids = [
        launch.submit(store, load_config_file(probe_config(tmp_path, f"w{i}", episode_length=5,
                                                           steps=400, step_seconds=0.002)))
        for i in range(4)
    ]
    polls = 0
    while True:  # the reader: what `rltui ls` and the TUI do, as fast as it can
        refresh_liveness(store, kick=False)
        queue_positions(store)
        with store.read() as s:
            statuses = dict(s.execute(select(Run.id, Run.status)).all())
            for run_id in ids:
                metric_series(s, run_id, "count", since_step=0)
        polls += 1
        if all(statuses[i] not in ("queued", "running") for i in ids):
            break
        assert polls < 20_000
    ls = rltui_cli("ls", "--json", db=db_path, check=True)
    assert "locked" not in ls.stderr
    for run_id in ids:
        run = run_row(store, run_id)
        assert run.status == "completed", run.error
        assert counts(store, run_id) == list(range(1, 401))
        with store.read() as s:
            assert s.scalar(select(Episode.id).where(Episode.run_id == run_id).order_by(Episode.id.desc())) is not None
        assert "locked" not in Path(run.log_path).read_text()
    workers_log = launch.log_dir(store) / "workers.log"
    assert not workers_log.exists() or "locked" not in workers_log.read_text()
    assert polls > 10
    assert integrity_ok(db_path)


def test_queue_with_one_slot_starts_runs_in_submission_order(tmp_path, db_path, store, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "1")
    first = submit(store, probe_config(tmp_path, "q0", steps=40, step_seconds=0.05))
    later = [submit(store, probe_config(tmp_path, f"q{i}", steps=5, step_seconds=0.02)) for i in range(1, 4)]
    # A queued run is cancelled at once, and never starts.
    assert launch.request_cancel(store, later[1]) == "cancelled"
    positions = queue_positions(store)
    assert {later[0], later[2]} <= set(positions) and later[1] not in positions
    assert sorted(positions, key=positions.get) == sorted(positions)  # submission order
    assert sorted(positions.values()) == list(range(1, len(positions) + 1))
    listed = json.loads(rltui_cli("ls", "--json", db=db_path, check=True).stdout)
    queued = sorted(r["id"] for r in listed if r["status"] == "queued")
    assert [r["queue_position"] for r in sorted(listed, key=lambda r: r["id"]) if r["status"] == "queued"] == \
        list(range(1, len(queued) + 1))
    assert all(r["queue_position"] is None for r in listed if r["status"] != "queued")
    order = [first, later[0], later[2]]
    for run_id in order:
        wait_status(store, run_id, {"completed"}, timeout=60)
    runs = [run_row(store, i) for i in order]
    for before, after in zip(runs, runs[1:]):
        assert after.started_at >= before.finished_at  # one at a time, in submission order
    skipped = run_row(store, later[1])
    assert skipped.status == "cancelled" and skipped.started_at is None


# --- cancel and resume ---------------------------------------------------------------------------
def test_cancel_is_graceful_and_flushes_what_the_run_did(tmp_path, db_path, store):
    run_id = submit(store, probe_config(tmp_path, steps=100_000, step_seconds=0.01))
    wait_for(lambda: len(counts(store, run_id)) >= 20, 40, "the first metrics")
    asked = time.monotonic()
    # A long grace: on a loaded machine the graceful stop must not be overtaken by the forced one.
    proc = rltui_cli("cancel", str(run_id), "--grace", "60", "--json", db=db_path, check=True)
    assert json.loads(proc.stdout)["status"] == "cancelled"
    assert time.monotonic() - asked < 60
    run = run_row(store, run_id)
    assert run.status == "cancelled" and "safe point" in run.error, run.error
    stored = counts(store, run_id)
    assert stored == list(range(1, len(stored) + 1))
    assert stored[-1] == echoed_steps(run.log_path)[-1][0]  # everything it did was flushed


def test_cancel_forces_an_algorithm_that_never_reaches_a_safe_point(tmp_path, db_path, store, monkeypatch):
    run_id = submit(store, probe_config(tmp_path, steps=5, step_seconds=120))
    wait_for(lambda: counts(store, run_id) == [1], 40, "the first step")
    asked = time.monotonic()
    # The TUI's cancel: returns at once; a detached helper forces the run after the grace period.
    assert launch.cancel(store, run_id, grace=1) == "running"
    assert time.monotonic() - asked < 1
    run = wait_status(store, run_id, {"cancelled", "crashed", "failed", "completed"}, timeout=30)
    assert run.status == "cancelled"
    assert time.monotonic() - asked < 20  # 1 s grace, then SIGTERM (not the 120 s step)
    assert "SIGTERM" in run.error  # the worker caught SIGTERM and recorded the end itself
    wait_for(lambda: not pid_alive(run.pid), 10, "the worker to exit")


def test_resume_continues_a_torch_run_from_its_checkpoint(tmp_path, db_path, store):
    algo = dict(steps=60, step_seconds=0.03, uses_torch=True, checkpoint_every=10)
    reference = submit(store, probe_config(tmp_path, "reference", **algo))
    run_id = submit(store, probe_config(tmp_path, "killed", **algo))
    wait_for(lambda: len(counts(store, run_id)) >= 35, 60, "step 35")
    os.kill(run_row(store, run_id).pid, signal.SIGKILL)
    wait_status(store, run_id, {"crashed"}, timeout=5)
    lost = counts(store, run_id)
    step = launch.resume(store, run_id)
    assert step is not None and step % 10 == 0 and 30 <= step <= lost[-1]
    for rid in (run_id, reference):
        run = wait_status(store, rid, {"completed", "failed", "crashed"}, timeout=60)
        assert run.status == "completed", (rid, run.error, Path(run.log_path).read_text()[-3000:])
    # The step count continues: each step once, nothing doubled, nothing missing.
    assert counts(store, run_id) == list(range(1, 61))
    with store.read() as s:
        episodes = s.scalars(select(Episode.index).where(Episode.run_id == run_id).order_by(Episode.index)).all()
        loss = [v for _, v, _ in metric_series(s, run_id, "loss")]
        loss_ref = [v for _, v, _ in metric_series(s, reference, "loss")]
        walls = [w for _, _, w in metric_series(s, run_id, "count")]
    assert episodes == [0, 1, 2, 3, 4, 5]
    # Weights and optimizer came back from the checkpoint: the loss curve is the uninterrupted one.
    assert loss == loss_ref
    assert walls == sorted(walls)  # the run's clock continues too
    run = run_row(store, run_id)
    assert run.summary["resumed_from"] == step and run.device_used == "cpu"
    assert run.versions["torch"]


def test_a_failing_algorithm_leaves_its_traceback_and_log_tail(tmp_path, db_path, store):
    run_id = submit(store, probe_config(tmp_path, steps=50, fail_at_step=3))
    wait_status(store, run_id, {"failed", "completed"}, timeout=40)
    shown = json.loads(rltui_cli("show", str(run_id), "--json", db=db_path, check=True).stdout)
    assert shown["status"] == "failed"
    assert shown["error"].startswith("RuntimeError: heartbeat_probe: failing at step 3")
    assert "fail_at_step" in shown["traceback"] and "Traceback" in shown["traceback"]
    assert "heartbeat_probe step 3" in shown["log_tail"] and "RuntimeError" in shown["log_tail"]
    for key in ("pid", "host", "device_used", "started_at", "finished_at"):
        assert shown[key], key
    assert counts(store, run_id) == [1, 2, 3]


# --- refused at launch ---------------------------------------------------------------------------
def test_bad_config_or_missing_device_is_refused_at_launch_without_a_run_row(tmp_path, db_path, store):
    bad = probe_config(tmp_path, "bad", stpes=3)
    proc = rltui_cli("run", str(bad), "--detach", "--json", db=db_path)
    assert proc.returncode == 2 and "algo.stpes" in proc.stderr and "Traceback" not in proc.stderr
    numpy_on_gpu = rltui_cli("run", str(probe_config(tmp_path)), "--detach", "--set", 'device="cuda"', db=db_path)
    assert numpy_on_gpu.returncode == 2 and "device 'cuda'" in numpy_on_gpu.stderr
    # A torch run asking for a GPU this host lacks: checked at submit (in a child process when this
    # process has no torch loaded, as in the TUI), before any row is written.
    torch_on_gpu = load_config_file(probe_config(tmp_path, "gpu", uses_torch=True), ["device='cuda:7'"])
    with pytest.raises(DeviceError, match="cuda:7"):
        launch.submit(store, torch_on_gpu)
    with store.read() as s:
        assert s.scalar(select(Run.id)) is None


def test_gpu_runs_are_counted_per_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert slot_of("cuda", None, True) == "cuda:0"
    assert slot_of("cuda:1", None, True) == "cuda:1"
    assert slot_of("auto", None, True) == "cuda:0"
    assert slot_of("auto", None, False) == "cpu"
    assert slot_of("auto", "cpu", True) == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert slot_of("auto", None, True) == "cpu"


def test_the_launch_api_never_imports_torch(tmp_path, db_path, store):
    """The TUI calls submit/cancel/resume/refresh_liveness/queue_positions: none may import torch,
    not even for a torch run (device "auto" is resolved by the worker)."""
    script = f"""
import sys
from rltui.config import load_config_file
from rltui.runner import launch
from rltui.store import open_store
store = open_store({str(db_path)!r})
ids = [launch.submit(store, load_config_file({str(probe_config(tmp_path, 'np'))!r}), start=False),
       launch.submit(store, load_config_file({str(probe_config(tmp_path, 'pt', uses_torch=True))!r}), start=False)]
launch.refresh_liveness(store, kick=False)
assert launch.queue_positions(store) == {{ids[0]: 1, ids[1]: 2}}
assert launch.request_cancel(store, ids[1]) == "cancelled"
launch.resume(store, ids[1], start=False)
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_a_foreground_run_heartbeats_and_holds_its_row(tmp_path, db_path, store):
    proc = rltui_cli("run", str(probe_config(tmp_path, steps=5)), "--json", db=db_path, check=True)
    data = json.loads(proc.stdout)
    assert data["status"] == "completed" and data["pid"] and data["host"]
    assert counts(store, data["id"]) == [1, 2, 3, 4, 5]
    with store.read() as s:
        assert s.scalar(select(Episode.id).where(Episode.run_id == data["id"])) is None  # 5 < episode_length
