"""Control envs (Gymnasium by id) and the deep RL algorithms (DQN, REINFORCE, PPO, A2C, SAC, TD3): ids and schemas.

Torch-free and gymnasium-free at import: the TUI reads these schemas to build its forms.

Deep algorithms run on control envs and on the tabular envs too (through a one-hot observation), so
DQN on the maze can be compared with tabular Q-learning on the same maze.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from rltui.config import DoorError, Params
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


class MinAtarParams(ControlEnvParams):
    max_episode_steps: int | None = Field(
        10_000, ge=1, le=10_000_000, description="time limit (truncation) in steps; MinAtar's games have none of their own")
    sticky_action_prob: float = Field(0.1, ge=0.0, le=1.0, description="chance each step repeats the last action (MinAtar's 0.1)")
    difficulty_ramping: bool = Field(True, description="the game speeds up as it goes on (MinAtar's default)")

    @model_validator(mode="after")
    def _minatar_installed(self) -> "MinAtarParams":
        import importlib.util

        if importlib.util.find_spec("minatar") is None:  # asked without importing it
            raise DoorError("id", "the MinAtar games need the minatar package: pip install --no-deps minatar==1.0.15")
        return self

    def observation_size(self) -> int:
        return 10 * 10 * 10  # (10, 10, C) frames, C at most 10 (Seaquest)

    def observation_bytes(self) -> int:
        return self.observation_size()  # one byte per bool


class AtariParams(ControlEnvParams):
    num_envs: int = Field(8, ge=1, le=512, description="games stepped side by side by ale-py's own vector env (C++ threads)")
    max_episode_steps: int | None = Field(
        27_000, ge=1, le=10_000_000, description="time limit in agent steps (27,000 = ALE's 108,000 frames at frameskip 4)")
    frameskip: int = Field(4, ge=1, le=16, description="emulator frames per agent step (max-pooled over the last two)")
    stack_num: int = Field(4, ge=1, le=16, description="84x84 grayscale frames stacked into one observation")
    noop_max: int = Field(30, ge=0, le=1000, description="up to this many no-ops at reset (random starts)")
    repeat_action_probability: float = Field(0.25, ge=0.0, le=1.0, description="sticky actions (ALE v5's 0.25)")
    episodic_life: bool = Field(False, description="a lost life ends the episode (training signal; returns then per life)")
    reward_clipping: bool = Field(False, description="clip rewards to their sign (the DQN paper's); returns then count signs, not points")
    use_fire_reset: bool = Field(True, description="press FIRE at reset in games that need it to start")

    @model_validator(mode="after")
    def _ale_installed(self) -> "AtariParams":
        import importlib.util

        if importlib.util.find_spec("ale_py") is None:
            raise DoorError("id", "the Atari games need ale-py (it bundles the ROMs): pip install 'rltui[atari]'")
        if self.max_episode_steps is None:
            raise DoorError("max_episode_steps", "an Atari game needs a time limit in agent steps, e.g. 27000")
        return self

    def observation_size(self) -> int:
        return 84 * 84 * self.stack_num

    def observation_bytes(self) -> int:
        return self.observation_size()  # uint8 gray levels


Width = Annotated[int, Field(ge=1, le=65_536)]
NET_ARCH_DOC = "hidden layer widths of the MLP(s), each 1..65536, at most 16 layers"


def observation_size(env: Params | None) -> int:
    """Floats per observation for a network on this env (a tabular env: its one-hot size)."""
    size = getattr(env, "observation_size", None)
    return int(size()) if callable(size) else 8


def observation_bytes(env: Params | None) -> int:
    """Bytes per stored observation: float32 unless the env keeps its own dtype (MinAtar's bool frames)."""
    size = getattr(env, "observation_bytes", None)
    return int(size()) if callable(size) else 4 * observation_size(env)


_F = "rltui.envs.control:make_"
_T = "rltui.envs.toy_text:make_"
_M = "rltui.envs.minatar:make_"  # imported only by runs on a MinAtar game
_A = "rltui.envs.ale:make_"  # imported only by runs on an Atari game (the atari extra)
_ATARI = "84x84x4 gray frames (ale-py's vector env); GPU-sized; needs: pip install 'rltui[atari]'"  # toy-text: a ControlEnv for networks, its exact MDP for tabular algorithms

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
    EnvSpec("MinAtar/Breakout-v1", MinAtarParams, _M + "breakout", "pixels",
            "MinAtar Breakout: 10x10x4 frames, 3 actions; needs: pip install --no-deps minatar==1.0.15"),
    EnvSpec("MinAtar/Asterix-v1", MinAtarParams, _M + "asterix", "pixels",
            "MinAtar Asterix: 10x10x4 frames, 5 actions; needs: pip install --no-deps minatar==1.0.15"),
    EnvSpec("MinAtar/Freeway-v1", MinAtarParams, _M + "freeway", "pixels",
            "MinAtar Freeway: 10x10x7 frames, 3 actions; needs: pip install --no-deps minatar==1.0.15"),
    EnvSpec("MinAtar/Seaquest-v1", MinAtarParams, _M + "seaquest", "pixels",
            "MinAtar Seaquest: 10x10x10 frames, 6 actions; needs: pip install --no-deps minatar==1.0.15"),
    EnvSpec("MinAtar/SpaceInvaders-v1", MinAtarParams, _M + "space_invaders", "pixels",
            "MinAtar Space Invaders: 10x10x6 frames, 4 actions; needs: pip install --no-deps minatar==1.0.15"),
    *(EnvSpec(f"ALE/{game}-v5", AtariParams, _A + module, "pixels", f"Atari {title}: {_ATARI}")
      for game, module, title in (("Breakout", "breakout", "Breakout"), ("Pong", "pong", "Pong"),
                                  ("SpaceInvaders", "space_invaders", "Space Invaders"), ("Seaquest", "seaquest", "Seaquest"),
                                  ("BeamRider", "beam_rider", "Beam Rider"), ("Qbert", "qbert", "Q*bert"),
                                  ("Enduro", "enduro", "Enduro"), ("MsPacman", "ms_pacman", "Ms. Pac-Man"))),
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
    replay_frame_sharing: bool = Field(
        True, description="replay stores each stacked frame once and rebuilds s, s' when sampling (envs that stack frames: ALE)")

    def allocations(self, env: Params | None = None) -> list[tuple[str, int]]:
        # the replay buffer: s and s' (float32, or the env's own bool/uint8 frames), plus action, reward and terminated;
        # with frame sharing about one frame (1/stack of s) and k + 1 frame numbers per transition
        stack = getattr(env, "stack_num", None)
        if self.replay_frame_sharing and stack:
            per_transition = observation_bytes(env) * 33 // (32 * stack) + 8 * (stack + 1) + 16
        else:
            per_transition = 2 * observation_bytes(env) + 16
        return [*super().allocations(env), ("buffer_size", self.buffer_size * per_transition)]


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
    init: Literal["torch", "orthogonal"] = Field(
        "torch", description="layer init: torch's nn.Linear default (SB3's and the authors'), or orthogonal (√2)"
    )
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
_PIXELS = frozenset({"pixels"})  # image observations (MinAtar): the algorithms with a convolutional torso (DQN, PPO, A2C)
_CONTINUOUS = frozenset({"control"})

ALGOS = [
    AlgoSpec("dqn", DQNParams, "rltui.algos.dqn:train", _KINDS | _PIXELS,
             "deep Q-network: replay, target net, double DQN, Huber loss", uses_torch=True,
             tags=("value-based", "off-policy", "deep")),
    AlgoSpec("reinforce", ReinforceParams, "rltui.algos.reinforce:train", _KINDS,
             "Monte-Carlo policy gradient with an optional learned baseline", uses_torch=True,
             tags=("policy-gradient", "on-policy", "deep")),
    AlgoSpec("ppo", PPOParams, "rltui.algos.ppo:train", _KINDS | _PIXELS,
             "proximal policy optimisation: GAE(λ), clipped surrogate, actor-critic", uses_torch=True,
             tags=("policy-gradient", "actor-critic", "on-policy", "deep")),
    AlgoSpec("a2c", A2CParams, "rltui.algos.a2c:train", _KINDS | _PIXELS,
             "advantage actor-critic: n-step returns, one step per rollout, RMSprop", uses_torch=True,
             tags=("policy-gradient", "actor-critic", "on-policy", "deep")),
    AlgoSpec("sac", SACParams, "rltui.algos.sac:train", _CONTINUOUS,
             "soft actor-critic: twin Q, tanh-Gaussian actor, automatic entropy tuning (continuous actions)",
             uses_torch=True, tags=("actor-critic", "off-policy", "maximum-entropy", "deep")),
    AlgoSpec("td3", TD3Params, "rltui.algos.td3:train", _CONTINUOUS,
             "twin delayed DDPG: twin Q, delayed policy updates, target smoothing (continuous actions)",
             uses_torch=True, tags=("actor-critic", "off-policy", "deep")),
]
