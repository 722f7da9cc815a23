"""SAC and TD3: the squashed Gaussian's log-probability by hand, the twin-Q targets' masking, and
smoke runs through the real runner and store (with resume continuing the step count)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sqlalchemy import select

from rltui.algos.buffers import TransitionBatch
from rltui.config import load_config_text
from rltui.recorder import StoreRecorder
from rltui.runner.execute import create_run, execute_run, stored_config
from rltui.store.models import Episode, Run
from rltui.store.queries import metric_series, trajectory


def test_squashed_gaussian_log_prob_by_hand():
    """1-D: u = μ + σ ε, a = tanh(u); log π(a) = log N(u; μ, σ²) − log(1 − tanh²(u)), written out with math."""
    from rltui.algos.networks import squashed_log_prob

    mu, log_std, eps = 0.3, -0.5, 0.7
    sigma = math.exp(log_std)
    u = mu + sigma * eps
    by_hand = -0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi) - math.log(1 - math.tanh(u) ** 2)
    got = squashed_log_prob(torch.tensor([[u]], dtype=torch.float64), torch.tensor([[mu]], dtype=torch.float64),
                            torch.tensor([[log_std]], dtype=torch.float64))
    assert float(got) == pytest.approx(by_hand, abs=1e-12)
    # far in the tail, where 1 − tanh² underflows in float32, the stable form stays finite and right
    far = squashed_log_prob(torch.tensor([[12.0]]), torch.tensor([[12.0]]), torch.tensor([[0.0]]))
    assert float(far) == pytest.approx(-0.5 * math.log(2 * math.pi) - 2 * (math.log(2) - 12 - math.log1p(math.exp(-24))), rel=1e-5)


def test_actor_log_prob_matches_torch_distributions_in_2d():
    from torch.distributions import Independent, Normal, TransformedDistribution
    from torch.distributions.transforms import TanhTransform

    from rltui.algos.networks import SquashedGaussianActor

    torch.manual_seed(0)
    actor = SquashedGaussianActor(3, 2, [16]).double()
    obs = torch.randn(5, 3, dtype=torch.float64)
    torch.manual_seed(1)
    action, logp = actor.sample(obs)
    mu, log_std = actor.gaussian(obs)
    reference = TransformedDistribution(Independent(Normal(mu, log_std.exp()), 1), [TanhTransform()])
    assert torch.allclose(logp, reference.log_prob(action), atol=1e-8)
    assert (action.abs() < 1).all()


def _batch(terminated: list[float]) -> TransitionBatch:
    n = len(terminated)
    obs = torch.zeros(n, 3)
    next_obs = torch.ones(n, 3)  # the same s' for every row: only the masks differ
    return TransitionBatch(obs, torch.zeros(n, 1), torch.full((n,), 0.5), next_obs, torch.tensor(terminated))


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_twin_q_target_terminal_does_not_bootstrap_truncation_does(algo):
    """Row 0 ended in a terminal state: y = r. Row 1 was cut by the time limit (terminated = 0, s' the
    true last observation): y = r + γ (min_j Q_targ_j(s', a') [− α log π]) from the same s'."""
    from rltui.algos.sac import SAC
    from rltui.algos.td3 import TD3
    from rltui.schemas.control import SACParams, TD3Params

    torch.manual_seed(0)
    cls, params = {"sac": (SAC, SACParams(net_arch=[8])), "td3": (TD3, TD3Params(net_arch=[8], target_policy_noise=0.0))}[algo]
    agent = cls(3, 1, params, 0.9, torch.device("cpu"))
    with torch.no_grad():  # make the target critics' values large, so a bootstrap cannot hide
        for p in agent.critic_target.parameters():
            p.add_(1.0)
    torch.manual_seed(5)
    y = agent.target(_batch([1.0, 0.0]))
    assert float(y[0]) == 0.5
    torch.manual_seed(5)
    with torch.no_grad():
        s2 = torch.ones(2, 3)
        if algo == "sac":
            a2, logp2 = agent.actor.sample(s2)
            q_next = agent.critic_target(s2, a2).min(0).values - agent.temperature() * logp2
        else:
            q_next = agent.critic_target(s2, agent.actor_target(s2)).min(0).values
    assert float(y[1]) == pytest.approx(0.5 + 0.9 * float(q_next[1]), rel=1e-6)
    assert abs(float(y[1]) - 0.5) > 0.1


