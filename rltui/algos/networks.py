"""Small networks for deep RL: an MLP, convolutional torsos for frames (MinAtar's, the Nature DQN's),
Q(s,·), and categorical / Gaussian policy heads.

Policies return log π(a|s) and the entropy without building torch.distributions objects in the hot
loop (their argument validation costs more than the maths on tiny batches); the Gaussian log-density is
checked against torch.distributions in tests/test_deep_networks.py.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from rltui.algos import backprop
from rltui.algos.dense import Linear, twin_linear

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
LOG_2PI = math.log(2.0 * math.pi)


def mlp(in_dim: int, hidden: list[int], out_dim: int, activation: str = "tanh", out_gain: float = 1.0,
        init: str = "orthogonal") -> nn.Sequential:
    """Linear layers, initialised as `init` says (orthogonal: √2 gain inside, `out_gain` on the last)."""
    body = torso(in_dim, hidden, activation, init)
    return nn.Sequential(*body, _init(Linear(hidden[-1] if hidden else in_dim, out_dim), out_gain, init))


def torso(in_dim: int, hidden: list[int], activation: str = "tanh", init: str = "orthogonal") -> nn.Sequential:
    """The hidden layers of an MLP (each Linear, initialised as `init` says, then the activation)."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [_init(Linear(last, width), math.sqrt(2.0), init), ACTIVATIONS[activation]()]
        last = width
    return nn.Sequential(*layers)


def _init(layer: nn.Module, gain: float, init: str) -> Any:
    """How a layer starts: "orthogonal" (the gain given, zero bias: CleanRL's and SB3's on-policy init) or
    "torch" (nn.Linear's own U(±1/√fan_in), weights and biases: SB3's SAC and TD3, the TD3 authors' code)."""
    return _ortho(layer, gain) if init == "orthogonal" else layer


class ConvTorso(nn.Module):
    """MinAtar's network body (Young & Tian 2019) for (H, W, C) frames: one 3×3 convolution with 16
    filters, stride 1, no padding, ReLU; flattened to 16·(H−2)·(W−2) features; then the dense `hidden`
    layers (MinAtar's: one of 128, ReLU). Frames arrive in the env's own dtype (bool, uint8) and become
    float here, on the device, only for the forward pass."""

    def __init__(self, obs_shape: tuple[int, ...], hidden: list[int], activation: str = "relu", filters: int = 16) -> None:
        super().__init__()
        height, width, channels = obs_shape
        if height < 3 or width < 3:
            raise ValueError(f"a 3x3 convolution needs frames of at least 3x3, got {height}x{width}")
        self.conv = _ortho(nn.Conv2d(channels, filters, kernel_size=3, stride=1), math.sqrt(2.0))
        flat = filters * (height - 2) * (width - 2)
        self.dense = torso(flat, hidden, activation)
        self.out_dim = hidden[-1] if hidden else flat

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.to(torch.float32).permute(0, 3, 1, 2)  # (B, H, W, C) → (B, C, H, W)
        return self.dense(torch.relu(self.conv(x)).flatten(1))


class NatureTorso(nn.Module):
    """DQN's Atari network body (Mnih et al. 2015) for (84, 84, stack) uint8 frames scaled by 1/255:
    32 8×8 filters stride 4, 64 4×4 stride 2, 64 3×3 stride 1, ReLU each; then the dense `hidden`
    layers (the paper's: one of 512, ReLU)."""

    def __init__(self, obs_shape: tuple[int, ...], hidden: list[int], activation: str = "relu") -> None:
        super().__init__()
        height, width, channels = obs_shape
        layers: list[nn.Module] = []
        last = channels
        for filters, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            layers += [_ortho(nn.Conv2d(last, filters, kernel, stride), math.sqrt(2.0)), nn.ReLU()]
            last = filters
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, channels, height, width)).numel()
        self.dense = torso(flat, hidden, activation)
        self.out_dim = hidden[-1] if hidden else flat

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.to(torch.float32).permute(0, 3, 1, 2) * (1.0 / 255.0)  # gray levels 0..255 -> [0, 1]
        return self.dense(self.convs(x).flatten(1))


NATURE_MIN_SIZE = 36  # the Nature network's three convolutions need frames of at least 36×36


