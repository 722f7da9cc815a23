"""The cuda path, end to end: runs on a real GPU store what they did, say which device they used,
resume from a GPU checkpoint, and count against the GPU's own queue slots.

Skipped where torch sees no CUDA device (CI has none); run on a GPU machine with
`pytest tests/test_cuda.py`. Every test uses the real runner, real worker processes and a real store.
"""

from __future__ import annotations

import json
import math
import time

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device here", allow_module_level=True)

from sqlalchemy import select  # noqa: E402

from conftest import SAMPLE_RUNS, rltui_cli  # noqa: E402
from rltui.config import load_config_text  # noqa: E402
from rltui.recorder import StoreRecorder  # noqa: E402
from rltui.runner import launch  # noqa: E402
from rltui.runner.execute import create_run, execute_run, stored_config  # noqa: E402
from rltui.store.models import Episode, Metric, Run  # noqa: E402
from rltui.store.queries import metric_series, trajectory  # noqa: E402
from test_deep_algos import CONFIGS  # noqa: E402
from test_deep_sac import CONFIGS as CONTINUOUS_CONFIGS  # noqa: E402


def run_on(store, text: str, device: str = "cuda") -> Run:
    run_id = create_run(store, load_config_text(f'seed = 3\ndevice = "{device}"\n{text}'))
    status = execute_run(store, run_id)
    with store.read() as s:
        run = s.get(Run, run_id)
        s.expunge(run)
    assert status == "completed", f"{run.status}: {run.error}\n{run.traceback}"
    return run


@pytest.mark.parametrize("algo", ["dqn", "ppo", "a2c", "reinforce", "sac", "td3"])
def test_deep_rl_runs_on_cuda_and_stores_what_the_network_saw(store, algo):
    run = run_on(store, CONFIGS.get(algo) or CONTINUOUS_CONFIGS[algo])
    assert run.device_used == "cuda:0"
    assert run.versions["cuda"] and run.versions["gpu"]
    with store.read() as s:
        loss_key = "critic_loss" if algo in CONTINUOUS_CONFIGS else "loss"
        values = s.scalars(select(Metric.value).where(Metric.run_id == run.id, Metric.key == loss_key)).all()
        eval_episode = s.scalars(select(Episode).where(Episode.run_id == run.id, Episode.phase == "eval")
                                 .order_by(Episode.id.desc())).first()
        steps = trajectory(s, eval_episode.id)
    assert values and all(v is not None and math.isfinite(v) for v in values)
    extras = steps[0].extras  # tensors came back to plain floats for the store
    if algo in CONTINUOUS_CONFIGS:
        assert isinstance(extras["Q"], float) and all(isinstance(x, float) for x in extras["mu"])
    else:
        assert all(isinstance(x, float) for x in extras.get("Q", extras.get("pi")))
    assert run.summary["best_eval_return"] is not None


PIXEL_DQN = """
[env]
id = "MinAtar/Breakout-v1"
num_envs = 4
[algo]
id = "dqn"
total_timesteps = 2000
learning_starts = 500
buffer_size = 5000
batch_size = 32
net_arch = [128]
eval_every = 1000
eval_episodes = 2
"""


def test_pixel_dqn_runs_on_cuda_with_bool_frames_made_float_on_the_gpu(store):
    import numpy as np

    from rltui.algos.buffers import ReplayBuffer

    replay = ReplayBuffer(64, (10, 10, 4), obs_dtype=np.bool_)
    frames = np.random.default_rng(0).random((4, 10, 10, 4)) > 0.7
    replay.add(frames, np.arange(4), np.ones(4), frames, np.zeros(4))
    batch = replay.sample(16, np.random.default_rng(1), torch.device("cuda:0"))
    assert batch.obs.device.type == "cuda" and batch.obs.dtype == torch.float32
    assert torch.equal(batch.obs.cpu(), torch.from_numpy(frames[batch.actions.cpu().numpy()].astype(np.float32)))
    run = run_on(store, PIXEL_DQN)
    assert run.device_used == "cuda:0" and run.summary["updates"] > 100
    with store.read() as s:
        losses = s.scalars(select(Metric.value).where(Metric.run_id == run.id, Metric.key == "loss")).all()
        eval_episode = s.scalars(select(Episode).where(Episode.run_id == run.id, Episode.phase == "eval")
                                 .order_by(Episode.id.desc())).first()
        first = trajectory(s, eval_episode.id)[0]
    assert losses and all(math.isfinite(v) for v in losses)
    assert len(first.state["frame"]) == 10 and len(first.extras["Q"]) == 3


