"""DQN, REINFORCE and PPO end to end on CPU: through the registry and the runner into a real store.

Short smoke runs (solving CartPole is bench/bench_cartpole.py's job): episodes, metrics, evaluation
trajectories with Q/π/V extras, the layout artifact, resume continuing the step count, determinism.
"""

from __future__ import annotations


import numpy as np
import pytest
from sqlalchemy import select

from rltui.config import load_config_text
from rltui.recorder import StoreRecorder
from rltui.runner.execute import create_run, execute_run, stored_config
from rltui.store.models import Episode, Metric, Run
from rltui.store.queries import latest_artifact, metric_series, trajectory

FAST = "eval_every = 256\neval_episodes = 2\nlog_every = 128\nnet_arch = [16, 16]\n"

CONFIGS = {
    "dqn": f"""
[env]
id = "CartPole-v1"
num_envs = 2
[algo]
id = "dqn"
total_timesteps = 768
learning_starts = 128
train_freq = 16
gradient_steps = 2
target_update_interval = 64
batch_size = 32
{FAST}""",
    "ppo": f"""
[env]
id = "CartPole-v1"
num_envs = 4
max_episode_steps = 40
[algo]
id = "ppo"
total_timesteps = 768
n_steps = 32
batch_size = 64
n_epochs = 2
anneal_lr = true
clip_range_vf = 0.2
target_kl = 0.5
{FAST}""",
    "reinforce": f"""
[env]
id = "CartPole-v1"
num_envs = 2
max_episode_steps = 50
[algo]
id = "reinforce"
total_timesteps = 768
episodes_per_update = 2
{FAST}""",
}


def run_config(store, text: str) -> int:
    run_id = create_run(store, load_config_text(f'seed = 3\ndevice = "cpu"\n{text}'))
    assert execute_run(store, run_id) == "completed", _error(store, run_id)
    return run_id


def _error(store, run_id):
    with store.read() as s:
        run = s.get(Run, run_id)
        return f"{run.status}: {run.error}\n{run.traceback}"


@pytest.mark.parametrize("algo", ["dqn", "ppo", "reinforce"])
def test_smoke_run_stores_episodes_metrics_and_eval_trajectories(store, algo):
    run_id = run_config(store, CONFIGS[algo])
    with store.read() as s:
        run = s.get(Run, run_id)
        assert run.summary["global_step"] >= 768
        train_eps = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == "train")).all()
        eval_eps = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == "eval")).all()
        assert len(train_eps) >= 5 and all(e.length >= 1 and e.step is not None for e in train_eps)
        assert sorted(e.index for e in train_eps) == list(range(len(train_eps)))
        assert len(eval_eps) >= 4 and all(e.has_trajectory for e in eval_eps)
        steps = trajectory(s, eval_eps[-1].id)
        assert len(steps) == eval_eps[-1].length and steps[-1].done
        assert len(steps[0].state) == 4 and isinstance(steps[0].action, int)
        extras = steps[0].extras
        if algo == "dqn":
            assert len(extras["Q"]) == 2 and extras["V"] == pytest.approx(max(extras["Q"]))
        else:
            assert len(extras["pi"]) == 2 and sum(extras["pi"]) == pytest.approx(1.0, abs=1e-5)
            if algo == "ppo":
                assert isinstance(extras["V"], float)
        assert latest_artifact(s, run_id, "layout") == {"kind": "cartpole", "labels": ["x", "x_dot", "theta", "theta_dot"]}
        keys = set(s.scalars(select(Metric.key).where(Metric.run_id == run_id, Metric.key.not_like("sys/%")).distinct()))
    expected = {
        "dqn": {"loss", "q_values", "epsilon", "learning_rate", "sps", "eval_return"},
        "ppo": {"loss", "policy_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction",
                "explained_variance", "entropy", "learning_rate", "sps", "eval_return"},
        "reinforce": {"loss", "policy_loss", "value_loss", "entropy", "learning_rate", "sps"},
    }[algo]
    assert expected <= keys


def test_ppo_and_reinforce_gaussian_policy_on_pendulum(store):
    for algo, extra in (("ppo", "n_steps = 64\nbatch_size = 64\nn_epochs = 1\n"), ("reinforce", "episodes_per_update = 2\n")):
        text = f'[env]\nid = "Pendulum-v1"\nnum_envs = 2\nmax_episode_steps = 64\n[algo]\nid = "{algo}"\ntotal_timesteps = 256\n{extra}{FAST}'
        run_id = run_config(store, text)
        with store.read() as s:
            ev = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == "eval")).first()
            step0 = trajectory(s, ev.id)[0]
            assert len(step0.action) == 1
            assert {"mu", "sigma"} <= set(step0.extras) and len(step0.state) == 3
            assert latest_artifact(s, run_id, "layout")["kind"] == "vector"
            assert s.get(Run, run_id).summary["episodes"] >= 4  # 64-step time limit: truncated episodes


def test_dqn_rejects_continuous_actions(store):
    run_id = create_run(store, load_config_text('[env]\nid = "Pendulum-v1"\n[algo]\nid = "dqn"\ntotal_timesteps = 10\n'))
    assert execute_run(store, run_id) == "failed"
    with store.read() as s:
        assert "discrete action" in s.get(Run, run_id).error


