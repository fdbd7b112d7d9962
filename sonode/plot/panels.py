"""One-panel pictures: waveform zooms, spectrograms, training and running-SNR curves, and the
figure plumbing they share (see `sonode.plot.figures`, which composes them and re-exports them).

Every ``plot_*`` function draws on a given matplotlib ``Axes`` or, when given a path ending in
``.png``, on a new figure that it writes there, atomically, at :data:`DPI` dots per inch.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sonode.dsp.metrics import POWER_FLOOR, as_signal, check_sample_rate
from sonode.dsp.spectra import lsd_n_fft, power_spectrogram
from sonode.io.fileutil import atomic_write, sonode_marker

DPI = 100
TRUTH_LABEL = "truth"
_TRUTH_COLOR = "black"
# Tableau colours, skipping grey so it never looks like the truth line.
_CANDIDATE_COLORS = (
    "tab:orange",
    "tab:blue",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)

Target = Axes | str | os.PathLike


def png_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path; ValueError unless it ends in .png."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValueError(f"figure path must end in .png, got {str(out)!r}")
    return out


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure of that size in inches at DPI, on the Agg canvas, with constrained layout."""
    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    """Write ``figure`` as a PNG atomically, marked as sonode's."""
    with atomic_write(path) as tmp:
        # The Software text marks the PNG as sonode's, so a later run may replace it (fileutil).
        figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": sonode_marker()})


@contextlib.contextmanager
def _axes_for(target: Target, size_in: tuple[float, float]) -> Iterator[Axes]:
    """Yield ``target`` if it is an Axes; else a new figure's Axes, saved to ``target`` on success."""
    if isinstance(target, Axes):
        yield target
        return
    path = png_path(target)
    figure = new_figure(*size_in)
    yield figure.add_subplot()
    save_figure(figure, path)


def _colors(labels: Sequence[str]) -> dict[str, str]:
    """Stable colours: the truth is black, the others cycle through the candidate palette."""
    others = [label for label in labels if label != TRUTH_LABEL]
    colors = {
        label: _CANDIDATE_COLORS[i % len(_CANDIDATE_COLORS)] for i, label in enumerate(others)
    }
    colors[TRUTH_LABEL] = _TRUTH_COLOR
    return colors


def _outside_legend(ax: Axes, *args) -> None:
    """Legend to the right of the axes, so that it never hides the curves."""
    ax.legend(
        *args, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small"
    )