def image_torso(obs_shape: tuple[int, ...], hidden: list[int], activation: str = "relu") -> ConvTorso | NatureTorso:
    """The torso for (H, W, C) frames: MinAtar's one small convolution for small grids of object
    channels (10×10 MinAtar frames), the Nature DQN network for Atari-sized frames (84×84)."""
    if min(obs_shape[0], obs_shape[1]) >= NATURE_MIN_SIZE:
        return NatureTorso(obs_shape, hidden, activation)
    return ConvTorso(obs_shape, hidden, activation)


def is_image(obs_shape: int | tuple[int, ...]) -> bool:
    """Whether observations of this shape are (H, W, C) frames (a convolutional torso) or flat vectors (an MLP)."""
    return not isinstance(obs_shape, int) and len(obs_shape) == 3


def _ortho(layer: nn.Module, gain: float) -> Any:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActionMask(nn.Module):
    """Which actions a tabular state allows, read off its one-hot observation: available[argmax(obs)].

    A state with no available action (a terminal one, seen only as s' of a last step) allows them
    all: its values are masked by (1 − terminated) anyway, and −inf there would make 0·(−inf) = NaN.
    """

    def __init__(self, available: Any) -> None:
        super().__init__()
        table = torch.as_tensor(available, dtype=torch.bool)
        table = table | ~table.any(-1, keepdim=True)
        self.register_buffer("table", table, persistent=False)  # not in state dicts: it is the env's, not learned

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.table[obs.argmax(-1)]


def action_mask(available: Any) -> ActionMask | None:
    """An ActionMask when some non-terminal state forbids some action; None when every action is always
    allowed (then nothing is masked, at no cost)."""
    if available is None:
        return None
    table = torch.as_tensor(available, dtype=torch.bool)
    live = table.any(-1)
    return None if bool(table[live].all()) else ActionMask(table)


def masked(scores: torch.Tensor, obs: torch.Tensor, mask: ActionMask | None) -> torch.Tensor:
    """Scores (Q-values or logits) with unavailable actions at −inf: never the argmax, never sampled."""
    return scores if mask is None else scores.masked_fill(~mask(obs), float("-inf"))


class QNetwork(nn.Module):
    """s ↦ Q(s,·): one forward pass scores every action; an unavailable action scores −inf, so the
    greedy action and max_a' Q(s', a') range over the available actions only.

    The body follows the observation's shape: an MLP for a vector (`obs_shape` an int or (n,)), an
    image torso (image_torso: MinAtar's or the Nature network) then a linear head for an (H, W, C) frame."""

    def __init__(self, obs_shape: int | tuple[int, ...], n_actions: int, hidden: list[int], activation: str = "relu",
                 available: Any = None) -> None:
        super().__init__()
        if is_image(obs_shape):
            body = image_torso(tuple(obs_shape), hidden, activation)  # type: ignore[arg-type]
            self.net = nn.Sequential(body, _ortho(nn.Linear(body.out_dim, n_actions), 1.0))
        else:
            obs_dim = obs_shape if isinstance(obs_shape, int) else int(obs_shape[0])
            self.net = mlp(obs_dim, hidden, n_actions, activation)
        self.mask = action_mask(available)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return masked(self.net(obs), obs, self.mask)


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(a; μ, σ²) summed over action dimensions (independent Gaussians)."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor, batch_shape: torch.Size) -> torch.Tensor:
    return (log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1).expand(batch_shape)


