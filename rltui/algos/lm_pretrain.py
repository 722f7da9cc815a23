"""Pretraining / SFT of the small causal transformer on the env's generated corpus.

    loss = −(1/N) Σ log π(x_{i+1} | x_≤i)     over real tokens (all of them, or response tokens only for SFT)

From scratch, or (init_run) continuing from an earlier run's weights. The final weights are stored
as the run's "model" artifact: the next stages start from them and keep a frozen copy as π_ref.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from rltui.algos.lm_common import (
    Clock, EpisodeLog, Scorer, StageCheckpoint, check_context, cpu_threads, encode_prompts, encode_responses, evaluate,
    load_policy, save_model,
)
from rltui.lm.model import LMConfig, TinyLM
from rltui.lm.tokenizer import CharTokenizer


def train(env, params, recorder, *, seed: int, device: str) -> dict:
    cpu_threads(device)
    # --- hyperparameters (params): model size, steps, batch, learning rate ---
    if params.init_run is not None:
        stage = load_policy(recorder, params.init_run, env, device)
        model, tok = stage.policy, stage.tokenizer
    else:
        if params.d_model % params.n_head:
            raise ValueError(f"n_head = {params.n_head} must divide d_model = {params.d_model}")
        tok = CharTokenizer()
        cfg = LMConfig(tok.vocab_size, params.d_model, params.n_layer, params.n_head, params.context_len)
        check_context(cfg.context_len, env)
        model = TinyLM(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())

    texts = env.corpus(params.corpus_size, seed)
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    warmup = max(1, params.steps // 20)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < warmup:
            return params.learning_rate * (step + 1) / warmup
        progress = (step - warmup) / max(1, params.steps - warmup)
        return params.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    scorer, log, clock = Scorer(env, tok, None, device), EpisodeLog(recorder, tok), Clock(recorder, params.time_limit_s)
    checkpoint = StageCheckpoint(recorder, params.checkpoint_every, params.steps, model=model, optimizer=optimizer, rng=rng)
    resumed = checkpoint.restore()
    metrics: dict[str, float] = {}
    step, loss = 0, None
    if resumed is None:
        recorder.artifact("layout", env.layout())
    else:
        step, loss, metrics = resumed["step"], torch.tensor(resumed["loss"]), resumed["metrics"]
        log.count.update(resumed["episode_count"])
    for step in range(step + 1, params.steps + 1):
        batch = [texts[rng.randrange(len(texts))] for _ in range(params.batch_size)]
        query, query_mask = encode_prompts(tok, [p for p, _ in batch], device)
        response, response_mask = encode_responses(tok, [r for _, r in batch], device)
        seq, seq_mask = torch.cat([query, response], 1), torch.cat([query_mask, response_mask], 1)
        logits, _, _ = model(seq, seq_mask)
        # next-token targets; a target counts if it is real (and, for SFT, a response token)
        target_mask = seq_mask[:, 1:].clone()
        if params.loss_on == "response":
            target_mask[:, : query.size(1) - 1] = False
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), seq[:, 1:].reshape(-1), reduction="none")
        loss = (nll * target_mask.reshape(-1)).sum() / target_mask.sum()

        for group in optimizer.param_groups:
            group["lr"] = lr_at(step - 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

        if step % 25 == 0 or step == 1:
            recorder.log(step, loss=loss.item(), learning_rate=lr_at(step - 1))
        if step % params.eval_every == 0 or step == params.steps:
            model.eval()
            metrics = evaluate(model, None, env, tok, scorer, params.eval_prompts, 1.0, device, seed, log, step)
            model.train()
            recorder.log(step, **metrics)
        recorder.progress(step / params.steps)
        if checkpoint.after_update(step, step, lambda: {"step": step, "loss": loss.item(), "metrics": metrics,
                                                        "episode_count": dict(log.count)}):
            return {}
        if clock.over():
            break

    save_model(recorder, model, "lm", tok)
    return {"final_loss": loss.item(), "steps": step, "n_params": n_params, "train_seconds": round(clock.elapsed(), 1),
            **{k.replace("/", "_"): round(v, 4) for k, v in metrics.items()}}
