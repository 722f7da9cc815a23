"""Backpropagation written out for a chain of dense layers, for the updates where autograd's bookkeeping
costs more than the maths: the twin critics' step of SAC and TD3, and TD3's actor step.

A chain is x ↦ y_n with y_k = f_k(y_{k−1} W_kᵀ + b_k), y_0 = x, f_k the hidden activation (ReLU or tanh)
and f_n the output's (none, or tanh for TD3's actor). Given g = ∂L/∂y_n, from the last layer down:

    δ_k = g ⊙ f_k′        ReLU: g where y_k > 0;  tanh: g (1 − y_k²);  none: g
    ∂L/∂W_k = δ_kᵀ y_{k−1}     ∂L/∂b_k = Σ_rows δ_k     g ← ∂L/∂y_{k−1} = δ_k W_k

These are the float32 products autograd ran (rltui/algos/dense.py picks oneDNN or BLAS the same way),
with a few small ones taken the quicker way round (below); what goes is the graph built and walked for every update, the saved
tensors and the autograd Functions' dispatch. A TD3 update on Pendulum (batch
256, [400, 300], one thread) went from 7.41 to 6.51 ms (medians of 16 interleaved blocks of 100 updates
in one process: 0.88×); SB3's takes ~13 ms on the same machine. tests/test_backprop.py holds every
gradient against autograd's.

A layer's W is given as (out, in), possibly a transposed view of weights stored (in, out) (TwinQ's
layout); its gradient comes back in the same orientation and storage, so `.t()` of it is contiguous
again where W's storage was transposed. A one-output layer (a critic's last) is a matrix-vector product
(256 × 300: 7 µs, where the broadcast product and sum TwinQ's autograd pass uses costs 14).
"""

from __future__ import annotations

import torch

from rltui.algos.dense import ACTIVATION_FUNCTIONS, linear_act, matmul, uses_onednn

Layer = tuple[torch.Tensor, torch.Tensor]  # (W as (out, in), b as (out,)), both detached


def forward(layers: list[Layer], x: torch.Tensor, act: str, out_act: str = "none") -> list[torch.Tensor]:
    """[y_0 = x, y_1, …, y_n]: every layer's output, which is what `backward` needs; y_n is the chain's."""
    ys = [x]
    for k, (w, b) in enumerate(layers):
        f = act if k < len(layers) - 1 else out_act
        if w.shape[0] == 1:  # one output: a matrix-vector product (a matmul with one column costs more)
            ys.append(ACTIVATION_FUNCTIONS[f](torch.addmv(b, ys[-1], w[0]).unsqueeze(-1)))
        else:
            ys.append(linear_act(ys[-1], w, b, f))
    return ys


def _activation_backward(g: torch.Tensor, y: torch.Tensor, f: str) -> torch.Tensor:
    if f == "relu":
        return torch.ops.aten.threshold_backward(g, y, 0)
    if f == "tanh":
        return torch.ops.aten.tanh_backward(g, y)
    return g


def _weight_grad(delta: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """δᵀ h, shaped (out, in) like W and laid out as W's storage is."""
    if w.shape[0] == 1:
        return torch.mv(h.t(), delta[:, 0]).unsqueeze(0)
    if w.is_contiguous() and uses_onednn(delta.t(), h.shape[1]):
        return matmul(delta.t(), h)
    # (hᵀ δ)ᵀ: W is a view of (in, out) weights, or a small product, where BLAS is ~5x quicker this way
    # round (256 rows: (4 × 256) @ (256 × 400) 21 µs, (400 × 256) @ (256 × 4) 108 µs)
    gw = matmul(h.t(), delta).t()
    return gw.contiguous() if w.is_contiguous() else gw


def backward(layers: list[Layer], ys: list[torch.Tensor], g: torch.Tensor, act: str, out_act: str = "none",
             weights: bool = True, input_grad: bool = False) -> tuple[list[Layer] | None, torch.Tensor | None]:
    """([(∂L/∂W_k, ∂L/∂b_k)] in layer order, or None if not `weights`; ∂L/∂x, or None if not `input_grad`),
    given g = ∂L/∂y_n and the outputs `forward` returned. `weights=False` is a chain held fixed (an
    actor's loss through a critic): only the gradient to its input is computed."""
    grads: list[Layer] = []
    for k in reversed(range(len(layers))):
        w = layers[k][0]
        delta = _activation_backward(g, ys[k + 1], act if k < len(layers) - 1 else out_act)
        if weights:
            grads.append((_weight_grad(delta, ys[k], w), delta.sum(0)))
        if k > 0 or input_grad:
            g = torch.outer(delta[:, 0], w[0]) if w.shape[0] == 1 else matmul(delta, w)
    return (grads[::-1] if weights else None), (g if input_grad else None)
