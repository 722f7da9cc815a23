"""rltui/algos/backprop.py: the written-out backward passes give autograd's gradients, for a bare chain
of layers (either library, either weight layout) and for the nets and updates built on it: TwinQ's
critics' step, TD3's actor step through the critic held fixed, and a whole TD3 update."""

from __future__ import annotations

import copy
import types

import pytest
import torch

from rltui.algos import backprop, dense
from rltui.algos.buffers import TransitionBatch
from rltui.algos.networks import DeterministicActor, TwinQ


@pytest.fixture(params=["blas", "onednn"])
def library(request, monkeypatch):
    """Each test once with torch's BLAS for every product and once with oneDNN for the large ones."""
    if request.param == "onednn" and dense._linear_pointwise() is None:
        pytest.skip("this torch has no oneDNN linear")
    monkeypatch.setenv(dense.CPU_MATMUL_ENV, request.param)
    dense.onednn_matmul.cache_clear()
    yield request.param
    dense.onednn_matmul.cache_clear()


def close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("out_act", ["none", "tanh"])
@pytest.mark.parametrize("out_dim", [1, 3])
@pytest.mark.parametrize("stored_transposed", [False, True])
def test_a_chains_gradients_are_autograds(library, act, out_act, out_dim, stored_transposed):
    """Weights, biases and the input's gradient; 256 × 400 × 300 products go through oneDNN when chosen,
    the 5-input first layer and the last through BLAS, and W may be a transposed view of (in, out) storage."""
    g = torch.Generator().manual_seed(0)
    dims = [5, 400, 300, out_dim]
    stored = [torch.randn(*((d_in, d_out) if stored_transposed else (d_out, d_in)), generator=g) / d_in**0.5
              for d_in, d_out in zip(dims[:-1], dims[1:])]
    biases = [torch.randn(d, generator=g) for d in dims[1:]]
    x = torch.randn(256, dims[0], generator=g)
    upstream = torch.randn(256, out_dim, generator=g)
    layers = [(w.t() if stored_transposed else w, b) for w, b in zip(stored, biases)]
    assert dense.uses_onednn(torch.zeros(256, 400), 300) == (library == "onednn")

    ys = backprop.forward(layers, x, act, out_act)
    grads, gx = backprop.backward(layers, ys, upstream, act, out_act, input_grad=True)

    leaves = [t.clone().requires_grad_() for t in (x, *stored, *biases)]
    h, ws, bs = leaves[0], leaves[1:4], leaves[4:]
    f = {"relu": torch.relu, "tanh": torch.tanh, "none": lambda t: t}
    for k, (w, b) in enumerate(zip(ws, bs)):
        h = f[act if k < 2 else out_act](torch.nn.functional.linear(h, w.t() if stored_transposed else w, b))
    close(ys[-1], h.detach())
    ref = torch.autograd.grad((h * upstream).sum(), leaves)
    close(gx, ref[0])
    for (gw, gb), ref_w, ref_b, w in zip(grads, ref[1:4], ref[4:], stored):
        gw_stored = gw.t() if stored_transposed else gw
        close(gw_stored, ref_w)
        close(gb, ref_b)
        assert gw_stored.is_contiguous()  # laid out as the weights are, for the optimizer's kernel


def test_a_fixed_chain_computes_only_the_inputs_gradient():
    layers = [(torch.randn(4, 3), torch.randn(4)), (torch.randn(1, 4), torch.randn(1))]
    ys = backprop.forward(layers, torch.randn(7, 3), "relu")
    grads, gx = backprop.backward(layers, ys, torch.ones(7, 1), "relu", weights=False, input_grad=True)
    assert grads is None and gx.shape == (7, 3)


