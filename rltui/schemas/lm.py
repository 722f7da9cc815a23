"""The LM lab's envs and algorithms: the RLHF pipeline as runs (torch-free: the TUI imports this).

    lm_pretrain (pretraining / SFT)  →  reward_model (Bradley–Terry)  →  lm_ppo | grpo | dpo | best_of_n

A later stage names its starting checkpoint with `init_run`: a run id (`init_run = 12`) or
"latest:ALGO" (`init_run = "latest:lm_pretrain"`: the newest completed run of that algorithm in the
same store). That run's final weights are the starting policy and the frozen reference π_ref.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from rltui.config import Params
from rltui.registry import AlgoSpec, EnvSpec

RUN_REF = re.compile(r"^latest:[a-z0-9_]+$")
RUN_REF_HELP = 'a run id (12) or "latest:ALGO" (the newest completed run of ALGO in this store)'


def _check_run_ref(value: int | str | None) -> int | str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str) and RUN_REF.match(value):
        return value
    raise ValueError(f"expected {RUN_REF_HELP}")


# --- envs ------------------------------------------------------------------------------------------
class ReviewsParams(Params):
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="discount γ over tokens (1: the reward comes once, at the end)")
    max_response_len: int = Field(28, ge=1, le=48, description="response length cap in tokens (EOS included)")
    heldout_fraction: float = Field(0.25, ge=0.0, le=0.9, description="share of prompts kept out of training, for evaluation")
    corpus_seed: int = Field(0, ge=0, description="seed of the generated corpus and the prompt split")


class ArithmeticParams(Params):
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="discount γ over tokens (1: the reward comes once, at the end)")
    max_operand: int = Field(29, ge=1, le=99, description="prompts are a+b= with 0 ≤ a, b ≤ max_operand")
    max_response_len: int = Field(4, ge=2, le=8, description="response length cap in tokens (EOS included)")
    heldout_fraction: float = Field(0.2, ge=0.0, le=0.9, description="share of a+b= prompts never trained on")
    corpus_seed: int = Field(0, ge=0, description="seed of the generated corpus and the prompt split")
    # The verifiable task scores exactly: a policy stage's reward_run is not used, so not waited for.
    IGNORED_RUN_REFS: ClassVar[tuple[str, ...]] = ("reward_run",)


# --- algorithms ------------------------------------------------------------------------------------
class _Stage(Params):
    """Shared by the stages that start from an earlier run's weights."""

    init_run: int | str | None = Field("latest:lm_pretrain", description=f"starting policy and frozen reference: {RUN_REF_HELP}")
    eval_every: int = Field(10, ge=1, description="evaluate on held-out prompts every N updates")
    eval_prompts: int = Field(64, ge=1, le=1024, description="held-out prompts per evaluation")
    time_limit_s: float = Field(0.0, ge=0.0, description="stop after this many seconds (0: no limit)")
    checkpoint_every: int = Field(10, ge=0, description="checkpoint for `rltui resume` every N updates (0: only when cancelled)")

    @field_validator("init_run", mode="before")
    @classmethod
    def _init_run(cls, value):  # noqa: ANN001, ANN206
        return _check_run_ref(value)


class _Policy(_Stage):
    reward_run: int | str | None = Field("latest:reward_model", description=f"reward model for the preference task: {RUN_REF_HELP} (verifiable tasks score exactly and ignore it)")
    temperature: float = Field(1.0, gt=0.0, le=2.0, description="sampling temperature of rollouts")
    learning_rate: float = Field(3e-4, gt=0.0, le=1.0, description="Adam step size")
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    cliprange: float = Field(0.2, gt=0.0, le=1.0, description="PPO ratio clip ε: ratio kept in [1-ε, 1+ε]")

    @field_validator("reward_run", mode="before")
    @classmethod
    def _reward_run(cls, value):  # noqa: ANN001, ANN206
        return _check_run_ref(value)


class PretrainParams(Params):
    init_run: int | str | None = Field(None, description=f"continue from this run's weights (SFT on top of pretraining): {RUN_REF_HELP}; empty: from scratch")
    d_model: int = Field(64, ge=8, le=512, description="width of the transformer")
    n_layer: int = Field(2, ge=1, le=12, description="transformer blocks")
    n_head: int = Field(4, ge=1, le=16, description="attention heads (must divide d_model)")
    context_len: int = Field(48, ge=8, le=256, description="longest sequence in tokens (BOS + prompt + response + EOS)")
    steps: int = Field(1500, ge=1, description="optimizer steps")
    batch_size: int = Field(64, ge=1, description="sequences per step")
    learning_rate: float = Field(3e-3, gt=0.0, le=1.0, description="AdamW peak step size (cosine decay)")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW weight decay")
    corpus_size: int = Field(20000, ge=10, description="generated (prompt, response) texts to train on")
    loss_on: Literal["all", "response"] = Field("all", description="next-token loss on every token (pretraining) or on response tokens only (SFT)")
    eval_every: int = Field(250, ge=1, description="evaluate on held-out prompts every N steps")
    eval_prompts: int = Field(64, ge=1, le=1024, description="held-out prompts per evaluation")
    time_limit_s: float = Field(0.0, ge=0.0, description="stop after this many seconds (0: no limit)")
    checkpoint_every: int = Field(100, ge=0, description="checkpoint for `rltui resume` every N steps (0: only when cancelled)")

    @field_validator("init_run", mode="before")
    @classmethod
    def _init_run(cls, value):  # noqa: ANN001, ANN206
        return _check_run_ref(value)


