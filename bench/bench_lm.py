"""LM lab benchmark: rollout speed with and without the KV cache, and the RLHF headline figures.

    python bench/bench_lm.py                  # everything (about 25 minutes on a 2-core CPU)
    python bench/bench_lm.py --part cache     # tokens/s, KV cache vs full recompute (a minute)
    python bench/bench_lm.py --part ppo       # reviews: pretrain → reward model → PPO (10 min limit)
    python bench/bench_lm.py --part grpo      # arithmetic: pretrain → GRPO (10 min limit)

The pipeline parts run the shipped sample_runs/lm_* configs through the real runner into a fresh
store (--db to keep it) and print the SFT policy's level next to the trained policy's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def bench_cache(device: str, batch: int, lengths: list[int], repeats: int) -> None:
    import torch

    from rltui.algos.lm_common import encode_prompts, generate
    from rltui.lm.model import LMConfig, TinyLM
    from rltui.lm.tokenizer import EOS, CharTokenizer

    torch.set_num_threads(1)
    tok = CharTokenizer()
    torch.manual_seed(0)
    model = TinyLM(LMConfig(tok.vocab_size, d_model=64, n_layer=2, n_head=4, context_len=96)).to(device).eval()

    class NoEOS(torch.nn.Module):  # every response runs to the cap, so both paths make the same tokens
        def __init__(self, head: torch.nn.Module) -> None:
            super().__init__()
            self.head = head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.head(x)
            out[..., EOS] = float("-inf")
            return out

    model.head = NoEOS(model.head)
    query, mask = encode_prompts(tok, ["the food was", "our room seemed"] * (batch // 2), device)
    print(f"rollout tokens/s, batch {batch}, d_model 64, 2 layers, device {device} (best of {repeats})")
    print(f"{'response len':>12} {'no cache':>12} {'KV cache':>12} {'speed-up':>9}")
    for n in lengths:
        rates = {}
        for use_cache in (False, True):
            best = 0.0
            for r in range(repeats):
                g = torch.Generator(device=device).manual_seed(r)
                t0 = time.perf_counter()
                resp, rmask = generate(model, query, mask, n, generator=g, use_cache=use_cache)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = max(best, int(rmask.sum()) / (time.perf_counter() - t0))
            rates[use_cache] = best
        print(f"{n:>12} {rates[False]:>12.0f} {rates[True]:>12.0f} {rates[True] / rates[False]:>8.2f}x")


def run_config(store, path: Path, overrides: list[str]) -> dict:
    from rltui.config import load_config_file
    from rltui.runner.execute import create_run, execute_run
    from rltui.store.models import Run

    config = load_config_file(path, overrides)
    run_id = create_run(store, config)
    t0 = time.perf_counter()
    status = execute_run(store, run_id)
    with store.read() as s:
        run = s.get(Run, run_id)
        summary, error = dict(run.summary or {}), run.error
    print(f"  run {run_id} {config.algo_id:<13} {status:<9} {time.perf_counter() - t0:7.1f} s  {path.name}")
    if status != "completed":
        raise SystemExit(f"run {run_id} {status}: {error}")
    return {"id": run_id, **summary}


def bench_ppo(store, device: str, rl_overrides: list[str]) -> None:
    print("preference task (lm-reviews): pretrain → reward model → PPO, on", device)
    dev = [f"device=\"{device}\""]
    run_config(store, REPO / "sample_runs/lm_reviews_1_pretrain.toml", dev)
    rm = run_config(store, REPO / "sample_runs/lm_reviews_2_reward_model.toml", dev)
    ppo = run_config(store, REPO / "sample_runs/lm_reviews_3_ppo.toml", dev + rl_overrides)
    print(f"  reward model: held-out pair accuracy {rm['heldout_pair_accuracy']:.3f} "
          f"(before training {rm['initial_heldout_accuracy']:.3f})")
    print(f"  PPO, {ppo['iterations']} iterations / {ppo['episodes']} responses in {ppo['train_seconds']} s:")
    print(f"    held-out reward-model score: SFT {ppo['sft_reward_mean']:+.3f} ± {ppo['sft_reward_std']:.3f} (std)"
          f" → PPO {ppo['final_reward_mean']:+.3f}: lift {ppo['lift_in_sft_std']:+.2f} SFT std (goal ≥ 1)")
    print(f"    oracle (lexicon) score: SFT {ppo['sft_oracle_score']:+.3f} → PPO {ppo['final_oracle_score']:+.3f}")
    print(f"    KL(π‖π_ref) per response on held-out prompts: {ppo['final_kl']:.3f} nats")
    print(json.dumps({"reward_model": rm, "ppo": ppo}))


def bench_grpo(store, device: str, rl_overrides: list[str]) -> None:
    print("verifiable task (lm-arithmetic): pretrain → GRPO, on", device)
    dev = [f"device=\"{device}\""]
    sft = run_config(store, REPO / "sample_runs/lm_arith_1_pretrain.toml", dev)
    grpo = run_config(store, REPO / "sample_runs/lm_arith_2_grpo.toml", dev + rl_overrides)
    print(f"  GRPO, {grpo['iterations']} iterations / {grpo['episodes']} responses in {grpo['train_seconds']} s:")
    print(f"    held-out exact match (greedy): SFT {grpo['sft_accuracy']:.3f} → GRPO {grpo['final_accuracy']:.3f}")
    print(f"    held-out exact match (sampled): SFT {grpo['sft_reward_mean']:.3f} → GRPO {grpo['final_reward_mean']:.3f}")
    print(f"    KL(π‖π_ref) per response: {grpo['final_kl']:.3f} nats")
    print(json.dumps({"pretrain": sft, "grpo": grpo}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "cache", "ppo", "grpo"), default="all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--db", help="keep the runs in this store (default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--time-limit", type=float,
                        help="cap the PPO/GRPO stage at this many seconds (default: the sample's time_limit_s)")
    args = parser.parse_args()
    rl_overrides = [f"algo.time_limit_s={args.time_limit}"] if args.time_limit else []

    if args.part in ("all", "cache"):
        bench_cache(args.device, 32, [16, 32, 64], args.repeats)
    if args.part in ("all", "ppo", "grpo"):
        from rltui.store import open_store

        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(args.db or str(Path(tmp) / "bench.db"))
            if args.part in ("all", "ppo"):
                bench_ppo(store, args.device, rl_overrides)
            if args.part in ("all", "grpo"):
                bench_grpo(store, args.device, rl_overrides)
            store.dispose()


if __name__ == "__main__":
    main()
