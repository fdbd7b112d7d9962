"""Issue #21: the further candidates of `sonode fill` (sonode.dsp.gap_candidates), their weighing
against the ODE orders on pseudo-gaps, --dry-run's reasons and per-channel fills, and the batched
predictor of --detect."""

import json

import numpy as np
import pytest
import scipy.linalg
import soundfile as sf
from click.testing import CliRunner

from sonode.cli import main
from sonode.dsp.ar_fill import janssen_fill
from sonode.dsp.gap_candidates import (
    DEFAULT_GAP_CANDIDATES,
    GAP_CANDIDATES,
    bound_candidates,
    janssen_candidate,
    reestimated_fill,
    register_gap_candidate,
)
from sonode.dsp.interpolation import fill_with_order, interpolate_gap
from sonode.dsp.metrics import snr_db
from sonode.tasks.detect import batched_levinson, detect_defects, prediction_residual
from sonode.tasks.fill import FillSettings, fill_one

RATE = 16000


def damped_tones(n, rate=RATE, partials=((440.0, -3.0, 1.0, 0.3), (1234.5, -8.0, 0.5, 1.1))):
    t = np.arange(n) / rate
    return sum(a * np.exp(d * t) * np.cos(2 * np.pi * f * t + ph) for f, d, a, ph in partials)


def test_reestimation_restores_noise_free_damped_tones():
    # Janssen's iteration on the ODE's predictor: re-identified on the segment with the gap filled,
    # an exact model stays exact (≥ 60 dB over a 40 ms gap).
    x = damped_tones(6000)
    start, n_gap = 3000, 640
    fill = reestimated_fill(x[:start], x[start + n_gap :], n_gap, RATE, orders=(16, 32))
    assert snr_db(x[start : start + n_gap], fill) >= 60.0


def test_reestimation_iterates_from_the_largest_orders_fill():
    # iterations=0 is the fill it starts from (the largest supported order); each iteration
    # re-identifies on the segment with the previous fill, so two differ from one on a noisy sound.
    x = damped_tones(6000) + 0.05 * np.random.default_rng(1).standard_normal(6000)
    left, right, n_gap = x[:3000], x[3640:], 640
    start = reestimated_fill(left, right, n_gap, RATE, orders=(16, 32), iterations=0)
    np.testing.assert_array_equal(start, fill_with_order(left, right, n_gap, 32, 128))
    once = reestimated_fill(left, right, n_gap, RATE, orders=(16, 32))
    twice = reestimated_fill(left, right, n_gap, RATE, orders=(16, 32), iterations=2)
    assert not np.allclose(once, start) and not np.allclose(twice, once)


def test_the_janssen_candidate_is_classical_gap_wise_janssen_at_every_rate():
    x = damped_tones(30000, rate=48000) + 1e-3 * np.random.default_rng(0).standard_normal(30000)
    left, right = x[:14000], x[14480:]
    expected = janssen_fill(left, right, 480, max_order=1024, context_samples=4096, iterations=3)
    np.testing.assert_array_equal(janssen_candidate(left, right, 480, 48000), expected)


def test_validation_gives_a_useless_candidate_no_weight_and_a_better_one_all_of_it():
    partials = tuple((110.0 * k, -1.0, 1.0 / k, 0.7 * k) for k in range(1, 41))
    x = damped_tones(16000, partials=partials)
    x = x + 1e-4 * np.random.default_rng(0).standard_normal(x.size)
    left, right, truth = x[:8000], x[8320:], x[8000:8320]
    extra = {
        "silence": lambda lt, rt, n: np.zeros(n),
        "order256": lambda lt, rt, n: fill_with_order(lt, rt, n, 256, 1024),
    }
    # order 16 cannot carry 40 partials; the order-256 candidate can, silence cannot
    result = interpolate_gap(left, right, 320, orders=(16,), extra=extra, residual="none")
    assert result.names == ("order 16", "silence", "order256")
    assert result.weights[2] > 0.99 and result.weights[1] < 1e-6
    assert snr_db(truth, result.fill) > 40.0
    assert result.candidate_fills.shape == (3, 320)


def test_the_registry_names_the_default_candidates_and_refuses_bad_names():
    assert set(DEFAULT_GAP_CANDIDATES) <= set(GAP_CANDIDATES)
    with pytest.raises(ValueError, match="already exists"):
        register_gap_candidate("janssen", janssen_candidate)
    with pytest.raises(ValueError, match="identifier"):
        register_gap_candidate("two words", janssen_candidate)
    with pytest.raises(ValueError, match="unknown gap candidate 'nope'; valid: reestimate"):
        bound_candidates(("nope",), RATE)


def test_a_registered_candidate_reaches_fill_one(monkeypatch):
    # The hook for a trained model filling from both sides: registered, named in the settings,
    # called on the pseudo-gaps and the real gap with the rate bound.
    calls = []

    def oracle(left, right, n_gap, rate):
        calls.append(rate)
        return np.zeros(n_gap)

    monkeypatch.setitem(GAP_CANDIDATES, "learned", oracle)
    x = damped_tones(6000)
    fill_one(x[:3000], x[3160:], 160, RATE, FillSettings(candidates=("learned",), orders=(16,)))
    assert len(calls) == 5 and set(calls) == {RATE}  # 4 pseudo-gaps + the gap


