"""Dense layers whose large float32 matmuls go through oneDNN on CPUs where it beats torch's BLAS.

torch's CPU matmul (addmm, bmm, F.linear) calls MKL. On AMD CPUs MKL takes a generic AVX2 path: on
this lab's Zen 5 cores a 256×400 @ 400×300 product runs at ~90 GFLOP/s through MKL and ~200 GFLOP/s
through oneDNN (also bundled with torch), whose kernels follow the CPU's instruction set, not its
vendor. The off-policy actor-critics (SAC, TD3: batch 256, [400, 300] or [256, 256] layers) are
matmul-bound, so there this halves most of an update. The maths is the same float32 product (only
the order of the sums differs, as between any two BLAS libraries), forward and backward:

    y = x Wᵀ + b     ∂L/∂x = g W     ∂L/∂W = gᵀ x     ∂L/∂b = Σ_rows g       (g = ∂L/∂y)

Which library wins is measured once per process on a product of that size (~10 ms), unless
$RLTUI_CPU_MATMUL says `onednn` or `blas`. Small products (acting on one observation, a first layer
of 4 inputs), other devices and other dtypes keep torch's own ops, which are quicker there.
"""

from __future__ import annotations

import functools
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

CPU_MATMUL_ENV = "RLTUI_CPU_MATMUL"
# Below ~2M multiply-adds per product torch's BLAS call is as quick or quicker (measured: 256×4→400
# 0.015 vs 0.018 ms, 10×400→300 equal, 256×400→300 0.69 vs 0.32 ms).
ONEDNN_MIN_MACS = 2**21


@functools.cache
def _linear_pointwise():  # noqa: ANN202 — oneDNN's linear (x Wᵀ + b, W: (out, in)), as torch's compiler uses it
    try:
        return torch.ops.mkldnn._linear_pointwise.default if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


@functools.cache
def onednn_matmul() -> bool:
    """Whether large float32 matmuls on this CPU go through oneDNN (see the module's docstring)."""
    op = _linear_pointwise()
    choice = os.environ.get(CPU_MATMUL_ENV, "").strip().lower()
    if op is None or choice == "blas":
        return False
    if choice == "onednn":
        return True
    x, w = torch.randn(256, 400), torch.randn(300, 400)

    def quickest(f) -> float:  # noqa: ANN001 — the least of a few timings: what the code costs, not the machine's load
        f()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            f()
            times.append(time.perf_counter() - start)
        return min(times)

    return quickest(lambda: op(x, w, None, "none", [], "")) < 0.8 * quickest(lambda: F.linear(x, w))


def _mm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """x Wᵀ + b through oneDNN, then ReLU if asked (fused); W: (out, in), a view such as a transpose read in place."""
    return _linear_pointwise()(x, w, b, "relu" if relu else "none", [], "")


def uses_onednn(x: torch.Tensor, out_dim: int) -> bool:
    """A float32 product on the CPU of x (rows × in) by an (in × out) matrix: rows·in·out multiply-adds."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and x.numel() * out_dim >= ONEDNN_MIN_MACS and onednn_matmul()


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b (a: (m, k), b: (k, n), either a transposed view), through oneDNN where that is quicker."""
    return _mm(a, b.t()) if uses_onednn(a, b.shape[1]) else a @ b


ACTIVATION_FUNCTIONS = {"relu": torch.relu, "tanh": torch.tanh, "none": lambda t: t}


def linear_act(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, act: str) -> torch.Tensor:
    """act(x Wᵀ + b) with act "relu", "tanh" or "none"; W: (out, in). A ReLU after a oneDNN product is
    fused into its kernel."""
    if uses_onednn(x, w.shape[0]):
        y = _mm(x, w, b, relu=act == "relu")
        return torch.tanh(y) if act == "tanh" else y
    return ACTIVATION_FUNCTIONS[act](F.linear(x, w, b))


class _OneDnnLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(x, w)
        return _mm(x, w, b)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: ANN001
        x, w = ctx.saved_tensors
        g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
        gx = _mm(g, w.t()) if ctx.needs_input_grad[0] else None            # g W
        gw = _mm(g2.t(), x2.t()) if ctx.needs_input_grad[1] else None      # gᵀ x
        gb = g2.sum(0) if ctx.needs_input_grad[2] else None  # False without a bias
        return gx, gw, gb


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, w, b) = x Wᵀ + b, through oneDNN where that is quicker."""
    if uses_onednn(x, w.shape[0]):
        return _OneDnnLinear.apply(x, w, b)
    return F.linear(x, w, b)


class _OneDnnTwinLinear(torch.autograd.Function):
    """Two layers held stacked (TwinQ's layout), each on its own input: y_t = act(x_t W_t + b_t) with
    W: (2, in, out), b: (2, 1, out), act ReLU (fused into oneDNN's kernel) or none. The two outputs stay
    separate tensors (no copy into a stacked one); only the weights' gradient is stacked, as W is."""

    @staticmethod
    def forward(ctx, x0: torch.Tensor, x1: torch.Tensor, w: torch.Tensor, b: torch.Tensor, relu: bool):  # noqa: ANN001, ANN205
        y0, y1 = (_mm(x, w[t].t(), b[t, 0], relu) for t, x in enumerate((x0, x1)))
        ctx.save_for_backward(x0, x1, w, *((y0, y1) if relu else ()))
        ctx.relu = relu
        return y0, y1

    @staticmethod
    def backward(ctx, g0: torch.Tensor, g1: torch.Tensor):  # noqa: ANN001, ANN205
        x0, x1, w, *ys = ctx.saved_tensors
        gs = [g0, g1]  # autograd passes zeros for an output that was not used
        if ctx.relu:  # ReLU's backward: the gradient where the output was positive
            gs = [torch.ops.aten.threshold_backward(g, y, 0) for g, y in zip(gs, ys)]
        xs = (x0, x1)
        gx = [_mm(g, w[t]) if ctx.needs_input_grad[t] else None for t, g in enumerate(gs)]  # g_t W_tᵀ
        gw = torch.stack([_mm(x.t(), g.t()) for x, g in zip(xs, gs)]) if ctx.needs_input_grad[2] else None  # x_tᵀ g_t
        gb = torch.stack([g.sum(0, keepdim=True) for g in gs]) if ctx.needs_input_grad[3] else None
        return gx[0], gx[1], gw, gb, None


Pair = tuple[torch.Tensor, torch.Tensor]


def twin_linear(x: Pair, w: torch.Tensor, b: torch.Tensor, relu: bool = False) -> Pair:
    """(act(x_0 W_0 + b_0), act(x_1 W_1 + b_1)) for two stacked layers (w: (2, in, out), b: (2, 1, out));
    act is ReLU if `relu`, else none. x_0 and x_1 may be the same tensor (the first layer's input)."""
    if uses_onednn(x[0], w.shape[2]):
        return _OneDnnTwinLinear.apply(x[0], x[1], w, b, relu)
    h = x[0].unsqueeze(0).expand(2, *x[0].shape) if x[0] is x[1] else torch.stack(x)
    y = torch.baddbmm(b, h, w)
    return tuple((torch.relu(y) if relu else y).unbind(0))  # type: ignore[return-value]


class Linear(nn.Linear):
    """nn.Linear (the same parameters and state dict) computed by `linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
