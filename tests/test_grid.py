"""One copy of the sample-grid rules (sonode.dsp.grid) and of the SNR, for dsp, model and tasks."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import sonode
from sonode.dsp import grid, metrics, resample
from sonode.model import checks
from sonode.tasks.render import n_output_samples

MODEL = Path(__file__).parent / "data" / "model_d8155b1.sonode"


@given(st.integers(0, 10**6), st.integers(1, 192_000), st.integers(1, 192_000))
def test_the_output_length_is_the_duration_rule_in_exact_arithmetic(n_in, sr_in, sr_out):
    exact = Fraction(n_in * sr_out, sr_in)
    assert grid.output_length(n_in, sr_in, sr_out) == math.floor(exact + Fraction(1, 2))
    assert resample.output_length is grid.output_length


def test_halves_round_up_everywhere():
    assert grid.n_samples(0.5 / 1000, 1000) == 1 and grid.n_samples(2.5 / 1000, 1000) == 3
    assert n_output_samples(2.5 / 1000, 1000) == 3  # renders use the same rule
    assert grid.output_length(5, 2, 1) == 3  # 2.5 samples -> 3


@pytest.mark.parametrize("bad", [0, -8000, 44100.5, math.inf, math.nan, True, "44100"])
def test_whole_rates_are_checked_in_one_place(bad):
    with pytest.raises(ValueError, match="rate must be a positive whole number of Hz"):
        grid.as_whole_rate(bad)
    assert grid.as_whole_rate(44100.0) == 44100


def test_a_render_refuses_a_fractional_rate_instead_of_truncating_it():
    fitted = sonode.load(MODEL)
    with pytest.raises(ValueError, match="rate must be a positive whole number of Hz, got 8000.5"):
        fitted.render(rate=8000.5)


def test_the_model_checks_and_the_metrics_share_one_snr():
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(1000, generator=gen, dtype=torch.float64)
    est = ref + 0.01 * torch.randn(1000, generator=gen, dtype=torch.float64)
    assert checks.snr_db(ref, est) == pytest.approx(
        metrics.snr_db(ref.numpy(), est.numpy()), abs=1e-12
    )
    assert checks.snr_db(ref, ref) == math.inf
    assert math.isnan(checks.snr_db(ref, torch.full_like(ref, math.nan)))  # a diverged solve
    assert np.isnan(metrics.snr_from_energies(np.float64(0.0), np.float64(1.0)))