def test_twin_q_evaluates_two_independent_critics_and_q1_alone_by_either_pass():
    """Each critic of TwinQ is the plain MLP relu(relu([s, a] W1 + b1) W2 + b2) W3 + b3 of its own slice of
    the stacked weights (the last layer's one-output form included), and Q_1 alone is the first of them."""
    from rltui.algos.networks import TwinQ

    torch.manual_seed(0)
    net = TwinQ(3, 2, [16, 8]).double()
    with torch.no_grad():
        for b in net.body.biases:
            b.normal_()  # non-zero biases, so a misplaced one shows
    obs, actions = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    x = torch.cat([obs, actions], -1)
    (w1, w2, w3), (b1, b2, b3) = list(net.body.weights), list(net.body.biases)
    by_hand = torch.stack([torch.relu(torch.relu(x @ w1[j] + b1[j]) @ w2[j] + b2[j]) @ w3[j] + b3[j] for j in range(2)])[..., 0]
    q = net(obs, actions)
    assert q.shape == (2, 5) and torch.allclose(q, by_hand, atol=1e-12)
    assert not torch.allclose(q[0], q[1])
    q_taped, _ = net.taped(obs, actions)  # the forward pass that backprop.py's gradients go with
    assert torch.allclose(q_taped, by_hand, atol=1e-12)
    q1, _ = net.taped(obs, actions, twins=1)
    assert q1.shape == (1, 5) and torch.allclose(q1[0], by_hand[0], atol=1e-12)


def test_sac_tunes_the_temperature_toward_minus_dim_a():
    from rltui.algos.sac import SAC
    from rltui.schemas.control import SACParams

    agent = SAC(3, 2, SACParams(net_arch=[8]), 0.99, torch.device("cpu"))
    assert agent.target_entropy == -2.0 and agent.temperature.log_alpha.requires_grad
    assert any(p is agent.temperature.log_alpha for p in agent.actor_opt.param_groups[0]["params"])
    fixed = SAC(3, 2, SACParams(net_arch=[8], ent_coef=0.2), 0.99, torch.device("cpu"))
    assert not fixed.temperature.log_alpha.requires_grad and float(fixed.temperature()) == pytest.approx(0.2)


FAST = "eval_every = 200\neval_episodes = 2\nlog_every = 100\nnet_arch = [32, 32]\nbatch_size = 32\nlearning_starts = 100\n"
CONFIGS = {
    algo: f'[env]\nid = "Pendulum-v1"\nnum_envs = 2\nmax_episode_steps = 50\n[algo]\nid = "{algo}"\ntotal_timesteps = 400\n{FAST}'
    for algo in ("sac", "td3")
}


def run_config(store, text: str) -> int:
    run_id = create_run(store, load_config_text(f'seed = 3\ndevice = "cpu"\n{text}'))
    status = execute_run(store, run_id)
    with store.read() as s:
        run = s.get(Run, run_id)
        assert status == "completed", f"{run.status}: {run.error}\n{run.traceback}"
    return run_id


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_smoke_run_stores_mu_sigma_and_q_and_resumes(store, algo):
    from rltui import registry

    run_id = run_config(store, CONFIGS[algo])
    with store.read() as s:
        run = s.get(Run, run_id)
        assert run.summary["global_step"] >= 400 and run.summary["best_eval_return"] is not None
        ev = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == "eval")).first()
        steps = trajectory(s, ev.id)
        losses = [v for _, v, _ in metric_series(s, run_id, "critic_loss")]
    step0 = steps[0]
    assert len(step0.action) == 1 and -2.0 <= step0.action[0] <= 2.0  # mapped onto Pendulum's torque bounds
    assert isinstance(step0.extras["Q"], float) and len(step0.extras["mu"]) == 1
    if algo == "sac":
        assert len(step0.extras["sigma"]) == 1 and step0.extras["sigma"][0] > 0
    assert losses and all(np.isfinite(losses))

    config = stored_config(store, run_id)
    params = config.algo.model_copy(update={"total_timesteps": 600})
    env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
    recorder = StoreRecorder(store, run_id)
    summary = registry.load_callable(registry.algo_spec(algo).entry)(env, params, recorder, seed=3, device="cpu")
    recorder.close()
    assert summary["global_step"] >= 600
    with store.read() as s:
        steps_logged = [st for st, _, _ in metric_series(s, run_id, "sps")]
        indices = sorted(s.scalars(select(Episode.index).where(Episode.run_id == run_id, Episode.phase == "train")))
        eval_indices = sorted(s.scalars(select(Episode.index).where(Episode.run_id == run_id, Episode.phase == "eval")))
    assert max(steps_logged) > 400 and indices == list(range(len(indices)))
    assert eval_indices == list(range(len(eval_indices))) and len(eval_indices) > 2 * 2  # rounds went on after the resume
    assert recorder.last_checkpoint()[0] >= 600


