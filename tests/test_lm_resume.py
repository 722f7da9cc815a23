"""The LM stages resume: a run cancelled mid-way and resumed the way `rltui resume` does it
(prepare_resume, then the runner) continues its step count and metric series and ends with exactly
the metrics, episodes and weights of the same run left uninterrupted (CPU, same seed)."""

from __future__ import annotations

import os

import pytest
import torch

from rltui import registry
from rltui.config import load_config_text
from rltui.lm.model import load_payload
from rltui.recorder import StoreRecorder
from rltui.runner.devices import seed_everything
from rltui.runner.execute import create_run, execute_run, finish_run, stored_config, take_run
from rltui.runner.lifecycle import prepare_resume
from rltui.store.status import CANCELLED, COMPLETED

TINY_LM = dict(d_model=32, n_layer=1, n_head=2, context_len=48, batch_size=16, learning_rate=1e-2,
               corpus_size=400, eval_prompts=4)


def config_text(algo: str, **params) -> str:
    def value(v):  # noqa: ANN001, ANN202
        return f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)

    lines = ["seed = 1", 'device = "cpu"', "[env]", 'id = "lm-reviews"', "[algo]", f'id = "{algo}"']
    return "\n".join(lines + [f"{k} = {value(v)}" for k, v in params.items()])


class CancelAfter(StoreRecorder):
    """The real recorder, with a user who presses cancel once a metric at step `at` is recorded:
    a deterministic stand-in for a cancel that arrives at some wall-clock moment."""

    def __init__(self, store, run_id: int, at: int) -> None:  # noqa: ANN001
        super().__init__(store, run_id)
        self.at, self.cancel_pressed = at, False

    def log(self, step: int, **metrics: float) -> None:
        super().log(step, **metrics)
        self.cancel_pressed = self.cancel_pressed or step >= self.at

    def should_stop(self) -> bool:
        return self.cancel_pressed or super().should_stop()


def uninterrupted(store, text: str) -> int:  # noqa: ANN001
    run_id = create_run(store, load_config_text(text))
    assert execute_run(store, run_id) == COMPLETED, _error(store, run_id)
    return run_id


def cancelled_then_resumed(store, text: str, at: int) -> tuple[int, int]:  # noqa: ANN001
    """(run id, checkpoint step it resumed from): the first part as the runner would run it, stopped
    at `at`; then prepare_resume (what `rltui resume` does) and the runner again."""
    run_id = create_run(store, load_config_text(text))
    assert take_run(store, run_id, os.getpid())
    config = stored_config(store, run_id)
    seed_everything(config.seed, True)
    env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
    recorder = CancelAfter(store, run_id, at)
    result = registry.load_callable(registry.algo_spec(config.algo_id).entry)(
        env, config.algo, recorder, seed=config.seed, device="cpu")
    recorder.close()
    assert result == {}, "the stage should stop at the cancel, before its final evaluation and weights"
    finish_run(store, run_id, CANCELLED)
    step = prepare_resume(store, run_id)
    assert step is not None and step >= at, step
    assert execute_run(store, run_id) == COMPLETED, _error(store, run_id)
    return run_id, step


def _error(store, run_id: int) -> str:  # noqa: ANN001
    with store.sql.read() as tx:
        return str(tx.first("SELECT status, error, traceback FROM runs WHERE id = :id", id=run_id))


def recorded(store, run_id: int) -> dict:  # noqa: ANN001
    """Everything a run stored that must not depend on the interruption (wall times excepted)."""
    with store.sql.read() as tx:
        metrics = tx.all("SELECT key, step, value FROM metrics WHERE run_id = :id AND key NOT LIKE 'sys/%'"
                         " ORDER BY key, step", id=run_id)  # sys/*: the heartbeat's CPU and memory samples
        episodes = tx.all('SELECT phase, "index", "return", length, step, has_trajectory FROM episodes'
                          ' WHERE run_id = :id ORDER BY phase, "index"', id=run_id)
        steps = tx.all('SELECT e.phase, e."index", s.t, s.state, s.action, s.reward, s.extras FROM steps s'
                       ' JOIN episodes e ON e.id = s.episode_id WHERE e.run_id = :id ORDER BY e.phase, e."index", s.t',
                       id=run_id)
        artifacts = tx.all("SELECT name, step FROM artifacts WHERE run_id = :id AND name != 'checkpoint'"
                           " ORDER BY name, step", id=run_id)
        model = tx.scalar("SELECT data FROM artifacts WHERE run_id = :id AND name = 'model'", id=run_id)
        summary = tx.scalar("SELECT summary FROM runs WHERE id = :id", id=run_id)
    import json

    summary = {k: v for k, v in json.loads(summary).items() if k != "train_seconds"}
    return {"metrics": metrics, "episodes": episodes, "steps": steps, "artifacts": artifacts,
            "weights": load_payload(bytes(model))["state_dict"], "summary": summary}


def assert_same_run(a: dict, b: dict) -> None:
    weights_a, weights_b = a.pop("weights"), b.pop("weights")
    assert a == b
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name


@pytest.fixture(scope="module")
def lm_store(tmp_path_factory):
    from rltui.store import open_store

    store = open_store(str(tmp_path_factory.mktemp("lm-resume") / "store.db"))
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def chain(lm_store):
    """A completed SFT run and reward model for the later stages to start from."""
    sft = uninterrupted(lm_store, config_text("lm_pretrain", steps=20, eval_every=20, **TINY_LM))
    rm = uninterrupted(lm_store, config_text("reward_model", init_run=sft, n_pairs=32, heldout_pairs=16, epochs=1,
                                             batch_size=16, eval_every=2))
    return {"sft": sft, "rm": rm}


# (algo, params, cancel once a metric at this step is recorded)
STAGES = {
    "lm_pretrain": (dict(steps=30, eval_every=10, checkpoint_every=10, **TINY_LM), 15),
    "reward_model": (dict(n_pairs=64, heldout_pairs=16, epochs=2, batch_size=16, eval_every=3, checkpoint_every=3), 5),
    "lm_ppo": (dict(iterations=4, batch_size=8, mini_batch_size=4, ppo_epochs=1, eval_every=2, eval_prompts=4,
                    checkpoint_every=3, adaptive_kl=True), 16),
    "grpo": (dict(iterations=4, prompts_per_iter=2, group_size=4, mini_batch_size=4, eval_every=3, eval_prompts=4,
                  checkpoint_every=3), 16),
    "dpo": (dict(n_pairs=48, batch_size=16, epochs=2, eval_every=2, eval_prompts=4, checkpoint_every=4), 64),
}


@pytest.mark.parametrize("algo", list(STAGES))
def test_a_cancelled_lm_stage_resumes_into_the_uninterrupted_run(lm_store, chain, algo):
    params, at = STAGES[algo]
    links = {"lm_pretrain": {}, "reward_model": {"init_run": chain["sft"]}, "dpo": {"init_run": chain["sft"], "reward_run": chain["rm"]}}
    params = {**links.get(algo, {"init_run": chain["sft"], "reward_run": chain["rm"]}), **params}
    text = config_text(algo, **params)
    reference = uninterrupted(lm_store, text)
    resumed, step = cancelled_then_resumed(lm_store, text, at)
    a, b = recorded(lm_store, reference), recorded(lm_store, resumed)
    assert max(s for _k, s, _v in b["metrics"]) > step  # it carried on past the checkpoint...
    assert_same_run(a, b)  # ...into exactly the run that was never interrupted
