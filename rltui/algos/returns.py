"""Return and advantage math shared by REINFORCE, PPO, GRPO and the LM lab.

Works on numpy arrays and torch tensors alike (only indexing and arithmetic), time along axis 0.

Termination vs truncation: a terminal state has value 0, so nothing is bootstrapped past it; a
time-limit truncation is not terminal, so the value of the state reached is bootstrapped.
"""

from __future__ import annotations

from typing import Any

Array = Any  # numpy.ndarray or torch.Tensor


def discounted_returns(rewards: Array, dones: Array, gamma: float, last_value: Array | float = 0.0) -> Array:
    """Return-to-go G_t = r_{t+1} + γ G_{t+1}, restarting after each done (episode end).

    rewards[t] is the reward received after acting at t; dones[t] is 1 when that step ended the
    episode (terminated). `last_value` bootstraps past the final step when it did not end.
    """
    returns = rewards * 0.0
    running = last_value
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running * (1.0 - dones[t])
        returns[t] = running
    return returns


def gae(
    rewards: Array,
    values: Array,
    next_values: Array,
    terminated: Array,
    episode_ends: Array,
    gamma: float,
    lam: float,
) -> tuple[Array, Array]:
    """Generalised advantage estimation (Schulman et al. 2016).

        δ_t = r_t + γ (1 - terminated_t) V(s_{t+1}) - V(s_t)
        A_t = δ_t + γ λ (1 - episode_end_t) A_{t+1}

    `next_values[t]` is V of the state reached after step t (for a truncated step: the true final
    observation's value, not the reset one). `terminated[t]` masks the bootstrap: 1 only when s_{t+1}
    is terminal. `episode_ends[t]` (terminated or truncated) stops the advantage recursion so
    credit never flows across episodes. Returns (advantages, returns = advantages + values).
    """
    advantages = rewards * 0.0
    next_advantage = rewards[0] * 0.0
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * (1.0 - terminated[t]) * next_values[t] - values[t]
        next_advantage = delta + gamma * lam * (1.0 - episode_ends[t]) * next_advantage
        advantages[t] = next_advantage
    return advantages, advantages + values


def normalize(x: Array, eps: float = 1e-8) -> Array:
    return (x - x.mean()) / (x.std() + eps)