class TwinMLP(nn.Module):
    """Two MLPs of the same shape (the actor's and the critic's) evaluated as one chain of batched
    matmuls: x ↦ (2, batch, out). Mathematically two independent networks; half the kernel launches
    and autograd nodes, which is most of the cost for small MLPs on a CPU."""

    def __init__(self, in_dim: int, hidden: list[int], out_dims: tuple[int, int], activation: str, out_gains: tuple[float, float],
                 init: str = "orthogonal") -> None:
        super().__init__()
        dims = [in_dim, *hidden, max(out_dims)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for k, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            last = k == len(dims) - 2
            w = torch.zeros(2, d_in, d_out)
            for twin in range(2):
                width = out_dims[twin] if last else d_out
                gain = out_gains[twin] if last else math.sqrt(2.0)
                block = torch.empty(width, d_in)
                if init == "orthogonal":
                    nn.init.orthogonal_(block, gain)
                else:  # nn.Linear's own reset: U(±1/√fan_in), weights and biases
                    nn.init.kaiming_uniform_(block, a=math.sqrt(5))
                w[twin, :, :width] = block.T
            self.weights.append(nn.Parameter(w))
            b = torch.zeros(2, 1, d_out)
            if init == "torch":
                b.uniform_(-1.0 / math.sqrt(d_in), 1.0 / math.sqrt(d_in))
            self.biases.append(nn.Parameter(b))
        self.act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
        self._cache: tuple[list[nn.Parameter], list[nn.Parameter]] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(2, *x.shape)
        if self._cache is None:  # ParameterList indexing is slow; the Parameter objects never change
            self._cache = (list(self.weights), list(self.biases))
        weights, biases = self._cache
        for w, b in zip(weights[:-1], biases[:-1]):
            h = self.act(torch.baddbmm(b, h, w))
        return torch.baddbmm(biases[-1], h, weights[-1])


class ActorCritic(nn.Module):
    """π(a|s) and V(s) as two separate MLPs of the same shape (SB3's default for MLP policies),
    evaluated together by a TwinMLP.

    Discrete actions: a categorical head over logits. Continuous actions: a Gaussian with a learned,
    state-independent log σ. `critic=False` builds a policy only (REINFORCE without baseline).
    An (H, W, C) frame observation (`obs_dim` a shape) gets one image torso under both heads, as the
    Atari actor-critics share their convolutional body.
    """

    def __init__(
        self,
        obs_dim: int | tuple[int, ...],
        n_actions: int | None,
        action_dim: int | None,
        hidden: list[int],
        activation: str = "tanh",
        log_std_init: float = 0.0,
        critic: bool = True,
        available: Any = None,
        shared: bool = False,
    ) -> None:
        super().__init__()
        self.discrete = n_actions is not None
        self.mask = action_mask(available) if self.discrete else None  # unavailable actions: logit −inf
        out = n_actions if self.discrete else action_dim
        assert out is not None
        self.n_out = out
        self.has_critic = critic
        image = is_image(obs_dim)
        if not image and not isinstance(obs_dim, int):
            obs_dim = int(obs_dim[0])
        self.shared = (shared or image) and critic
        if self.shared:  # one torso, two linear heads (the A3C paper's network)
            self.body = image_torso(obs_dim, hidden, activation) if image else torso(obs_dim, hidden, activation)  # type: ignore[arg-type]
            width = self.body.out_dim if image else (hidden[-1] if hidden else obs_dim)
            self.pi_head = _ortho(nn.Linear(width, out), 0.01)
            self.v_head = _ortho(nn.Linear(width, 1), 1.0)
        elif critic:
            self.body = TwinMLP(obs_dim, hidden, (out, 1), activation, (0.01, 1.0))
        else:
            self.body = mlp(obs_dim, hidden, out, activation, out_gain=0.01)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((out,), float(log_std_init)))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(actor output: logits (−inf where unavailable) or Gaussian mean, V(s) or None)."""
        if not self.has_critic:
            return masked(self.body(obs), obs, self.mask), None
        if self.shared:
            h = self.body(obs)
            return masked(self.pi_head(h), obs, self.mask), self.v_head(h).squeeze(-1)
        both = self.body(obs)
        return masked(both[0, :, : self.n_out], obs, self.mask), both[1, :, 0]

    def actor_out(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs)[0]

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        value = self(obs)[1]
        assert value is not None, "this policy has no critic"
        return value

    def _sample(self, out: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
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

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample (or pick the mode of) a ~ π(·|s); returns (action, log π(a|s))."""
        return self._sample(self(obs)[0], deterministic)

    def act_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a ~ π(·|s), log π(a|s), V(s)) from one forward pass: the rollout's step."""
        out, value = self(obs)
        action, logp = self._sample(out, False)
        return action, logp, value

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor, with_entropy: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(log π(a|s), entropy of π(·|s) or None when not asked for, V(s) or None) for a batch of taken
        actions. Leaving the entropy out keeps it out of the autograd graph when its weight is 0."""
        out, value = self(obs)
        if self.discrete:
            logp_all = torch.log_softmax(out, -1)
            logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            entropy = _categorical_entropy(logp_all, self.mask is not None) if with_entropy else None
            return logp, entropy, value
        log_std = self.log_std.expand_as(out)
        entropy = gaussian_entropy(self.log_std, out.shape[:-1]) if with_entropy else None
        return gaussian_log_prob(actions, out, log_std), entropy, value

    def probs(self, obs: torch.Tensor) -> torch.Tensor:
        """π(·|s) for a discrete policy; (μ, σ) concatenated for a Gaussian one (what replay shows)."""
        out = self(obs)[0]
        if self.discrete:
            return torch.softmax(out, -1)
        return torch.cat([out, self.log_std.exp().expand_as(out)], -1)


def _categorical_entropy(logp_all: torch.Tensor, has_masked: bool) -> torch.Tensor:
    """H = −Σ_a π(a) log π(a), where a masked action (π = 0, log π = −inf) adds 0, not 0·(−inf) = NaN."""
    if has_masked:  # replace log π before the product: a where() after it would still backpropagate NaN
        return -(logp_all.exp() * logp_all.masked_fill(torch.isinf(logp_all), 0.0)).sum(-1)
    return -(logp_all.exp() * logp_all).sum(-1)


def adam(parameters: list[nn.Parameter], lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with torch's fused kernel where it has one (CPU, CUDA): one kernel for all parameters
    instead of a dozen per step, which for a small MLP costs more than the forward pass."""
    device = parameters[0].device.type
    if device in ("cpu", "cuda"):
        return torch.optim.Adam(parameters, lr=lr, eps=eps, fused=True)
    return torch.optim.Adam(parameters, lr=lr, eps=eps, foreach=True)


