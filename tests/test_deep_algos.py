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
from rltui.store.models import Artifact, Episode, Metric, Run
from rltui.store.queries import latest_artifact, metric_series, trajectory
from conftest import SAMPLE_RUNS

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
    "a2c": f"""
[env]
id = "CartPole-v1"
num_envs = 4
max_episode_steps = 40
[algo]
id = "a2c"
total_timesteps = 768
n_steps = 8
ent_coef = 0.01
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


@pytest.mark.parametrize("algo", ["dqn", "ppo", "a2c", "reinforce"])
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
            if algo in ("ppo", "a2c"):
                assert isinstance(extras["V"], float)
        assert latest_artifact(s, run_id, "layout") == {"kind": "cartpole", "labels": ["x", "x_dot", "theta", "theta_dot"]}
        keys = set(s.scalars(select(Metric.key).where(Metric.run_id == run_id, Metric.key.not_like("sys/%")).distinct()))
    expected = {
        "dqn": {"loss", "q_values", "epsilon", "learning_rate", "sps", "eval_return"},
        "ppo": {"loss", "policy_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction",
                "explained_variance", "entropy", "learning_rate", "sps", "eval_return"},
        "a2c": {"loss", "policy_loss", "value_loss", "entropy_loss", "explained_variance", "entropy",
                "learning_rate", "sps", "eval_return"},
        "reinforce": {"loss", "policy_loss", "value_loss", "entropy", "learning_rate", "sps"},
    }[algo]
    assert expected <= keys


def test_ppo_and_reinforce_gaussian_policy_on_pendulum(store):
    for algo, extra in (("ppo", "n_steps = 64\nbatch_size = 64\nn_epochs = 1\n"), ("reinforce", "episodes_per_update = 2\n"),
                        ("a2c", 'n_steps = 8\noptimizer = "adam"\n')):
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


@pytest.mark.parametrize("algo", ["dqn", "ppo", "a2c", "reinforce"])
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


# --- the final policy: best evaluated weights beside the last ----------------------------------------
def _eval_rounds(store, run_id):
    with store.read() as s:
        rounds = [(step, value) for step, value, _ in metric_series(s, run_id, "eval_return")]
        n_eval = len(s.scalars(select(Episode.id).where(Episode.run_id == run_id, Episode.phase == "eval")).all())
        run = s.get(Run, run_id)
        best = s.execute(select(Artifact).where(Artifact.run_id == run_id, Artifact.name == "best")
                         .order_by(Artifact.id.desc())).scalars().first()
        return rounds, n_eval, dict(run.summary), (best.step, bytes(best.data)) if best else None


@pytest.mark.parametrize("algo", ["dqn", "ppo", "a2c", "reinforce"])
def test_summary_reports_final_and_best_eval_and_stores_the_best_weights(store, algo):
    from rltui.algos.common import load_best

    run_id = run_config(store, CONFIGS[algo])
    rounds, n_eval, summary, best = _eval_rounds(store, run_id)
    best_step, best_return = max(rounds, key=lambda r: (r[1], -r[0]))  # the first round reaching the max
    assert summary["best_eval_return"] == best_return and summary["best_eval_step"] == best_step
    # the final evaluation is of the weights training ended with, at the last step
    assert rounds[-1][0] == summary["global_step"] and summary["final_eval_return"] == rounds[-1][1]
    assert summary["final_policy"] == "best"
    extra_round = best_step != rounds[-1][0]  # the best weights are played once more, after training
    assert n_eval == (len(rounds) + extra_round) * 2
    if not extra_round:
        assert summary["policy_eval_return"] == summary["final_eval_return"]
    assert best is not None and best[0] == best_step
    payload = load_best(best[1])
    assert payload["step"] == best_step and payload["eval_return"] == best_return
    module = {"dqn": "q_net"}.get(algo, "agent")
    assert set(payload["weights"]) == {module} and payload["weights"][module]


def test_final_policy_last_plays_no_extra_round(store):
    run_id = run_config(store, CONFIGS["dqn"] + 'final_policy = "last"\n')
    rounds, n_eval, summary, _ = _eval_rounds(store, run_id)
    assert summary["final_policy"] == "last" and summary["policy_eval_return"] == summary["final_eval_return"]
    assert n_eval == len(rounds) * 2


def test_best_weights_survive_a_resume(store):
    """The best round of the first budget is kept across the resume (not forgotten by the new process)."""
    from rltui import registry

    run_id = run_config(store, CONFIGS["ppo"])
    _, _, first, _ = _eval_rounds(store, run_id)
    config = stored_config(store, run_id)
    params = config.algo.model_copy(update={"total_timesteps": 1536})
    env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
    recorder = StoreRecorder(store, run_id)
    summary = registry.load_callable(registry.algo_spec("ppo").entry)(env, params, recorder, seed=3, device="cpu")
    recorder.close()
    assert summary["best_eval_return"] >= first["best_eval_return"]
    rounds, _, _, _ = _eval_rounds(store, run_id)
    assert summary["best_eval_return"] == max(v for _, v in rounds)


# --- unavailable actions: a custom MDP through the real runner -------------------------------------
CUSTOM_ABC = SAMPLE_RUNS / "mdps" / "custom_abc.toml"


@pytest.mark.parametrize("algo", ["dqn", "ppo", "a2c", "reinforce"])
def test_deep_algorithms_mask_unavailable_actions_of_a_custom_mdp(store, algo):
    """custom_abc: B allows only `right`. Every algorithm completes, and no step, trained or evaluated,
    takes `left` in B (the env would refuse it: "action 'left' is not available in state 'B'")."""
    text = (f'[env]\nid = "custom"\npath = "{CUSTOM_ABC}"\n[algo]\nid = "{algo}"\n'
            f"total_timesteps = 600\n{FAST}")
    if algo == "dqn":
        text += "learning_starts = 64\nbatch_size = 16\ntrain_freq = 4\nexploration_fraction = 0.5\n"
    elif algo == "ppo":
        text += "n_steps = 16\nbatch_size = 32\nn_epochs = 2\nent_coef = 0.01\n"
    elif algo == "a2c":
        text += "n_steps = 8\nent_coef = 0.01\nshared_critic = true\n"
    run_id = run_config(store, text)
    with store.read() as s:
        evals = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == "eval")).all()
        assert evals
        steps = [st for e in evals for st in trajectory(s, e.id)]
        layout = latest_artifact(s, run_id, "layout")
        entropy = [v for _, v, _ in metric_series(s, run_id, "entropy")]
    b, left = layout["states"].index("B"), layout["actions"].index("left")
    in_b = [st for st in steps if st.state == b]
    assert in_b and all(st.action != left for st in in_b)
    if algo == "dqn":
        assert all(st.extras["Q"][left] is None for st in in_b)  # −inf: stored as null
        assert all(st.extras["V"] == st.extras["Q"][1 - left] for st in in_b)
    else:
        assert all(st.extras["pi"][left] == 0.0 for st in in_b)
        assert entropy and all(np.isfinite(entropy))


def test_masked_policy_never_picks_an_unavailable_action_and_its_entropy_is_finite():
    import torch

    from rltui.algos.networks import ActorCritic, QNetwork

    available = np.array([[True, True, True], [False, True, False], [False, False, False]])  # row 2: terminal
    agent = ActorCritic(3, 3, None, [8], available=available)
    with torch.no_grad():  # make the forbidden actions the most attractive ones
        agent.body.biases[-1][0, 0, 0] = 50.0
        agent.body.biases[-1][0, 0, 2] = 50.0
    obs = torch.eye(3)
    with torch.no_grad():
        action, logp = agent.act(obs[1:2], deterministic=True)
        assert int(action) == 1 and float(logp) == 0.0
        sampled, _ = agent.act(obs[1:2].expand(200, 3))
        assert (sampled == 1).all()
    logp, entropy, _ = agent.evaluate(obs, torch.tensor([0, 1, 0]))
    assert torch.isfinite(logp).all() and torch.isfinite(entropy).all() and float(entropy[1].detach()) == 0.0
    (logp.sum() + entropy.sum()).backward()  # no NaN flows back from the −inf logits
    assert all(torch.isfinite(p.grad).all() for p in agent.parameters() if p.grad is not None)
    q = QNetwork(3, 3, [8], available=available)(obs)
    assert torch.isinf(q[1, [0, 2]]).all() and torch.isfinite(q[[0, 2]]).all()  # a terminal row stays finite


def test_approx_kl_is_never_negative():
    import torch

    from rltui.algos.ppo import approx_kl

    tiny = torch.full((1000,), 1e-8)  # exp(1e-8) rounds to 1 in float32: (r − 1) − log r = −1e-8 unclamped
    assert approx_kl(tiny) == 0.0
    assert approx_kl(torch.tensor([0.1, -0.1])) == pytest.approx(float(np.mean(np.exp([0.1, -0.1]) - 1 - np.array([0.1, -0.1]))), rel=1e-5)


class TenthCorridor(Corridor):
    """The corridor paying 0.1 per step: float32(0.1) ≠ 0.1, so a float32 sum would show."""

    def step(self, s, a, rng):
        s2, _, done = super().step(s, a, rng)
        return s2, 0.1, done


def test_evaluation_returns_are_the_exact_float64_sum_of_rewards(store):
    from rltui.algos import dqn
    from rltui.schemas.control import DQNParams

    run_id = create_run(store, load_config_text('[env]\nid = "CartPole-v1"\n[algo]\nid = "dqn"\n'))
    params = DQNParams(total_timesteps=300, learning_starts=50, eval_every=300, eval_episodes=2, net_arch=[8],
                       log_every=300)
    recorder = StoreRecorder(store, run_id)
    dqn.train(TenthCorridor(), params, recorder, seed=0, device="cpu")
    recorder.close()
    with store.read() as s:
        ev = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == "eval")).first()
        steps = trajectory(s, ev.id)
    assert all(st.reward == 0.1 for st in steps)
    expected = 0.0
    for _ in steps:
        expected += 0.1
    assert ev.return_ == expected


# --- A2C -------------------------------------------------------------------------------------------
def test_a2c_n_step_returns_by_hand():
    """A2C's default λ = 1 makes GAE's returns the n-step returns, G_t = r_t + γ G_{t+1}, bootstrapped
    from V past the rollout and at a truncation, 0 past a terminal state. Hand values, γ = 0.9."""
    import torch

    from rltui.algos.returns import gae
    from rltui.schemas.control import A2CParams

    lam = A2CParams().gae_lambda
    assert lam == 1.0
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [0.7], [0.2]])  # V(s_t) as collected: n-step returns do not depend on them
    z = torch.zeros(3, 1)
    # no episode end: V(s_3) = 10 bootstraps the last step
    nv = torch.tensor([[0.7], [0.2], [10.0]])
    _, g = gae(r, v, nv, z, z, 0.9, lam)
    assert g[:, 0].tolist() == pytest.approx([1 + 0.9 * (2 + 0.9 * (3 + 0.9 * 10)), 2 + 0.9 * (3 + 0.9 * 10), 3 + 0.9 * 10])
    # step 1 terminates: G_1 = 2, nothing from after it flows back
    ends = torch.tensor([[0.0], [1.0], [0.0]])
    _, g = gae(r, v, nv, ends, ends, 0.9, lam)
    assert g[:, 0].tolist() == pytest.approx([1 + 0.9 * 2, 2.0, 3 + 0.9 * 10])
    # step 1 is truncated with V(final observation) = 5: G_1 = 2 + 0.9·5 bootstraps
    nv_trunc = torch.tensor([[0.7], [5.0], [10.0]])
    _, g = gae(r, v, nv_trunc, z, ends, 0.9, lam)
    assert g[:, 0].tolist() == pytest.approx([1 + 0.9 * (2 + 0.9 * 5), 2 + 0.9 * 5, 3 + 0.9 * 10])


def test_a2c_rmsprop_has_sb3_settings_and_shared_critic_has_one_torso():
    import torch

    from rltui.algos.a2c import make_optimizer
    from rltui.algos.networks import ActorCritic
    from rltui.schemas.control import A2CParams

    shared = ActorCritic(4, 2, None, [16, 16], shared=True)
    separate = ActorCritic(4, 2, None, [16, 16])
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(shared) == (4 * 16 + 16) + (16 * 16 + 16) + (16 * 2 + 2) + (16 + 1)
    assert n(shared) < n(separate)
    opt = make_optimizer(A2CParams(), list(shared.parameters()))
    assert isinstance(opt, torch.optim.RMSprop)
    group = opt.param_groups[0]
    assert (group["alpha"], group["eps"], group["lr"]) == (0.99, 1e-5, 7e-4)
    logp, entropy, value = shared.evaluate(torch.randn(3, 4), torch.tensor([0, 1, 0]))
    assert logp.shape == entropy.shape == value.shape == (3,)


def test_dqn_anneal_lr_decays_the_step_size_linearly_to_zero(store):
    """anneal_lr: each training phase (every train_freq = 16 steps from learning_starts = 128) runs at
    lr (1 − t / total) for its step t; the logged learning_rate is the last phase's."""
    run_id = run_config(store, CONFIGS["dqn"] + "anneal_lr = true\nlearning_rate = 0.001\n")
    with store.read() as s:
        logged = [(st, v) for st, v, _ in metric_series(s, run_id, "learning_rate")]
    assert len(logged) >= 5
    for step, lr in logged:
        t = 128 + 16 * ((step - 128) // 16) if step >= 128 else 0  # before learning starts: the initial step size
        assert lr == pytest.approx(0.001 * (1 - t / 768), rel=1e-9), step
    assert logged[-1][1] < 0.2 * 0.001
