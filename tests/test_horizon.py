"""The horizon curve's arithmetic (`sonode.evaluation.horizon`), on signals with known answers."""

import numpy as np
import pytest

from sonode.evaluation.horizon import (
    HORIZONS_S,
    horizon_curves,
    horizon_median,
    save_horizon_png,
)

RATE = 8000


def _sine(n: int, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * 400 * np.arange(n) / RATE)


def test_snr_against_horizon_and_level_against_time_have_their_known_values():
    truth = _sine(RATE // 2)  # 0.5 s: horizons up to 0.5 s of the 1 ms - 1 s grid
    systems = {
        "exact": _sine(2 * RATE),
        "half": 0.5 * _sine(2 * RATE),
        "silent": np.zeros(2 * RATE),
    }
    curves = horizon_curves(systems, _sine(RATE, 0.1), truth, RATE)
    assert curves["horizons_s"] == [h for h in HORIZONS_S if h <= 0.5]
    assert all(v is None for v in curves["snr_db"]["exact"])  # exact: +inf, stored as None
    np.testing.assert_allclose(curves["snr_db"]["half"], 20 * np.log10(2), rtol=1e-9)
    np.testing.assert_allclose(curves["snr_db"]["silent"], 0.0, atol=1e-12)
    # a sine of amplitude a has RMS level 20 log10(a / sqrt 2) dB; 20 ms frames hold whole periods
    np.testing.assert_allclose(
        curves["level_db"]["half"], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.05
    )
    assert len(curves["level_db"]["half"]) == 100 and len(curves["level_db"]["truth"]) == 25
    assert curves["reference_level_db"] == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=0.05)


def test_the_median_covers_each_horizon_with_the_clips_that_reach_it(tmp_path):
    long = horizon_curves({"a": 0.5 * _sine(2 * RATE)}, _sine(RATE), _sine(RATE), RATE)
    short = horizon_curves({"a": 0.9 * _sine(2 * RATE)}, _sine(RATE), _sine(RATE // 10), RATE)
    median = horizon_median([long, short, long])
    assert median["horizons_s"] == long["horizons_s"]
    n_short = len(short["horizons_s"])
    assert median["clips_per_horizon"] == [3] * n_short + [2] * (len(long["horizons_s"]) - n_short)
    np.testing.assert_allclose(
        median["snr_db"]["a"], 20 * np.log10(2), rtol=1e-9
    )  # 2 of 3, or 2 of 2
    # level relative to each clip's reference (the history's end, level 1/sqrt 2): -6 dB
    np.testing.assert_allclose(median["level_db"]["a"], 20 * np.log10(0.5), atol=0.05)
    save_horizon_png(tmp_path / "h.png", median, "median")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