# --- continuous-action actor-critics (SAC, TD3) ----------------------------------------------------
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of the Gaussian's log σ


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """Σ log(1 − tanh²(u)) over action dimensions, in the stable form 2 (log 2 − u − softplus(−2u))."""
    return (2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))).sum(-1)


class SquashedGaussianActor(nn.Module):
    """SAC's policy: u ~ N(μ(s), σ(s)²), a = tanh(u) in [−1, 1]^d (the algorithm scales it to the env's
    bounds). The change of variables gives

        log π(a|s) = log N(u; μ, σ²) − Σ_i log(1 − tanh²(u_i))

    (checked by hand and against torch.distributions in tests/test_deep_sac.py)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: list[int], activation: str = "relu", init: str = "orthogonal") -> None:
        super().__init__()
        self.torso = torso(obs_dim, hidden, activation, init)
        width = hidden[-1] if hidden else obs_dim
        self.mu = nn.Linear(width, action_dim)
        self.log_std = nn.Linear(width, action_dim)

    def gaussian(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.torso(obs)
        return self.mu(h), self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(a = tanh(u) with u ~ N(μ, σ²) reparameterised (or u = μ), log π(a|s))."""
        mu, log_std = self.gaussian(obs)
        u = mu if deterministic else mu + torch.randn_like(mu) * log_std.exp()
        return torch.tanh(u), squashed_log_prob(u, mu, log_std)


