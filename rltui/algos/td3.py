"""TD3 (Fujimoto et al. 2018): a deterministic actor μ(s) with twin Q critics, delayed policy updates
and target policy smoothing; SAC's machinery (rltui/algos/continuous.py) with its own update.

    ε ~ clip(N(0, σ_target²), −c, c),  a' = clip(μ_targ(s') + ε, −1, 1)      (target smoothing)
    y   = r + γ (1 − terminated) min_j Q_targ_j(s', a')
    L_Q = ½ Σ_j mean((Q_j(s, a) − y)²)
    every policy_delay updates:  L_μ = −mean(Q_1(s, μ(s))),  then θ_targ ← τ θ + (1 − τ) θ_targ
                                 for the actor and both critics
    exploration: a = clip(μ(s) + N(0, action_noise²), −1, 1)

Actions are in [−1, 1] inside (noise scales too): the env gets them mapped onto its [low, high].
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from rltui.algos.buffers import TransitionBatch
from rltui.algos.continuous import apply_gradients, continuous_env, critic_step, polyak, train_off_policy
from rltui.algos.networks import DeterministicActor, TwinQ, adam
from rltui.recorder import Recorder


class TD3:
    def __init__(self, obs_dim: int, action_dim: int, params: Any, gamma: float, dev: torch.device) -> None:
        self.params, self.gamma = params, gamma
        self.actor = DeterministicActor(obs_dim, action_dim, params.net_arch, params.activation, params.init).to(dev)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = TwinQ(obs_dim, action_dim, params.net_arch, params.activation, params.init).to(dev)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_params, self.critic_params = list(self.actor.parameters()), list(self.critic.parameters())
        self.actor_opt = adam(self.actor_params, params.learning_rate)
        self.critic_opt = adam(self.critic_params, params.learning_rate)
        self._actor_loss = torch.zeros((), device=dev)

    def modules(self) -> dict[str, Any]:
        return {"actor": self.actor, "actor_target": self.actor_target, "critic": self.critic,
                "critic_target": self.critic_target, "actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    def policy(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic}

    def upgrade_checkpoint(self, restored: dict[str, Any]) -> None:
        """TD3's checkpoint layout has not changed: nothing to map."""

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.actor(obs)
        return (a + torch.randn_like(a) * self.params.action_noise).clamp(-1.0, 1.0)

    def act(self, obs: torch.Tensor, with_extras: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        action = self.actor(obs)
        return action, ({"mu": action, "Q": self.critic(obs, action).min(0).values} if with_extras else {})

    def target(self, b: TransitionBatch) -> torch.Tensor:
        """y = r + γ (1 − terminated) min_j Q_targ_j(s', clip(μ_targ(s') + clipped noise, −1, 1))."""
        a, _ = self.actor_target.taped(b.next_obs)  # taped: the forward pass without an autograd graph
        noise = (torch.randn_like(a) * self.params.target_policy_noise).clamp(-self.params.target_noise_clip,
                                                                               self.params.target_noise_clip)
        q_next, _ = self.critic_target.taped(b.next_obs, (a + noise).clamp(-1.0, 1.0))
        return b.rewards + self.gamma * (1.0 - b.terminated) * q_next.min(0).values

    def update(self, b: TransitionBatch, update_index: int) -> dict[str, torch.Tensor]:
        """The gradients are written out (rltui/algos/backprop.py): they are autograd's, without its graph."""
        q, critic_loss = critic_step(self.critic, self.critic_opt, self.critic_params, b, self.target(b), self.params.max_grad_norm)

        if (update_index + 1) % self.params.policy_delay == 0:  # delayed policy update
            # L_μ = −mean(Q_1(s, μ(s))) through the updated critic, held fixed:
            #   ∂L_μ/∂μ(s) = −(1/batch) ∂Q_1(s, a)/∂a at a = μ(s), then back through μ
            action, actor_tape = self.actor.taped(b.obs)
            q1, q1_tape = self.critic.taped(b.obs, action, twins=1)
            d_action = self.critic.action_grad(q1_tape, torch.full_like(q1[0], -1.0 / q1.shape[1]), action.shape[1])
            self.actor.backward(actor_tape, d_action)
            apply_gradients(self.actor_opt, self.actor_params, self.params.max_grad_norm)
            self._actor_loss = -q1.mean()
            polyak(self.actor_target, self.actor, self.params.tau)
            polyak(self.critic_target, self.critic, self.params.tau)
        return {"critic_loss": critic_loss, "actor_loss": self._actor_loss, "q_values": q.mean()}


def train(env: Any, params: Any, recorder: Recorder, *, seed: int, device: str) -> dict[str, Any]:
    env, dev, probe = continuous_env(env, params, device, "TD3")
    return train_off_policy(env, params, recorder, seed, dev, TD3(probe.obs_dim, probe.action_dim, params, env.gamma, dev))
