"""Chains of runs: a run whose config names another (init_run, reward_run) waits queued until that run
completed, fails at once if it failed or was cancelled, and "latest:ALGO" follows its own batch
whatever the order the stages were submitted in. Real workers, a real SQLite store."""

from __future__ import annotations

import json
import time

import pytest

from rltui.config import load_config_file, load_config_text
from rltui.runner import launch
from rltui.runner.lifecycle import LifecycleError
from tests.conftest import REPO, SAMPLE_RUNS, rltui_cli

PROBE = ('name = "{name}"\nseed = 0\n[env]\nid = "ticker"\n[algo]\nid = "heartbeat_probe"\nsteps = {steps}\n'
         'step_seconds = 0.02\nfail_at_step = {fail}\n')
# A later stage that never gets to start in these tests (its awaited run breaks): no torch is loaded.
STAGE = 'name = "stage"\nseed = 0\n[env]\nid = "lm-reviews"\n[algo]\nid = "reward_model"\ninit_run = {ref}\n'


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("RLTUI_HEARTBEAT_INTERVAL", "0.3")
    monkeypatch.setenv("RLTUI_MAX_RUNS", "2")
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def probe(steps: int = 40, fail: int = -1, name: str = "dep"):
    return load_config_text(PROBE.format(name=name, steps=steps, fail=fail))


def row(store, run_id: int) -> dict:
    with store.sql.read() as tx:
        status, error, config = tx.first("SELECT status, error, config FROM runs WHERE id = :id", id=run_id)
    return {"status": status, "error": error, "config": json.loads(config)}


