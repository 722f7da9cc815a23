"""What the LM stages share: finding the earlier run, batching text, sampling with the KV cache,
log-probabilities over response tokens, GAE over tokens, scoring, evaluation and token-level episodes.

Layout of a batch of rollouts (B responses):

    query    (B, P)  left-padded prompt ids, BOS first         query_mask    (B, P)
    response (B, R)  sampled ids, EOS then PAD                 response_mask (B, R): real tokens, EOS included
    seq = [query | response], seq_mask = [query_mask | response_mask]

How a stage finds the one before it: the runner hands train() a StoreRecorder, whose `.store` and
`.run_id` are used here (and only here) to resolve `init_run`/`reward_run` (an id or "latest:ALGO":
the newest completed run of ALGO on the same env), to read that run's "model" artifact (torch.save
bytes of {"kind", "config", "tokenizer", "state_dict"}, loaded with weights_only=True), and to set
this run's parent_id (one UPDATE) so the store keeps the pipeline's edges.

Response token t is action a_t in state s_t = prompt + response[:t]; the logits that chose it sit at
position P - 1 + t of `seq`. Prompt and padding positions are never in a loss: every loss is a
masked mean over `response_mask`.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from sqlalchemy import select, update

from rltui.algos.common import restore_states, save_states
from rltui.algos.returns import gae
from rltui.lm.model import ScalarModel, TinyLM, build_model, load_payload, model_bytes
from rltui.lm.tokenizer import EOS, PAD, CharTokenizer
from rltui.recorder import StepRecord
from rltui.store.models import COMPLETED, Artifact, Run


class StageError(Exception):
    """An earlier pipeline stage that cannot be used (missing, unfinished, wrong kind)."""


# --- the pipeline: earlier runs as starting points ---------------------------------------------------
def _store_of(recorder: Any):  # noqa: ANN202
    store = getattr(recorder, "store", None)
    if store is None:
        raise StageError("this stage reads an earlier run's weights from the store: run it through the runner (rltui run CONFIG)")
    return store


def resolve_run(recorder: Any, ref: int | str, field: str, algos: Sequence[str], env_id: str) -> int:
    """The id of the completed run `ref` names (an id or "latest:ALGO"), checked fit for `field`."""
    store = _store_of(recorder)
    own = getattr(recorder, "run_id", None)
    with store.read() as session:
        if isinstance(ref, str) and ref.startswith("latest:"):
            algo = ref.split(":", 1)[1]
            run = session.scalars(
                select(Run).where(Run.algo_id == algo, Run.status == COMPLETED, Run.env_id == env_id, Run.id != own)
                .order_by(Run.id.desc()).limit(1)
            ).first()
            if run is None:
                raise StageError(
                    f'{field} = "{ref}": no completed {algo} run on {env_id} in this store yet; '
                    f"run that stage first (see sample_runs/lm_*), or name a run id"
                )
        else:
            run = session.get(Run, int(ref))
            if run is None:
                raise StageError(f"{field} = {ref}: there is no run {ref} in this store")
        if run.status != COMPLETED:
            raise StageError(
                f"{field} = {ref}: run {run.id} ({run.algo_id}) is {run.status}, not completed; "
                "its weights are not final. Wait for it, or name a completed run"
            )
        if run.algo_id not in algos:
            raise StageError(f"{field} = {ref}: run {run.id} is a {run.algo_id} run; {field} needs a run of {' or '.join(algos)}")
        if run.env_id != env_id:
            raise StageError(f"{field} = {ref}: run {run.id} was trained on {run.env_id}, this run is on {env_id}")
        has_model = session.scalar(select(Artifact.id).where(Artifact.run_id == run.id, Artifact.name == "model").limit(1))
        if has_model is None:
            raise StageError(f"{field} = {ref}: run {run.id} stored no model weights")
        return run.id


def load_run_model(recorder: Any, run_id: int) -> dict[str, Any]:
    """The payload of run `run_id`'s final "model" artifact (config, tokenizer, state_dict)."""
    with _store_of(recorder).read() as session:
        data = session.scalar(
            select(Artifact.data).where(Artifact.run_id == run_id, Artifact.name == "model")
            .order_by(Artifact.id.desc()).limit(1)
        )
    return load_payload(bytes(data))


