"""Policy heads against torch.distributions, the replay buffer, and the env wrappers."""

import numpy as np
import torch

from rltui.algos.buffers import ReplayBuffer
from rltui.algos.networks import ActorCritic, gaussian_entropy, gaussian_log_prob


def test_gaussian_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=g)
    log_std = torch.randn(3, generator=g) * 0.5
    actions = torch.randn(5, 3, generator=g)
    ours = gaussian_log_prob(actions, mean, log_std.expand_as(mean))
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(actions).sum(-1)
    torch.testing.assert_close(ours, ref)
    ent = gaussian_entropy(log_std, torch.Size([5]))
    torch.testing.assert_close(ent, torch.distributions.Normal(mean, log_std.exp()).entropy().sum(-1))


def test_actor_critic_categorical_and_gaussian_heads():
    torch.manual_seed(0)
    obs = torch.randn(7, 4)
    cat = ActorCritic(4, 3, None, [16], "tanh")
    a, logp = cat.act(obs)
    logp2, ent, v = cat.evaluate(obs, a)
    dist = torch.distributions.Categorical(logits=cat.actor_out(obs))
    torch.testing.assert_close(logp, dist.log_prob(a))
    torch.testing.assert_close(logp2, dist.log_prob(a))
    torch.testing.assert_close(ent, dist.entropy())
    assert cat.value(obs).shape == (7,)
    torch.testing.assert_close(v, cat.value(obs))

    gauss = ActorCritic(4, None, 2, [16], "tanh", log_std_init=-0.5)
    a, logp = gauss.act(obs)
    ref = torch.distributions.Normal(gauss.actor_out(obs), torch.full((2,), -0.5).exp()).log_prob(a).sum(-1)
    torch.testing.assert_close(logp, ref)
    mode, _ = gauss.act(obs, deterministic=True)
    torch.testing.assert_close(mode, gauss.actor_out(obs))


def test_twin_mlp_is_two_independent_networks():
    torch.manual_seed(0)
    ac = ActorCritic(3, 2, None, [8, 8], "tanh")
    obs = torch.randn(5, 3)
    w, b = ac.body.weights, ac.body.biases
    # the critic twin computed by hand as its own MLP
    h = torch.tanh(obs @ w[0][1] + b[0][1])
    h = torch.tanh(h @ w[1][1] + b[1][1])
    torch.testing.assert_close(ac.value(obs), (h @ w[2][1] + b[2][1])[:, 0])
    # V's loss moves no actor weight
    ac.value(obs).sum().backward()
    assert all(p.grad[0].abs().sum() == 0 for p in list(w) + list(b))


def test_replay_buffer_wraps_and_samples():
    rb = ReplayBuffer(5, 2)
    for k in range(4):  # 8 transitions into 5 slots: the ring wraps
        o = np.full((2, 2), k, np.float32)
        rb.add(o, np.array([0, 1]), np.array([k, k], np.float32), o + 1, np.array([0.0, 1.0], np.float32))
    assert len(rb) == 5 and rb.full
    b = rb.sample(32, np.random.default_rng(0), torch.device("cpu"))
    assert b.obs.shape == (32, 2) and b.actions.dtype == torch.int64
    torch.testing.assert_close(b.next_obs, b.obs + 1)
    assert set(b.obs[:, 0].tolist()) <= {1.0, 2.0, 3.0}  # the oldest (k = 0) were overwritten
    state = rb.state_dict()
    rb2 = ReplayBuffer(5, 2)
    rb2.load_state_dict(state)
    np.testing.assert_array_equal(rb2.obs, rb.obs)
    assert rb2.pos == rb.pos and rb2.full