def test_sac_refuses_discrete_actions(store):
    run_id = create_run(store, load_config_text('[env]\nid = "CartPole-v1"\n[algo]\nid = "sac"\ntotal_timesteps = 10\n'))
    assert execute_run(store, run_id) == "failed"
    with store.read() as s:
        assert "continuous action space" in s.get(Run, run_id).error


def test_sac_cpu_runs_are_deterministic_for_a_seed(store):
    """Two runs of one seed give the same losses, temperatures and evaluation returns (one backward for
    the actor and α, gradients reaching only the stepped network: nothing order- or state-dependent)."""
    def series(run_id):
        with store.read() as s:
            metrics = {k: [v for _, v, _ in metric_series(s, run_id, k)] for k in ("critic_loss", "actor_loss", "ent_coef")}
            returns = s.scalars(select(Episode.return_).where(Episode.run_id == run_id, Episode.phase == "eval")
                                .order_by(Episode.index)).all()
        return metrics, list(returns)

    a, b = series(run_config(store, CONFIGS["sac"])), series(run_config(store, CONFIGS["sac"]))
    assert a == b and len(a[0]["critic_loss"]) >= 3 and a[1]


def test_sac_resumes_a_checkpoint_from_when_alpha_had_its_own_adam(store):
    """Before log α joined the actor's Adam, SAC saved α's optimizer as "alpha_opt" (and actor_opt over the
    actor alone). Such a checkpoint, written for real from a run's state with those two optimizers stepped
    on real losses, resumes: each parameter's Adam state lands in the one optimizer, and the run goes on."""
    import io

    from rltui import registry
    from rltui.algos.common import Counters, save_checkpoint
    from rltui.algos.networks import adam
    from rltui.algos.sac import SAC

    run_id = run_config(store, CONFIGS["sac"])
    recorder = StoreRecorder(store, run_id)
    step, data = recorder.last_checkpoint()
    payload = torch.load(io.BytesIO(data), weights_only=True)
    config = stored_config(store, run_id)
    agent = SAC(3, 1, config.algo, 0.99, torch.device("cpu"))
    for name in ("actor", "critic", "critic_target", "temperature"):
        getattr(agent, name).load_state_dict(payload[name])
    # the old layout: the actor's Adam and α's Adam, each stepped three times on its own loss
    old_actor_opt, alpha_opt = adam(agent.actor_params, 1e-3), adam([agent.temperature.log_alpha], 1e-3)
    obs = torch.randn(32, 3)
    for _ in range(3):
        action, logp = agent.actor.sample(obs)
        actor_loss = (agent.temperature().detach() * logp - agent.critic(obs, action).min(0).values).mean()
        alpha_loss = -(agent.temperature.log_alpha * (logp.detach() + agent.target_entropy)).mean()
        old_actor_opt.zero_grad(), alpha_opt.zero_grad()
        (actor_loss + alpha_loss).backward(inputs=[*agent.actor_params, agent.temperature.log_alpha])
        old_actor_opt.step(), alpha_opt.step()
    old = {name: payload[name] for name in ("critic_opt", "replay")}
    old.update(actor=agent.actor.state_dict(), critic=agent.critic.state_dict(), critic_target=agent.critic_target.state_dict(),
               temperature=agent.temperature.state_dict(), actor_opt=old_actor_opt.state_dict(), alpha_opt=alpha_opt.state_dict())
    counters = Counters(**payload["counters"])
    rng = np.random.default_rng(0)
    rng.bit_generator.state = payload["rng"]["numpy"]
    save_checkpoint(recorder, counters, rng, **old)
    recorder.close()

    # the mapping itself: one Adam whose per-parameter state is the two old ones'
    _, data = StoreRecorder(store, run_id).last_checkpoint()
    written = torch.load(io.BytesIO(data), weights_only=True)
    assert "alpha_opt" in written
    fresh = SAC(3, 1, config.algo, 0.99, torch.device("cpu"))
    fresh.upgrade_checkpoint(written)
    assert "alpha_opt" not in written
    fresh.actor_opt.load_state_dict(written["actor_opt"])
    alpha_state = fresh.actor_opt.state[fresh.temperature.log_alpha]
    assert float(alpha_state["step"]) == 3.0
    assert torch.equal(alpha_state["exp_avg"], alpha_opt.state[agent.temperature.log_alpha]["exp_avg"])
    first = fresh.actor_params[0]
    assert torch.equal(fresh.actor_opt.state[first]["exp_avg_sq"], old_actor_opt.state[agent.actor_params[0]]["exp_avg_sq"])

    # and the run resumes through the algorithm's entry point, continuing its step count
    params = config.algo.model_copy(update={"total_timesteps": 600})
    env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
    recorder = StoreRecorder(store, run_id)
    summary = registry.load_callable(registry.algo_spec("sac").entry)(env, params, recorder, seed=3, device="cpu")
    recorder.close()
    assert summary["global_step"] >= 600 and recorder.last_checkpoint()[0] >= 600
    _, data = recorder.last_checkpoint()
    assert "alpha_opt" not in torch.load(io.BytesIO(data), weights_only=True)