def set_parent(recorder: Any, parent_id: int) -> None:
    """Record the pipeline edge: this run continues from `parent_id` (shown as the run's parent)."""
    run_id = getattr(recorder, "run_id", None)
    if run_id is None:
        return
    with _store_of(recorder).write() as session:
        session.execute(update(Run).where(Run.id == run_id).values(parent_id=parent_id))


def save_model(recorder: Any, model: torch.nn.Module, kind: str, tokenizer: CharTokenizer, **extra: Any) -> None:
    recorder.artifact("model", model_bytes(model, kind, tokenizer.to_dict(), **extra))


@dataclass
class Stage:
    """The starting point of a later stage: the policy to train and the frozen reference π_ref."""

    run_id: int
    policy: TinyLM
    ref: TinyLM
    tokenizer: CharTokenizer


def load_policy(recorder: Any, ref: int | str | None, env: Any, device: str, field: str = "init_run") -> Stage:
    if ref is None:
        raise StageError(f"{field} is required: {field} = 12 (a run id) or \"latest:lm_pretrain\"")
    run_id = resolve_run(recorder, ref, field, ("lm_pretrain", "lm_ppo", "grpo", "dpo"), env.name)
    payload = load_payload_checked(recorder, run_id, "lm", field)
    policy = build_model(payload).to(device)
    frozen = copy.deepcopy(policy).eval().requires_grad_(False)
    set_parent(recorder, run_id)
    check_context(policy.cfg.context_len, env)
    return Stage(run_id, policy, frozen, CharTokenizer.from_dict(payload["tokenizer"]))


def load_payload_checked(recorder: Any, run_id: int, kind: str, field: str) -> dict[str, Any]:
    payload = load_run_model(recorder, run_id)
    if payload["kind"] != kind:
        raise StageError(f"{field}: run {run_id} holds a {payload['kind']}, not a {kind}")
    return payload


def check_context(context_len: int, env: Any) -> None:
    longest = 1 + max(len(p) for p in env.train_prompts + env.heldout_prompts) + env.max_response_len
    if longest > context_len:
        raise StageError(
            f"the model's context is {context_len} tokens but BOS + the longest prompt + max_response_len "
            f"= {longest}; lower env.max_response_len or pretrain with a larger context_len"
        )


# --- text <-> tensors ---------------------------------------------------------------------------------
def encode_prompts(tok: CharTokenizer, prompts: Sequence[str], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded [BOS] + prompt ids (B, P) and their mask: the last prompt token sits at P - 1 for all."""
    rows = [tok.encode(p, bos=True) for p in prompts]
    P = max(len(r) for r in rows)
    ids = torch.full((len(rows), P), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, P - len(r):] = torch.tensor(r)
    return ids.to(device), (ids != PAD).to(device)


def encode_responses(tok: CharTokenizer, responses: Sequence[str], device: str, eos: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded response ids (B, R) (EOS appended) and their mask."""
    rows = [tok.encode(r, eos=eos) for r in responses]
    R = max(len(r) for r in rows)
    ids = torch.full((len(rows), R), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), R), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = True
    return ids.to(device), mask.to(device)


def pair_batch(tok: CharTokenizer, pairs: Sequence[tuple[str, str, str]], device: str):
    """(prompt, chosen, rejected) triples as one batch: rows [0, n) chosen, [n, 2n) rejected.
    Returns query, query_mask, response, response_mask."""
    prompts = [p for p, _, _ in pairs] * 2
    responses = [c for _, c, _ in pairs] + [r for _, _, r in pairs]
    return (*encode_prompts(tok, prompts, device), *encode_responses(tok, responses, device))


