"""engine = "ray" on a real two-node Ray cluster (this machine, 127.0.0.1) and a real PostgreSQL store:
every trial completes exactly once, and killing a node mid-sweep crashes its trials, which are then
retried on the other node. Nothing is mocked: the trials are heartbeat_probe runs (a couple of
seconds each) executed by the ordinary worker code inside Ray tasks."""

from __future__ import annotations

import json
import os
import time

import pytest

pytest.importorskip("ray")

from raycluster import TwoNodeRay, parent_of  # noqa: E402
from rltui.store import open_store  # noqa: E402
from tests.conftest import REPO, rltui_cli  # noqa: E402

PROBE_BASE = """name = "probe"
seed = 0
device = "cpu"
[env]
id = "ticker"
episode_length = 5
[algo]
id = "heartbeat_probe"
steps = 25
step_seconds = 0.12
print_every = 0
"""

SWEEP = """name = "ray probe"
base = "base.toml"
method = "random"
seeds = [0]
trials = 8
parallel = 4
engine = "ray"
address = "{address}"
objective = {{ metric = "count", mode = "max", use = "last" }}
[parameters]
"algo.steps" = {{ int = [20, 30] }}
"""


@pytest.fixture
def ray_cluster():
    cluster = TwoNodeRay(cpus_per_node=2).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _rows(store, sweep_id: int) -> list[tuple]:
    with store.sql.read() as tx:
        return tx.all("SELECT id, trial, status, pid, node FROM runs WHERE sweep_id = :s ORDER BY id", s=sweep_id)


@pytest.mark.slow
def test_a_ray_sweep_survives_a_killed_node_with_every_trial_completed_once(tmp_path, pg_url, ray_cluster, monkeypatch):
    for key in ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.setenv(key, ray_cluster.env[key])
    monkeypatch.setenv("RLTUI_HEARTBEAT_INTERVAL", "0.3")
    monkeypatch.setenv("RLTUI_HEARTBEAT_TIMEOUT", "5")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    (tmp_path / "base.toml").write_text(PROBE_BASE)
    (tmp_path / "sweep.toml").write_text(SWEEP.format(address=ray_cluster.address))

    started = rltui_cli("sweep", str(tmp_path / "sweep.toml"), "--detach", "--json", db=pg_url)
    assert started.returncode == 0, started.stderr
    sweep_id = json.loads(started.stdout)["id"]
    store = open_store(pg_url)
    try:
        # Wait until the worker node runs trials (its Ray workers are children of its raylet), then kill it.
        worker_raylet = ray_cluster.raylet_pid("worker")
        deadline = time.monotonic() + 90
        while True:
            on_worker = [r for r in _rows(store, sweep_id) if r[2] == "running" and r[3] and parent_of(r[3]) == worker_raylet]
            if on_worker:
                break
            assert time.monotonic() < deadline, _rows(store, sweep_id)
            time.sleep(0.05)
        worker_node = on_worker[0][4]
        ray_cluster.kill_node("worker")
        killed = {r[0] for r in on_worker}

        deadline = time.monotonic() + 180
        while True:
            shown = json.loads(rltui_cli("sweep", "show", str(sweep_id), "--json", db=pg_url).stdout)
            if shown["status"] != "running":
                break
            assert time.monotonic() < deadline, shown
            time.sleep(1)
        assert shown["status"] == "completed", shown
        trials = shown["trials"]
        assert [t["trial"] for t in trials] == list(range(8))  # none lost
        assert all(t["status"] == "completed" and len(t["run_ids"]) == 1 for t in trials)
        rows = _rows(store, sweep_id)
        assert len(rows) == 8 and {r[1] for r in rows} == set(range(8))  # one run per trial, none twice
        assert all(t["value"] == t["params"]["algo.steps"] for t in trials)  # each counted to the end once
        with store.sql.read() as tx:
            doubled = tx.all("SELECT run_id, step FROM metrics WHERE key = 'count' GROUP BY run_id, step"
                             " HAVING count(*) > 1")
        assert doubled == []
        # The killed node's trials crashed and were retried on the other node.
        nodes = {r[0]: r[4] for r in rows}
        assert all(nodes[run_id] != worker_node for run_id in killed)
        assert worker_node and all(nodes.values())  # every run records the node it (last) ran on
        log = open(shown["log_path"]).read()
        assert all(f"run {run_id} crashed; retry 1" in log for run_id in killed), log
    finally:
        store.dispose()
