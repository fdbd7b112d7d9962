"""Pictures for evaluation reports: waveform zooms, spectrograms, training and running-SNR curves.

Built on matplotlib's object API with the Agg canvas (no pyplot, no global state, no display
needed). Every ``plot_*`` function draws on a given matplotlib ``Axes`` or, when given a path
ending in ``.png``, on a new figure that it writes there; ``save_*`` functions compose multi-panel
figures. Files are written atomically (:func:`sonode.io.fileutil.atomic_write`) at :data:`DPI` dots
per inch, so a figure of W × H inches is exactly ``round(W·DPI) × round(H·DPI)`` pixels.

Signals are numpy arrays of shape (n_samples,) starting at time 0; times in the pictures are in
seconds or milliseconds as the axis labels say. The one-panel ``plot_*`` functions live in
`sonode.plot.panels` and are imported from here; this module composes them into report figures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from sonode.dsp.metrics import as_signal, check_sample_rate, running_snr_db
from sonode.plot.panels import (
    DPI,
    TRUTH_LABEL,
    Target,
    check_signals,
    new_figure,
    plot_running_snr,
    plot_spectrograms,
    plot_training_curve,
    plot_waveform_overlay,
    png_path,
    save_figure,
)

__all__ = [
    "DPI",
    "TRUTH_LABEL",
    "Target",
    "plot_running_snr",
    "plot_spectrograms",
    "plot_training_curve",
    "plot_waveform_overlay",
    "save_band_png",
    "save_comparison_png",
    "save_fit_report_png",
]

_SPECTROGRAMS_PER_ROW = 4  # beyond this, comparison figures wrap spectrograms onto more rows


def save_fit_report_png(
    path: str | os.PathLike, history: Sequence[Mapping[str, float]], title: str | None = None
) -> None:
    """Write the training curve of a fit (see :func:`plot_training_curve`) as an 8 × 4 inch PNG."""
    plot_training_curve(png_path(path), history, title=title)


def save_comparison_png(
    path: str | os.PathLike,
    truth: np.ndarray,
    candidates: Mapping[str, np.ndarray],
    sample_rate: float,
    zoom_centers_s: Sequence[float],
    marker_s: float | None = None,
    title: str | None = None,
    *,
    window_s: float = 0.02,
    running_snr_window_s: float | None = None,
    log_freq: bool = False,
    dynamic_range_db: float = 80.0,
    freq_marker_hz: float | None = None,
) -> None:
    """Multi-panel comparison of candidates with the truth, written as one PNG.

    Rows: one waveform overlay per zoom centre (``window_s`` wide, full width); then, when
    ``running_snr_window_s`` and ``marker_s`` are given, the running SNR of every candidate from
    ``marker_s`` to the end (for continuations); last, the spectrograms of the truth and of every
    candidate side by side on one colour scale, at most 4 per row. The figure is 10 inches (or
    4 per spectrogram column, if wider) by 2.6 inches per waveform row + 2.8 for the running SNR
    + 3.2 per spectrogram row (+ 0.4 for a title).

    Args:
        path: ``.png`` destination.
        truth: shape (n_samples,).
        candidates: label -> shape (n_samples,), the same length as ``truth`` (for a
            continuation, concatenate the history and the prediction so times line up).
        sample_rate: Hz.
        zoom_centers_s: centres of the waveform zooms in seconds (at least one).
        marker_s: time in seconds of a dashed marker line (e.g. the extrapolation start).
        title: figure title.
        window_s: width of each zoom in seconds.
        running_snr_window_s: window of the running SNR in seconds (needs ``marker_s``).
        log_freq, dynamic_range_db, freq_marker_hz: spectrogram options, see
            :func:`plot_spectrograms` (e.g. 120 dB and the input Nyquist to judge an upsampler).

    Raises:
        ValueError: bad inputs (lengths differ, no zoom, a label "truth" among candidates, ...).
    """
    out = png_path(path)
    reference = as_signal(truth, "truth")
    series = {TRUTH_LABEL: reference}
    if TRUTH_LABEL in candidates:
        raise ValueError(f"{TRUTH_LABEL!r} is reserved for the truth; rename that candidate")
    for label, x in check_signals(candidates).items():
        if x.size != reference.size:
            raise ValueError(
                f"candidate {label!r} has {x.size} samples but truth has {reference.size}; "
                "give every candidate the truth's time axis"
            )
        series[label] = x
    rate = check_sample_rate(sample_rate)
    if len(zoom_centers_s) == 0:
        raise ValueError("zoom_centers_s is empty; give at least one time in seconds to zoom on")
    if running_snr_window_s is not None and marker_s is None:
        raise ValueError("running_snr_window_s needs marker_s (where the continuation starts)")

    n_zoom = len(zoom_centers_s)
    with_snr = running_snr_window_s is not None
    n_columns = min(len(series), _SPECTROGRAMS_PER_ROW)
    n_spectrogram_rows = math.ceil(len(series) / n_columns)
    heights = [2.6] * n_zoom + ([2.8] if with_snr else []) + [3.2 * n_spectrogram_rows]
    figure = new_figure(max(10.0, 4.0 * n_columns), sum(heights) + (0.4 if title else 0.0))
    rows = figure.subfigures(len(heights), 1, height_ratios=heights)
    for row, center_s in zip(rows[:n_zoom], zoom_centers_s, strict=False):
        plot_waveform_overlay(row.add_subplot(), series, rate, center_s, window_s, marker_s)
    if with_snr:
        first = int(round(marker_s * rate))
        curves = {
            label: running_snr_db(reference[first:], x[first:], rate, running_snr_window_s)
            for label, x in series.items()
            if label != TRUTH_LABEL
        }
        snr_title = f"running SNR ({running_snr_window_s * 1e3:g} ms windows)"
        plot_running_snr(rows[n_zoom].add_subplot(), curves, title=snr_title)
    grid = rows[-1].subplots(n_spectrogram_rows, n_columns, squeeze=False).ravel()
    for unused in grid[len(series) :]:
        unused.remove()
    plot_spectrograms(
        list(grid[: len(series)]),
        series,
        rate,
        log_freq=log_freq,
        dynamic_range_db=dynamic_range_db,
        freq_marker_hz=freq_marker_hz,
    )
    if title:
        figure.suptitle(title)
    save_figure(figure, out)


def save_band_png(
    path: str | os.PathLike,
    truth: np.ndarray,
    candidates: Mapping[str, np.ndarray],
    sample_rate: float,
    low_hz: float,
    title: str | None = None,
    dynamic_range_db: float = 100.0,
) -> None:
    """Spectrograms of the truth and the candidates from ``low_hz`` up (e.g. an upsampler's input
    Nyquist frequency, marked dashed) to sample_rate/2, on one colour scale whose top is the
    loudest bin of that band in any panel, 4 × 3.2 inches per panel.

    Args:
        path: ``.png`` destination.
        truth, candidates: shape (n_samples,) each, at ``sample_rate`` Hz, at least 42.7 ms long.
        low_hz: lowest frequency shown (the view starts 5 % below it), Hz.
        title: figure title.
        dynamic_range_db: colour range below the band's maximum, dB.
    """
    out = png_path(path)
    series = check_signals({TRUTH_LABEL: truth, **candidates})
    figure = new_figure(4.0 * len(series), 3.2 + (0.4 if title else 0.0))
    plot_spectrograms(
        list(figure.subplots(1, len(series), squeeze=False)[0]),
        series,
        check_sample_rate(sample_rate),
        dynamic_range_db=dynamic_range_db,
        freq_marker_hz=low_hz,
        min_freq_hz=0.95 * low_hz,
    )
    if title:
        figure.suptitle(title)
    save_figure(figure, out)
