"""The scripted preference oracle: a sentiment lexicon standing in for a human labeller.

score(text) = Σ weight(word), with "not" flipping the sign of the next scored word. Between two
responses to the same prompt the oracle prefers the higher score (ties give no pair). The reward
model never sees this code: it learns it from chosen/rejected pairs, and the PPO run logs the
oracle's score next to the reward model's so reward hacking shows up as the two parting ways.
"""

from __future__ import annotations

import re

POSITIVE = {
    "great": 2.0, "wonderful": 2.0, "excellent": 2.0, "amazing": 2.0, "lovely": 2.0,
    "good": 1.0, "fun": 1.0, "nice": 1.0, "warm": 1.0, "fresh": 1.0, "clever": 1.0, "friendly": 1.0,
}
NEGATIVE = {
    "awful": -2.0, "terrible": -2.0, "horrible": -2.0, "boring": -2.0, "dreadful": -2.0,
    "bad": -1.0, "dull": -1.0, "cold": -1.0, "slow": -1.0, "bland": -1.0, "rude": -1.0, "stale": -1.0,
}
NEUTRAL = ["okay", "plain", "long", "short", "quiet", "busy", "loud", "simple", "average", "normal"]
LEXICON = {**POSITIVE, **NEGATIVE}
_WORD = re.compile(r"[a-z']+")


def sentiment(text: str) -> float:
    """The oracle's score of a response: the lexicon sum, "not X" counting as -X."""
    score, flip = 0.0, 1.0
    for word in _WORD.findall(text.lower()):
        if word == "not":
            flip = -1.0
            continue
        if word in LEXICON:
            score += flip * LEXICON[word]
            flip = 1.0
    return score


def prefer(a: str, b: str) -> int:
    """+1 if the oracle prefers a, -1 if b, 0 for a tie."""
    sa, sb = sentiment(a), sentiment(b)
    return (sa > sb) - (sa < sb)
