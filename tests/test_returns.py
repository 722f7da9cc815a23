"""Returns-to-go and GAE(λ) against values worked out by hand (numpy and torch alike)."""

import numpy as np
import pytest
import torch

from rltui.algos.returns import discounted_returns, gae, normalize


def test_returns_to_go_restart_after_terminal():
    # r = 1, 2, 3 | 4, 5 ; episode ends after step 2 (terminal); γ = 0.5
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    dones = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    g = discounted_returns(rewards, dones, 0.5, last_value=10.0)
    # second episode not finished: G_4 = 5 + 0.5·10 = 10, G_3 = 4 + 0.5·10 = 9
    # first episode: G_2 = 3 (nothing past a terminal), G_1 = 2 + 1.5 = 3.5, G_0 = 1 + 1.75 = 2.75
    np.testing.assert_allclose(g, [2.75, 3.5, 3.0, 9.0, 10.0])


def test_returns_to_go_torch_matches_numpy():
    r = np.array([1.0, 0.0, -1.0, 2.0], np.float32)
    d = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
    g_np = discounted_returns(r, d, 0.9, 0.0)
    g_t = discounted_returns(torch.from_numpy(r), torch.from_numpy(d), 0.9, 0.0)
    np.testing.assert_allclose(g_t.numpy(), g_np, rtol=1e-6)
    np.testing.assert_allclose(g_np, [1.0, 0.0, -1.0 + 0.9 * 2.0, 2.0], rtol=1e-6)


def _gae_case(terminated_last: float, truncated_last: float):
    # Two steps of one episode; V(s0)=1, V(s1)=2, V(s2)=4 (s2 reached by the final step).
    rewards = np.array([1.0, 1.0])
    values = np.array([1.0, 2.0])
    next_values = np.array([2.0, 4.0])
    terminated = np.array([0.0, terminated_last])
    ends = np.array([0.0, max(terminated_last, truncated_last)])
    return gae(rewards, values, next_values, terminated, ends, gamma=0.5, lam=0.5)


def test_gae_terminal_does_not_bootstrap():
    adv, ret = _gae_case(terminated_last=1.0, truncated_last=0.0)
    # δ1 = 1 + 0 − 2 = −1 ; δ0 = 1 + 0.5·2 − 1 = 1 ; A1 = −1 ; A0 = 1 + 0.25·(−1) = 0.75
    np.testing.assert_allclose(adv, [0.75, -1.0])
    np.testing.assert_allclose(ret, [1.75, 1.0])


def test_gae_truncation_bootstraps_final_value():
    adv, ret = _gae_case(terminated_last=0.0, truncated_last=1.0)
    # δ1 = 1 + 0.5·4 − 2 = 1 ; A1 = 1 ; A0 = 1 + 0.25·1 = 1.25
    np.testing.assert_allclose(adv, [1.25, 1.0])
    np.testing.assert_allclose(ret, [2.25, 3.0])


def test_gae_stops_at_episode_boundary_and_lambda_one_is_monte_carlo():
    rewards = np.array([1.0, 1.0, 1.0])
    values = np.array([0.5, 0.5, 0.5])
    next_values = np.array([0.5, 9.0, 0.5])  # 9.0: V of the final observation of a truncated episode
    terminated = np.array([0.0, 0.0, 1.0])
    ends = np.array([0.0, 1.0, 1.0])  # step 1 truncated, step 2 terminal (a new episode)
    adv, ret = gae(rewards, values, next_values, terminated, ends, gamma=0.9, lam=1.0)
    # λ = 1: returns are Monte-Carlo returns bootstrapped at truncation only
    np.testing.assert_allclose(ret, [1 + 0.9 * (1 + 0.9 * 9.0), 1 + 0.9 * 9.0, 1.0])
    np.testing.assert_allclose(adv, ret - values)


def test_gae_torch_2d_envs():
    rewards = torch.ones(3, 2)
    values = torch.zeros(3, 2)
    next_values = torch.zeros(3, 2)
    zeros = torch.zeros(3, 2)
    adv, _ = gae(rewards, values, next_values, zeros, zeros, gamma=1.0, lam=1.0)
    assert torch.allclose(adv[:, 0], torch.tensor([3.0, 2.0, 1.0]))
    assert torch.allclose(adv[:, 1], adv[:, 0])


def test_normalize():
    x = np.array([1.0, 2.0, 3.0])
    assert normalize(x).mean() == pytest.approx(0.0)
    assert normalize(x).std() == pytest.approx(1.0, rel=1e-6)
