"""The LM algorithms' math against values computed by hand."""

from __future__ import annotations

import math

import torch

from rltui.algos.dpo import dpo_loss
from rltui.algos.grpo import group_advantages
from rltui.algos.lm_common import masked_mean, masked_whiten, token_gae


def test_token_gae_gamma_one_by_hand():
    # two responses: lengths 3 and 2 (the last column of the second is padding)
    rewards = torch.tensor([[0.0, -0.1, 1.0], [0.5, 2.0, 0.0]])
    values = torch.tensor([[0.2, 0.4, 0.6], [1.0, 1.5, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    lam = 0.5
    adv, ret = token_gae(rewards, values, mask, gamma=1.0, lam=lam)
    # row 0: δ2 = 1 − 0.6 = 0.4 (terminal after it); δ1 = −0.1 + 0.6 − 0.4 = 0.1; δ0 = 0 + 0.4 − 0.2 = 0.2
    a2 = 0.4
    a1 = 0.1 + lam * a2
    a0 = 0.2 + lam * a1
    # row 1: δ1 = 2 − 1.5 = 0.5 (the padded V = 9 is never bootstrapped); δ0 = 0.5 + 1.5 − 1 = 1.0
    b1 = 0.5
    b0 = 1.0 + lam * b1
    expected = torch.tensor([[a0, a1, a2], [b0, b1, 0.0]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + values * mask, atol=1e-6)
    # λ = 1, γ = 1: the advantage is the return-to-go minus V
    adv1, _ = token_gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(adv1[0], torch.tensor([0.9 - 0.2, 0.9 - 0.4, 1.0 - 0.6]), atol=1e-6)


def test_masked_stats_ignore_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    m = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    assert masked_mean(x, m) == 2.0
    w = masked_whiten(x, m)
    assert torch.allclose(w, torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-4)


def test_dpo_loss_by_hand():
    beta = 0.1
    pc, pr = torch.tensor([-3.0, -5.0]), torch.tensor([-4.0, -2.0])
    rc, rr = torch.tensor([-3.5, -4.0]), torch.tensor([-3.0, -2.5])
    loss, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta)
    # pair 0: β[(−3 + 3.5) − (−4 + 3)] = 0.1 · 1.5 = 0.15; pair 1: 0.1 · [(−1) − (0.5)] = −0.15
    z = [0.15, -0.15]
    by_hand = sum(-math.log(1 / (1 + math.exp(-v))) for v in z) / 2
    assert abs(loss.item() - by_hand) < 1e-6
    assert torch.allclose(chosen, torch.tensor([0.05, -0.1])) and torch.allclose(rejected, torch.tensor([-0.1, 0.05]))
    # policy == reference: every implicit reward is 0 and the loss is log 2
    loss0, _, _ = dpo_loss(pc, pr, pc, pr, beta)
    assert abs(loss0.item() - math.log(2)) < 1e-7


def test_group_advantages_by_hand():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    adv = group_advantages(scores, 4, eps=0.0 + 1e-12)
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]
    assert torch.allclose(adv[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / std, atol=1e-5)
    assert torch.all(adv[4:] == 0)  # a group that agrees teaches nothing