def check_signals(signals: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """label -> float64 (n_samples,) array; ValueError for an empty mapping or a bad signal."""
    if not isinstance(signals, Mapping) or len(signals) == 0:
        raise ValueError("signals must be a non-empty dict of label -> (n_samples,) array")
    return {str(label): as_signal(x, f"signal {label!r}") for label, x in signals.items()}


def plot_waveform_overlay(
    target: Target,
    signals: Mapping[str, np.ndarray],
    sample_rate: float,
    center_s: float,
    window_s: float = 0.02,
    marker_s: float | None = None,
    marker_label: str = "extrapolation start",
    title: str | None = None,
) -> Axes | None:
    """Overlay waveforms in a short window, e.g. 20 ms around a chosen time.

    Args:
        target: an Axes to draw on, or a ``.png`` path to write a new 8 × 3 inch figure to.
        signals: label -> shape (n_samples,), all starting at time 0 (lengths may differ). The
            label ``"truth"`` is a wide pale black band under the others (thin, distinct colours).
        sample_rate: Hz, shared by all signals.
        center_s: centre of the window, seconds from the first sample.
        window_s: window length in seconds.
        marker_s: if given, a dashed vertical line at this time (seconds), e.g. where the
            extrapolation starts.
        marker_label: legend text of that line.
        title: axes title (default: the window, in seconds).

    Returns:
        The Axes drawn on when ``target`` is an Axes, else None.

    Raises:
        ValueError: empty/invalid signals, bad rate, or a window outside every signal.
    """
    series = check_signals(signals)
    rate = check_sample_rate(sample_rate)
    if not (math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive duration in seconds, got {window_s!r}")
    start_s, stop_s = center_s - window_s / 2, center_s + window_s / 2
    longest_s = max(x.size for x in series.values()) / rate
    if not (math.isfinite(center_s) and stop_s > 0 and start_s < longest_s):
        raise ValueError(
            f"window {start_s:.4f}..{stop_s:.4f} s is outside the signals (0..{longest_s:.4f} s); "
            "pick center_s inside the clip"
        )
    colors = _colors(list(series))
    with _axes_for(target, (8.0, 3.0)) as ax:
        for label, x in series.items():
            first = max(0, math.floor(start_s * rate))
            last = min(x.size, math.ceil(stop_s * rate) + 1)
            if first >= last:
                continue
            truth = label == TRUTH_LABEL
            ax.plot(
                np.arange(first, last) / rate * 1e3,
                x[first:last],
                color=colors[label],
                # The truth is a wide pale band under thin candidates: where they agree the band
                # still shows around them, where they differ both are visible.
                linewidth=3.5 if truth else 1.1,
                alpha=0.35 if truth else 0.95,
                label=label,
                zorder=1 if truth else 2,
            )
        if marker_s is not None:
            ax.axvline(
                marker_s * 1e3, color="grey", linestyle="--", linewidth=1.2, label=marker_label
            )
        ax.set_xlim(start_s * 1e3, stop_s * 1e3)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("amplitude")
        ax.set_title(title if title is not None else f"waveform, {start_s:.3f}–{stop_s:.3f} s")
        ax.grid(alpha=0.3)
        _outside_legend(ax)
        return ax if isinstance(target, Axes) else None


def plot_spectrograms(
    target: Sequence[Axes] | str | os.PathLike,
    signals: Mapping[str, np.ndarray],
    sample_rate: float,
    *,
    log_freq: bool = False,
    dynamic_range_db: float = 80.0,
    n_fft: int | None = None,
    freq_marker_hz: float | None = None,
    min_freq_hz: float | None = None,
) -> None:
    """Spectrograms side by side on one colour scale (power in dB, top = loudest bin of any panel).

    Power spectrograms as in :func:`sonode.dsp.metrics.power_spectrogram` (Hann window, hop n_fft/4),
    shown from the overall maximum down to ``dynamic_range_db`` below it, so panels compare.

    Args:
        target: one Axes per signal (a shared colour bar is added to their figure), or a ``.png``
            path to write a new figure (4 × 3.2 inches per panel) to.
        signals: label -> shape (n_samples,), each at least ``n_fft`` samples.
        sample_rate: Hz, shared by all signals.
        log_freq: logarithmic frequency axis (from the first non-zero bin).
        dynamic_range_db: colour range below the maximum, dB.
        n_fft: frame length in samples (default: the LSD's, 42.7 ms).
        freq_marker_hz: if given, a dashed horizontal line at this frequency (e.g. the Nyquist
            frequency of an upsampler's input).
        min_freq_hz: if given, only the bins from this frequency up are shown, and the colour
            scale's top is the loudest bin of that band.

    Raises:
        ValueError: bad signals or rate, a signal shorter than one frame, or a wrong number of Axes.
    """
    series = check_signals(signals)
    rate = check_sample_rate(sample_rate)
    if not dynamic_range_db > 0:
        raise ValueError(f"dynamic_range_db must be > 0, got {dynamic_range_db!r}")
    frame = lsd_n_fft(rate) if n_fft is None else n_fft
    spectra = {}
    for label, x in series.items():
        freqs_hz, times_s, power = power_spectrogram(x, rate, frame, max(1, frame // 4))
        if min_freq_hz is not None:
            keep = freqs_hz >= min_freq_hz
            freqs_hz, power = freqs_hz[keep], power[keep]
        spectra[label] = (freqs_hz, times_s, 10 * np.log10(np.maximum(power, POWER_FLOOR)))
    top_db = max(float(np.max(db)) for _, _, db in spectra.values())

    if isinstance(target, (str, os.PathLike)):
        path = png_path(target)
        figure = new_figure(4.0 * len(series), 3.2)
        axes = list(figure.subplots(1, len(series), squeeze=False)[0])
    else:
        path, axes = None, list(target)
        if len(axes) != len(series):
            raise ValueError(
                f"got {len(axes)} Axes for {len(series)} signals; pass one Axes per signal"
            )
        figure = axes[0].figure
    image = None
    for ax, (label, (freqs_hz, times_s, db)) in zip(axes, spectra.items(), strict=False):
        image = ax.pcolormesh(
            times_s,
            freqs_hz,
            db,
            shading="nearest",
            cmap="magma",
            vmin=top_db - dynamic_range_db,
            vmax=top_db,
            rasterized=True,
        )
        if log_freq:
            ax.set_yscale("log")
            ax.set_ylim(freqs_hz[1], freqs_hz[-1])
        if freq_marker_hz is not None:
            ax.axhline(freq_marker_hz, color="white", linestyle="--", linewidth=0.8)
        ax.set_title(label)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (Hz)")
    figure.colorbar(image, ax=axes, label="power (dB)")
    if path is not None:
        save_figure(figure, path)


def _check_history(history: Sequence[Mapping[str, float]]) -> None:
    if len(history) == 0:
        raise ValueError("history is empty; pass one dict per epoch with 'epoch', 'loss', 'snr_db'")
    for i, entry in enumerate(history):
        missing = [key for key in ("epoch", "loss", "snr_db") if key not in entry]
        if missing:
            raise ValueError(
                f"history[{i}] lacks {missing}; every entry needs 'epoch', 'loss', 'snr_db'"
            )


def plot_training_curve(
    target: Target, history: Sequence[Mapping[str, float]], title: str | None = None
) -> Axes | None:
    """Training loss (left axis, log scale when all positive) and fit SNR in dB (right axis).

    Args:
        target: an Axes, or a ``.png`` path for a new 8 × 4 inch figure.
        history: one dict per recorded epoch with keys ``"epoch"``, ``"loss"``, ``"snr_db"`` and
            optionally ``"elapsed_s"`` (wall time in seconds; the last one is shown in the title) and
            ``"kept_snr_db"`` (the kept model's SNR, drawn as a step line).
        title: axes title prefix (default "training").

    Returns:
        The (left) Axes drawn on when ``target`` is an Axes, else None.

    Raises:
        ValueError: empty history or an entry missing a key.
    """
    _check_history(history)
    epochs = np.array([float(entry["epoch"]) for entry in history])
    loss = np.array([float(entry["loss"]) for entry in history])
    snr = np.array([float(entry["snr_db"]) for entry in history])
    with _axes_for(target, (8.0, 4.0)) as ax:
        marker = "." if len(history) < 50 else None  # dots only while they stay distinguishable
        loss_line = ax.plot(epochs, loss, color="tab:blue", marker=marker, label="loss")
        if np.all(loss[np.isfinite(loss)] > 0):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss", color="tab:blue")
        ax.grid(alpha=0.3)
        snr_ax = ax.twinx()
        snr_line = snr_ax.plot(epochs, snr, color="tab:red", marker=marker, label="step SNR")
        snr_ax.set_ylabel("fit SNR (dB)", color="tab:red")
        lines = loss_line + snr_line
        kept = np.array([float(entry.get("kept_snr_db", np.nan)) for entry in history])
        if np.any(np.isfinite(kept)):
            # what the fit returns: the best checked model, which a worse step never replaces
            lines += snr_ax.plot(
                epochs,
                kept,
                color="tab:green",
                drawstyle="steps-post",
                linewidth=2.0,
                label="kept model SNR",
            )
        # Inside the axes: the twin y-axis labels take the right margin.
        ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize="small")
        heading = title if title is not None else "training"
        details = f"final SNR {snr[-1]:.1f} dB"
        if np.isfinite(kept[-1]):
            details = f"kept model SNR {kept[-1]:.1f} dB (last step {snr[-1]:.1f} dB)"
        last = history[-1]
        if "elapsed_s" in last:
            details = f"{float(last['elapsed_s']):.1f} s elapsed, " + details
        # Two lines: a long clip name plus the figures overran the 8-inch figure's right edge.
        ax.set_title(f"{heading}\n{details}", wrap=True)
        return ax if isinstance(target, Axes) else None


def plot_running_snr(
    target: Target,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str | None = None,
    xlabel: str = "time since continuation start (s)",
) -> Axes | None:
    """Running SNR curves (as from :func:`sonode.dsp.metrics.running_snr_db`), one line per label.

    Non-finite points (``+inf`` for an exact window, ``nan`` for a silent one) are left out.

    Args:
        target: an Axes, or a ``.png`` path for a new 8 × 3.5 inch figure.
        curves: label -> ``(times_s, snr_db)``, two arrays of the same shape (n_windows,).
        title: axes title (default "running SNR").
        xlabel: label of the time axis (the times are plotted as given, in seconds).

    Returns:
        The Axes drawn on when ``target`` is an Axes, else None.

    Raises:
        ValueError: no curves, or a curve whose arrays differ in shape.
    """
    if not isinstance(curves, Mapping) or len(curves) == 0:
        raise ValueError("curves must be a non-empty dict of label -> (times_s, snr_db)")
    checked = {}
    for label, curve in curves.items():
        times_s, snr = (np.asarray(values, dtype=np.float64) for values in curve)
        if times_s.ndim != 1 or times_s.shape != snr.shape:
            raise ValueError(
                f"curve {label!r}: times_s {times_s.shape} and snr_db {snr.shape} "
                "must be 1-D and equal in shape"
            )
        checked[str(label)] = (times_s, np.where(np.isfinite(snr), snr, np.nan))
    colors = _colors(list(checked))
    with _axes_for(target, (8.0, 3.5)) as ax:
        for label, (times_s, snr) in checked.items():
            ax.plot(times_s, snr, color=colors[label], label=label)
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("SNR (dB)")
        ax.set_title(title if title is not None else "running SNR")
        ax.grid(alpha=0.3)
        _outside_legend(ax)
        return ax if isinstance(target, Axes) else None
