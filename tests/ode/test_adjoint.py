"""odeint_adjoint, checkpoint mode (the discrete adjoint) and the shared API.

Properties checked: the forward result is odeint's bit for bit; gradients equal backprop through
the same solver to round-off (≤ 1e-8 relative, float64) for every method; they agree with finite
differences (gradcheck) and with torchdiffeq's adjoint; time gradients match finite differences.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchdiffeq
from adjoint_cases import (
    MLPField,
    adjoint_gradcheck,
    backprop_grads,
    case_options,
    max_rel_err,
    weighted_loss,
)

from sonode.ode import odeint, odeint_adjoint
from sonode.ode.adjoint_checkpoint import checkpointed_forward
from sonode.ode.options import SolveOptions

CHECKPOINT = {"mode": "checkpoint"}  # the exact discrete adjoint (the default is backsolve)

CASES = [
    ("euler", {"step_size": 0.07}),
    ("midpoint", {}),
    ("rk4", {}),
    ("rk4", {"step_size": 0.04}),
    ("lawson_rk4", {"step_size": 0.05}),
    ("bosh3", {}),
    ("dopri5", {}),
    ("tsit5", {}),
]


def _setup(method, options, n_out=9, t_end=1.5, batch=2):
    func = MLPField()
    y0 = torch.randn(
        batch, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    ).requires_grad_()
    t = torch.linspace(0.0, t_end, n_out, dtype=torch.float64)
    opts = case_options(method, **options)
    inputs = [y0, *func.parameters()]
    if method == "lawson_rk4":
        inputs.append(opts["linear"].A)
    return func, y0, t, opts, inputs


@pytest.mark.parametrize("method,options", CASES, ids=[f"{m}-{o}" for m, o in CASES])
@pytest.mark.parametrize("every", [1, 3, 1000])
def test_checkpoint_equals_backprop(method, options, every):
    func, y0, t, opts, inputs = _setup(method, options)
    ys_ref, g_ref = backprop_grads(func, y0, t, inputs, method, opts)
    ys = odeint_adjoint(
        func,
        y0,
        t,
        method=method,
        options=opts,
        adjoint_options={"mode": "checkpoint", "checkpoint_every": every},
    )
    assert torch.equal(ys, ys_ref), "odeint_adjoint must return exactly odeint's values"
    g = torch.autograd.grad(weighted_loss(ys), inputs)
    assert max_rel_err(g, g_ref) <= 1e-8


def test_checkpoint_equals_backprop_backwards_in_time_float32():
    func = MLPField(dtype=torch.float32)
    y0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(5)).requires_grad_()
    t = torch.linspace(2.0, 0.0, 21)
    inputs = [y0, *func.parameters()]
    _, g_ref = backprop_grads(func, y0, t, inputs, "rk4", {"step_size": 0.03})
    ys = odeint_adjoint(
        func, y0, t, method="rk4", options={"step_size": 0.03}, adjoint_options=CHECKPOINT
    )
    assert ys.dtype == torch.float32
    g = torch.autograd.grad(weighted_loss(ys), inputs)
    assert max_rel_err(g, g_ref) <= 1e-5  # float32 round-off


GRADCHECK_CASES = [
    ("euler", {"step_size": 0.1}),
    ("rk4", {"step_size": 0.1}),
    ("lawson_rk4", {}),
    ("dopri5", {}),
]


@pytest.mark.parametrize("method,options", GRADCHECK_CASES, ids=[m for m, _ in GRADCHECK_CASES])
def test_checkpoint_gradcheck(method, options):
    """Finite differences of the whole map (y0, W) -> ys (float64 gradcheck)."""
    opts = case_options(method, **options)
    if method == "lawson_rk4":
        opts["linear"].A.requires_grad_(False)
        opts["linear"].A = opts["linear"].A[:2, :2].detach()
    t = torch.tensor([0.0, 0.3, 0.8], dtype=torch.float64)
    assert adjoint_gradcheck(method, opts, CHECKPOINT, t)


def test_checkpoint_keeps_sparse_states():
    """Memory claim: one stored state per `every` steps, not one per step."""
    func = MLPField()
    y0 = torch.zeros(2, 3, dtype=torch.float64)
    opts = SolveOptions.build("rk4", 1e-6, 1e-8, {"step_size": 0.01})
    _, cps = checkpointed_forward(
        func, y0, torch.tensor([0.0, 1.0]), opts, every=32, tape_tail=True
    )
    assert len(cps.h) == 100 and cps.kept.shape == (math.ceil(100 / 32), 2, 3)
    assert cps.tail[1].shape == (
        1,
        2,
        3,
    )  # the taped last piece (steps 96..99) holds only the output at t=1


@pytest.mark.parametrize("mode", ["checkpoint", "backsolve"])
def test_time_gradient_matches_finite_differences(mode):
    func = MLPField()
    y0 = torch.randn(2, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.9, 1.4], dtype=torch.float64, requires_grad=True)
    kw = dict(method="dopri5", rtol=1e-10, atol=1e-12)
    ys = odeint_adjoint(func, y0, t, adjoint_options={"mode": mode}, **kw)
    (g_t,) = torch.autograd.grad(weighted_loss(ys), [t])
    eps = 1e-6
    fd = torch.empty(4, dtype=torch.float64)
    with torch.no_grad():
        for i in range(4):
            tp, tm = t.detach().clone(), t.detach().clone()
            tp[i] += eps
            tm[i] -= eps
            fd[i] = (
                weighted_loss(odeint(func, y0, tp, **kw))
                - weighted_loss(odeint(func, y0, tm, **kw))
            ) / (2 * eps)
    assert torch.allclose(g_t, fd, rtol=1e-6, atol=1e-7)


def test_agrees_with_torchdiffeq_adjoint():
    func = MLPField()
    y0 = torch.randn(
        2, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64
    ).requires_grad_()
    t = torch.linspace(0.0, 2.0, 6, dtype=torch.float64)
    inputs = [y0, *func.parameters()]
    ours = torch.autograd.grad(
        weighted_loss(odeint_adjoint(func, y0, t, rtol=1e-10, atol=1e-12)), inputs
    )
    ref_ys = torchdiffeq.odeint_adjoint(func, y0, t, method="dopri5", rtol=1e-10, atol=1e-12)
    ref = torch.autograd.grad(weighted_loss(ref_ys), inputs)
    assert max_rel_err(ours, ref) <= 1e-6


def test_single_output_time_gradient_is_the_cotangent():
    func = MLPField()
    y0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    ys = odeint_adjoint(func, y0, torch.tensor([0.3]), method="rk4")
    (g,) = torch.autograd.grad(weighted_loss(ys), [y0])
    (g_ref,) = torch.autograd.grad(weighted_loss(y0.unsqueeze(0)), [y0])
    assert torch.equal(g, g_ref)


class ModuleLinear(torch.nn.Module):
    """A linear operator that is an nn.Module (as the audio model's is): its parameters are found."""

    def __init__(self, A):
        super().__init__()
        self.A = torch.nn.Parameter(A)

    def expm_apply(self, h, y):
        return y @ torch.linalg.matrix_exp(self.A * h).T


def test_linear_module_parameters_are_included_automatically():
    func, y0, t, _, inputs = _setup("rk4", {})
    linear = ModuleLinear(case_options("lawson_rk4")["linear"].A.detach().clone())
    opts = {"linear": linear, "step_size": 0.05}
    inputs = [*inputs, linear.A]
    _, g_ref = backprop_grads(func, y0, t, inputs, "lawson_rk4", opts)
    ys = odeint_adjoint(func, y0, t, method="lawson_rk4", options=opts)  # no adjoint_params given
    g = torch.autograd.grad(weighted_loss(ys), inputs)
    assert max_rel_err(g, g_ref) <= 1e-8


def test_only_listed_params_get_gradients():
    """A plain callable's tensors get gradients only when listed in adjoint_params."""
    W = torch.eye(2, dtype=torch.float64, requires_grad=True)
    V = torch.eye(2, dtype=torch.float64, requires_grad=True)
    y0 = torch.ones(2, dtype=torch.float64)
    ys = odeint_adjoint(
        lambda t, y: -y @ W @ V, y0, torch.tensor([0.0, 1.0]), method="rk4", adjoint_params=[W]
    )
    ys.sum().backward()
    assert W.grad is not None and W.grad.abs().sum() > 0 and V.grad is None


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(adjoint_options={"mode": "reverse"}), "mode"),
        (dict(adjoint_options={"checkpoint_evry": 4}), "valid keys"),
        (dict(adjoint_options={"mode": "checkpoint", "checkpoint_every": 0}), "checkpoint_every"),
        (dict(adjoint_options={"checkpoint_every": 4}), "mode='checkpoint' only"),
        (dict(adjoint_options={"mode": "backsolve", "checkpoint_every": 4}), "backsolve"),
        (dict(adjoint_options={"mode": "backsolve", "norm": "semi"}), "seminorm"),
        (dict(adjoint_rtol=1e-3, adjoint_options={"rtol": 1e-4}), "disagree"),
        (dict(adjoint_options={"mode": "backsolve", "method": "rk5"}), "rk5"),
        (dict(adjoint_options={"mode": "backsolve", "atol": -1.0}), "atol"),
        (dict(method="rk4", options={"stepsize": 0.1}), "valid options"),
        (dict(options={"per_sample": True}, adjoint_options=CHECKPOINT), "per_sample"),
    ],
)
def test_bad_options_raise_value_error(kwargs, match):
    func = MLPField()
    with pytest.raises(ValueError, match=match):
        odeint_adjoint(
            func, torch.zeros(2, 3, dtype=torch.float64), torch.tensor([0.0, 1.0]), **kwargs
        )


