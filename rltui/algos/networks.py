"""Small networks for deep RL: an MLP, Q(s,·), and categorical / Gaussian policy heads.

Policies return log π(a|s) and the entropy without building torch.distributions objects in the hot
loop (their argument validation costs more than the maths on tiny batches); the Gaussian log-density is
checked against torch.distributions in tests/test_deep_networks.py.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
LOG_2PI = math.log(2.0 * math.pi)


def mlp(in_dim: int, hidden: list[int], out_dim: int, activation: str = "tanh", out_gain: float = 1.0) -> nn.Sequential:
    """Linear layers with orthogonal init (√2 gain inside, `out_gain` on the last), as in CleanRL/SB3."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [_ortho(nn.Linear(last, width), math.sqrt(2.0)), ACTIVATIONS[activation]()]
        last = width
    layers.append(_ortho(nn.Linear(last, out_dim), out_gain))
    return nn.Sequential(*layers)


def _ortho(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class QNetwork(nn.Module):
    """s ↦ Q(s,·): one forward pass scores every action."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: list[int], activation: str = "relu") -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, n_actions, activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(a; μ, σ²) summed over action dimensions (independent Gaussians)."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor, batch_shape: torch.Size) -> torch.Tensor:
    return (log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1).expand(batch_shape)


class ActorCritic(nn.Module):
    """π(a|s) and V(s) as two separate MLPs (SB3's default for MLP policies).

    Discrete actions: a categorical head over logits. Continuous actions: a Gaussian with a learned,
    state-independent log σ. `critic=False` builds a policy only (REINFORCE without baseline).
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int | None,
        action_dim: int | None,
        hidden: list[int],
        activation: str = "tanh",
        log_std_init: float = 0.0,
        critic: bool = True,
    ) -> None:
        super().__init__()
        self.discrete = n_actions is not None
        out = n_actions if self.discrete else action_dim
        assert out is not None
        self.actor = mlp(obs_dim, hidden, out, activation, out_gain=0.01)
        self.critic = mlp(obs_dim, hidden, 1, activation, out_gain=1.0) if critic else None
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((out,), float(log_std_init)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        assert self.critic is not None
        return self.critic(obs).squeeze(-1)

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample (or pick the mode of) a ~ π(·|s); returns (action, log π(a|s))."""
        out = self.actor(obs)
        if self.discrete:
            logp_all = torch.log_softmax(out, -1)
            if deterministic:
                action = logp_all.argmax(-1)
            else:
                action = torch.multinomial(logp_all.exp(), 1).squeeze(-1)
            return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        log_std = self.log_std.expand_as(out)
        action = out if deterministic else out + torch.randn_like(out) * log_std.exp()
        return action, gaussian_log_prob(action, out, log_std)

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π(a|s), entropy of π(·|s)) for a batch of taken actions."""
        out = self.actor(obs)
        if self.discrete:
            logp_all = torch.log_softmax(out, -1)
            logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return logp, entropy
        log_std = self.log_std.expand_as(out)
        return gaussian_log_prob(actions, out, log_std), gaussian_entropy(self.log_std, out.shape[:-1])

    def probs(self, obs: torch.Tensor) -> torch.Tensor:
        """π(·|s) for a discrete policy; (μ, σ) concatenated for a Gaussian one (what replay shows)."""
        out = self.actor(obs)
        if self.discrete:
            return torch.softmax(out, -1)
        return torch.cat([out, self.log_std.exp().expand_as(out)], -1)