class Corridor:
    """A 5-cell corridor in the TabularMDP interface: start at 0, +1 on reaching cell 4 (terminal)."""

    n_states, n_actions, gamma = 5, 2, 0.9
    layout = {"kind": "chain", "n": 5, "states": [f"s{i}" for i in range(5)], "actions": ["left", "right"]}

    def reset(self, rng):
        return 0

    def step(self, s, a, rng):
        s2 = min(s + 1, 4) if a == 1 else max(s - 1, 0)
        return s2, float(s2 == 4), s2 == 4


def test_dqn_learns_a_tabular_mdp_through_one_hot(store):
    from rltui.algos import dqn
    from rltui.schemas.control import DQNParams

    cfg = load_config_text('[env]\nid = "CartPole-v1"\n[algo]\nid = "dqn"\n')  # only to create a run row
    run_id = create_run(store, cfg)
    params = DQNParams(total_timesteps=1500, learning_starts=100, train_freq=1, target_update_interval=50,
                       exploration_fraction=0.5, learning_rate=3e-3, batch_size=32, net_arch=[32],
                       eval_every=500, eval_episodes=1, log_every=500)
    recorder = StoreRecorder(store, run_id)
    summary = dqn.train(Corridor(), params, recorder, seed=0, device="cpu")
    recorder.close()
    assert summary["final_eval_return"] == 1.0  # greedy policy walks right to the goal
    with store.read() as s:
        assert latest_artifact(s, run_id, "layout")["kind"] == "chain"
        ev = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == "eval").order_by(Episode.index.desc())).first()
        steps = trajectory(s, ev.id)
        assert [st.state for st in steps] == [0, 1, 2, 3] and [st.action for st in steps] == [1, 1, 1, 1]
        q = np.array([st.extras["Q"] for st in steps])
        # Q*(s, right) = γ^(3-s): the network's values approach it
        np.testing.assert_allclose(q[:, 1], [0.9**3, 0.9**2, 0.9, 1.0], atol=0.15)


def test_dqn_on_the_maze_through_the_registry(store):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "sample_runs" / "maze_dqn.toml").read_text()
    run_id = create_run(store, load_config_text(text, overrides=["algo.total_timesteps=600", "algo.learning_starts=100"]))
    assert execute_run(store, run_id) == "completed", _error(store, run_id)
    with store.read() as s:
        assert latest_artifact(s, run_id, "layout")["kind"] == "grid"
        assert s.scalars(select(Episode).where(Episode.run_id == run_id)).first() is not None


@pytest.mark.parametrize("algo", ["dqn", "ppo", "reinforce"])
def test_resume_continues_step_count_and_episode_indices(store, algo):
    from rltui import registry

    run_id = run_config(store, CONFIGS[algo])
    with store.read() as s:
        first_episodes = s.scalar(select(Run.summary).where(Run.id == run_id))["episodes"]
        last_step = max(r[0] for r in metric_series(s, run_id, "sps"))
    # Continue the same run with a larger budget: it restores weights, optimizer, counters and RNGs.
    config = stored_config(store, run_id)
    params = config.algo.model_copy(update={"total_timesteps": 1536})
    env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
    recorder = StoreRecorder(store, run_id)
    assert recorder.last_checkpoint()[0] >= 768
    summary = registry.load_callable(registry.algo_spec(algo).entry)(env, params, recorder, seed=3, device="cpu")
    recorder.close()
    assert summary["global_step"] >= 1536 and summary["episodes"] > first_episodes
    with store.read() as s:
        steps = [r[0] for r in metric_series(s, run_id, "sps")]
        assert max(steps) > 768 >= last_step  # metrics carry on past the first budget
        indices = sorted(s.scalars(select(Episode.index).where(Episode.run_id == run_id, Episode.phase == "train")))
        assert indices == list(range(len(indices)))  # numbering continued, no restart at 0
        eval_indices = sorted(s.scalars(select(Episode.index).where(Episode.run_id == run_id, Episode.phase == "eval")))
        assert eval_indices == list(range(len(eval_indices)))
        assert recorder.last_checkpoint()[0] >= 1536


def _metrics(store, run_id):
    with store.read() as s:
        rows = s.execute(select(Metric.key, Metric.step, Metric.value).where(
            Metric.run_id == run_id, Metric.key.not_in(["sps", "train_time", "train_cpu_time"]),
            Metric.key.not_like("sys/%")).order_by(Metric.id)).all()  # sys/*: the heartbeat's CPU and memory
        eps = s.execute(select(Episode.phase, Episode.index, Episode.return_, Episode.length)
                        .where(Episode.run_id == run_id).order_by(Episode.phase, Episode.index)).all()
    return [tuple(r) for r in rows], [tuple(e) for e in eps]


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_cpu_runs_are_deterministic_for_a_seed(store, algo):
    a = _metrics(store, run_config(store, CONFIGS[algo]))
    b = _metrics(store, run_config(store, CONFIGS[algo]))
    assert a == b and len(a[0]) > 10