def squashed_log_prob(u: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log π(tanh(u)) = log N(u; μ, σ²) − Σ log(1 − tanh²(u))."""
    return gaussian_log_prob(u, mu, log_std) - tanh_log_det(u)


class DeterministicActor(nn.Module):
    """TD3's policy: a = tanh(MLP(s)) in [−1, 1]^d. `taped` and `backward` are its forward and backward
    pass written out (rltui/algos/backprop.py), for TD3's actor step."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: list[int], activation: str = "relu", init: str = "orthogonal") -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim, activation, init=init)
        self.activation = activation
        self._linears = [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def _chain(self) -> list[backprop.Layer]:
        return [(m.weight.detach(), m.bias.detach()) for m in self._linears]

    def taped(self, obs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """μ(s), and the layers' outputs `backward` needs; no autograd graph."""
        ys = backprop.forward(self._chain(), obs, self.activation, out_act="tanh")
        return ys[-1], ys

    def backward(self, tape: list[torch.Tensor], d_action: torch.Tensor) -> None:
        """Set every parameter's .grad to ∂L/∂θ, given d_action = ∂L/∂μ(s) (batch, action_dim)."""
        grads, _ = backprop.backward(self._chain(), tape, d_action, self.activation, out_act="tanh")
        for m, (gw, gb) in zip(self._linears, grads):
            m.weight.grad, m.bias.grad = gw, gb


class TwinQ(nn.Module):
    """(s, a) ↦ (Q_1(s, a), Q_2(s, a)): two independent critics held as one TwinMLP's stacked weights,
    each hidden layer computed for both at once (dense.twin_linear: oneDNN or one batched matmul).

    The last layer (one output per critic) is a broadcast product and a sum rather than a matmul: under
    autograd a product with one output column, forward and backward, costs many times the elementwise
    form on a CPU, and the result is the same.

    `fixed=True` (an actor's loss through the critic): the critic's weights enter as constants, so no
    gradient is computed for them at all.

    `taped`, `backward` and `action_grad` are the same critics' forward and backward passes written out
    (rltui/algos/backprop.py), without autograd: the critics' step of SAC and TD3, and TD3's actor step."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: list[int], activation: str = "relu", init: str = "orthogonal") -> None:
        super().__init__()
        self.body = TwinMLP(obs_dim + action_dim, hidden, (1, 1), activation, (1.0, 1.0), init)
        self.activation = activation
        self._layers: list[tuple[nn.Parameter, nn.Parameter]] | None = None

    def _weights(self, fixed: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._layers is None:  # ParameterList indexing is slow; the Parameter objects never change
            self._layers = list(zip(self.body.weights, self.body.biases))
        return [(w.detach(), b.detach()) for w, b in self._layers] if fixed else self._layers

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, fixed: bool = False) -> torch.Tensor:
        """Shape (2, batch)."""
        *hidden, (w_out, b_out) = self._weights(fixed)  # w_out: (2, width, 1), b_out: (2, 1, 1)
        x = torch.cat([obs, actions], -1)
        h = (x, x)
        for w, b in hidden:
            h = twin_linear(h, w, b, relu=self.activation == "relu")  # ReLU fused into the layer, tanh after it
            if self.activation != "relu":
                h = (self.body.act(h[0]), self.body.act(h[1]))
        return torch.stack([(h[t] * w_out[t, :, 0]).sum(-1) for t in range(2)]) + b_out[:, 0]

    def _chain(self, twin: int) -> list[backprop.Layer]:
        """Critic `twin`'s layers as backprop takes them: W as (out, in), a view of the stored (in, out)."""
        return [(w[twin].detach().t(), b[twin, 0].detach()) for w, b in self._weights(fixed=False)]

    def taped(self, obs: torch.Tensor, actions: torch.Tensor, twins: int = 2) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Q_j(s, a) for the first `twins` critics, shape (twins, batch), and the layers' outputs that
        `backward` and `action_grad` need; no autograd graph (rltui/algos/backprop.py)."""
        x = torch.cat([obs, actions], -1)
        tapes = [backprop.forward(self._chain(t), x, self.activation) for t in range(twins)]
        return torch.stack([tape[-1][:, 0] for tape in tapes]), tapes

    def backward(self, tapes: list[list[torch.Tensor]], dq: torch.Tensor) -> None:
        """Set every parameter's .grad to ∂L/∂θ, given dq = ∂L/∂Q_j(s, a), shape (2, batch)."""
        grads = [backprop.backward(self._chain(t), tape, dq[t, :, None], self.activation)[0] for t, tape in enumerate(tapes)]
        for k, (w, b) in enumerate(self._weights(fixed=False)):
            w.grad = torch.stack([g[k][0].t() for g in grads])  # back to the stored (2, in, out)
            b.grad = torch.stack([g[k][1] for g in grads]).unsqueeze(1)

    def action_grad(self, tapes: list[list[torch.Tensor]], dq: torch.Tensor, action_dim: int) -> torch.Tensor:
        """∂L/∂a for L = Σ_rows dq · Q_1(s, a) with the critic's weights held fixed, from `taped`'s tapes."""
        _, gx = backprop.backward(self._chain(0), tapes[0], dq[:, None], self.activation, weights=False, input_grad=True)
        return gx[:, -action_dim:]