@dataclass
class Rollout:
    query: torch.Tensor
    query_mask: torch.Tensor
    response: torch.Tensor
    response_mask: torch.Tensor
    prompts: list[str]

    @property
    def seq(self) -> torch.Tensor:
        return torch.cat([self.query, self.response], 1)

    @property
    def seq_mask(self) -> torch.Tensor:
        return torch.cat([self.query_mask, self.response_mask], 1)

    @property
    def ended(self) -> torch.Tensor:
        """True where the response ended with EOS (not cut by the length cap)."""
        return ((self.response == EOS) & self.response_mask).any(1)

    def texts(self, tok: CharTokenizer) -> list[str]:
        return [tok.decode(r) for r in self.response.tolist()]

    def lengths(self) -> list[int]:
        return self.response_mask.sum(1).tolist()

    def select(self, idx: torch.Tensor) -> "Rollout":
        """The responses at `idx` (a 1-D index tensor), as a rollout of their own."""
        rows = idx.tolist()
        return Rollout(self.query[idx], self.query_mask[idx], self.response[idx], self.response_mask[idx],
                       [self.prompts[i] for i in rows])


@torch.no_grad()
def generate(
    model: TinyLM,
    query: torch.Tensor,
    query_mask: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    greedy: bool = False,
    use_cache: bool = True,
    return_logits: bool = False,
):
    """Sample responses token by token until EOS or the cap. With the KV cache each step feeds only
    the newest token; without it each step re-reads the whole sequence (same logits, O(T²))."""
    ids, mask = query, query_mask.bool()
    B = ids.size(0)
    done = torch.zeros(B, dtype=torch.bool, device=ids.device)
    tokens, masks, step_logits = [], [], []
    past = None
    for _ in range(max_new_tokens):
        if use_cache:
            logits, _, past = model(ids if past is None else ids[:, -1:], mask, past)
        else:
            logits, _, _ = model(ids, mask)
        logits = logits[:, -1] / temperature
        if return_logits:
            step_logits.append(logits)
        if greedy:
            nxt = logits.argmax(-1)
        else:
            nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        tokens.append(nxt)
        masks.append(~done)
        ids, mask = torch.cat([ids, nxt[:, None]], 1), torch.cat([mask, ~done[:, None]], 1)
        done = done | (nxt == EOS)
        if bool(done.all()):
            break
    response, response_mask = torch.stack(tokens, 1), torch.stack(masks, 1)
    if return_logits:
        return response, response_mask, torch.stack(step_logits, 1)
    return response, response_mask


def rollout(model: TinyLM, tok: CharTokenizer, prompts: list[str], max_new_tokens: int, temperature: float,
            generator: torch.Generator | None, device: str, greedy: bool = False) -> Rollout:
    query, query_mask = encode_prompts(tok, prompts, device)
    was_training = model.training
    model.eval()
    response, response_mask = generate(model, query, query_mask, max_new_tokens, temperature, generator, greedy)
    model.train(was_training)
    return Rollout(query, query_mask, response, response_mask, list(prompts))


