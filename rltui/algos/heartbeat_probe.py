"""heartbeat_probe: the runner's diagnostic algorithm (diagnostics family, `ticker` env).

Each step s = 1..steps: tick the env, log `count` = s (and the model's `loss` with uses_torch), record
an episode when the ticker's episode ends, report progress, sleep `step_seconds`, and echo
"heartbeat_probe step s t=UNIX_TIME" to stderr (the run's log), so a test can see how far the worker
got even when it was killed. With uses_torch it fits a 4→1 linear model by SGD to a fixed linear
target on batches drawn from (seed, s) — the same batches whether or not the run was interrupted —
and checkpoints model and optimizer every `checkpoint_every` steps; resume continues from there.
"""

from __future__ import annotations

import io
import sys
import time

TRUE_W = (1.0, -2.0, 0.5, 3.0)  # the target the torch variant regresses onto: y = x·w + 0.5


def train(env, params, recorder, *, seed: int, device: str) -> dict:  # noqa: ANN001
    gamma, length = env.gamma, env.episode_length
    start = 0
    model = optimizer = None
    if params.uses_torch:
        import torch

        model = torch.nn.Linear(4, 1).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    checkpoint = recorder.last_checkpoint()
    if checkpoint is not None and model is not None:
        start, data = checkpoint
        state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])

    # The ticker's state is a function of the steps done, so a resumed run picks the episode up.
    env.reset()
    env.state = start % length
    episode_index = start // length
    episode_return = sum(gamma**t for t in range(env.state))
    loss_value = None

    s = start
    while s < params.steps:
        if recorder.should_stop():
            break
        if s == params.fail_at_step:
            raise RuntimeError(f"heartbeat_probe: failing at step {s} as asked (fail_at_step={s})")
        t = env.state
        _, reward, done = env.step(0)
        episode_return += gamma**t * reward
        s += 1
        metrics = {"count": float(s)}
        if model is not None:
            # One SGD step on a batch fixed by (seed, s): minimise ½‖x·w + b − y‖².
            g = torch.Generator().manual_seed(seed * 1_000_003 + s)
            x = torch.randn(8, 4, generator=g)
            y = x @ torch.tensor(TRUE_W).unsqueeze(1) + 0.5
            loss = 0.5 * ((model(x.to(device)) - y.to(device)) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_value = float(loss.detach())
            metrics["loss"] = loss_value
        recorder.log(s, **metrics)
        if done:
            recorder.episode(episode_index, episode_return, length, step=s)
            episode_index += 1
            episode_return = 0.0
            env.reset()
        recorder.progress(s / params.steps)
        if model is not None and s % params.checkpoint_every == 0:
            buf = io.BytesIO()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buf)
            recorder.checkpoint(s, buf.getvalue())
        if params.print_every and s % params.print_every == 0:
            print(f"heartbeat_probe step {s} t={time.time():.3f}", file=sys.stderr, flush=True)
        if params.step_seconds:
            time.sleep(params.step_seconds)

    result = {"steps_done": s, "resumed_from": start if start else None}
    if loss_value is not None:
        result["final_loss"] = loss_value
    return result
