"""What a listening report shows for one clip: the versions to compare, their pictures and numbers.

Each ``*_group`` function writes one task's media through a `MediaWriter` and returns a plain
dict for the page (`sonode.evaluation.report_page`) and the rows of the clip's numbers table:

- listen: the input, sonode's reconstruction and the untrained start (see `field_zeroed`);
- upsampling: sonode beside sinc and the shaped-noise baseline (and the full-band truth when there
  is one), with spectrograms from the input's Nyquist frequency up;
- continuation: the clip's last ``context_s`` continued by sonode, the best Burg order and the
  untrained start (and the truth in an evaluation, with the SNR against the horizon), in
  `sonode.evaluation.report_continuation`;
- fill: gaps punched into the clip, filled by sonode and gap-wise Janssen, beside the truth.

`sonode.evaluation.report_run` assembles these for `sonode report` and `sonode eval --html`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from sonode.dsp.metrics import snr_db
from sonode.dsp.spectra import log_spectral_distance
from sonode.evaluation.report_continuation import (
    BURG_ORDERS as BURG_ORDERS,  # moved with the continuation group; importable here as before
    BURG_VALIDATION_S as BURG_VALIDATION_S,
    best_burg as best_burg,
    continuation_group as continuation_group,
)
from sonode.evaluation.report_media import (
    GAP_MARGIN_S,
    LINE_COLORS as LINE_COLORS,  # moved to report_media; importable here as before
    LOOP_MARGIN_S,
    MediaWriter,
    Version,
    figure_entry,
    numbers_row,
    saved_figure,
)
from sonode.plot.panels import (
    new_figure,
    plot_spectrograms,
    plot_waveform_overlay,
)


def field_zeroed(model):
    """A copy of ``model`` with its learned field's output layer zeroed: the linear modal ODE alone.

    `sonode.model.field.ModalField` starts with that layer at zero, so a fresh model *is* the
    identified linear system; zeroing it again removes what training added to the dynamics (the
    trained states, frequencies and readout stay). Rebuilding the exact start by re-identifying the
    clip would cost as much as a short fit (14 s measured for 1 s at 16 kHz).
    """
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        # every learned field of the model (its own, and a continuation's where the model has one)
        for module in zeroed.modules():
            if hasattr(module, "is_zero") and isinstance(
                getattr(module, "mlp", None), torch.nn.Sequential
            ):
                for parameter in module.parameters():  # the output layer, and a gain term
                    parameter.zero_()
    return zeroed


def listen_group(
    w: MediaWriter, stem: str, clip: np.ndarray, recon: np.ndarray, zeroed: np.ndarray, rate: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Input, reconstruction and the untrained start's reconstruction, all (n,) at ``rate`` Hz."""
    versions = [
        Version("input", "truth", clip, "what was fitted"),
        Version("sonode", "sonode", recon, "reconstruction (fitted model)"),
        Version("untrained start", "baseline", zeroed, "same model, learned field zeroed"),
    ]
    entries, offset_s = w.versions(f"{stem}.listen", versions, rate)
    rows = [
        numbers_row(
            "reconstruction",
            "SNR dB",
            snr_db(clip, recon),
            "untrained start",
            snr_db(clip, zeroed),
            True,
        )
    ]
    return {
        "id": "listen",
        "title": "Input and reconstruction",
        "versions": entries,
        "offset_s": offset_s,
        "rate": rate,
        "loops": [],
        "figures": [],
    }, rows