def test_cartpole_vector_env_same_step_reset_and_truncation():
    from rltui.config import load_config_text
    from rltui import registry

    cfg = load_config_text('[env]\nid = "CartPole-v1"\nnum_envs = 3\nmax_episode_steps = 5\n[algo]\nid = "ppo"\n')
    env = registry.load_callable(registry.env_spec("CartPole-v1").factory)(cfg.env)
    assert env.layout()["kind"] == "cartpole"
    venv = env.vector(seed=0)
    obs = venv.reset()
    assert obs.shape == (3, 4) and obs.dtype == np.float32
    for t in range(5):
        obs, r, term, trunc, final_obs, finished = venv.step(np.zeros(3, np.int64))
    # pushing left for 5 steps does not drop the pole: all three copies are cut by the time limit
    assert trunc.tolist() == [1.0, 1.0, 1.0] and term.tolist() == [0.0, 0.0, 0.0]
    assert [f[2] for f in finished] == [5, 5, 5]
    assert not np.allclose(final_obs, obs)  # final observation kept; obs is the reset one
    assert np.abs(obs).max() <= 0.05  # CartPole resets within ±0.05
    assert len(venv.state_json(0)) == 4


def test_toy_text_env_is_one_hot_with_grid_layout():
    from rltui.config import load_config_text
    from rltui import registry

    cfg = load_config_text('[env]\nid = "FrozenLake-v1"\nis_slippery = false\n[algo]\nid = "dqn"\n')
    env = registry.load_callable(registry.env_spec("FrozenLake-v1").factory)(cfg.env)
    venv = env.vector(seed=0)
    obs = venv.reset()
    assert obs.shape == (1, 16) and obs.sum() == 1.0 and obs[0, 0] == 1.0
    obs, *_ = venv.step(np.array([2]))  # right
    assert obs[0, 1] == 1.0 and venv.state_json(0) == 1
    layout = env.layout()
    assert layout["kind"] == "grid" and layout["map"][0] == "S..." and layout["rows"] == 4


def test_control_schemas_import_neither_torch_nor_gymnasium():
    import subprocess
    import sys

    code = ("import sys, rltui.registry as r; r.envs(); r.algos(); import rltui.schemas.control; "
            "print(sorted(m for m in ('torch', 'gymnasium') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_registry_lists_control_envs_and_deep_algos():
    from rltui import registry

    for env_id in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1"):
        assert registry.env_spec(env_id).kind == "control"
    for env_id in ("FrozenLake-v1", "CliffWalking-v1", "Taxi-v4"):  # Gymnasium envs with an exact MDP too
        assert registry.env_spec(env_id).kind == "toytext"
    for algo in ("dqn", "reinforce", "ppo"):
        spec = registry.algo_spec(algo)
        assert spec.uses_torch and {"control", "tabular", "toytext"} <= spec.env_kinds


def test_off_policy_networks_start_as_torchs_linear_layers_or_orthogonal():
    """SAC's and TD3's default `init = "torch"` (SB3's, the TD3 authors'): every weight and bias of the actor
    and of both critics drawn from U(±1/√fan_in); `"orthogonal"`: orthogonal blocks, zero biases."""
    from rltui.algos.networks import DeterministicActor, TwinQ

    torch.manual_seed(0)
    critic, actor = TwinQ(3, 1, [400, 300], init="torch"), DeterministicActor(3, 1, [400, 300], init="torch")
    for w, b in zip(critic.body.weights, critic.body.biases):
        bound = 1 / w.shape[1] ** 0.5
        for twin in range(2):
            block = w[twin]
            assert block.abs().max() <= bound and block.std() > bound / 2  # uniform on ±bound: std = bound/√3
            assert 0 < b[twin].abs().max() <= bound
        assert not torch.equal(w[0], w[1])  # two independent critics
    for layer in (m for m in actor.modules() if isinstance(m, torch.nn.Linear)):
        bound = 1 / layer.in_features ** 0.5
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    ortho = TwinQ(3, 1, [400, 300], init="orthogonal")
    block = ortho.body.weights[1][0]  # (400, 300): orthogonal columns of norm √2
    torch.testing.assert_close(block.T @ block, 2.0 * torch.eye(300), atol=1e-4, rtol=0)
    assert all(b.abs().max() == 0 for b in ortho.body.biases)
