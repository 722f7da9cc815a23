"""What the deep algorithms share besides buffers and returns: device and thread set-up, the
deterministic evaluation round (with full trajectories for replay), the best evaluated weights,
checkpoints for resume, and the steps-per-second timer.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from rltui.algos.cpu_memory import keep_freed_memory
from rltui.envs.control import VectorEnv, as_control
from rltui.recorder import Recorder, StepRecord

EVAL_SEED_OFFSET = 1_000_003  # evaluation copies never share a seed with training copies


def setup(env: Any, params: Any, device: str) -> tuple[Any, torch.device]:
    """(control view of env, torch device). One CPU thread is fastest for small MLPs (no fork/join); on a
    CPU the process keeps its freed memory for the next update (cpu_memory.py)."""
    if params.torch_threads:
        torch.set_num_threads(params.torch_threads)
    dev = torch.device(device)
    if dev.type == "cpu":
        keep_freed_memory()
    return as_control(env), dev


def clip_grad_norm(parameters: Any, max_norm: float) -> torch.Tensor:
    """Scale gradients so their global L2 norm is at most max_norm (torch's clip_grad_norm_, minus the
    per-call bookkeeping that costs more than the maths for a small MLP)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))
    return norm


def obs_tensor(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(obs).to(device, non_blocking=True)


@dataclass
class Counters:
    """Everything that must survive a resume besides weights: where the run is."""

    global_step: int = 0
    episode: int = 0  # training episodes finished (the next one gets this index)
    eval_round: int = 0
    eval_episode: int = 0
    updates: int = 0
    next_eval: int = 0
    next_checkpoint: int = 0
    next_log: int = 0
    best_eval: float = float("-inf")
    best_eval_step: int | None = None
    last_eval: float | None = None
    last_eval_step: int | None = None
    recent: list[float] = field(default_factory=list)  # last training returns (for the summary)

    def log_due(self, every: int) -> bool:
        """True once per `every` environment steps; the caller then logs its update statistics."""
        if self.global_step < self.next_log:
            return False
        self.next_log = self.global_step + every
        return True

    def checkpoint_due(self, every: int) -> bool:
        """True each `every` environment steps after the first (0: never; the final one is the caller's)."""
        if not every or self.global_step < self.next_checkpoint:
            return False
        due = bool(self.next_checkpoint)
        self.next_checkpoint = self.global_step + every
        return due

    def report_episodes(self, recorder: Recorder, finished: list[tuple[int, float, int]]) -> None:
        for _, ret, length in finished:
            recorder.episode(self.episode, ret, length, step=self.global_step)
            self.episode += 1
            self.recent.append(ret)
        if len(self.recent) > 100:
            del self.recent[:-100]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- evaluation -------------------------------------------------------------------------------------
ActFn = Callable[[torch.Tensor, bool], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def evaluate(
    venv: VectorEnv,
    act: ActFn,
    recorder: Recorder,
    counters: Counters,
    device: torch.device,
    track: bool = True,
) -> float:
    """One evaluation round: each of venv's copies plays one episode with the deterministic policy.

    `act(obs, with_extras)` returns (actions, extras): extras such as Q(s,·), π(·|s), V(s) per copy,
    computed only when a trajectory is kept. Returns the mean return of the round (summed in float64:
    float32 rewards summed in float32 drift over long episodes). `track` makes it the run's latest
    evaluation (counters.last_eval, best_eval); the closing round of the chosen policy is not one.
    """
    n = venv.num_envs
    first_index = counters.eval_episode
    keep = [recorder.wants_trajectory(first_index + i, "eval") for i in range(n)]
    record = any(keep)
    trajectories: list[list[StepRecord]] = [[] for _ in range(n)]
    returns = np.zeros(n, np.float64)
    lengths = np.zeros(n, np.int64)
    running = np.ones(n, bool)
    obs = venv.reset()
    with torch.inference_mode():
        while running.any():
            states = [venv.state_json(i) if keep[i] and running[i] else None for i in range(n)]
            actions, extras = act(obs_tensor(obs, device), record)
            actions_np = actions.cpu().numpy()
            extras_np = {k: v.cpu().numpy() for k, v in extras.items()} if record else {}
            obs, rewards, terminated, truncated, _, finished = venv.step(actions_np)
            ended = (terminated + truncated) > 0
            for i in np.flatnonzero(running):
                returns[i] += float(rewards[i])
                lengths[i] += 1
                if keep[i]:
                    trajectories[i].append(
                        StepRecord(
                            t=int(lengths[i] - 1),
                            state=states[i],
                            action=_action_json(actions_np[i]),
                            reward=float(rewards[i]),
                            done=bool(ended[i]),
                            extras={k: _json(v[i]) for k, v in extras_np.items()},
                        )
                    )
            running &= ~ended
    for i in range(n):
        recorder.episode(first_index + i, float(returns[i]), int(lengths[i]), phase="eval",
                         steps=trajectories[i] if keep[i] else None, step=counters.global_step)
    counters.eval_episode += n
    counters.eval_round += 1
    mean = float(returns.mean())
    if track:
        counters.last_eval, counters.last_eval_step = mean, counters.global_step
        if mean > counters.best_eval:
            counters.best_eval, counters.best_eval_step = mean, counters.global_step
    return mean


def _action_json(a: np.ndarray) -> Any:
    return int(a) if a.ndim == 0 else [float(v) for v in a]


def _json(v: Any) -> Any:
    return float(v) if np.ndim(v) == 0 else [float(x) for x in v]


class EvalSchedule:
    """Runs an evaluation round every `every` env steps, timing it apart from training.

    `train_seconds` is wall-clock time minus evaluation time, `train_cpu_seconds` the same in process
    CPU time: the benchmark's clocks (SB3's are stopped the same way while it evaluates).
    """

    def __init__(self, env: Any, params: Any, seed: int, act: ActFn, recorder: Recorder, counters: Counters,
                 device: torch.device, policy: dict[str, torch.nn.Module], restored: dict[str, Any] | None = None) -> None:
        self.every = params.eval_every
        self.venv = env.vector(seed + EVAL_SEED_OFFSET, num_envs=params.eval_episodes) if self.every else None
        self.act, self.recorder, self.counters, self.device = act, recorder, counters, device
        self.final_policy: str = params.final_policy
        self.closing: dict[str, Any] = {}  # what final() measured, for the summary
        self.best = BestWeights(policy)
        if restored is not None and restored.get("best") is not None:
            self.best.load_state_dict(restored["best"])
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.eval_seconds = self.eval_cpu_seconds = 0.0
        if self.every and counters.next_eval == 0:
            counters.next_eval = self.every

    def train_seconds(self) -> float:
        return time.perf_counter() - self.t0 - self.eval_seconds

    def train_cpu_seconds(self) -> float:
        return time.process_time() - self.cpu0 - self.eval_cpu_seconds

    def maybe(self) -> None:
        c = self.counters
        if self.venv is None or c.global_step < c.next_eval:
            return
        while c.next_eval <= c.global_step:
            c.next_eval += self.every
        self.run()

    def run(self) -> float:
        assert self.venv is not None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # queued GPU work belongs to training, not to the evaluation
        t, cpu = time.perf_counter(), time.process_time()
        train_s, train_cpu = self.train_seconds(), self.train_cpu_seconds()
        mean = evaluate(self.venv, self.act, self.recorder, self.counters, self.device)
        if self.counters.best_eval_step == self.counters.global_step:  # this round beat every earlier one
            self.best.keep(self.counters.global_step, mean)
        self.recorder.log(self.counters.global_step, eval_return=mean, train_time=train_s, train_cpu_time=train_cpu)
        self.recorder.flush()  # the round's trajectories are written on the evaluation's clock, not training's
        self.eval_seconds += time.perf_counter() - t
        self.eval_cpu_seconds += time.process_time() - cpu
        return mean

    def final(self) -> None:
        """The closing evaluations, before the final checkpoint (which then counts their episodes):

        * the last weights, unless a round just ran at this step: the summary's final_eval_return is
          the policy the run ended with;
        * then, with final_policy = "best" and a best round earlier than the last, one more round with
          the best evaluated weights, put back for it and taken out again (the checkpoint keeps the
          last weights, so a resume continues training from them). Its episodes are the run's last
          evaluation episodes, the ones replay opens on; its mean is policy_eval_return.
        """
        c = self.counters
        self.closing = {"final_policy": self.final_policy, "best_eval_step": c.best_eval_step}
        if self.venv is None or c.global_step == 0 or self.recorder.should_stop():
            return
        if c.last_eval_step != c.global_step:
            self.run()
        if self.final_policy == "last" or self.best.state is None or self.best.step == c.last_eval_step:
            self.closing["policy_eval_return"] = c.last_eval
            return
        last = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in self.best.policy.items()}
        self.best.load_into_policy()
        self.closing["policy_eval_return"] = evaluate(self.venv, self.act, self.recorder, c, self.device, track=False)
        self.recorder.flush()
        for name, module in self.best.policy.items():
            module.load_state_dict(last[name])


class BestWeights:
    """The policy's weights from the best evaluation round so far (the run's "best" artifact beside
    its checkpoint): a CPU copy of each module's state dict, taken when a round beats every earlier one."""

    def __init__(self, policy: dict[str, torch.nn.Module]) -> None:
        self.policy = policy
        self.state: dict[str, dict[str, torch.Tensor]] | None = None
        self.step: int | None = None
        self.eval_return: float | None = None
        self.written_step: int | None = None  # step of the "best" artifact last written

    def keep(self, step: int, eval_return: float) -> None:
        self.state = {name: {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}
                      for name, m in self.policy.items()}
        self.step, self.eval_return = step, eval_return

    def load_into_policy(self) -> None:
        assert self.state is not None
        for name, module in self.policy.items():
            module.load_state_dict(self.state[name])

    def state_dict(self) -> dict[str, Any] | None:
        if self.state is None:
            return None
        return {"weights": self.state, "step": self.step, "eval_return": self.eval_return}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state, self.step, self.eval_return = state["weights"], int(state["step"]), float(state["eval_return"])
        self.written_step = self.step  # it was written with the checkpoint it came from

    def write(self, recorder: Recorder) -> None:
        """Store the "best" artifact (torch.save bytes of {weights, step, eval_return}) if it changed."""
        if self.state is None or self.written_step == self.step:
            return
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        recorder.artifact("best", buf.getvalue(), step=self.step)
        self.written_step = self.step


def load_best(data: bytes) -> dict[str, Any]:
    """A run's "best" artifact back: {"weights": {module name: state dict}, "step", "eval_return"}."""
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


# --- checkpoints ------------------------------------------------------------------------------------
def save_checkpoint(recorder: Recorder, counters: Counters, rng: np.random.Generator, best: BestWeights | None = None,
                    **state: Any) -> None:
    """torch.save of state dicts, counters and RNG states → recorder.checkpoint (resume restores all),
    with the best evaluated weights so far (also written as the "best" artifact when they changed)."""
    if best is not None:
        best.write(recorder)
    payload = {
        **state,
        "best": best.state_dict() if best is not None else None,
        "counters": counters.as_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    recorder.checkpoint(counters.global_step, buf.getvalue())


def load_checkpoint(recorder: Recorder, counters: Counters, rng: np.random.Generator) -> dict[str, Any] | None:
    """Restore counters and RNG states from the run's last checkpoint; returns the rest (or None)."""
    found = recorder.last_checkpoint()
    if found is None:
        return None
    _, data = found
    payload = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    for key, value in payload.pop("counters").items():
        setattr(counters, key, value)
    rng_state = payload.pop("rng")
    torch.set_rng_state(rng_state["torch"])
    rng.bit_generator.state = rng_state["numpy"]
    return payload


def _state_of(obj: Any) -> Any:
    """What resumes `obj`: a module's or optimizer's state dict, a torch.Generator's or random.Random's state."""
    if hasattr(obj, "state_dict"):
        return obj.state_dict()
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    return obj.getstate()


def _set_state(obj: Any, state: Any) -> None:
    if hasattr(obj, "load_state_dict"):
        obj.load_state_dict(state)
    elif isinstance(obj, torch.Generator):
        obj.set_state(state)
    else:
        obj.setstate(state)


def save_states(recorder: Recorder, step: int, counters: dict[str, Any], **objects: Any) -> None:
    """Checkpoint at `step` (the x-axis of the run's metrics: resume drops what was recorded after it)
    for a loop of its own: the objects' states (modules, optimizers, torch.Generator, random.Random),
    the global torch RNG and plain counters, as torch.save bytes that load with weights_only=True."""
    payload = {
        "counters": counters,
        "torch_rng": torch.get_rng_state(),
        "states": {name: _state_of(obj) for name, obj in objects.items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    recorder.checkpoint(step, buf.getvalue())


def restore_states(recorder: Recorder, **objects: Any) -> dict[str, Any] | None:
    """On resume, put the last checkpoint's states back into `objects` (named as they were saved)
    and return its counters; None on a fresh run."""
    found = recorder.last_checkpoint()
    if found is None:
        return None
    payload = torch.load(io.BytesIO(found[1]), weights_only=True, map_location="cpu")
    torch.set_rng_state(payload["torch_rng"])
    for name, obj in objects.items():
        _set_state(obj, payload["states"][name])
    return payload["counters"]


class SPS:
    """Environment steps per second since the last call."""

    def __init__(self, step: int) -> None:
        self.t, self.step = time.perf_counter(), step

    def __call__(self, step: int) -> float:
        now = time.perf_counter()
        sps = (step - self.step) / max(now - self.t, 1e-9)
        self.t, self.step = now, step
        return sps


def finish_summary(counters: Counters, schedule: EvalSchedule | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's summary: the final (last weights) and best evaluations, and the closing round of the
    policy `final_policy` chooses (policy_eval_return; see EvalSchedule.final)."""
    recent = counters.recent[-20:]
    out = {
        "global_step": counters.global_step,
        "episodes": counters.episode,
        "final_return": float(np.mean(recent)) if recent else None,
        "best_eval_return": None if counters.best_eval == float("-inf") else counters.best_eval,
        "final_eval_return": counters.last_eval,
    }
    if schedule is not None:
        out["train_seconds"] = round(schedule.train_seconds(), 3)
        out["train_cpu_seconds"] = round(schedule.train_cpu_seconds(), 3)
        out.update(schedule.closing)
    out.update(extra or {})
    return out


def restore_or_start(recorder: Recorder, counters: Counters, rng: np.random.Generator, env: Any,
                     **modules: Any) -> dict[str, Any] | None:
    """On resume, load each named module's state (agent=..., optimizer=...) from the last checkpoint
    and return the whole checkpoint; on a fresh run, store the env's layout for replay and return None."""
    restored = load_checkpoint(recorder, counters, rng)
    if restored is None:
        recorder.artifact("layout", env.layout())
        return None
    for name, module in modules.items():
        module.load_state_dict(restored[name])
    return restored


def policy_act(agent: Any, action_dim: int, discrete: bool, with_value: bool) -> Callable[..., Any]:
    """The deterministic action an evaluation episode takes, with what the policy saw at that step:
    π(·|s) (or the Gaussian's μ, σ) and, when the agent has a critic, V(s)."""

    def act(obs: torch.Tensor, with_extras: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        action, _ = agent.act(obs, deterministic=True)
        if not with_extras:
            return action, {}
        probs = agent.probs(obs)
        extras = {"pi": probs} if discrete else {"mu": probs[:, :action_dim], "sigma": probs[:, action_dim:]}
        if with_value:
            extras["V"] = agent.value(obs)
        return action, extras

    return act
