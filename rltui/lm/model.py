"""A small causal transformer (GPT-style, pre-LayerNorm) with a KV cache, plus scalar heads.

    TinyLM(ids, attention_mask, past) -> logits (B, T, V), hidden (B, T, d), present
    ScalarModel = a TinyLM trunk + Linear(d, 1): the reward model (one score per sequence, read at
    its last real token) and PPO's critic V(s_t) (one value per position).

Prompts in a batch are left-padded: `attention_mask` (B, T_total) marks real tokens, positions
count real tokens only, and a padded key is never attended to. With `past` (the KV cache of the
tokens already seen) only the new tokens go through the network; generation then costs O(T) per
token instead of O(T²). Weights travel as bytes (torch.save of a plain dict, loaded weights_only).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

KV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    context_len: int = 64


class Block(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (z.view(B, T, self.n_head, D // self.n_head).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # softmax(q kᵀ / √d_head) over the allowed keys only (causal and not padding)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        att = att.masked_fill(~allowed[:, None], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.proj(y)
        x = x + self.mlp(self.ln2(x))
        return x, (k, v)


class TinyLM(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(_init)

    def trunk(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, past: KV | None = None):
        """Hidden states of the new tokens `ids` (B, T) given `past` (the cache of earlier tokens).

        `attention_mask` (B, T_past + T) covers the cached tokens and the new ones.
        """
        B, T = ids.shape
        n_past = past[0][0].size(2) if past else 0
        if attention_mask is None:
            attention_mask = torch.ones(B, n_past + T, dtype=torch.bool, device=ids.device)
        attention_mask = attention_mask.bool()
        # position = number of real tokens before this one (left padding does not count)
        positions = (attention_mask.long().cumsum(1) - 1).clamp(min=0)[:, n_past:]
        if int(positions.max()) >= self.cfg.context_len:
            raise ValueError(f"sequence longer than the model's context ({self.cfg.context_len} tokens)")
        q_idx = torch.arange(n_past, n_past + T, device=ids.device)
        k_idx = torch.arange(n_past + T, device=ids.device)
        causal = k_idx[None, :] <= q_idx[:, None]  # (T, T_all)
        allowed = causal[None] & attention_mask[:, None, :]
        # a padded query would attend to nothing (NaN): let every query see itself; its output is masked anyway
        allowed = allowed | (k_idx[None, None, :] == q_idx[None, :, None])
        x = self.tok(ids) + self.pos(positions)
        present: KV = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, allowed, past[i] if past else None)
            present.append(kv)
        return self.ln_f(x), present

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, past: KV | None = None):
        hidden, present = self.trunk(ids, attention_mask, past)
        return self.head(hidden), hidden, present


class ScalarModel(nn.Module):
    """A transformer trunk with a scalar head: the reward model r(x, y) and the critic V(s_t)."""

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.lm = TinyLM(cfg)
        self.score = nn.Linear(cfg.d_model, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    @property
    def cfg(self) -> LMConfig:
        return self.lm.cfg

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One scalar per position (B, T)."""
        hidden, _ = self.lm.trunk(ids, attention_mask)
        return self.score(hidden).squeeze(-1)

    def sequence_score(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """r(x, y): the score at the last real token of each (left- or right-padded) sequence."""
        per_token = self(ids, attention_mask)
        T = ids.size(1)
        last = T - 1 - attention_mask.long().flip(1).argmax(1)  # index of the last real token
        return per_token.gather(1, last[:, None]).squeeze(1)


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


# --- weights as bytes (the "model" artifact of a run) ---------------------------------------------
def model_bytes(model: nn.Module, kind: str, tokenizer: dict[str, Any], **extra: Any) -> bytes:
    cfg = model.cfg
    payload = {
        "kind": kind,  # "lm" | "reward_model"
        "config": asdict(cfg),
        "tokenizer": tokenizer,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def load_payload(data: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def build_model(payload: dict[str, Any]) -> nn.Module:
    cfg = LMConfig(**payload["config"])
    model: nn.Module = ScalarModel(cfg) if payload["kind"] == "reward_model" else TinyLM(cfg)
    model.load_state_dict(payload["state_dict"])
    return model
