"""Agreement with torchdiffeq 0.2.5 (reference implementation, test-only) on the same problems.

torchdiffeq has no tsit5 (compared with its dopri5). Its "rk4" is the 3/8 rule, as ours; the
classical RK4 is "rk4_classical" (both 4th order: they agree to the discretisation error only).
"""

import pytest
import torch

torchdiffeq = pytest.importorskip("torchdiffeq")

from ode_cases import PROBLEMS  # noqa: E402

from sonode.ode import odeint  # noqa: E402


def _mlp_field():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)
    ).double()
    return lambda t, y: net(y)


FIELDS = {name: (f, y0, t_end) for name, (f, y0, t_end) in PROBLEMS.items()}
FIELDS["mlp_batch"] = (
    _mlp_field(),
    torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
    2.0,
)


@pytest.mark.parametrize("problem", sorted(FIELDS))
@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "heun2", "heun3"])
def test_fixed_step_matches_to_round_off(method, problem):
    f, y0, t_end = FIELDS[problem]
    t = torch.linspace(0.0, t_end, 200, dtype=torch.float64)
    ours = odeint(f, y0, t, method=method)
    ref = torchdiffeq.odeint(f, y0, t, method=method)
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("problem", sorted(FIELDS))
def test_classical_rk4_agrees_with_the_3_8_rule_to_discretisation_error(problem):
    f, y0, t_end = FIELDS[problem]
    t = torch.linspace(0.0, t_end, 400, dtype=torch.float64)
    ours = odeint(f, y0, t, method="rk4_classical")
    ref = torchdiffeq.odeint(f, y0, t, method="rk4")
    assert torch.allclose(ours, ref, rtol=0, atol=1e-7)
    assert not torch.equal(ours, ref)  # genuinely different methods


@pytest.mark.parametrize("problem", sorted(FIELDS))
@pytest.mark.parametrize("method, ref_method", [("dopri5", "dopri5"), ("tsit5", "dopri5")])
def test_adaptive_agrees_within_tolerance_at_the_end_point(method, ref_method, problem):
    # (torchdiffeq's bosh3 is left out: it steps past t_end and reads every output from its
    # quartic interpolant, which is ~1e-5 off here whatever rtol; see the dense test below)
    f, y0, t_end = FIELDS[problem]
    t = torch.tensor([0.0, t_end], dtype=torch.float64)
    rtol, atol = 1e-7, 1e-9
    ours = odeint(f, y0, t, method=method, rtol=rtol, atol=atol)
    ref = torchdiffeq.odeint(f, y0, t, method=ref_method, rtol=rtol, atol=atol)
    assert float(((ours - ref).abs() / (atol + rtol * ref.abs())).max()) < 50.0


@pytest.mark.parametrize("problem", sorted(FIELDS))
@pytest.mark.parametrize("method", ["bosh3", "dopri5", "tsit5"])
def test_dense_output_agrees_with_a_tight_torchdiffeq_solve(method, problem):
    # reference: torchdiffeq's dopri5 at rtol 1e-11 (not its bosh3, whose interpolated outputs
    # are only accurate to ~1e-5 on these problems at rtol 1e-7)
    f, y0, t_end = FIELDS[problem]
    t = torch.linspace(0.0, t_end, 50, dtype=torch.float64)
    rtol, atol = 1e-7, 1e-9
    ours = odeint(f, y0, t, method=method, rtol=rtol, atol=atol)
    ref = torchdiffeq.odeint(f, y0, t, method="dopri5", rtol=1e-11, atol=1e-13)
    scale = atol + rtol * ref.abs().amax(0)
    assert float(((ours - ref).abs() / scale).max()) < 50.0
