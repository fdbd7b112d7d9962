"""The internal contract used by the adjoint: solve(record_steps=True) and replay_step.

replay_step must reproduce the forward solve bit for bit (same stages, same interpolant).
"""

import pytest
import torch
from ode_cases import A_LIN, ADAPTIVE_HIGH, van_der_pol_f

from sonode.ode import DenseLinear, SolveOptions, replay_step, solve

CASES = [(m, None) for m in ADAPTIVE_HIGH] + [
    ("rk4", {"step_size": 0.07}),
    ("euler", None),
    ("lawson_rk4", {"step_size": 0.1, "linear": DenseLinear(A_LIN[:2, :2])}),
]


def _f(t, y):
    return van_der_pol_f(t, y) + 0.1 * torch.sin(t)  # time-dependent: replay must use the same t


@pytest.mark.parametrize("method, options", CASES)
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_replaying_every_step_reproduces_the_forward_solve_exactly(method, options, direction):
    opts = SolveOptions.build(method, 1e-6, 1e-8, options)
    y0 = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    t = direction * torch.linspace(0.0, 1.0, 23, dtype=torch.float64)
    res = solve(_f, y0, t, opts, record_steps=True)
    rec = res.steps
    assert rec.n_steps == res.stats.n_steps and rec.y0.shape == (rec.n_steps, 2, 2)
    assert int(rec.out_index[0]) == 0 and int(rec.out_index[-1]) == len(t)
    assert torch.all(rec.out_index[1:] >= rec.out_index[:-1])
    # consecutive steps chain exactly in time (FSAL's k1 equals f(t0, y0) recomputed)
    assert torch.equal(rec.t0[1:], rec.t0[:-1] + rec.h[:-1])
    y = y0
    for i in range(rec.n_steps):
        assert torch.equal(rec.y0[i], y)
        lo, hi = int(rec.out_index[i]), int(rec.out_index[i + 1])
        t_out = t[lo:hi]
        t0, h = float(rec.t0[i]), float(rec.h[i])
        assert all(min(t0, t0 + h) <= float(s) <= max(t0, t0 + h) for s in t_out)  # closed interval
        y, y_out = replay_step(_f, opts, t0, h, rec.y0[i], t_out)
        assert y_out.shape == (hi - lo, 2, 2)
        assert torch.equal(y_out, res.ys[lo:hi])


def test_replay_is_differentiable():
    opts = SolveOptions.build("dopri5", 1e-6, 1e-8, None)
    y0 = torch.tensor([2.0, 0.0], dtype=torch.float64, requires_grad=True)
    y1, y_out = replay_step(_f, opts, 0.0, 0.1, y0, torch.tensor([0.03, 0.1], dtype=torch.float64))
    (y1.sum() + y_out.sum()).backward()
    assert y0.grad is not None and torch.isfinite(y0.grad).all()


def test_single_output_time_records_no_steps():
    opts = SolveOptions.build("dopri5", 1e-6, 1e-8, None)
    res = solve(_f, torch.ones(2), torch.tensor([0.5]), opts, record_steps=True)
    assert res.ys.shape == (1, 2) and res.steps.n_steps == 0 and res.steps.out_index.tolist() == [0]
