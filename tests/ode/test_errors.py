"""Option validation (ValueError listing the valid choices) and runtime failures naming t."""

import re

import pytest
import torch

from sonode.ode import SOLVERS, odeint

T = torch.tensor([0.0, 1.0], dtype=torch.float64)
Y0 = torch.ones(2, dtype=torch.float64)


def f(t, y):
    return -y


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'rk45'") as err:
        odeint(f, Y0, T, method="rk45")
    assert all(name in str(err.value) for name in SOLVERS)


@pytest.mark.parametrize(
    "method, options, valid",
    [
        ("dopri5", {"step_size": 0.1}, "first_step"),
        ("rk4", {"rtol": 1e-3, "first_step": 0.1}, "step_size"),
    ],
)
def test_unknown_option_lists_the_valid_ones(method, options, valid):
    with pytest.raises(ValueError, match=f"unknown option.*valid options:.*{valid}"):
        odeint(f, Y0, T, method=method, options=options)


@pytest.mark.parametrize(
    "method, options, match",
    [
        ("rk4", {"step_size": -0.1}, "step_size must be a positive number, got -0.1"),
        ("dopri5", {"max_steps": 0}, "max_steps must be a positive int"),
        ("dopri5", {"dfactor": 2.0}, "dfactor must be in"),
        ("dopri5", {"per_sample": "yes"}, "per_sample must be a bool"),
        ("lawson_rk4", {}, "needs options\\['linear'\\]"),
    ],
)
def test_bad_option_values(method, options, match):
    with pytest.raises(ValueError, match=match):
        odeint(f, Y0, T, method=method, options=options)


@pytest.mark.parametrize(
    "t, match",
    [
        (torch.tensor([0.0, 1.0, 1.0]), "strictly increasing or strictly decreasing"),
        (torch.tensor([0.0, 1.0, 0.5]), "strictly increasing or strictly decreasing"),
        (torch.zeros(2, 2), "1-D"),
        (torch.tensor([0.0, float("nan")]), "finite"),
    ],
)
def test_bad_times(t, match):
    with pytest.raises(ValueError, match=match):
        odeint(f, Y0, t)


def test_non_finite_y0_is_rejected():
    with pytest.raises(ValueError, match="y0 must be finite"):
        odeint(f, torch.tensor([1.0, float("inf")]), T)


def _named_time(message: str) -> float:
    return float(re.search(r"t=(-?[0-9.e+-]+)", message).group(1))


@pytest.mark.parametrize("method", ["bosh3", "dopri5", "tsit5"])
def test_blow_up_raises_runtime_error_at_the_singularity(method):
    # y' = y², y(0) = 1: y = 1 / (1 - t) is singular at t = 1
    with pytest.raises(RuntimeError, match="underflow") as err:
        odeint(
            lambda t, y: y**2,
            torch.ones(1, dtype=torch.float64),
            torch.tensor([0.0, 2.0]),
            method=method,
        )
    assert _named_time(str(err.value)) == pytest.approx(1.0, abs=1e-3)


def test_blow_up_with_per_sample_names_the_sample():
    y0 = torch.tensor([[0.5], [1.0]], dtype=torch.float64)  # singular at t = 2 and t = 1
    with pytest.raises(RuntimeError, match="sample 1 at t=") as err:
        odeint(lambda t, y: y**2, y0, torch.tensor([0.0, 1.5]), options={"per_sample": True})
    assert _named_time(str(err.value)) == pytest.approx(1.0, abs=1e-3)


def test_fixed_step_blow_up_names_the_interval():
    with pytest.raises(RuntimeError, match=r"non-finite .* between t=0.5 and t=0.75"):
        odeint(
            lambda t, y: y**3,
            torch.full((1,), 1.5),
            torch.tensor([0.0, 0.25, 0.5, 0.75]),
            method="euler",
            options={"step_size": 0.05},
        )


def test_max_steps_names_t():
    with pytest.raises(RuntimeError, match=r"max_steps=5 reached at t=") as err:
        odeint(
            lambda t, y: torch.cos(50 * t) * torch.ones_like(y),
            Y0,
            torch.tensor([0.0, 10.0]),
            options={"max_steps": 5},
        )
    assert 0.0 < _named_time(str(err.value)) < 10.0