class RewardModelParams(_Stage):
    n_pairs: int = Field(2000, ge=8, description="training pairs (prompt, chosen, rejected) labelled by the oracle")
    heldout_pairs: int = Field(400, ge=8, description="held-out pairs for pair accuracy (on held-out prompts)")
    epochs: int = Field(2, ge=1, description="passes over the training pairs")
    batch_size: int = Field(32, ge=1, description="pairs per step")
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0, description="AdamW step size")
    eval_every: int = Field(25, ge=1, description="evaluate held-out pair accuracy every N steps")


class PPOParams(_Policy):
    iterations: int = Field(200, ge=1, description="rollout + update rounds")
    batch_size: int = Field(32, ge=1, description="responses per rollout")
    mini_batch_size: int = Field(16, ge=1, description="responses per gradient step")
    ppo_epochs: int = Field(4, ge=1, description="passes over each rollout")
    kl_coef: float = Field(0.05, ge=0.0, description="β of the per-token KL penalty −β (log π − log π_ref)")
    adaptive_kl: bool = Field(False, description="adapt β towards target_kl (Ziegler et al. 2019)")
    target_kl: float = Field(6.0, gt=0.0, description="target KL per response for the adaptive β")
    kl_horizon: int = Field(10000, ge=1, description="horizon of the adaptive β controller, in responses")
    cliprange_value: float = Field(0.2, gt=0.0, description="value clip: V kept within ε of its rollout value")
    vf_coef: float = Field(0.5, ge=0.0, description="weight of the value loss (the critic is a separate network)")
    lam: float = Field(0.95, ge=0.0, le=1.0, description="GAE λ over tokens")
    whiten_rewards: bool = Field(False, description="whiten the per-token rewards of each rollout")
    critic_init: Literal["reward_model", "policy"] = Field("reward_model", description="initialise the critic's trunk from the reward model (if any) or the policy")


class GRPOParams(_Policy):
    iterations: int = Field(200, ge=1, description="rollout + update rounds")
    prompts_per_iter: int = Field(8, ge=1, description="prompts per rollout")
    group_size: int = Field(8, ge=2, description="responses sampled per prompt (the group)")
    epochs: int = Field(1, ge=1, description="passes over each rollout")
    mini_batch_size: int = Field(32, ge=1, description="responses per gradient step")
    beta: float = Field(0.04, ge=0.0, description="weight of the KL(π‖π_ref) penalty in the loss")


class DPOParams(_Stage):
    reward_run: int | str | None = Field(None, description=f"optional reward model to score held-out samples (preference task): {RUN_REF_HELP}")
    beta: float = Field(0.1, gt=0.0, description="β: how far from π_ref the implicit reward lets the policy go")
    n_pairs: int = Field(2000, ge=8, description="offline pairs (prompt, chosen, rejected) labelled by the oracle")
    epochs: int = Field(1, ge=1, description="passes over the pairs")
    batch_size: int = Field(32, ge=1, description="pairs per step")
    learning_rate: float = Field(3e-4, gt=0.0, le=1.0, description="Adam step size")
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    temperature: float = Field(1.0, gt=0.0, le=2.0, description="sampling temperature for evaluation")

    @field_validator("reward_run", mode="before")
    @classmethod
    def _reward_run(cls, value):  # noqa: ANN001, ANN206
        return _check_run_ref(value)


class BestOfNParams(Params):
    init_run: int | str | None = Field("latest:lm_pretrain", description=f"the SFT policy to sample from: {RUN_REF_HELP}")
    reward_run: int | str | None = Field("latest:reward_model", description=f"the reward model that picks the best of N: {RUN_REF_HELP}")
    n: int = Field(16, ge=1, le=4096, description="samples per prompt; the one the reward model scores highest is kept (KL = log N − (N−1)/N)")
    eval_prompts: int = Field(64, ge=1, le=1024, description="held-out prompts, N samples each")
    temperature: float = Field(1.0, gt=0.0, le=2.0, description="sampling temperature")
    batch_size: int = Field(1024, ge=1, le=65536, description="responses sampled at once (memory bound)")

    @field_validator("init_run", "reward_run", mode="before")
    @classmethod
    def _run_ref(cls, value):  # noqa: ANN001, ANN206
        return _check_run_ref(value)


ENVS = [
    EnvSpec("lm-reviews", ReviewsParams, "rltui.envs.text:make_reviews", "text",
            "preference task: short reviews, a sentiment-lexicon oracle ranks responses"),
    EnvSpec("lm-arithmetic", ArithmeticParams, "rltui.envs.text:make_arithmetic", "text",
            "verifiable task: a+b= prompts, reward 1 for the right number then EOS"),
]

_TEXT = frozenset({"text"})
ALGOS = [
    AlgoSpec("lm_pretrain", PretrainParams, "rltui.algos.lm_pretrain:train", _TEXT,
             "pretraining / SFT of a small causal transformer on the env's corpus", True, ("lm",)),
    AlgoSpec("reward_model", RewardModelParams, "rltui.algos.reward_model:train", _TEXT,
             "Bradley–Terry reward model on oracle-ranked pairs (held-out pair accuracy)", True, ("lm",)),
    AlgoSpec("lm_ppo", PPOParams, "rltui.algos.lm_ppo:train", _TEXT,
             "RLHF PPO: per-token KL to π_ref, value-head critic, GAE over tokens", True, ("lm", "on-policy")),
    AlgoSpec("grpo", GRPOParams, "rltui.algos.grpo:train", _TEXT,
             "group-relative policy optimisation: no critic, advantages within a group", True, ("lm", "on-policy")),
    AlgoSpec("best_of_n", BestOfNParams, "rltui.algos.best_of_n:train", _TEXT,
             "best-of-N sampling from the SFT policy with a reward model: the over-optimisation baseline", True, ("lm",)),
    AlgoSpec("dpo", DPOParams, "rltui.algos.dpo:train", _TEXT,
             "direct preference optimisation, offline on the oracle's pairs", True, ("lm", "offline")),
]