def upsampling_group(
    w: MediaWriter,
    stem: str,
    low_rate: int,
    rate: int,
    outputs: Mapping[str, np.ndarray],
    truth: np.ndarray | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """sonode's upsampling beside sinc and sinc + shaped noise (``outputs``: name -> (n,) at ``rate``),
    and the full-band ``truth`` when there is one; spectrograms from the input's Nyquist up."""
    nyquist = low_rate / 2
    labels = {
        "sonode": ("sonode", "sonode", "input band kept, band above synthesised"),
        "sinc": ("sinc", "baseline", "windowed-sinc interpolation: nothing above the input's band"),
        "sinc_noise": (
            "sinc + shaped noise",
            "baseline",
            "noise shaped like the input's top octave",
        ),
    }
    versions = (
        []
        if truth is None
        else [Version("truth (full band)", "truth", truth, f"the clip at {rate} Hz")]
    )
    versions += [
        Version(labels[k][0], labels[k][1], outputs[k], labels[k][2])
        for k in labels
        if k in outputs
    ]
    entries, offset_s = w.versions(f"{stem}.upsampling", versions, rate)
    start = int(round(offset_s * rate))
    n = int(round(entries[0]["duration_s"] * rate))
    shown = {v.label: v.samples[start : start + n] for v in versions}
    picture = w.picture(f"{stem}.upsampling.spectrograms")
    plot_spectrograms(
        picture, shown, rate, min_freq_hz=nyquist, freq_marker_hz=nyquist, dynamic_range_db=100.0
    )
    figures = [
        figure_entry(
            w,
            picture,
            f"Spectrograms above {nyquist / 1000:g} kHz of " + ", ".join(shown),
            f"Above the input's Nyquist frequency ({nyquist / 1000:g} kHz); "
            "sinc has nothing there by construction.",
        )
    ]
    rows = []
    if truth is not None:
        # sonode's LSD (numpy, 1e-10 power floor; "lsd5" in `sonode eval`'s results), not ssr_eval's, whose
        # librosa import alone costs ~1 s of CPU, a tenth of this whole page
        scores = {
            k: log_spectral_distance(truth, outputs[k], rate, split_hz=nyquist)
            for k in ("sonode", "sinc", "sinc_noise")
        }
        snrs = {k: snr_db(truth, outputs[k]) for k in scores}
        for base in ("sinc", "sinc_noise"):
            rows.append(numbers_row("upsampling", "SNR dB", snrs["sonode"], base, snrs[base], True))
            rows.append(
                numbers_row(
                    "upsampling", "LSD", scores["sonode"]["lsd"], base, scores[base]["lsd"], False
                )
            )
            rows.append(
                numbers_row(
                    "upsampling",
                    "LSD above Nyquist",
                    scores["sonode"]["lsd_above"],
                    base,
                    scores[base]["lsd_above"],
                    False,
                )
            )
    title = f"Upsampling {low_rate / 1000:g} kHz → {rate / 1000:g} kHz"
    return {
        "id": "upsampling",
        "title": title,
        "versions": entries,
        "offset_s": offset_s,
        "rate": rate,
        "loops": [],
        "figures": figures,
    }, rows


def fill_group(
    w: MediaWriter, stem: str, x: np.ndarray, rate: int, gaps_ms: tuple[int, ...]
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Gaps of ``gaps_ms`` punched into the sounding part of ``x`` (n,) and filled by sonode
    (`sonode.fill`) and gap-wise Janssen; None when the clip has no room for them."""
    from sonode.dsp.ar_fill import JANSSEN_CONTEXT_SAMPLES
    from sonode.evaluation.evaluate_fill import gap_lsd, gap_positions
    from sonode.tasks.fill import DEFAULT_CONTEXT_S, FillSettings, fill_one

    context = int(round(DEFAULT_CONTEXT_S * rate))
    sonode_fill, janssen_fill, gaps = x.copy(), x.copy(), []
    margin = int(0.1 * rate)  # Janssen takes up to its 4096 samples per side from what there is
    for i, ms in enumerate(sorted(gaps_ms)):
        n_gap = int(round(ms * rate / 1000))
        # spread: the i-th gap at the i-th of len(gaps_ms) evenly spaced sounding positions
        starts = [
            s
            for s in gap_positions(x, rate, n_gap, len(gaps_ms), margin)
            if all(s + n_gap + margin <= a or s >= b + margin for a, b in gaps)
        ]
        if not starts:
            continue
        start = starts[min(i, len(starts) - 1)]
        gaps.append((start, start + n_gap))
        left, right = x[max(0, start - context) : start], x[start + n_gap : start + n_gap + context]
        sonode_fill[start : start + n_gap] = fill_one(left, right, n_gap, rate, FillSettings())
        wide_l = x[max(0, start - JANSSEN_CONTEXT_SAMPLES) : start]
        wide_r = x[start + n_gap : start + n_gap + JANSSEN_CONTEXT_SAMPLES]
        janssen_fill[start : start + n_gap] = fill_one(
            wide_l, wide_r, n_gap, rate, FillSettings(method="janssen")
        )
    if not gaps:
        return None
    gaps.sort()
    versions = [
        Version("truth", "truth", x, "the clip before the gaps were made"),
        Version("sonode", "sonode", sonode_fill, "sonode fill (two-sided trajectory)"),
        Version("Janssen", "baseline", janssen_fill, "gap-wise Janssen (AR interpolation)"),
    ]
    entries, offset_s = w.versions(f"{stem}.fill", versions, rate, span=(0, x.size))
    figure = new_figure(10.0, 2.6 * len(gaps))
    rows, loops = [], []
    for ax, (a, b) in zip(np.atleast_1d(figure.subplots(len(gaps), 1)), gaps, strict=False):
        ms = 1000 * (b - a) / rate
        shown = {"truth": x, "sonode": sonode_fill, "Janssen": janssen_fill}
        width_s = (b - a) / rate + 2 * GAP_MARGIN_S
        plot_waveform_overlay(
            ax,
            shown,
            rate,
            center_s=(a + b) / 2 / rate,
            window_s=width_s,
            title=f"{ms:.0f} ms gap at {a / rate:.3f} s",
        )
        ax.axvspan(1000 * a / rate, 1000 * b / rate, color="gold", alpha=0.25, label="gap")
        loops.append(
            {
                "label": f"{ms:.0f} ms gap at {a / rate:.2f} s",
                "start_s": max(0.0, a / rate - LOOP_MARGIN_S),
                "end_s": min(x.size / rate, b / rate + LOOP_MARGIN_S),
            }
        )
        truth = x[a:b]
        for metric, f, better in (("SNR dB", snr_db, True), ("LSD", gap_lsd, False)):
            rows.append(
                numbers_row(
                    f"fill {ms:.0f} ms",
                    metric,
                    f(truth, sonode_fill[a:b]),
                    "Janssen",
                    f(truth, janssen_fill[a:b]),
                    better,
                )
            )
    figures = [
        saved_figure(
            w,
            figure,
            f"{stem}.fill.gaps",
            "Waveform zooms of each made gap: truth, sonode and Janssen",
            "The shaded band is the gap; the truth is the wide pale line.",
        )
    ]
    return {
        "id": "fill",
        "title": "Fill (made gaps)",
        "versions": entries,
        "offset_s": offset_s,
        "rate": rate,
        "loops": loops,
        "figures": figures,
    }, rows


def model_figures(
    w: MediaWriter, stem: str, fitted, clip: np.ndarray, recon: np.ndarray
) -> list[dict[str, Any]]:
    """The training curve (when the model was trained) and the picture of the fitted model against
    its clip: the learned-dynamics panel where `sonode.plot.dynamics` exists, else `sonode plot`'s."""
    from sonode.plot import figures as plotting

    figures = []
    history = fitted.info.get("history")
    if history:
        path = w.picture(f"{stem}.training")
        plotting.save_fit_report_png(path, history, title=f"{stem}: training")
        figures.append(figure_entry(w, path, "Training curve: loss and fit SNR per step"))
    path = w.picture(f"{stem}.model")
    duration_s = clip.size / fitted.sample_rate
    try:  # the learned-dynamics panel, where this version of sonode has one
        from sonode.plot.dynamics import save_dynamics_png as dynamics
    except ImportError:
        dynamics = None
    if dynamics is not None:
        dynamics(path, fitted.model, title=f"{stem}: learned dynamics")
        figures.append(
            figure_entry(
                w,
                path,
                "Decay and frequency of the strongest modes against their amplitude",
                "Flat lines: linear dynamics (the untrained start); a decay crossing zero: a "
                "limit cycle.",
            )
        )
    else:
        plotting.save_comparison_png(
            path,
            clip,
            {"sonode": recon[: clip.size]},
            fitted.sample_rate,
            [duration_s * f for f in (0.1, 0.5, 0.9)],
            title=f"{stem}: model vs clip",
        )
        figures.append(
            figure_entry(
                w, path, "Waveform zooms and spectrograms of the reconstruction against the clip"
            )
        )
    return figures
