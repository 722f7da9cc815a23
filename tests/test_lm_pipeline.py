"""The RLHF pipeline as real runs in a real store, through the runner: tiny sizes, few steps."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rltui.config import load_config_text
from rltui.runner.execute import create_run, execute_run
from rltui.store.models import COMPLETED, FAILED, QUEUED, Artifact, Episode, Metric, Run, Step

def run(store, env: str, algo: str, seed: int = 0, **params) -> int:
    lines = [f"seed = {seed}", 'device = "cpu"', "[env]", f'id = "{env}"', "[algo]", f'id = "{algo}"']
    lines += [f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {str(v).lower() if isinstance(v, bool) else v}"
              for k, v in params.items()]
    run_id = create_run(store, load_config_text("\n".join(lines)))
    execute_run(store, run_id)
    return run_id


def row(store, run_id: int) -> Run:
    with store.read() as s:
        return s.get(Run, run_id)


def metric(store, run_id: int, key: str) -> list[tuple[int, float]]:
    with store.read() as s:
        return [(m.step, m.value) for m in s.scalars(select(Metric).where(Metric.run_id == run_id, Metric.key == key).order_by(Metric.step))]


def completed(store, run_id: int) -> Run:
    r = row(store, run_id)
    assert r.status == COMPLETED, f"run {run_id} {r.algo_id}: {r.error}\n{r.traceback}"
    return r


def pretrain(store, env: str, steps: int = 60, **extra) -> int:
    params = dict(d_model=32, n_layer=1, n_head=2, context_len=48, batch_size=32, learning_rate=1e-2,
                  corpus_size=2000, eval_prompts=8, steps=steps, eval_every=steps)
    params.update(extra)
    return run(store, env, "lm_pretrain", **params)


def token_episodes(store, run_id: int, phase: str) -> list[list[Step]]:
    with store.read() as s:
        eps = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == phase, Episode.has_trajectory)).all()
        return [list(s.scalars(select(Step).where(Step.episode_id == e.id).order_by(Step.t))) for e in eps]


def test_preference_chain_pretrain_reward_model_ppo_dpo(store):
    sft = pretrain(store, "lm-reviews", steps=80)
    completed(store, sft)
    rm = run(store, "lm-reviews", "reward_model", init_run="latest:lm_pretrain", n_pairs=384, heldout_pairs=128,
             epochs=3, batch_size=32, learning_rate=3e-3, eval_every=100)
    r = completed(store, rm)
    assert r.parent_id == sft
    # the Bradley–Terry model learned the oracle's ranking beyond chance on unseen pairs and prompts
    assert r.summary["heldout_pair_accuracy"] >= 0.6, r.summary

    # PPO, one update on the whole batch: before any update π = π_ref, so KL = 0 and ratio = 1 exactly
    ppo = run(store, "lm-reviews", "lm_ppo", init_run=sft, reward_run=rm, iterations=2, batch_size=8,
            mini_batch_size=8, ppo_epochs=1, eval_every=2, eval_prompts=4)
    r = completed(store, ppo)
    assert r.parent_id == sft and r.summary["reward_run_id"] == rm
    first = {k: metric(store, ppo, k)[0][1] for k in ("objective/kl", "val/ratio", "policy/approxkl_avg", "policy/clipfrac_avg",
                                                      "objective/non_score_reward")}
    assert first == {"objective/kl": 0.0, "val/ratio": 1.0, "policy/approxkl_avg": 0.0, "policy/clipfrac_avg": 0.0,
                     "objective/non_score_reward": 0.0}
    for key in ("objective/rlhf_reward", "objective/scores", "objective/entropy", "loss/policy_avg", "loss/value_avg",
                "eval/reward_mean", "eval/oracle_score"):
        assert metric(store, ppo, key), key
    assert [s for s, _ in metric(store, ppo, "objective/scores")] == [8, 16]  # x-axis: responses

    # token-level episodes: prompt + prefix as state, token id as action, per-token numbers, reward at the end
    train_eps = token_episodes(store, ppo, "train")
    assert 1 <= len(train_eps) <= 5
    steps = train_eps[0]
    assert steps[0].state["prefix"] == "" and steps[0].state["prompt"]
    assert set(steps[0].extras) == {"token", "logprob", "ref_logprob", "kl", "value", "advantage"}
    assert steps[-1].done and all(s.reward == 0.0 for s in steps[:-1])
    assert steps[1].state["prefix"] == steps[0].extras["token"]
    with store.read() as s:
        layout = s.scalar(select(Artifact).where(Artifact.run_id == ppo, Artifact.name == "layout"))
        assert layout.kind == "json" and b'"text"' in layout.data
        n_eval = s.scalar(select(Episode.id).where(Episode.run_id == ppo, Episode.phase == "eval").limit(1))
    assert n_eval is not None

    dpo = run(store, "lm-reviews", "dpo", init_run=sft, reward_run="latest:reward_model", n_pairs=64, batch_size=16,
              eval_every=2, eval_prompts=4)
    r = completed(store, dpo)
    assert r.parent_id == sft
    assert metric(store, dpo, "loss")[0][1] == pytest.approx(0.6931472, abs=1e-6)  # π = π_ref: log 2
    assert [s for s, _ in metric(store, dpo, "eval/reward_mean")] == [0, 64, 128]


def test_verifiable_chain_pretrain_grpo_ppo(store):
    sft = run(store, "lm-arithmetic", "lm_pretrain", d_model=32, n_layer=1, n_head=2, context_len=16, batch_size=32,
            learning_rate=1e-2, corpus_size=500, eval_prompts=8, steps=40, eval_every=20)
    completed(store, sft)
    assert [s for s, _ in metric(store, sft, "eval/accuracy")] == [20, 40]
    grpo = run(store, "lm-arithmetic", "grpo", init_run="latest:lm_pretrain", iterations=2, prompts_per_iter=2,
               group_size=4, mini_batch_size=8, eval_every=1, eval_prompts=8)
    r = completed(store, grpo)
    assert r.parent_id == sft and r.summary["reward_run_id"] is None  # exact match needs no reward model
    assert metric(store, grpo, "val/ratio")[0][1] == 1.0 and metric(store, grpo, "objective/kl")[0][1] == 0.0
    assert [s for s, _ in metric(store, grpo, "eval/accuracy")] == [0, 8, 16]
    eps = token_episodes(store, grpo, "train")
    assert eps and eps[0][-1].reward in (0.0, 1.0)
    ppo = run(store, "lm-arithmetic", "lm_ppo", init_run=grpo, iterations=1, batch_size=8, mini_batch_size=4,
              eval_every=1, eval_prompts=4, critic_init="policy", adaptive_kl=True)
    r = completed(store, ppo)
    assert r.parent_id == grpo


def test_pretraining_is_deterministic_on_cpu(store):
    a = pretrain(store, "lm-arithmetic", steps=15, context_len=16)
    b = pretrain(store, "lm-arithmetic", steps=15, context_len=16)
    completed(store, a), completed(store, b)
    assert metric(store, a, "loss") == metric(store, b, "loss")
    assert metric(store, a, "eval/reward_mean") == metric(store, b, "eval/reward_mean")


def test_a_missing_or_unfinished_init_run_fails_with_a_clear_message(store):
    r = row(store, run(store, "lm-reviews", "lm_ppo", init_run="latest:lm_pretrain"))
    assert r.status == FAILED and "no completed lm_pretrain run on lm-reviews" in r.error
    r = row(store, run(store, "lm-reviews", "reward_model", init_run=999))
    assert r.status == FAILED and "there is no run 999" in r.error
    queued = create_run(store, load_config_text('[env]\nid = "lm-reviews"\n[algo]\nid = "lm_pretrain"\n'), status=QUEUED)
    r = row(store, run(store, "lm-reviews", "grpo", init_run=queued))
    assert r.status == FAILED and f"run {queued} (lm_pretrain) is queued, not completed" in r.error
    # a run id naming the wrong kind of stage
    sft = pretrain(store, "lm-reviews", steps=2)
    r = row(store, run(store, "lm-reviews", "lm_ppo", init_run=sft, reward_run=sft))
    assert r.status == FAILED and "needs a run of reward_model" in r.error