def wait_status(store, run_id: int, wanted: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (r := row(store, run_id))["status"] not in wanted:
        assert time.monotonic() < deadline, r
        time.sleep(0.05)
    return r


def listed(db) -> dict[int, dict]:
    return {r["id"]: r for r in json.loads(rltui_cli("ls", "--json", db=db, check=True).stdout)}


def test_a_waiting_run_shows_what_it_waits_for_and_fails_at_once_when_that_run_fails(store, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "1")
    blocker = launch.submit(store, probe(steps=400, name="blocker"))  # holds the one slot meanwhile
    dep = launch.submit(store, probe(steps=10, fail=3))
    stage = launch.submit(store, load_config_text(STAGE.format(ref=dep)))
    shown = listed(store.path)[stage]
    assert shown["status"] == "queued" and shown["status_note"] == f"waits for run {dep}"
    assert f"waits for run {dep}" in rltui_cli("ls", db=store.path, check=True).stdout
    assert launch.cancel(store, blocker, wait=True, grace=5) == "cancelled"  # the dep starts now, and fails
    wait_status(store, dep, {"failed"})
    failed = wait_status(store, stage, {"failed"}, timeout=5)  # the dep's worker settles it on its way out
    assert failed["error"] == f"algo.init_run = {dep}: run {dep} (heartbeat_probe) failed; this run cannot start without it"


def test_cancelling_the_awaited_run_fails_the_waiting_run_at_once(store, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "1")
    blocker = launch.submit(store, probe(steps=400, name="blocker"))
    dep = launch.submit(store, probe(steps=5))  # queued behind the blocker
    stage = launch.submit(store, load_config_text(STAGE.format(ref=dep)))
    assert launch.request_cancel(store, dep) == "cancelled"
    failed = row(store, stage)
    assert failed["status"] == "failed" and f"run {dep} (heartbeat_probe) cancelled" in failed["error"]
    launch.cancel(store, blocker, wait=True, grace=5)


@pytest.mark.parametrize("ending", ["failed", "cancelled"])
def test_a_foreground_stage_waits_for_its_run_and_ends_at_once_naming_it_when_that_run_breaks(
        store, tmp_path, monkeypatch, ending):
    """`rltui run STAGE.toml` (no --detach) whose init_run has not completed waits for it, shown as
    "waits for run N"; no worker claims it meanwhile. That run failing or being cancelled ends it
    at once (exit 1), naming the run. (The stage never starts, so no torch is loaded.)"""
    import subprocess
    import sys

    monkeypatch.setenv("RLTUI_MAX_RUNS", "1")
    blocker = launch.submit(store, probe(steps=400, name="blocker"))  # holds the one slot meanwhile
    dep = launch.submit(store, probe(steps=10, fail=3))  # queued behind it
    stage_toml = tmp_path / "stage.toml"
    stage_toml.write_text(STAGE.format(ref=dep))
    proc = subprocess.Popen([sys.executable, "-m", "rltui.cli", "--db", str(store.path), "run", str(stage_toml)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        first_line = proc.stderr.readline()
        stage = dep + 1
        assert first_line.startswith(f"run {stage} waits for run {dep}"), first_line
        shown = listed(store.path)[stage]
        assert shown["status"] == "queued" and shown["status_note"] == f"waits for run {dep}"
        assert shown["queue_position"] is None  # in no worker's queue: its own process runs it
        if ending == "cancelled":
            assert launch.request_cancel(store, dep) == "cancelled"
        launch.cancel(store, blocker, wait=True, grace=5)  # the dep starts now (and fails at step 3)
        wait_status(store, dep, {ending})
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert f"run {dep} (heartbeat_probe) {ending}; this run cannot start without it" in err and "Traceback" not in err
    assert row(store, stage)["status"] == "failed"


@pytest.mark.slow
def test_a_foreground_lm_stage_waits_for_its_pretraining_run_then_runs_on_it(store):
    pretrain = launch.submit(store, load_config_file(SAMPLE_RUNS / "lm_reviews_1_pretrain.toml",
                                                     LM_TINY["lm_reviews_1_pretrain.toml"]))
    sets = [a for o in LM_TINY["lm_reviews_2_reward_model.toml"] for a in ("--set", o)]
    proc = rltui_cli("run", str(SAMPLE_RUNS / "lm_reviews_2_reward_model.toml"), *sets, "--json", db=store.path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"waits for run {pretrain}" in proc.stderr
    stage = json.loads(proc.stdout)
    assert stage["status"] == "completed"
    assert row(store, stage["id"])["config"]["algo"]["init_run"] == pretrain  # "latest:" bound at submit
    with store.sql.read() as tx:
        started = tx.scalar("SELECT started_at FROM runs WHERE id = :id", id=stage["id"])
        finished = tx.scalar("SELECT finished_at FROM runs WHERE id = :id", id=pretrain)
    assert started >= finished


def test_a_run_naming_a_run_that_does_not_exist_is_refused_at_submit(store):
    with pytest.raises(LifecycleError, match="algo.init_run = 42: there is no run 42"):
        launch.submit(store, load_config_text(STAGE.format(ref=42)))


def test_latest_is_bound_at_submit_to_the_newest_run_of_that_algo_finished_or_not(store):
    old = launch.submit(store, probe(steps=2, name="old"), start=False)
    with store.sql.write() as tx:
        tx.run("UPDATE runs SET status = 'completed', algo_id = 'lm_pretrain', env_id = 'lm-reviews' WHERE id = :id", id=old)
    new = launch.submit(store, probe(steps=2, name="new"), start=False)
    with store.sql.write() as tx:  # the newest pretraining run, still queued
        tx.run("UPDATE runs SET algo_id = 'lm_pretrain', env_id = 'lm-reviews' WHERE id = :id", id=new)
    stage = launch.submit(store, load_config_text(STAGE.format(ref='"latest:lm_pretrain"')), start=False)
    stored = row(store, stage)
    assert stored["config"]["algo"]["init_run"] == new  # not the older completed one
    assert listed(store.path)[stage]["status_note"] == f"waits for run {new}"



@pytest.mark.parametrize("env, waits", [("lm-arithmetic", ["init_run"]), ("lm-reviews", ["init_run", "reward_run"])])
def test_a_policy_stage_waits_for_a_reward_model_only_where_its_task_uses_one(store, env, waits):
    """GRPO on the verifiable task scores exactly: its reward_run (default "latest:reward_model")
    is not waited for, or the stage would wait for ever for a reward model nobody trains."""
    pretrain = launch.submit(store, probe(steps=2, name="pre"), start=False)
    with store.sql.write() as tx:
        tx.run("UPDATE runs SET status = 'completed', algo_id = 'lm_pretrain', env_id = :env WHERE id = :id",
               env=env, id=pretrain)
    stage = launch.submit(store, load_config_text(
        f'name = "grpo"\nseed = 0\n[env]\nid = "{env}"\n[algo]\nid = "grpo"\n'), start=False)
    with store.sql.read() as tx:
        waits_for = json.loads(tx.scalar("SELECT waits_for FROM runs WHERE id = :id", id=stage))
    assert sorted(waits_for) == waits and waits_for["init_run"] == pretrain
    with store.sql.read() as tx:
        from rltui.runner.scheduler import claimable

        assert (stage in claimable(tx)) == (env == "lm-arithmetic")  # its pretraining run completed

LM_TINY = {
    "lm_reviews_1_pretrain.toml": ["algo.d_model=16", "algo.n_layer=1", "algo.n_head=2", "algo.steps=3",
                                   "algo.batch_size=4", "algo.corpus_size=40", "algo.eval_every=3", "algo.eval_prompts=2"],
    "lm_reviews_2_reward_model.toml": ["algo.n_pairs=8", "algo.heldout_pairs=8", "algo.epochs=1", "algo.batch_size=8"],
    "lm_reviews_3_ppo.toml": ["algo.iterations=1", "algo.batch_size=4", "algo.mini_batch_size=4", "algo.ppo_epochs=1",
                              "algo.eval_every=1", "algo.eval_prompts=2"],
}


@pytest.mark.slow
def test_an_rlhf_chain_submitted_in_reverse_order_completes_in_its_own_order(store):
    ids = {}
    for name in reversed(list(LM_TINY)):  # PPO first, pretraining last
        ids[name] = launch.submit(store, load_config_file(SAMPLE_RUNS / name, LM_TINY[name]))
    pretrain, reward, ppo = (ids[n] for n in LM_TINY)
    shown = listed(store.path)
    assert shown[ppo]["status"] == "queued" and "waits for" in shown[ppo]["status_note"]
    for run_id in (pretrain, reward, ppo):
        done = wait_status(store, run_id, {"completed", "failed", "crashed", "cancelled"}, timeout=240)
        assert done["status"] == "completed", done["error"]
    assert row(store, reward)["config"]["algo"]["init_run"] == pretrain
    assert row(store, ppo)["config"]["algo"]["init_run"] == pretrain
    assert row(store, ppo)["config"]["algo"]["reward_run"] == reward
    with store.sql.read() as tx:
        started = dict(tx.all("SELECT id, started_at FROM runs"))
        finished = dict(tx.all("SELECT id, finished_at FROM runs"))
    assert started[reward] >= finished[pretrain] and started[ppo] >= finished[reward]