def test_batched_levinson_equals_a_toeplitz_solve_per_row():
    rng = np.random.default_rng(2)
    blocks = rng.standard_normal((5, 400)).cumsum(axis=1)
    r = np.array([np.correlate(b, b, "full")[399 : 399 + 9] for b in blocks])
    a = batched_levinson(r)
    for row, coef in zip(r, a, strict=True):
        expected = scipy.linalg.solve_toeplitz(row[:8], -row[1:9])
        np.testing.assert_allclose(coef[1:], expected, rtol=1e-8, atol=1e-10)
    assert np.all(a[:, 0] == 1.0)
    np.testing.assert_array_equal(batched_levinson(np.zeros((2, 5))), np.eye(1, 5).repeat(2, 0))


def test_the_detection_residual_is_each_block_filtered_by_its_own_predictor():
    x = np.random.default_rng(0).standard_normal(5000).cumsum() * 1e-2
    e = prediction_residual(x, RATE)
    block, p = 800, 32  # BLOCK_S · 16 kHz, LP_ORDER
    start = 2400
    segment = x[start - p : start + block]
    n_fft = 4096
    r = np.fft.irfft(np.abs(np.fft.rfft(segment, n_fft)) ** 2, n_fft)[: p + 1]
    a = np.concatenate([[1.0], scipy.linalg.solve_toeplitz(r[:p], -r[1 : p + 1])])
    direct = np.convolve(segment, a)[p : p + block]
    np.testing.assert_allclose(e[start : start + block], direct, rtol=1e-6, atol=1e-9)


def _stereo(tmp_path):
    t = np.arange(int(0.8 * RATE)) / RATE
    left = 0.4 * np.sin(2 * np.pi * 331.3 * t) + 0.2 * np.sin(2 * np.pi * 997.1 * t + 1)
    right = 0.3 * np.sin(2 * np.pi * 211.7 * t + 0.5) + 0.2 * np.sin(2 * np.pi * 1401.9 * t)
    x = np.stack([left, right], axis=1)
    x += 1e-3 * np.random.default_rng(0).standard_normal(x.shape)
    x[6000:6160] = 0.0  # a 10 ms dropout in both channels
    x[9000:9004, 1] += 0.5  # a click in the right channel only
    clip = tmp_path / "in.wav"
    sf.write(clip, x, RATE, subtype="PCM_16")
    return clip


def test_dry_run_lists_every_gap_with_its_reason_and_channels(tmp_path):
    clip = _stereo(tmp_path)
    result = CliRunner().invoke(
        main, ["fill", str(clip), "--detect", "--dry-run", "--gap", "0.1", "0.11"]
    )
    assert result.exit_code == 0, result.output
    gaps = json.loads(result.stdout)["gaps"]
    assert [g["kind"] for g in gaps] == ["given", "zeros", "click"]
    assert gaps[0]["reason"] == "given with --gap" and gaps[0]["channels"] == [0, 1]
    assert gaps[1]["reason"].startswith("160 identical samples (10.0 ms)")
    assert gaps[1]["channels"] == [0, 1] and gaps[2]["channels"] == [1]
    assert "isolated burst" in gaps[2]["reason"]
    assert "gap 3: 0.56" in result.stderr and "isolated burst" in result.stderr
    assert list(tmp_path.iterdir()) == [clip]


def test_a_click_in_one_channel_changes_only_that_channel(tmp_path):
    clip = _stereo(tmp_path)
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(
        main, ["fill", str(clip), "-o", str(out), "--detect", "--method", "janssen", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    before = sf.read(clip, dtype="int16")[0]
    after = sf.read(out, dtype="int16")[0]
    changed = np.any(before != after, axis=1)
    left_changed = np.flatnonzero(before[:, 0] != after[:, 0])
    assert left_changed.min() >= 6000 and left_changed.max() < 6160  # the dropout only
    right_changed = np.flatnonzero(before[:, 1] != after[:, 1])
    assert right_changed.max() > 9000  # the click was repaired there
    assert not changed[:5990].any() and not changed[9100:].any()
    assert detect_defects(sf.read(out)[0], RATE) == []


def test_the_residual_gain_scales_only_what_is_added_to_the_mean():
    x = damped_tones(8000) + 1e-2 * np.random.default_rng(0).standard_normal(8000)
    left, right = x[:4000], x[4640:]
    full = interpolate_gap(left, right, 640, orders=(32, 64))
    half = interpolate_gap(left, right, 640, orders=(32, 64), residual_gain=0.5)
    none = interpolate_gap(left, right, 640, orders=(32, 64), residual_gain=0.0)
    np.testing.assert_array_equal(half.mean, full.mean)
    np.testing.assert_allclose(half.residual, 0.5 * full.residual, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(none.fill, full.mean)
    assert np.sum(full.residual**2) > 0


def test_the_cli_passes_the_residual_gain_and_refuses_one_out_of_range(tmp_path, monkeypatch):
    import sonode.tasks.fill_file as fill_file

    seen = []

    def fake_fill_file(clip, out, gaps, settings, **kwargs):
        seen.append(settings.residual_gain)
        return {"gaps": []}

    monkeypatch.setattr(fill_file, "fill_file", fake_fill_file)
    clip = _stereo(tmp_path)
    args = ["fill", str(clip), "--gap", "0.1", "0.11", "--dry-run", "--quiet"]
    assert CliRunner().invoke(main, args + ["--residual-gain", "0.25"]).exit_code == 0
    assert CliRunner().invoke(main, args).exit_code == 0
    assert seen == [0.25, FillSettings().residual_gain]
    result = CliRunner().invoke(main, args + ["--residual-gain", "1.5"])
    assert result.exit_code == 2 and "--residual-gain" in result.output
