"""sonode.plot.figures: valid PNGs of the promised pixel size, written atomically; bad inputs refused."""

import math

import matplotlib.image
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sonode.plot import figures as plotting, panels

SAMPLE_RATE = 8000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tone(n_samples: int, frequency_hz: float = 440.0) -> np.ndarray:
    return np.sin(2 * np.pi * frequency_hz * np.arange(n_samples) / SAMPLE_RATE)


def _history(n_epochs: int = 5) -> list[dict]:
    return [
        {"epoch": e, "loss": 0.1 / (e + 1), "snr_db": 3.0 * e, "elapsed_s": 0.5 * e}
        for e in range(n_epochs)
    ]


def _assert_png(path, width_in: float, height_in: float) -> None:
    """A real PNG of exactly the figure size in pixels, alone in its folder (no temp files left)."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (round(height_in * panels.DPI), round(width_in * panels.DPI))
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def _axes() -> object:
    figure = Figure()
    FigureCanvasAgg(figure)
    return figure.add_subplot()


# --- files -------------------------------------------------------------------------------------


def test_single_panel_plots_write_pngs_of_the_documented_size(tmp_path):
    signals = {"truth": _tone(800), "estimate": 0.9 * _tone(800)}
    cases = [
        (
            lambda p: panels.plot_waveform_overlay(
                p, signals, SAMPLE_RATE, center_s=0.05, marker_s=0.05
            ),
            8.0,
            3.0,
        ),
        (lambda p: panels.plot_training_curve(p, _history()), 8.0, 4.0),
        (lambda p: plotting.save_fit_report_png(p, _history(), title="fit"), 8.0, 4.0),
        (
            lambda p: panels.plot_running_snr(
                p, {"lpc": (np.arange(4) * 0.01, np.array([20, 15, np.inf, 5.0]))}
            ),
            8.0,
            3.5,
        ),
        (lambda p: panels.plot_spectrograms(p, signals, SAMPLE_RATE, log_freq=True), 8.0, 3.2),
    ]
    for i, (draw, width_in, height_in) in enumerate(cases):
        folder = tmp_path / str(i)
        draw(folder / "figure.png")
        _assert_png(folder / "figure.png", width_in, height_in)


def test_comparison_png_has_one_row_per_zoom_plus_snr_and_spectrograms(tmp_path):
    truth = _tone(2400) + 0.3 * _tone(2400, 1500.0)
    history = truth[:1600]
    candidates = {
        "sonode": truth + 0.01 * _tone(2400, 3000.0),
        "lpc": np.concatenate([history, 0.8 * truth[1600:]]),
    }
    path = tmp_path / "report" / "comparison.png"
    plotting.save_comparison_png(
        path,
        truth,
        candidates,
        SAMPLE_RATE,
        zoom_centers_s=[0.1, 0.2],
        marker_s=0.2,
        title="comparison",
        running_snr_window_s=0.01,
    )
    # Width max(10, 4 per spectrogram: 3 panels) = 12 in; height 2 × 2.6 + 2.8 + 3.2 + 0.4 title.
    _assert_png(path, 12.0, 2 * 2.6 + 2.8 + 3.2 + 0.4)


def test_comparison_png_wraps_spectrograms_four_per_row(tmp_path):
    truth = _tone(800)
    candidates = {f"c{i}": (1 - 0.1 * i) * truth for i in range(5)}
    path = tmp_path / "comparison.png"
    plotting.save_comparison_png(
        path, truth, candidates, SAMPLE_RATE, zoom_centers_s=[0.05], dynamic_range_db=120
    )
    # 6 spectrograms -> 4 columns (16 in) and 2 rows: 2.6 (zoom) + 2 × 3.2 in.
    _assert_png(path, 16.0, 2.6 + 2 * 3.2)


def test_failed_plot_leaves_the_previous_file_untouched(tmp_path):
    path = tmp_path / "fit.png"
    plotting.save_fit_report_png(path, _history())
    before = path.read_bytes()
    with pytest.raises(ValueError):
        plotting.save_fit_report_png(path, [{"epoch": 0, "loss": 1.0}])
    with pytest.raises(ValueError):
        plotting.save_comparison_png(path, _tone(800), {"x": _tone(700)}, SAMPLE_RATE, [0.05])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.png"]


# --- drawing on given axes ---------------------------------------------------------------------


def test_waveform_overlay_draws_the_window_in_ms_with_a_marker():
    ax = panels.plot_waveform_overlay(
        _axes(),
        {"truth": _tone(800), "short": _tone(300)},
        SAMPLE_RATE,
        center_s=0.05,
        window_s=0.01,
        marker_s=0.05,
    )
    assert ax.get_xlim() == pytest.approx((45.0, 55.0))
    assert ax.get_xlabel() == "time (ms)"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["truth", "extrapolation start"]  # "short" ends before the window: not drawn
    truth_line = ax.get_lines()[0]
    np.testing.assert_allclose(truth_line.get_xdata()[[0, -1]], [45.0, 55.0])
    np.testing.assert_allclose(truth_line.get_ydata(), _tone(800)[360:441])


def test_spectrograms_share_one_colour_scale():
    figure = Figure()
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    loud, quiet = _tone(2000), 0.01 * _tone(2000)
    panels.plot_spectrograms(
        list(axes),
        {"loud": loud, "quiet": quiet},
        SAMPLE_RATE,
        dynamic_range_db=60.0,
        freq_marker_hz=2000.0,
    )
    for ax in axes:
        np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [2000.0, 2000.0])
    limits = [ax.collections[0].get_clim() for ax in axes]
    assert limits[0] == limits[1]
    assert limits[0][1] - limits[0][0] == pytest.approx(60.0)
    # The top of the scale is the loud tone's peak bin; the quiet panel is 40 dB below it.
    loud_peak = float(np.max(axes[0].collections[0].get_array()))
    quiet_peak = float(np.max(axes[1].collections[0].get_array()))
    assert limits[0][1] == pytest.approx(loud_peak)
    assert loud_peak - quiet_peak == pytest.approx(40.0, abs=1e-6)


def test_running_snr_drops_non_finite_points_and_training_curve_uses_log_loss():
    ax = panels.plot_running_snr(
        _axes(), {"a": (np.array([0.0, 0.1, 0.2]), np.array([10.0, np.inf, np.nan]))}
    )
    ydata = ax.get_lines()[0].get_ydata()
    assert ydata[0] == 10.0 and math.isnan(ydata[1]) and math.isnan(ydata[2])
    ax = panels.plot_training_curve(_axes(), _history(4), title="fit")
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "fit\n1.5 s elapsed, final SNR 9.0 dB"


# --- refused inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draw", "message"),
    [
        (
            lambda p: panels.plot_training_curve(p.with_suffix(".jpg"), _history()),
            "must end in .png",
        ),
        (lambda p: panels.plot_waveform_overlay(p, {}, SAMPLE_RATE, 0.1), "non-empty dict"),
        (
            lambda p: panels.plot_waveform_overlay(p, {"a": _tone(800)}, SAMPLE_RATE, 5.0),
            "outside the signals",
        ),
        (
            lambda p: panels.plot_waveform_overlay(p, {"a": np.ones((2, 4))}, SAMPLE_RATE, 0.0),
            "mono signal",
        ),
        (lambda p: panels.plot_waveform_overlay(p, {"a": _tone(800)}, -1, 0.05), "sample_rate"),
        (lambda p: panels.plot_training_curve(p, []), "history is empty"),
        (
            lambda p: panels.plot_training_curve(p, [{"epoch": 1, "loss": 1.0}]),
            r"history\[0\] lacks \['snr_db'\]",
        ),
        (lambda p: panels.plot_running_snr(p, {"a": (np.zeros(3), np.zeros(2))}), "equal in shape"),
        (lambda p: panels.plot_spectrograms(p, {"a": _tone(100)}, SAMPLE_RATE), "shorter than one"),
        (
            lambda p: panels.plot_spectrograms(
                [_axes()], {"a": _tone(800), "b": _tone(800)}, SAMPLE_RATE
            ),
            "2 signals",
        ),
        (
            lambda p: plotting.save_comparison_png(
                p, _tone(800), {"truth": _tone(800)}, SAMPLE_RATE, [0.05]
            ),
            "reserved",
        ),
        (
            lambda p: plotting.save_comparison_png(
                p, _tone(800), {"a": _tone(799)}, SAMPLE_RATE, [0.05]
            ),
            "799 samples",
        ),
        (
            lambda p: plotting.save_comparison_png(
                p, _tone(800), {"a": _tone(800)}, SAMPLE_RATE, []
            ),
            "zoom_centers_s",
        ),
        (
            lambda p: plotting.save_comparison_png(
                p, _tone(800), {"a": _tone(800)}, SAMPLE_RATE, [0.05], running_snr_window_s=0.01
            ),
            "needs marker_s",
        ),
    ],
)
def test_bad_inputs_raise_value_error_and_write_nothing(tmp_path, draw, message):
    with pytest.raises(ValueError, match=message):
        draw(tmp_path / "figure.png")
    assert list(tmp_path.iterdir()) == []
