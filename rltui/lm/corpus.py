"""Deterministic generated corpora: everything the LM lab trains on is made here from a seed.

Reviews (the preference task): a prompt such as "the food was" and a short response whose
sentiment is controlled by the words drawn ("great and warm.", "not bad.", "dull, but fresh.").
Arithmetic (the verifiable task): the prompt "a+b=" and the response the decimal sum.

A corpus is a list of (prompt, response) pairs; the tokenizer adds BOS before the prompt and EOS
after the response. Held-out prompts are split off deterministically from the corpus seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rltui.lm.oracle import NEGATIVE, NEUTRAL, POSITIVE, sentiment

SUBJECTS = [
    "the food", "the movie", "the staff", "our room", "the book", "the show", "the cafe", "the music",
    "the trip", "the game", "the coffee", "the hotel", "the plot", "the service", "the bread", "the park",
]
VERBS = ["was", "felt", "seemed"]
TEMPLATES = [" {a}.", " {a} and {b}.", " {a}, but {b}.", " very {a}.", " not {a}.", " so {a}!"]
MOODS = ("positive", "negative", "neutral", "mixed")


def review_prompts() -> list[str]:
    return [f"{s} {v}" for s in SUBJECTS for v in VERBS]


def review_response(rng: random.Random, mood: str) -> str:
    pos, neg = sorted(POSITIVE), sorted(NEGATIVE)
    pools = {"positive": (pos, pos), "negative": (neg, neg), "neutral": (NEUTRAL, NEUTRAL)}
    first, second = pools.get(mood) or ((pos, neg) if rng.random() < 0.5 else (neg, pos))
    template = rng.choice(TEMPLATES)
    if template == " not {a}.":  # "not great" is negative: draw from the opposite pool
        first = {"positive": neg, "negative": pos}.get(mood, first)
    return template.format(a=rng.choice(first), b=rng.choice(second))


@dataclass(frozen=True)
class Split:
    train: list[str]
    heldout: list[str]


def split_prompts(prompts: list[str], heldout_fraction: float, seed: int) -> Split:
    order = list(prompts)
    random.Random(seed).shuffle(order)
    n_held = max(1, round(len(order) * heldout_fraction)) if heldout_fraction > 0 else 0
    return Split(train=sorted(order[n_held:]), heldout=sorted(order[:n_held]))


def review_corpus(prompts: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    """n (prompt, response) pairs, moods drawn uniformly: the SFT policy starts out mixed."""
    rng = random.Random(seed)
    return [(rng.choice(prompts), review_response(rng, rng.choice(MOODS))) for _ in range(n)]


def preference_pairs(prompts: list[str], n: int, seed: int) -> list[tuple[str, str, str]]:
    """n (prompt, chosen, rejected) triples: two responses to one prompt, ranked by the oracle."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str, str]] = []
    while len(pairs) < n:
        prompt = rng.choice(prompts)
        a, b = review_response(rng, rng.choice(MOODS)), review_response(rng, rng.choice(MOODS))
        sa, sb = sentiment(a), sentiment(b)
        if sa == sb:
            continue  # the oracle has no preference: no pair
        pairs.append((prompt, a, b) if sa > sb else (prompt, b, a))
    return pairs


def arithmetic_prompts(max_operand: int) -> list[str]:
    return [f"{a}+{b}=" for a in range(max_operand + 1) for b in range(max_operand + 1)]


def arithmetic_answer(prompt: str) -> str:
    a, b = prompt.rstrip("=").split("+")
    return str(int(a) + int(b))


def arithmetic_corpus(prompts: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(p, arithmetic_answer(p)) for p in (rng.choice(prompts) for _ in range(n))]


def arithmetic_pairs(prompts: list[str], n: int, seed: int) -> list[tuple[str, str, str]]:
    """(prompt, right answer, a near miss): DPO's offline pairs for the verifiable task."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = rng.choice(prompts)
        right = int(arithmetic_answer(p))
        wrong = max(0, right + rng.choice([-10, -2, -1, 1, 2, 10]))
        out.append((p, str(right), str(wrong if wrong != right else right + 1)))
    return out
