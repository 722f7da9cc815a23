"""The reward model: a transformer trunk (started from the SFT run) with a scalar head r(x, y),
trained on the oracle's chosen/rejected pairs with the Bradley–Terry loss

    P(y_w ≻ y_l | x) = σ(r(x, y_w) − r(x, y_l))        loss = −log σ(r(x, y_w) − r(x, y_l))

and judged by held-out pair accuracy: how often r ranks an unseen pair (on held-out prompts) as the
oracle does. The score is read at the response's EOS token.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from rltui.algos.lm_common import (
    Clock, StageCheckpoint, cpu_threads, epoch_minibatch, load_payload_checked, pair_batch, resolve_run, save_model, set_parent,
)
from rltui.lm.model import ScalarModel, build_model
from rltui.lm.tokenizer import CharTokenizer


def pair_scores(model: ScalarModel, tok: CharTokenizer, pairs, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    query, query_mask, response, response_mask = pair_batch(tok, pairs, device)
    r = model.sequence_score(torch.cat([query, response], 1), torch.cat([query_mask, response_mask], 1))
    return r[: len(pairs)], r[len(pairs):]


def pair_correct(r_w: torch.Tensor, r_l: torch.Tensor) -> torch.Tensor:
    """1 where the reward model ranks the chosen response higher, ½ on a tie (a coin flip would
    break it), 0 otherwise: the one rule behind both the training and the held-out accuracy."""
    return (r_w > r_l).float() + 0.5 * (r_w == r_l).float()


@torch.no_grad()
def pair_accuracy(model: ScalarModel, tok: CharTokenizer, pairs, device: str, batch: int = 256) -> tuple[float, float]:
    """(accuracy, mean margin r_w − r_l) on `pairs`; a tie counts half (a coin flip would break it)."""
    was = model.training
    model.eval()
    correct, margin = 0.0, 0.0
    for i in range(0, len(pairs), batch):
        r_w, r_l = pair_scores(model, tok, pairs[i : i + batch], device)
        correct += float(pair_correct(r_w, r_l).sum())
        margin += float((r_w - r_l).sum())
    model.train(was)
    return correct / len(pairs), margin / len(pairs)


def train(env, params, recorder, *, seed: int, device: str) -> dict:
    cpu_threads(device)
    if params.init_run is None:
        raise ValueError('init_run is required: the SFT run whose trunk the reward model starts from (init_run = "latest:lm_pretrain")')
    init_id = resolve_run(recorder, params.init_run, "init_run", ("lm_pretrain",), env.name)
    payload = load_payload_checked(recorder, init_id, "lm", "init_run")
    set_parent(recorder, init_id)
    tok = CharTokenizer.from_dict(payload["tokenizer"])
    model = ScalarModel(build_model(payload).cfg).to(device)
    model.lm.load_state_dict(payload["state_dict"])  # reuse the SFT trunk; the head starts at 0

    train_pairs = env.preference_pairs(params.n_pairs, "train", seed)
    heldout = env.preference_pairs(params.heldout_pairs, "heldout", seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=0.01)
    rng = random.Random(seed)
    clock = Clock(recorder, params.time_limit_s)
    total = params.epochs * -(-len(train_pairs) // params.batch_size)
    checkpoint = StageCheckpoint(recorder, params.checkpoint_every, total, model=model, optimizer=optimizer, rng=rng)
    resumed = checkpoint.restore()
    order: list[int] = []  # this epoch's shuffled pair indices
    if resumed is None:
        recorder.artifact("layout", env.layout())
        acc0, _ = pair_accuracy(model, tok, heldout, device)
        recorder.log(0, **{"eval/accuracy": acc0})
        step = 0
    else:
        step, acc0, order = resumed["step"], resumed["acc0"], resumed["order"]
    while step < total:
        batch, order = epoch_minibatch(train_pairs, step, params.batch_size, order, rng)
        r_w, r_l = pair_scores(model, tok, batch, device)
        loss = -F.logsigmoid(r_w - r_l).mean()  # Bradley–Terry negative log-likelihood
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 5 == 0 or step == 1:
            recorder.log(step, loss=loss.item(), accuracy=pair_correct(r_w, r_l).mean().item(),
                         **{"rewards/margins": (r_w - r_l).mean().item()})
        if step % params.eval_every == 0 or step == total:
            acc, margin = pair_accuracy(model, tok, heldout, device)
            recorder.log(step, **{"eval/accuracy": acc, "eval/margin": margin})
        recorder.progress(step / total)
        if checkpoint.after_update(step, step, lambda: {"step": step, "acc0": acc0, "order": order}):
            return {}
        if clock.over():
            break

    acc, margin = pair_accuracy(model, tok, heldout, device)
    train_acc, _ = pair_accuracy(model, tok, train_pairs[:512], device)
    save_model(recorder, model, "reward_model", tok)
    return {"heldout_pair_accuracy": round(acc, 4), "train_pair_accuracy": round(train_acc, 4),
            "heldout_margin": round(margin, 4), "initial_heldout_accuracy": round(acc0, 4), "steps": step,
            "init_run_id": init_id, "train_seconds": round(clock.elapsed(), 1)}