def response_logprobs(model: TinyLM, seq: torch.Tensor, seq_mask: torch.Tensor, P: int, temperature: float = 1.0):
    """log π(a_t | s_t) and the entropy of π(·|s_t) for every response token: (B, R) each."""
    logits, _, _ = model(seq, seq_mask)
    logits = logits[:, P - 1 : -1] / temperature
    logp_all = F.log_softmax(logits, dim=-1)
    logprobs = logp_all.gather(-1, seq[:, P:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logprobs, entropy


def response_values(critic: ScalarModel, seq: torch.Tensor, seq_mask: torch.Tensor, P: int) -> torch.Tensor:
    """V(s_t) for every response token: read at the last token of s_t, position P - 1 + t. (B, R)"""
    return critic(seq, seq_mask)[:, P - 1 : -1]


def sequence_logprob(model: TinyLM, query, query_mask, response, response_mask) -> torch.Tensor:
    """log π(y|x) = Σ_t log π(y_t | x, y_<t) over the response's real tokens. (B,)"""
    seq, seq_mask = torch.cat([query, response], 1), torch.cat([query_mask, response_mask], 1)
    logprobs, _ = response_logprobs(model, seq, seq_mask, query.size(1))
    return (logprobs * response_mask).sum(1)


# --- masked statistics and GAE over tokens -----------------------------------------------------------
def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return (out if shift_mean else out + mean) * mask


def token_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """GAE over the tokens of each response (B, R), with returns.gae's recursion along time.

    A response ends at its last real token: the state after it is terminal (V = 0, no bootstrap), and
    padding after it carries nothing. Returns (advantages, returns), zero on padding.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    zeros = torch.zeros_like(values[:, :1])
    next_values = torch.cat([values[:, 1:], zeros], 1)
    terminal = 1.0 - torch.cat([mask[:, 1:], zeros], 1)  # s_{t+1} is past the response's end
    adv, ret = gae(rewards.T, values.T, next_values.T, terminal.T, terminal.T, gamma, lam)
    return adv.T.contiguous() * mask, ret.T.contiguous() * mask


# --- scoring ------------------------------------------------------------------------------------------
class Scorer:
    """The task's score of a finished response: the reward model (preference) or exact match (verifiable)."""

    def __init__(self, env: Any, tok: CharTokenizer, reward_model: ScalarModel | None, device: str) -> None:
        self.env, self.tok, self.reward_model, self.device = env, tok, reward_model, device

    @torch.no_grad()
    def __call__(self, ro: Rollout) -> torch.Tensor:
        if self.reward_model is None:
            texts, ended = ro.texts(self.tok), ro.ended.tolist()
            return torch.tensor([self.env.oracle_score(p, t, e) for p, t, e in zip(ro.prompts, texts, ended)],
                                dtype=torch.float32, device=ro.query.device)
        return self.reward_model.sequence_score(ro.seq, ro.seq_mask)

    def oracle(self, ro: Rollout) -> list[float]:
        return [self.env.oracle_score(p, t, e) for p, t, e in zip(ro.prompts, ro.texts(self.tok), ro.ended.tolist())]


def make_scorer(recorder: Any, env: Any, tok: CharTokenizer, reward_run: int | str | None, device: str,
                required: bool = True) -> tuple[Scorer, int | None]:
    if env.task == "verifiable" or (reward_run is None and not required):
        return Scorer(env, tok, None, device), None
    if reward_run is None:
        raise StageError('reward_run is required on the preference task: reward_run = 12 or "latest:reward_model"')
    run_id = resolve_run(recorder, reward_run, "reward_run", ("reward_model",), env.name)
    model = build_model(load_payload_checked(recorder, run_id, "reward_model", "reward_run")).to(device)
    return Scorer(env, tok, model.eval().requires_grad_(False), device), run_id


# --- evaluation and token-level episodes --------------------------------------------------------------
class EpisodeLog:
    """Numbers episodes per phase and stores their token-level trajectories where the recorder wants."""

    def __init__(self, recorder: Any, tok: CharTokenizer, record_per_batch: int = 1) -> None:
        self.recorder, self.tok, self.per_batch = recorder, tok, record_per_batch
        self.count = {"train": 0, "eval": 0}

    def add(self, ro: Rollout, scores: Sequence[float], phase: str, step: int, *, oracle: Sequence[float] | None = None,
            **per_token: torch.Tensor | None) -> None:
        """One episode per response; the first `record_per_batch` keep their steps (if wanted).

        scores: the return (the task's score: reward model or exact match); oracle: the gold score of
        each response where the score is a learned proxy, stored beside it so the responses that fool
        the reward model (proxy − gold largest) can be found.
        per_token: (B, R) tensors among logprob, ref_logprob, kl, value, advantage (None: left out).
        """
        lengths = ro.lengths()
        golds = list(oracle) if oracle is not None else [None] * len(lengths)
        for i, (score, length, gold) in enumerate(zip(scores, lengths, golds)):
            index = self.count[phase]
            self.count[phase] += 1
            steps = None
            if i < self.per_batch and self.recorder.wants_trajectory(index, phase):
                steps = self._steps(ro, i, length, float(score), per_token)
            self.recorder.episode(index, float(score), int(length), phase=phase, steps=steps, step=step,
                                  oracle_score=None if gold is None else float(gold))

    def _steps(self, ro: Rollout, i: int, length: int, score: float, per_token: dict) -> list[StepRecord]:
        ids = ro.response[i, :length].tolist()
        cols = {k: v[i, :length].tolist() for k, v in per_token.items() if v is not None}
        steps, prefix = [], ""
        for t, token in enumerate(ids):
            last = t == length - 1
            extras = {"token": self.tok.token_str(token)}
            extras.update({k: round(float(v[t]), 6) for k, v in cols.items()})
            steps.append(StepRecord(t, {"prompt": ro.prompts[i], "prefix": prefix}, int(token), score if last else 0.0, last, extras))
            prefix += self.tok.decode([token], stop_at_eos=True)
        return steps


def evaluate(policy: TinyLM, ref: TinyLM | None, env: Any, tok: CharTokenizer, scorer: Scorer, n_prompts: int,
             temperature: float, device: str, seed: int, log: EpisodeLog, step: int) -> dict[str, float]:
    """Held-out prompts (the same each time, sampled with a fixed seed): the metrics every stage logs.

    eval/reward_mean: mean task score of sampled responses (reward model or exact match);
    eval/oracle_score: the scripted oracle's mean (lexicon sentiment or exact match);
    eval/accuracy (verifiable task): exact-match rate of greedy responses.
    """
    g = torch.Generator(device=device).manual_seed(seed + 10_007)
    prompts = env.eval_prompts(n_prompts)
    ro = rollout(policy, tok, prompts, env.max_response_len, temperature, g, device)
    scores = scorer(ro)
    with torch.no_grad():
        logprobs, _ = response_logprobs(policy, ro.seq, ro.seq_mask, ro.query.size(1), temperature)
        ref_logprobs = logprobs if ref is None else response_logprobs(ref, ro.seq, ro.seq_mask, ro.query.size(1), temperature)[0]
    kl = (logprobs - ref_logprobs) * ro.response_mask
    oracle = scorer.oracle(ro)
    metrics = {
        "eval/reward_mean": float(scores.mean()),
        "eval/reward_std": float(scores.std()) if len(scores) > 1 else 0.0,
        "eval/oracle_score": sum(oracle) / len(oracle),
        "eval/kl": float(kl.sum(1).mean()),
        "eval/response_length": float(ro.response_mask.sum(1).float().mean()),
    }
    if env.task == "verifiable":
        greedy = rollout(policy, tok, prompts, env.max_response_len, 1.0, None, device, greedy=True)
        metrics["eval/accuracy"] = sum(scorer.oracle(greedy)) / len(prompts)
    if scorer.reward_model is not None:
        metrics.update(reward_model_agreement(policy, env, tok, scorer, prompts, temperature, g, device))
    log.add(ro, scores.tolist(), "eval", step, oracle=oracle if scorer.reward_model is not None else None,
            logprob=logprobs, ref_logprob=ref_logprobs, kl=kl)
    return metrics


@torch.no_grad()
def reward_model_agreement(policy: TinyLM, env: Any, tok: CharTokenizer, scorer: Scorer, prompts: Sequence[str],
                           temperature: float, generator: torch.Generator | None, device: str) -> dict[str, float]:
    """Is the reward model still trustworthy on what the policy writes now? Two fresh responses per
    prompt from the current policy, ranked by the reward model r and by the gold oracle g:

        rm/agreement_with_gold = P[ sign(r(y1) − r(y2)) = sign(g(y1) − g(y2)) | g(y1) ≠ g(y2) ]
        rm/gold_margin         = E[ (r(y1) − r(y2)) · sign(g(y1) − g(y2)) | g(y1) ≠ g(y2) ]

    The first is 1 for a reward model that ranks like the oracle and ½ for one that no longer tells
    better from worse; the second is the reward model's score gap in the gold's direction (its mean
    margin between gold-agreeing and gold-disagreeing pairs). Both fall as the policy's responses
    leave the reward model's training distribution. Pairs the oracle ties are left out (and
    rm/decided_pairs says how many were left); with none decided only that count is logged.
    """
    ro = rollout(policy, tok, [p for p in prompts for _ in range(2)], env.max_response_len, temperature, generator, device)
    proxy = scorer(ro).float().view(-1, 2)
    gold = torch.tensor(scorer.oracle(ro), dtype=torch.float32, device=proxy.device).view(-1, 2)
    return gold_agreement(proxy, gold)


def gold_agreement(proxy: torch.Tensor, gold: torch.Tensor) -> dict[str, float]:
    """The two figures above from (pairs, 2) tensors of reward-model and oracle scores."""
    gold_sign = torch.sign(gold[:, 0] - gold[:, 1])
    decided = gold_sign != 0
    if not bool(decided.any()):  # agreement is undefined when the oracle ties every pair
        return {"rm/decided_pairs": 0.0}
    proxy_gap = (proxy[:, 0] - proxy[:, 1])[decided]
    gold_sign = gold_sign[decided]
    return {
        "rm/agreement_with_gold": float((torch.sign(proxy_gap) == gold_sign).float().mean()),
        "rm/gold_margin": float((proxy_gap * gold_sign).mean()),
        "rm/decided_pairs": float(decided.sum()),
    }


def epoch_minibatch(items: list, step: int, batch_size: int, order: list[int], rng) -> tuple[list, list[int]]:
    """The `step`-th minibatch of passes over `items`, reshuffled (with `rng`) at the start of every
    pass. `order` is the current pass's shuffled indices: checkpointed, so a resumed stage continues
    mid-pass with the same batches. Returns (minibatch, order)."""
    batches_per_pass = -(-len(items) // batch_size)
    batch_in_pass = step % batches_per_pass
    if batch_in_pass == 0:
        order = list(range(len(items)))
        rng.shuffle(order)
    start = batch_in_pass * batch_size
    return [items[j] for j in order[start : start + batch_size]], order


class StageCheckpoint:
    """Resume for a stage (`rltui resume`): every `every` updates, and when the run is asked to stop,
    the stage's stateful objects (weights, optimizer, RNGs) and counters are checkpointed at the
    metrics' current x-axis step; a resumed run restores them and carries on with the same step
    count and metric series. The frozen reference and reward model are not saved: they are reloaded
    from the runs they came from."""

    def __init__(self, recorder: Any, every: int, updates: int, **objects: Any) -> None:
        self.recorder, self.every, self.updates, self.objects = recorder, every, updates, objects

    def restore(self) -> dict[str, Any] | None:
        """The counters of the last checkpoint (its states already put back), or None on a fresh run."""
        return restore_states(self.recorder, **self.objects)

    def after_update(self, update: int, step: int, counters: Callable[[], dict[str, Any]]) -> bool:
        """Call once everything of update `update` is recorded (at x-axis `step`). True when the run
        was asked to stop: the checkpoint is written and the stage returns at once, leaving the final
        evaluation and weights to the resumed run."""
        cancelled = self.recorder.should_stop()
        if cancelled or (self.every and update % self.every == 0 and update < self.updates):
            save_states(self.recorder, step, counters(), **self.objects)
        return cancelled


class Clock:
    """time_limit_s and should_stop(): the two reasons a stage ends early."""

    def __init__(self, recorder: Any, limit_s: float) -> None:
        self.recorder, self.limit_s, self.t0 = recorder, limit_s, time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def over(self) -> bool:
        return self.recorder.should_stop() or (self.limit_s > 0 and self.elapsed() >= self.limit_s)


def cpu_threads(device: str) -> None:
    """One intra-op thread on CPU: these matrices are tiny, so thread hand-offs cost more than they
    save, and several runs of the lab often share the cores (measured: 1 thread ran a training step
    4-8x faster than 2 on a loaded 2-core machine)."""
    if device == "cpu":
        torch.set_num_threads(1)


def seeded(seed: int, device: str) -> tuple[random.Random, torch.Generator]:
    """The stage's prompt sampler and sampling generator, both from the run's seed."""
    return random.Random(seed), torch.Generator(device=device).manual_seed(seed)
