"""SAC (Haarnoja et al. 2018, with automatic entropy tuning): maximise return plus α times the policy's
entropy, off-policy, with twin Q critics and Polyak-averaged targets.

    a' ~ π(·|s'),  y = r + γ (1 − terminated) (min_j Q_targ_j(s', a') − α log π(a'|s'))
    L_Q  = ½ Σ_j mean((Q_j(s, a) − y)²)
    ã ~ π(·|s) (reparameterised),  L_π = mean(α log π(ã|s) − min_j Q_j(s, ã))
    L_α  = −mean(log α · (log π(ã|s) + H_target))         H_target = −dim(A) by default
    θ_targ ← τ θ + (1 − τ) θ_targ                          every update

π is a tanh-squashed Gaussian (networks.SquashedGaussianActor, with the change-of-variables term in
log π). The loop, replay and scaling to the env's bounds are rltui/algos/continuous.py's (shared with TD3).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from rltui.algos.buffers import TransitionBatch
from rltui.algos.continuous import continuous_env, critic_step, polyak, step, train_off_policy
from rltui.algos.networks import SquashedGaussianActor, TwinQ, adam
from rltui.recorder import Recorder


class Temperature(nn.Module):
    """α = exp(log α), learned (automatic entropy tuning) or fixed."""

    def __init__(self, alpha: float, learn: bool) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(float(alpha)).log(), requires_grad=learn)

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()


class SAC:
    def __init__(self, obs_dim: int, action_dim: int, params: Any, gamma: float, dev: torch.device) -> None:
        self.params, self.gamma = params, gamma
        self.actor = SquashedGaussianActor(obs_dim, action_dim, params.net_arch, params.activation, params.init).to(dev)
        self.critic = TwinQ(obs_dim, action_dim, params.net_arch, params.activation, params.init).to(dev)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        auto = params.ent_coef is None
        self.temperature = Temperature(params.ent_coef_init if auto else float(params.ent_coef), learn=auto).to(dev)
        self.target_entropy = -float(action_dim) if params.target_entropy is None else params.target_entropy
        self.actor_params = list(self.actor.parameters())
        self.critic_params = list(self.critic.parameters())
        # log α shares the actor's Adam (the same step size): Adam treats every parameter on its own, so
        # this is two optimizers' arithmetic in one step, and L_π and L_α share no parameter
        self.alpha_params = (self.temperature.log_alpha,) if auto else ()
        self.actor_opt = adam([*self.actor_params, *self.alpha_params], params.learning_rate)
        self.critic_opt = adam(self.critic_params, params.learning_rate)

    def modules(self) -> dict[str, Any]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "temperature": self.temperature, "actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    def policy(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic}  # the critic too: replay shows Q(s, a)

    def upgrade_checkpoint(self, restored: dict[str, Any]) -> None:
        """A checkpoint from before log α joined the actor's Adam holds α's own Adam as "alpha_opt": its
        state becomes actor_opt's last parameter's. Adam's state is per parameter (step, first and second
        moments), so the resumed run continues exactly as the two optimizers would have."""
        alpha_opt = restored.pop("alpha_opt", None)
        if alpha_opt is None or not self.alpha_params:
            return
        actor_opt = restored["actor_opt"]
        n = len(self.actor_params)
        group, alpha_group = actor_opt["param_groups"][0], alpha_opt["param_groups"][0]
        if len(actor_opt["param_groups"]) != 1 or len(group["params"]) != n or len(alpha_group["params"]) != 1:
            raise ValueError("this run's last checkpoint holds optimizers of another network shape (actor_opt, "
                             "alpha_opt) and cannot resume; start a new run from its config")
        state = dict(actor_opt["state"])
        if alpha_group["params"][0] in alpha_opt["state"]:  # absent when α's Adam had not stepped yet
            state[n] = alpha_opt["state"][alpha_group["params"][0]]
        restored["actor_opt"] = {"state": state, "param_groups": [{**group, "params": [*group["params"], n]}]}

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """a = tanh(μ + σ ε), ε ~ N(0, I): a sample of π, without the log-probability acting never uses."""
        mu, log_std = self.actor.gaussian(obs)
        return torch.tanh(mu + torch.randn_like(mu) * log_std.exp())

    def act(self, obs: torch.Tensor, with_extras: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The deterministic action tanh(μ), with μ, σ of the Gaussian before the squash and Q(s, a)."""
        mu, log_std = self.actor.gaussian(obs)
        action = torch.tanh(mu)
        if not with_extras:
            return action, {}
        return action, {"mu": mu, "sigma": log_std.exp(), "Q": self.critic(obs, action).min(0).values}

    def target(self, b: TransitionBatch) -> torch.Tensor:
        """y = r + γ (1 − terminated) (min_j Q_targ_j(s', a') − α log π(a'|s')), a' ~ π(·|s')."""
        with torch.no_grad():
            a_next, logp_next = self.actor.sample(b.next_obs)
            q_next, _ = self.critic_target.taped(b.next_obs, a_next)  # taped: no autograd graph to build
            q_next = q_next.min(0).values - self.temperature() * logp_next
            return b.rewards + self.gamma * (1.0 - b.terminated) * q_next

    def update(self, b: TransitionBatch, update_index: int) -> dict[str, torch.Tensor]:
        q, critic_loss = critic_step(self.critic, self.critic_opt, self.critic_params, b, self.target(b), self.params.max_grad_norm)

        # the actor's step through the updated critic, which is held fixed (gradients reach only the actor
        # and log α); α is the value before this step's temperature update
        action, logp = self.actor.sample(b.obs)
        alpha = self.temperature().detach()
        actor_loss = (alpha * logp - self.critic(b.obs, action, fixed=True).min(0).values).mean()
        stats = {"critic_loss": critic_loss, "actor_loss": actor_loss.detach(), "ent_coef": alpha,
                 "entropy": -logp.detach().mean(), "q_values": q.mean()}
        loss = actor_loss
        if self.alpha_params:
            alpha_loss = -(self.temperature.log_alpha * (logp.detach() + self.target_entropy)).mean()
            stats["ent_coef_loss"] = alpha_loss.detach()
            loss = actor_loss + alpha_loss  # one backward: each loss has its own parameters
        step(self.actor_opt, loss, self.actor_params, self.params.max_grad_norm, also=self.alpha_params)
        polyak(self.critic_target, self.critic, self.params.tau)
        return stats


def train(env: Any, params: Any, recorder: Recorder, *, seed: int, device: str) -> dict[str, Any]:
    env, dev, probe = continuous_env(env, params, device, "SAC")
    agent = SAC(probe.obs_dim, probe.action_dim, params, env.gamma, dev)
    return train_off_policy(env, params, recorder, seed, dev, agent)