def test_atari_dqn_runs_on_cuda_through_ales_vector_env(store):
    pytest.importorskip("ale_py")
    run = run_on(store, """
[env]
id = "ALE/Breakout-v5"
num_envs = 4
max_episode_steps = 400
[algo]
id = "dqn"
total_timesteps = 2000
learning_starts = 500
buffer_size = 2000
batch_size = 32
net_arch = [512]
eval_every = 1000
eval_episodes = 2
[record]
max_steps = 400
""")
    assert run.device_used == "cuda:0" and run.summary["updates"] > 100
    with store.read() as s:
        eval_episode = s.scalars(select(Episode).where(Episode.run_id == run.id, Episode.phase == "eval")
                                 .order_by(Episode.id.desc())).first()
        first = trajectory(s, eval_episode.id)[0]
    assert len(first.state["gray"]) == 42 and len(first.extras["Q"]) == 4  # Breakout's minimal action set


def test_a_cuda_checkpoint_resumes_the_same_run(store):
    from rltui import registry

    run = run_on(store, CONFIGS["ppo"])
    config = stored_config(store, run.id)
    params = config.algo.model_copy(update={"total_timesteps": 1536})
    env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
    recorder = StoreRecorder(store, run.id)
    summary = registry.load_callable(registry.algo_spec("ppo").entry)(env, params, recorder, seed=3, device="cuda:0")
    recorder.close()
    assert summary["global_step"] >= 1536
    with store.read() as s:
        steps = [step for step, _, _ in metric_series(s, run.id, "sps")]
    assert max(steps) > 768 and steps == sorted(steps)


def test_language_model_pretraining_runs_on_cuda(db_path):
    proc = rltui_cli("run", str(SAMPLE_RUNS / "lm_arith_1_pretrain.toml"), "--json", "--set", 'device="cuda"',
                     "--set", "algo.steps=30", "--set", "algo.eval_every=30", "--set", "algo.eval_prompts=8", db=db_path)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(rltui_cli("show", "1", "--json", db=db_path, check=True).stdout)
    assert shown["status"] == "completed" and shown["device_used"] == "cuda:0"


def probe(name: str, device: str, steps: int = 40) -> str:
    return (f'name = "{name}"\nseed = 0\ndevice = "{device}"\n[env]\nid = "ticker"\n[algo]\nid = "heartbeat_probe"\n'
            f"steps = {steps}\nstep_seconds = 0.05\nuses_torch = true\n")


def test_gpu_runs_queue_per_gpu_while_cpu_slots_stay_free(store, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "4")
    monkeypatch.setenv("RLTUI_MAX_GPU_RUNS", "1")
    first = launch.submit(store, load_config_text(probe("gpu-a", "cuda")))
    second = launch.submit(store, load_config_text(probe("gpu-b", "auto")))  # auto picks the GPU too
    on_cpu = launch.submit(store, load_config_text(probe("cpu", "cpu")))
    seen_together = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with store.read() as s:
            status = dict(s.execute(select(Run.id, Run.status).where(Run.id.in_([first, second, on_cpu]))).all())
        running = frozenset(i for i, st in status.items() if st == "running")
        assert not {first, second} <= running, "two runs on one GPU slot"
        seen_together.add(running)
        if all(st in ("completed", "failed", "crashed") for st in status.values()):
            break
        time.sleep(0.05)
    assert set(status.values()) == {"completed"}, status
    assert frozenset({first, on_cpu}) in seen_together  # the CPU run did not wait for the GPU
    with store.read() as s:
        used = dict(s.execute(select(Run.id, Run.device_used).where(Run.id.in_([first, second, on_cpu]))).all())
        started = dict(s.execute(select(Run.id, Run.started_at).where(Run.id.in_([first, second]))).all())
        finished_first = s.scalar(select(Run.finished_at).where(Run.id == first))
    assert used == {first: "cuda:0", second: "cuda:0", on_cpu: "cpu"}
    assert started[second] >= finished_first  # the second GPU run waited for the slot
