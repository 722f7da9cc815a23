"""A character-level tokenizer shipped with the project: no files, no downloads, fixed ids.

Ids 0..2 are special: PAD (padding, masked out of every loss), BOS (start of text), EOS (end of a
response: the episode's terminal action). Every other id is one character of ALPHABET.
"""

from __future__ import annotations

from typing import Iterable

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")
ALPHABET = " abcdefghijklmnopqrstuvwxyz0123456789.,!?'+=-:"


class CharTokenizer:
    """text <-> ids, one id per character. Unknown characters are an error (the corpus is closed)."""

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(self, alphabet: str = ALPHABET) -> None:
        self.alphabet = alphabet
        self.itos = list(SPECIALS) + list(alphabet)
        self.stoi = {ch: i + len(SPECIALS) for i, ch in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        try:
            ids = [self.stoi[ch] for ch in text.lower()]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the tokenizer's alphabet {self.alphabet!r}") from None
        return ([BOS] if bos else []) + ids + ([EOS] if eos else [])

    def decode(self, ids: Iterable[int], stop_at_eos: bool = True) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS and stop_at_eos:
                break
            if i >= len(SPECIALS):
                out.append(self.itos[i])
        return "".join(out)

    def token_str(self, i: int) -> str:
        """How one token shows in the replay screen ("<eos>" for the end of a response)."""
        return self.itos[int(i)]

    def to_dict(self) -> dict:
        return {"kind": "char", "alphabet": self.alphabet}

    @classmethod
    def from_dict(cls, data: dict) -> "CharTokenizer":
        return cls(data.get("alphabet", ALPHABET))