def critic_and_batch(obs_dim=3, action_dim=2, hidden=(64, 48), batch=32, activation="relu"):
    torch.manual_seed(0)
    critic = TwinQ(obs_dim, action_dim, list(hidden), activation, init="torch")
    with torch.no_grad():
        for b in critic.body.biases:
            b.normal_()  # non-zero biases, so a misplaced one shows
    b = TransitionBatch(torch.randn(batch, obs_dim), torch.rand(batch, action_dim) * 2 - 1, torch.randn(batch),
                        torch.randn(batch, obs_dim), (torch.rand(batch) < 0.3).float())
    return critic, b


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_the_twin_critics_written_out_gradient_is_autograds_of_their_loss(library, activation):
    """∂L_Q/∂θ for L_Q = ½ Σ_j mean((Q_j(s, a) − y)²), each twin's slice of the stacked weights its own."""
    critic, b = critic_and_batch(hidden=(400, 300), batch=256, activation=activation)
    y = torch.randn(256)
    q, tapes = critic.taped(b.obs, b.actions)
    close(q, critic(b.obs, b.actions).detach())
    critic.backward(tapes, (q - y) / 256)
    ours = [p.grad.clone() for p in critic.parameters()]
    critic.zero_grad()
    (0.5 * ((critic(b.obs, b.actions) - y) ** 2).mean(-1).sum()).backward()
    for mine, p in zip(ours, critic.parameters()):
        assert mine.shape == p.shape and mine.is_contiguous()
        close(mine, p.grad)


def test_the_actions_gradient_goes_through_q1_alone_with_the_critic_fixed(library):
    critic, b = critic_and_batch(action_dim=2)
    actions = b.actions.clone().requires_grad_()
    dq = torch.randn(32)
    q1, tapes = critic.taped(b.obs, actions.detach(), twins=1)
    ours = critic.action_grad(tapes, dq, action_dim=2)
    (ref,) = torch.autograd.grad((critic(b.obs, actions, fixed=True)[0] * dq).sum(), actions)
    close(ours, ref)
    assert all(p.grad is None for p in critic.parameters())  # held fixed: nothing reached its weights


def test_the_deterministic_actors_written_out_gradient_is_autograds(library):
    torch.manual_seed(1)
    actor = DeterministicActor(3, 2, [400, 300], init="torch")
    obs, d_action = torch.randn(256, 3), torch.randn(256, 2)
    action, tape = actor.taped(obs)
    close(action, actor(obs).detach())
    actor.backward(tape, d_action)
    ours = [p.grad.clone() for p in actor.parameters()]
    actor.zero_grad()
    (actor(obs) * d_action).sum().backward()
    for mine, p in zip(ours, actor.parameters()):
        close(mine, p.grad)


def td3_params():
    return types.SimpleNamespace(net_arch=[64, 48], activation="relu", init="torch", learning_rate=1e-3, action_noise=0.1,
                                 target_policy_noise=0.2, target_noise_clip=0.5, policy_delay=2, tau=0.005, max_grad_norm=None)


def test_a_td3_update_steps_as_autograd_on_its_losses_would(library):
    """One delayed TD3 update (critics, then the actor through the updated critic, then the targets), next to
    the same losses differentiated by autograd: the same gradients (Adam's step alone would not show a
    gradient off by a constant factor) and the same parameters after."""
    from rltui.algos.continuous import polyak, step
    from rltui.algos.td3 import TD3

    torch.manual_seed(0)
    agent = TD3(3, 2, td3_params(), 0.9, torch.device("cpu"))
    reference = copy.deepcopy(agent)
    _, b = critic_and_batch()
    rng = torch.get_rng_state()
    stats = agent.update(b, update_index=1)

    torch.set_rng_state(rng)  # the same target-smoothing noise
    r, p = reference, reference.params
    with torch.no_grad():
        a = r.actor_target(b.next_obs)
        a = (a + (torch.randn_like(a) * p.target_policy_noise).clamp(-p.target_noise_clip, p.target_noise_clip)).clamp(-1, 1)
        y = b.rewards + 0.9 * (1 - b.terminated) * r.critic_target(b.next_obs, a).min(0).values
    critic_loss = 0.5 * ((r.critic(b.obs, b.actions) - y) ** 2).mean(-1).sum()
    step(r.critic_opt, critic_loss, r.critic_params, p.max_grad_norm)
    actor_loss = -r.critic(b.obs, r.actor(b.obs), fixed=True)[0].mean()
    step(r.actor_opt, actor_loss, r.actor_params, p.max_grad_norm)
    polyak(r.actor_target, r.actor, p.tau), polyak(r.critic_target, r.critic, p.tau)

    close(stats["critic_loss"], critic_loss.detach())
    close(stats["actor_loss"], actor_loss.detach())
    for name, module in agent.modules().items():
        if isinstance(module, torch.nn.Module):
            for mine, theirs in zip(module.parameters(), getattr(reference, name).parameters()):
                close(mine, theirs)
                if theirs.grad is not None:
                    close(mine.grad, theirs.grad)
