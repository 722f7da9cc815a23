"""The text env: a prompt distribution plus the token-level MDP a language model acts in.

    state  s_t = prompt + the response generated so far (the prefix)
    action a_t = the next token (an id of the character tokenizer; EOS ends the episode)
    reward r   = 0 on every token but the last; at the end the task's score (γ = 1 by default)
    episode    = one response, capped at `max_response_len` tokens

Two tasks share this shape. "lm-reviews" (preference): the score comes from a learned reward model
(an earlier run), the lexicon oracle ranks the pairs it learns from. "lm-arithmetic" (verifiable):
the score is 1 when the response is the right number followed by EOS, else 0.

The env is plain Python (no torch): algorithms batch the MDP themselves for speed and use
`reset`/`step` only where one episode is walked (tests, replay).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from rltui.lm import corpus, oracle
from rltui.lm.tokenizer import EOS, CharTokenizer


@dataclass
class TextEnv:
    task: str  # "preference" | "verifiable"
    name: str
    gamma: float
    max_response_len: int
    train_prompts: list[str]
    heldout_prompts: list[str]
    corpus_seed: int
    params: object = None
    tokenizer: CharTokenizer = field(default_factory=CharTokenizer)
    _prompt: str = ""
    _response: list[int] = field(default_factory=list)

    # --- the prompt distribution -------------------------------------------------------------------
    def sample_prompts(self, rng: random.Random, n: int, split: str = "train") -> list[str]:
        pool = self.train_prompts if split == "train" else (self.heldout_prompts or self.train_prompts)
        return [rng.choice(pool) for _ in range(n)]

    def eval_prompts(self, n: int) -> list[str]:
        """The same held-out prompts at every evaluation (cycled), so curves compare."""
        pool = self.heldout_prompts or self.train_prompts
        return [pool[i % len(pool)] for i in range(n)]

    def corpus(self, n: int, seed: int) -> list[tuple[str, str]]:
        """(prompt, response) texts for pretraining/SFT: held-out arithmetic prompts are never in it."""
        if self.task == "verifiable":
            return corpus.arithmetic_corpus(self.train_prompts, n, seed)
        return corpus.review_corpus(self.train_prompts + self.heldout_prompts, n, seed)

    def preference_pairs(self, n: int, split: str, seed: int) -> list[tuple[str, str, str]]:
        """(prompt, chosen, rejected) ranked by the scripted oracle; held-out pairs use held-out prompts."""
        prompts = self.train_prompts if split == "train" else (self.heldout_prompts or self.train_prompts)
        seed = seed * 2 + (split != "train")
        if self.task == "verifiable":
            return corpus.arithmetic_pairs(prompts, n, seed)
        return corpus.preference_pairs(prompts, n, seed)

    # --- scores ------------------------------------------------------------------------------------
    def oracle_score(self, prompt: str, response: str, ended: bool = True) -> float:
        """The scripted truth: lexicon sentiment (preference) or exact match (verifiable)."""
        if self.task == "verifiable":
            return float(ended and response == corpus.arithmetic_answer(prompt))
        return oracle.sentiment(response)

    # --- the token-level MDP (one episode at a time) -----------------------------------------------
    def reset(self, prompt: str) -> dict:
        self._prompt, self._response = prompt, []
        return self.state()

    def state(self) -> dict:
        return {"prompt": self._prompt, "prefix": self.tokenizer.decode(self._response)}

    def step(self, token: int) -> tuple[dict, float, bool, bool]:
        """(state, reward, terminated, truncated). EOS terminates; the cap truncates (no bootstrap
        needed: an LM episode that hits the cap is over, and it is scored as it stands)."""
        self._response.append(int(token))
        terminated = int(token) == EOS
        truncated = not terminated and len(self._response) >= self.max_response_len
        reward = 0.0
        if (terminated or truncated) and self.task == "verifiable":
            reward = self.oracle_score(self._prompt, self.tokenizer.decode(self._response), terminated)
        return self.state(), reward, terminated, truncated

    def layout(self) -> dict:
        return {"kind": "text", "task": self.task, "env": self.name}


def make_reviews(params) -> TextEnv:  # noqa: ANN001
    split = corpus.split_prompts(corpus.review_prompts(), params.heldout_fraction, params.corpus_seed)
    return TextEnv("preference", "lm-reviews", params.gamma, params.max_response_len,
                   split.train, split.heldout, params.corpus_seed, params)


def make_arithmetic(params) -> TextEnv:  # noqa: ANN001
    prompts = corpus.arithmetic_prompts(params.max_operand)
    split = corpus.split_prompts(prompts, params.heldout_fraction, params.corpus_seed)
    return TextEnv("verifiable", "lm-arithmetic", params.gamma, params.max_response_len,
                   split.train, split.heldout, params.corpus_seed, params)
