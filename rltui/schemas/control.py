"""Control envs (Gymnasium by id) and the deep RL algorithms (DQN, REINFORCE, PPO, A2C, SAC, TD3): ids and schemas.

Torch-free and gymnasium-free at import: the TUI reads these schemas to build its forms.

Deep algorithms run on control envs and on the tabular envs too (through a one-hot observation), so
DQN on the maze can be compared with tabular Q-learning on the same maze.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from rltui.config import Params
from rltui.registry import AlgoSpec, EnvSpec

# --- environments ---------------------------------------------------------------------------------


class ControlEnvParams(Params):
    gamma: float = Field(0.99, ge=0.0, le=1.0, description="discount γ of the MDP")
    num_envs: int = Field(1, ge=1, le=512, description="environments stepped side by side (vectorized)")
    max_episode_steps: int | None = Field(
        None, ge=1, le=10_000_000, description="time limit (truncation) in steps; empty: the env's own limit"
    )

    def observation_size(self) -> int:
        return 8  # the largest Box observation among these envs (LunarLander); discrete ones are one-hot below 500


class FrozenLakeParams(ControlEnvParams):
    map_name: Literal["4x4", "8x8"] = Field("4x4", description="which FrozenLake map")
    desc: list[str] | None = Field(
        None, description="your own map instead of map_name: rows of S (start), F (frozen), H (hole), G (goal)")

    @field_validator("desc")
    @classmethod
    def _check_desc(cls, rows: list[str] | None) -> list[str] | None:
        if rows is None:
            return rows
        if not rows or len(rows) > 1000 or any(len(r) != len(rows[0]) or not r for r in rows):
            raise ValueError("rows of equal, non-zero width (at most 1000 rows), e.g. [\"SFF\", \"FHG\"]")
        cells = "".join(rows)
        if set(cells) - set("SFHG") or cells.count("S") != 1 or "G" not in cells:
            raise ValueError("only S, F, H, G cells, exactly one S and at least one G")
        return rows
    is_slippery: bool = Field(True, description="the ice moves the agent sideways 2 times in 3")


class LunarLanderParams(ControlEnvParams):
    continuous: bool = Field(False, description="continuous engine throttles instead of 4 discrete actions")


Width = Annotated[int, Field(ge=1, le=65_536)]
NET_ARCH_DOC = "hidden layer widths of the MLP(s), each 1..65536, at most 16 layers"


def observation_size(env: Params | None) -> int:
    """Floats per observation for a network on this env (a tabular env: its one-hot size)."""
    size = getattr(env, "observation_size", None)
    return int(size()) if callable(size) else 8


_F = "rltui.envs.control:make_"
_T = "rltui.envs.toy_text:make_"  # toy-text: a ControlEnv for networks, its exact MDP for tabular algorithms

ENVS = [
    EnvSpec("CartPole-v1", ControlEnvParams, _F + "cartpole", "control",
            "balance a pole on a cart; 2 actions; +1 per step up to 500"),
    EnvSpec("Acrobot-v1", ControlEnvParams, _F + "acrobot", "control",
            "swing a two-link arm above a line; 3 actions; -1 per step"),
    EnvSpec("MountainCar-v0", ControlEnvParams, _F + "mountaincar", "control",
            "drive an underpowered car up a hill; 3 actions; -1 per step (hard exploration)"),
    EnvSpec("Pendulum-v1", ControlEnvParams, _F + "pendulum", "control",
            "swing a pendulum up and hold it; continuous torque in [-2, 2]"),
    EnvSpec("MountainCarContinuous-v0", ControlEnvParams, _F + "mountaincar_continuous", "control",
            "drive an underpowered car up a hill; continuous force in [-1, 1]; +100 at the flag"),
    EnvSpec("LunarLander-v3", LunarLanderParams, _F + "lunarlander", "control",
            "land a craft on a pad; needs the Box2D extra: pip install 'rltui[box2d]'"),
    EnvSpec("FrozenLake-v1", FrozenLakeParams, _T + "frozenlake", "toytext",
            "Gymnasium's slippery grid; one-hot state for networks"),
    EnvSpec("CliffWalking-v1", ControlEnvParams, _T + "cliffwalking", "toytext",
            "Gymnasium's 4x12 cliff; one-hot state for networks"),
    EnvSpec("Taxi-v4", ControlEnvParams, _T + "taxi", "toytext",
            "Gymnasium's taxi (500 states, 6 actions); one-hot state for networks"),
]

# --- algorithms -----------------------------------------------------------------------------------


class DeepCommon(Params):
    total_timesteps: int = Field(100_000, ge=1, le=10**10, description="environment steps to train for (all envs together)")
    learning_rate: float = Field(3e-4, gt=0.0, description="Adam step size")
    net_arch: list[Width] = Field([64, 64], max_length=16, description=NET_ARCH_DOC)
    activation: Literal["tanh", "relu"] = Field("tanh", description="hidden activation")
    max_grad_norm: float = Field(0.5, gt=0.0, description="clip the global gradient norm to this")
    eval_every: int = Field(10_000, ge=0, description="env steps between evaluation rounds (0: off)")
    eval_episodes: int = Field(5, ge=1, description="deterministic episodes per evaluation round")
    checkpoint_every: int = Field(50_000, ge=0, description="env steps between checkpoints for resume (0: only at the end)")
    log_every: int = Field(1_000, ge=1, description="env steps between metric rows")
    torch_threads: int = Field(1, ge=0, le=1024, description="torch CPU threads (1 is fastest for small MLPs; 0: torch default)")
    final_policy: Literal["best", "last"] = Field(
        "best", description="the policy of the closing evaluation round replay opens on: best evaluated weights or the last"
    )

    def allocations(self, env: Params | None = None) -> list[tuple[str, int]]:
        # weights, gradients and Adam's two moments in float32, for a policy/Q net and a value net
        widths = [observation_size(env), *self.net_arch, 32]
        weights = sum(a * b for a, b in zip(widths, widths[1:]))
        return [("net_arch", 2 * 4 * 4 * weights)]


class DQNParams(DeepCommon):
    learning_rate: float = Field(1e-4, gt=0.0, description="Adam step size")
    net_arch: list[Width] = Field([64, 64], max_length=16, description="hidden layer widths of the Q-network, each 1..65536")
    activation: Literal["tanh", "relu"] = Field("relu", description="hidden activation")
    max_grad_norm: float = Field(10.0, gt=0.0, description="clip the global gradient norm to this")
    buffer_size: int = Field(100_000, ge=1, le=100_000_000, description="replay buffer capacity (transitions)")
    batch_size: int = Field(64, ge=1, le=1_000_000, description="transitions per gradient step")
    learning_starts: int = Field(1_000, ge=0, description="env steps of pure exploration before learning")
    train_freq: int = Field(4, ge=1, description="env steps (all envs together) between training phases")
    gradient_steps: int = Field(1, ge=1, description="gradient steps per training phase")
    target_update_interval: int = Field(1_000, ge=1, description="env steps between target-network updates")
    tau: float = Field(1.0, gt=0.0, le=1.0, description="target update: 1 = hard copy, <1 = Polyak averaging")
    double_q: bool = Field(True, description="double DQN: the online net picks a', the target net scores it")
    huber: bool = Field(True, description="Huber (smooth L1) TD loss instead of squared error")
    exploration_fraction: float = Field(0.1, ge=0.0, le=1.0, description="fraction of training over which ε decays")
    exploration_initial_eps: float = Field(1.0, ge=0.0, le=1.0, description="ε at the start")
    exploration_final_eps: float = Field(0.05, ge=0.0, le=1.0, description="ε after the decay")
    anneal_lr: bool = Field(False, description="decay the learning rate linearly to 0 (the last weights settle)")

    def allocations(self, env: Params | None = None) -> list[tuple[str, int]]:
        # the replay buffer: s and s' as float32, plus action, reward and terminated
        return [*super().allocations(env), ("buffer_size", self.buffer_size * (2 * 4 * observation_size(env) + 16))]


class ReinforceParams(DeepCommon):
    learning_rate: float = Field(1e-3, gt=0.0, description="Adam step size")
    episodes_per_update: int = Field(4, ge=1, description="whole episodes collected per policy update")
    baseline: bool = Field(True, description="learn V(s) and subtract it from G_t (lower variance)")
    normalize_returns: bool = Field(True, description="standardise the (baselined) returns in a batch")
    vf_coef: float = Field(0.5, ge=0.0, description="weight of the baseline's value loss")
    ent_coef: float = Field(0.0, ge=0.0, description="entropy bonus weight")
    log_std_init: float = Field(0.0, description="initial log σ of a Gaussian policy (continuous actions)")
    max_grad_norm: float = Field(1.0, gt=0.0, description="clip the global gradient norm to this")


class PPOParams(DeepCommon):
    n_steps: int = Field(128, ge=1, le=10_000_000, description="steps per env per rollout")
    batch_size: int = Field(64, ge=1, le=10_000_000, description="minibatch size")
    n_epochs: int = Field(10, ge=1, description="passes over each rollout")
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0, description="λ of GAE(λ)")
    clip_range: float = Field(0.2, gt=0.0, description="ε of the clipped surrogate")
    clip_range_vf: float | None = Field(None, gt=0.0, description="clip value updates to ±this (empty: off)")
    ent_coef: float = Field(0.0, ge=0.0, description="entropy bonus weight")
    vf_coef: float = Field(0.5, ge=0.0, description="value loss weight")
    normalize_advantage: bool = Field(True, description="standardise advantages per minibatch")
    anneal_lr: bool = Field(False, description="decay the learning rate linearly to 0")
    anneal_clip: bool = Field(False, description="decay the clip range linearly to 0")
    target_kl: float | None = Field(None, gt=0.0, description="stop the epochs early when approx KL passes 1.5x this")
    log_std_init: float = Field(0.0, description="initial log σ of a Gaussian policy (continuous actions)")

    def allocations(self, env: Params | None = None) -> list[tuple[str, int]]:
        # the rollout buffer: n_steps x num_envs observations (float32) and ~8 scalars each
        num_envs = getattr(env, "num_envs", 1)
        return [*super().allocations(env), ("n_steps", self.n_steps * num_envs * (4 * observation_size(env) + 64))]


class A2CParams(DeepCommon):
    learning_rate: float = Field(7e-4, gt=0.0, description="optimizer step size")
    n_steps: int = Field(5, ge=1, description="steps per env per rollout (the n of n-step returns)")
    gae_lambda: float = Field(1.0, ge=0.0, le=1.0, description="λ of GAE(λ); 1: plain n-step returns")
    ent_coef: float = Field(0.0, ge=0.0, description="entropy bonus weight")
    vf_coef: float = Field(0.5, ge=0.0, description="value loss weight")
    shared_critic: bool = Field(False, description="one torso with policy and value heads (else two MLPs)")
    optimizer: Literal["rmsprop", "adam"] = Field("rmsprop", description="RMSprop as SB3 and the paper, or Adam")
    rms_prop_alpha: float = Field(0.99, gt=0.0, lt=1.0, description="RMSprop's smoothing constant α")
    rms_prop_eps: float = Field(1e-5, gt=0.0, description="RMSprop's ε")
    adam_eps: float = Field(1e-5, gt=0.0, description="Adam's ε")
    normalize_advantage: bool = Field(False, description="standardise advantages per rollout")
    anneal_lr: bool = Field(False, description="decay the learning rate linearly to 0")
    log_std_init: float = Field(0.0, description="initial log σ of a Gaussian policy (continuous actions)")


class ContinuousOffPolicyParams(DeepCommon):
    """What SAC and TD3 share (SB3's defaults)."""

    learning_rate: float = Field(3e-4, gt=0.0, description="Adam step size (actor, critics, α)")
    net_arch: list[int] = Field([256, 256], description="hidden layer widths of the actor and of each critic")
    activation: Literal["tanh", "relu"] = Field("relu", description="hidden activation")
    max_grad_norm: float | None = Field(
        None, gt=0.0, description="clip each network's gradient norm to this (empty: no clipping, as SB3)"
    )
    buffer_size: int = Field(1_000_000, ge=1, le=100_000_000, description="replay buffer capacity (transitions)")
    batch_size: int = Field(256, ge=1, le=1_000_000, description="transitions per gradient step")
    learning_starts: int = Field(100, ge=0, description="env steps of uniform random actions before learning")
    train_freq: int = Field(1, ge=1, description="env steps (all envs together) between training phases")
    gradient_steps: int = Field(1, ge=1, description="gradient steps per training phase")
    tau: float = Field(0.005, gt=0.0, le=1.0, description="Polyak averaging of the target networks")

    def allocations(self, env: Params | None = None) -> list[tuple[str, int]]:
        # the replay buffer: two float32 observations, an action vector and a few scalars per transition
        return [*super().allocations(env), ("buffer_size", self.buffer_size * (2 * 4 * observation_size(env) + 64))]


class SACParams(ContinuousOffPolicyParams):
    ent_coef: float | None = Field(
        None, gt=0.0, description="a fixed entropy weight α (empty: tuned automatically toward target_entropy)"
    )
    ent_coef_init: float = Field(1.0, gt=0.0, description="initial α under automatic tuning")
    target_entropy: float | None = Field(None, description="entropy automatic tuning aims at (empty: −dim(A))")


class TD3Params(ContinuousOffPolicyParams):
    learning_rate: float = Field(1e-3, gt=0.0, description="Adam step size (actor and critics)")
    policy_delay: int = Field(2, ge=1, description="critic updates per actor (and target) update")
    target_policy_noise: float = Field(0.2, ge=0.0, description="σ of the smoothing noise on a' (actions in [-1, 1])")
    target_noise_clip: float = Field(0.5, ge=0.0, description="clip the smoothing noise to ±this")
    action_noise: float = Field(0.1, ge=0.0, description="σ of the exploration noise (actions in [-1, 1])")


_KINDS = frozenset({"control", "tabular", "toytext"})
_CONTINUOUS = frozenset({"control"})

ALGOS = [
    AlgoSpec("dqn", DQNParams, "rltui.algos.dqn:train", _KINDS,
             "deep Q-network: replay, target net, double DQN, Huber loss", uses_torch=True,
             tags=("value-based", "off-policy", "deep")),
    AlgoSpec("reinforce", ReinforceParams, "rltui.algos.reinforce:train", _KINDS,
             "Monte-Carlo policy gradient with an optional learned baseline", uses_torch=True,
             tags=("policy-gradient", "on-policy", "deep")),
    AlgoSpec("ppo", PPOParams, "rltui.algos.ppo:train", _KINDS,
             "proximal policy optimisation: GAE(λ), clipped surrogate, actor-critic", uses_torch=True,
             tags=("policy-gradient", "actor-critic", "on-policy", "deep")),
    AlgoSpec("a2c", A2CParams, "rltui.algos.a2c:train", _KINDS,
             "advantage actor-critic: n-step returns, one step per rollout, RMSprop", uses_torch=True,
             tags=("policy-gradient", "actor-critic", "on-policy", "deep")),
    AlgoSpec("sac", SACParams, "rltui.algos.sac:train", _CONTINUOUS,
             "soft actor-critic: twin Q, tanh-Gaussian actor, automatic entropy tuning (continuous actions)",
             uses_torch=True, tags=("actor-critic", "off-policy", "maximum-entropy", "deep")),
    AlgoSpec("td3", TD3Params, "rltui.algos.td3:train", _CONTINUOUS,
             "twin delayed DDPG: twin Q, delayed policy updates, target smoothing (continuous actions)",
             uses_torch=True, tags=("actor-critic", "off-policy", "deep")),
]
