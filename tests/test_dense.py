"""rltui/algos/dense.py: the oneDNN layers compute torch's linear and batched-matmul layers, forward and
backward, and the switch between the two libraries honours $RLTUI_CPU_MATMUL."""

from __future__ import annotations

import pytest
import torch

from rltui.algos import dense
from rltui.algos.networks import DeterministicActor, TwinQ


@pytest.fixture
def library(monkeypatch):
    """Select the CPU matmul library for one test (the choice is cached per process)."""

    def choose(name: str) -> bool:
        monkeypatch.setenv(dense.CPU_MATMUL_ENV, name)
        dense.onednn_matmul.cache_clear()
        return dense.onednn_matmul()

    yield choose
    dense.onednn_matmul.cache_clear()


needs_onednn = pytest.mark.skipif(dense._linear_pointwise() is None, reason="this torch has no oneDNN linear")


def _grads(loss: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, tensors))


@needs_onednn
def test_linear_forward_and_gradients_are_torchs(library):
    assert library("onednn")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 400, generator=g, requires_grad=True)
    w = torch.randn(300, 400, generator=g, requires_grad=True)
    b = torch.randn(300, generator=g, requires_grad=True)
    upstream = torch.randn(256, 300, generator=g)
    assert dense.uses_onednn(x, 300)
    y = dense.linear(x, w, b)
    # the reference in float64: torch's own linear and its autograd
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    y64 = torch.nn.functional.linear(x64, w64, b64)
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-4)
    for ours, ref in zip(_grads((y * upstream).sum(), x, w, b), _grads((y64 * upstream.double()).sum(), x64, w64, b64)):
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-3)


@needs_onednn
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shared_input", [False, True])
def test_twin_layers_forward_and_gradients_are_baddbmms(library, relu, shared_input):
    """Each of the pair is its own layer of the stack, ReLU (fused) or not; an input both take (the first
    layer's) gets both gradients."""
    assert library("onednn")
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(256, 300, generator=g, requires_grad=True)
    x1 = x0 if shared_input else torch.randn(256, 300, generator=g, requires_grad=True)
    w = torch.randn(2, 300, 256, generator=g, requires_grad=True)
    b = torch.randn(2, 1, 256, generator=g, requires_grad=True)
    upstream = torch.randn(2, 256, 256, generator=g)
    y = torch.stack(dense.twin_linear((x0, x1), w, b, relu=relu))
    inputs = (x0, w, b) if shared_input else (x0, x1, w, b)
    ref_inputs = [t.detach().double().requires_grad_() for t in inputs]
    ref_x = torch.stack([ref_inputs[0], ref_inputs[0] if shared_input else ref_inputs[1]])
    y64 = torch.baddbmm(ref_inputs[-1], ref_x, ref_inputs[-2])
    y64 = torch.relu(y64) if relu else y64
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-4)
    for ours, ref in zip(_grads((y * upstream).sum(), *inputs), _grads((y64 * upstream.double()).sum(), *ref_inputs)):
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-3)


@needs_onednn
def test_a_critic_held_fixed_gets_no_weight_gradient(library):
    """TwinQ(fixed=True), the actor's loss through the critic: the gradient reaches the actions only."""
    assert library("onednn")
    critic = TwinQ(3, 1, [400, 300])
    actions = torch.zeros(256, 1, requires_grad=True)
    critic(torch.randn(256, 3), actions, fixed=True).sum().backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


@needs_onednn
def test_td3s_networks_give_the_same_values_and_gradients_through_either_library(library):
    """The critic's twin layers, its Q_1 held fixed, and the actor (the Zoo's [400, 300]) agree across libraries."""
    torch.manual_seed(0)
    critic, actor = TwinQ(3, 1, [400, 300]), DeterministicActor(3, 1, [400, 300])
    obs = torch.randn(256, 3)

    def values_and_grads():
        critic.zero_grad(), actor.zero_grad()
        actions = actor(obs)
        q = critic(obs, actions.detach())
        q1 = critic(obs, actions, fixed=True)[0]
        (q.square().mean() - q1.mean()).backward()
        return [q, q1] + [p.grad.clone() for p in [*critic.parameters(), *actor.parameters()]]

    library("blas")
    reference = values_and_grads()
    assert library("onednn")
    for ours, ref in zip(values_and_grads(), reference):
        torch.testing.assert_close(ours, ref, rtol=2e-4, atol=2e-5)


def test_small_products_other_dtypes_and_the_blas_choice_keep_torchs_ops(library):
    library("onednn")
    assert not dense.uses_onednn(torch.zeros(1, 3), 400)  # acting on one observation
    assert not dense.uses_onednn(torch.zeros(256, 4), 400)  # a first layer of 4 inputs
    assert not dense.uses_onednn(torch.zeros(256, 400, dtype=torch.float64), 300)
    assert not library("blas")
    assert not dense.uses_onednn(torch.zeros(256, 400), 300)
    measured = library("")  # unset: measured on this CPU, once per process
    assert isinstance(measured, bool) and dense.onednn_matmul() is measured
