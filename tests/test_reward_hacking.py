"""Reward hacking, measured: best-of-N against its closed-form KL, the reward model's agreement with
the gold oracle, episodes ranked by proxy − gold, and the over-optimisation study's samples end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sqlalchemy import select

from rltui.algos.best_of_n import best_of_n_kl, curve_points
from rltui.algos.lm_common import gold_agreement
from rltui.config import load_config_file
from rltui.runner.execute import create_run, execute_run
from rltui.store.models import Episode, Run
from rltui.store.queries import by_proxy_gold_gap, episode_rows

from conftest import SAMPLE_RUNS
from test_lm_pipeline import completed, metric

STUDY = SAMPLE_RUNS / "reward_hacking"


def exact_best_of_n(probs: np.ndarray, rewards: np.ndarray, n: int) -> np.ndarray:
    """π_N(y) for distinct rewards: P[max of n draws is y] = F(y)^n − F(y⁻)^n, F the CDF by reward."""
    order = np.argsort(rewards)
    cdf = np.cumsum(probs[order])
    below = np.concatenate([[0.0], cdf[:-1]])
    out = np.empty_like(probs)
    out[order] = cdf**n - below**n
    return out


@pytest.mark.parametrize("n", [1, 2, 4, 16, 64])
def test_best_of_n_kl_matches_a_monte_carlo_estimate(n):
    """Sample best-of-n from a tiny policy (1000 outcomes, distinct rewards) and estimate
    KL(π_N ‖ π) = E_{y~π_N}[log π_N(y) − log π(y)] by Monte Carlo: it agrees with log n − (n−1)/n."""
    rng = np.random.default_rng(n)
    k = 1000
    probs = rng.dirichlet(np.ones(k))
    rewards = rng.permutation(k).astype(float)  # distinct: no ties
    draws = rng.choice(k, size=(20_000, n), p=probs)
    best = draws[np.arange(len(draws)), rewards[draws].argmax(1)]  # the real best-of-n procedure
    p_n = exact_best_of_n(probs, rewards, n)
    log_ratio = np.log(p_n[best]) - np.log(probs[best])
    estimate, stderr = log_ratio.mean(), log_ratio.std() / math.sqrt(len(log_ratio))
    # with 1000 outcomes the discrete π_N is within ~1e-3 of the continuous formula
    assert abs(estimate - best_of_n_kl(n)) < 4 * stderr + 2e-3, (estimate, stderr, best_of_n_kl(n))


def test_best_of_n_kl_closed_form_values():
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert best_of_n_kl(256) == pytest.approx(math.log(256) - 255 / 256)
    assert curve_points(1) == [1]
    assert curve_points(16) == [1, 2, 4, 8, 16]
    assert curve_points(12) == [1, 2, 4, 8, 12]


def test_agreement_is_one_for_a_reward_model_equal_to_the_oracle():
    """Real responses (the corpus's chosen/rejected pairs, in both orders) scored by the gold oracle;
    a reward model equal to the oracle agrees on every pair the oracle decides, its negation on none,
    and a reward model that ignores the text agrees on none (a tie is not agreement)."""
    from rltui.envs.text import make_reviews
    from rltui.lm.oracle import sentiment
    from rltui.schemas.lm import ReviewsParams

    env = make_reviews(ReviewsParams())
    pairs = env.preference_pairs(64, "train", 0)
    texts = [(a, b) for _prompt, a, b in pairs] + [(b, a) for _prompt, a, b in pairs]
    gold = torch.tensor([[sentiment(a), sentiment(b)] for a, b in texts])
    same = gold_agreement(gold.clone(), gold)
    assert same["rm/decided_pairs"] == 128
    assert same["rm/agreement_with_gold"] == 1.0
    assert same["rm/gold_margin"] == pytest.approx(float((gold[:, 0] - gold[:, 1]).abs().mean()))
    assert gold_agreement(-gold, gold)["rm/agreement_with_gold"] == 0.0
    assert gold_agreement(torch.zeros_like(gold), gold)["rm/agreement_with_gold"] == 0.0
    # a reward model right on 3 of 4 decided pairs
    proxy = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    truth = torch.tensor([[2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [1.0, 1.0]])  # the last: an oracle tie, left out
    assert gold_agreement(proxy, truth) == {"rm/agreement_with_gold": 0.75, "rm/gold_margin": 0.5, "rm/decided_pairs": 4.0}


def test_sorting_episodes_by_proxy_minus_gold():
    rows = [
        {"id": 1, "return": 0.5, "oracle_score": 1.0},   # underrated: gap −0.5
        {"id": 2, "return": 3.0, "oracle_score": -2.0},  # the hack: gap 5
        {"id": 3, "return": 1.0, "oracle_score": None},  # no gold stored (not an LM episode)
        {"id": 4, "return": 2.0, "oracle_score": 1.0},   # gap 1
    ]
    assert [r["id"] for r in by_proxy_gold_gap(rows)] == [2, 4, 1, 3]


def test_the_study_samples_run_end_to_end_on_a_tiny_budget(store):
    """The over-optimisation study's chain (SFT, a small reward model, PPO at β = 0, best-of-N), each
    sample file as shipped but with tiny sizes, through the real runner and store."""
    tiny = {
        "1_pretrain.toml": {"algo.steps": 30, "algo.corpus_size": 1000, "algo.eval_every": 30, "algo.eval_prompts": 8},
        "2_reward_model.toml": {"algo.n_pairs": 64, "algo.heldout_pairs": 32, "algo.epochs": 1},
        "3_ppo_beta_0.toml": {"algo.iterations": 3, "algo.batch_size": 8, "algo.mini_batch_size": 8,
                              "algo.ppo_epochs": 1, "algo.eval_every": 1, "algo.eval_prompts": 8},
        "4_best_of_n.toml": {"algo.n": 8, "algo.eval_prompts": 8},
    }
    ids = {}
    for name, overrides in tiny.items():
        config = load_config_file(STUDY / name, overrides=[f"{k}={v}" for k, v in overrides.items()])
        ids[name] = create_run(store, config)
        execute_run(store, ids[name])
        completed(store, ids[name])

    ppo, bon = ids["3_ppo_beta_0.toml"], ids["4_best_of_n.toml"]
    # PPO logs the trust-region metric at each evaluation, beside proxy, gold and KL
    for key in ("eval/reward_mean", "eval/oracle_score", "eval/kl", "rm/decided_pairs"):
        assert len(metric(store, ppo, key)) == 4, key  # before training and after each of 3 iterations
    # agreement is logged exactly at the evaluations where the oracle decided some pair (a 30-step
    # SFT policy rarely writes a lexicon word)
    decided_at = [step for step, count in metric(store, ppo, "rm/decided_pairs") if count > 0]
    assert [step for step, _ in metric(store, ppo, "rm/agreement_with_gold")] == decided_at
    # best-of-N: the analytic KL at every n of its curve, the headline at N
    assert [(s, round(v, 9)) for s, v in metric(store, bon, "eval/kl")] == [(n, round(best_of_n_kl(n), 9)) for n in (1, 2, 4, 8)]
    with store.read() as s:
        summary = s.get(Run, bon).summary
        kept = s.scalars(select(Episode).where(Episode.run_id == bon)).all()
    assert summary["n"] == 8 and summary["kl"] == round(best_of_n_kl(8), 4)
    assert len(kept) == 8 and all(e.oracle_score is not None and e.phase == "eval" for e in kept)
    # the proxy of the kept response is the best of its N: never below the N = 1 mean on average
    assert summary["final_reward_mean"] >= summary["sft_reward_mean"]
    # the lab's episode list carries the gold, so it can rank the hacks first
    with store.read() as s:
        rows = episode_rows(s, ppo)
    evals = [r for r in rows if r["phase"] == "eval"]
    assert evals and all(r["oracle_score"] is not None for r in evals)
    ranked = by_proxy_gold_gap(rows)
    gaps = [r["return"] - r["oracle_score"] for r in ranked if r["oracle_score"] is not None]
    assert gaps == sorted(gaps, reverse=True)


async def test_the_episodes_tab_ranks_the_responses_that_fool_the_reward_model(store):
    """In the lab: an LM run's Episodes tab shows gold and proxy − gold, and `o` ranks by the gap."""
    from rltui.config import load_config_text
    from rltui.recorder import StoreRecorder
    from rltui.store.models import COMPLETED
    from rltui.tui.screens.run import RunScreen

    from test_tui_common import make_app, settle

    run_id = create_run(store, load_config_text('[env]\nid = "lm-reviews"\n[algo]\nid = "best_of_n"'), status=COMPLETED)
    rec = StoreRecorder(store, run_id)
    proxy_gold = [(0.5, 1.0), (3.0, -2.0), (2.0, 1.0), (1.0, 1.5)]  # gaps −0.5, 5, 1, −0.5
    for i, (proxy, gold) in enumerate(proxy_gold):
        rec.episode(i, proxy, 10, phase="eval", step=i, oracle_score=gold)
    rec.close()

    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(RunScreen(run_id))
        await settle(pilot, 3)
        screen = app.screen
        await pilot.press("3")
        await settle(pilot)
        table = screen.episodes_table
        assert [str(c.label) for c in table.columns.values()][2:5] == ["Return G", "Gold", "Proxy − gold"]
        in_time_order = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert in_time_order == ["0", "1", "2", "3"]
        await pilot.press("o")
        await settle(pilot)
        ranked = [(table.get_row_at(i)[0].plain, table.get_row_at(i)[4].plain) for i in range(table.row_count)]
        assert [index for index, _gap in ranked][:2] == ["1", "2"]  # the hack (gap 5) first, then gap 1
        assert float(ranked[0][1]) == 5.0  # its proxy − gold cell
        await pilot.press("o")
        await settle(pilot)
        assert [table.get_row_at(i)[0].plain for i in range(table.row_count)] == ["0", "1", "2", "3"]