def test_an_unknown_checkpoint_layout_fails_the_resume_in_one_line(store):
    """A checkpoint missing one of SAC's modules (written by another version) stops the resume with a
    message that names what is missing, not a KeyError."""
    import io

    from rltui import registry
    from rltui.algos.common import Counters, save_checkpoint

    run_id = run_config(store, CONFIGS["sac"])
    recorder = StoreRecorder(store, run_id)
    _, data = recorder.last_checkpoint()
    payload = torch.load(io.BytesIO(data), weights_only=True)
    rng = np.random.default_rng(0)
    rng.bit_generator.state = payload["rng"]["numpy"]
    kept = {k: v for k, v in payload.items() if k not in ("counters", "rng", "best", "critic_opt")}
    save_checkpoint(recorder, Counters(**payload["counters"]), rng, **kept)
    recorder.close()
    config = stored_config(store, run_id)
    env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
    recorder = StoreRecorder(store, run_id)
    with pytest.raises(ValueError, match="has no critic_opt: it was written by another version"):
        registry.load_callable(registry.algo_spec("sac").entry)(env, config.algo.model_copy(update={"total_timesteps": 600}),
                                                                recorder, seed=3, device="cpu")
    recorder.close()


def test_off_policy_schedule_is_sb3s_train_after_learning_starts_and_evaluate_before_training(store):
    """SB3's order, so bench_continuous compares like with like: a training phase closes each rollout of
    train_freq steps once more than learning_starts are stored (here at steps 150, 200 and 250: not at 100,
    which is not more than learning_starts), an evaluation due at a step comes before that step's phase,
    the last step trains nothing (the run ends with the weights its last round evaluated), and a phase
    trains on what is stored even when that is fewer than batch_size transitions (drawn with replacement)."""
    text = ('[env]\nid = "Pendulum-v1"\nnum_envs = 1\nmax_episode_steps = 50\n[algo]\nid = "td3"\n'
            "total_timesteps = 300\nlearning_starts = 100\ntrain_freq = 50\ngradient_steps = 50\nbatch_size = 256\n"
            "eval_every = 100\neval_episodes = 1\nlog_every = 50\nnet_arch = [16, 16]\nfinal_policy = \"last\"\n")
    run_id = run_config(store, text)
    with store.read() as s:
        run = s.get(Run, run_id)
        rounds = sorted(s.scalars(select(Episode.index).where(Episode.run_id == run_id, Episode.phase == "eval")))
        evaluated_at = [step for step, _, _ in metric_series(s, run_id, "eval_return")]
    assert run.summary["updates"] == 3 * 50
    assert evaluated_at == [100, 200, 300] and len(rounds) == 3  # no closing round: nothing changed after 300