def test_lawson_time_gradient_is_refused():
    opts = case_options("lawson_rk4")
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="t.detach"):
        odeint_adjoint(
            MLPField(), torch.zeros(2, 3, dtype=torch.float64), t, method="lawson_rk4", options=opts
        )


def test_plain_callable_needs_adjoint_params():
    with pytest.raises(ValueError, match="adjoint_params"):
        odeint_adjoint(lambda t, y: -y, torch.ones(2), torch.tensor([0.0, 1.0]))


def test_second_backward_replays_the_taped_piece():
    """The forward tapes the last piece once; a retained second backward replays it: same gradient."""
    func, y0, t, opts, inputs = _setup("rk4", {"step_size": 0.04})
    ys = odeint_adjoint(
        func,
        y0,
        t,
        method="rk4",
        options=opts,
        adjoint_options={"mode": "checkpoint", "checkpoint_every": 4},
    )
    loss = weighted_loss(ys)
    first = torch.autograd.grad(loss, inputs, retain_graph=True)
    second = torch.autograd.grad(loss, inputs)
    assert max_rel_err(second, first) <= 1e-12


def test_under_no_grad_returns_plain_values():
    func, y0, t, opts, _ = _setup("rk4", {"step_size": 0.04})
    with torch.no_grad():
        ys = odeint_adjoint(func, y0, t, method="rk4", options=opts)
    assert ys.grad_fn is None and torch.equal(
        ys, odeint(func, y0.detach(), t, method="rk4", options=opts)
    )
