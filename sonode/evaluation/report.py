"""What a listening report shows for one clip: the versions to compare, their pictures and numbers.

Each ``*_group`` function writes one task's media through a `MediaWriter` and returns a plain
dict for the page (`sonode.evaluation.report_page`) and the rows of the clip's numbers table:

- listen: the input, sonode's reconstruction and the untrained start (see `field_zeroed`);
- upsampling: sonode beside sinc and the shaped-noise baseline (and the full-band truth when there
  is one), with spectrograms from the input's Nyquist frequency up;
- continuation: the clip's last ``context_s`` continued by sonode, the best Burg order and the
  untrained start (and the truth in an evaluation, with the SNR against the horizon);
- fill: gaps punched into the clip, filled by sonode and gap-wise Janssen, beside the truth.

`sonode.evaluation.report_run` assembles these for `sonode report` and `sonode eval --html`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from sonode.dsp.lpc import lpc_continue
from sonode.dsp.metrics import snr_db
from sonode.dsp.spectra import log_spectral_distance
from sonode.evaluation.report_media import (
    MediaWriter,
    Version,
    figure_entry,
    numbers_row,
)
from sonode.plot.panels import (
    new_figure,
    plot_running_snr,
    plot_spectrograms,
    plot_waveform_overlay,
    save_figure,
)

#: Burg orders a continuation is compared with (as `sonode eval`'s "best Burg order" column).
BURG_ORDERS = (256, 512, 1024, 2048)
#: Clip end held back to choose the Burg order when there is no truth (the validated horizon of
#: sonode's own continuation ODE, `sonode.model.continuation`).
BURG_VALIDATION_S = 0.05
#: Waveform margin shown on each side of a gap, and loop margin around it (seconds).
GAP_MARGIN_S = 0.02
LOOP_MARGIN_S = 0.15
#: Line colours of the candidates in order, as `sonode.plot.panels` gives them (the truth is black).
LINE_COLORS = ("tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple")


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


def best_burg(
    history: np.ndarray,
    rate: int,
    n_out: int,
    future: np.ndarray | None = None,
    signals: Mapping[str, np.ndarray] | None = None,
) -> tuple[str, np.ndarray]:
    """The best Burg continuation of ``history`` (n_out samples) and its name, e.g. "Burg 1024".

    With a ``future`` (the truth) the best is the highest SNR over the first 20 ms among
    ``signals`` (precomputed "lpc<order>_burg" continuations); without one, the order whose
    continuation of history minus its last BURG_VALIDATION_S predicts those samples best.
    """
    if future is not None and signals:
        n = min(future.size, max(1, rate // 50))
        names = [k for k in signals if k.endswith("_burg") and int(k[3:-5]) in BURG_ORDERS]
        best = max(names, key=lambda k: snr_db(future[:n], signals[k][:n]))
        return f"Burg {int(best[3:-5])}", signals[best]
    held = int(round(BURG_VALIDATION_S * rate))
    orders = [p for p in BURG_ORDERS if 2 * p < history.size - held] or [
        min(BURG_ORDERS[0], history.size // 4)
    ]
    order = max(
        orders, key=lambda p: snr_db(history[-held:], lpc_continue(history[:-held], p, held))
    )
    return f"Burg {order}", lpc_continue(history, order, n_out)


def continuation_group(
    w: MediaWriter,
    stem: str,
    history: np.ndarray,
    rate: int,
    context_s: float,
    outputs: Mapping[str, np.ndarray],
    future: np.ndarray | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The clip's last ``context_s`` followed by each continuation (``outputs``: label -> (horizon,),
    sonode's under "sonode"), with the ``future`` (truth) when known: players, waveform, horizon curve."""
    context = history[-int(round(context_s * rate)) :]
    joined = {label: np.concatenate([context, x]) for label, x in outputs.items()}
    versions = (
        [] if future is None else [Version("truth", "truth", np.concatenate([context, future]))]
    )
    versions += [
        Version(label, "sonode" if label == "sonode" else "baseline", x)
        for label, x in joined.items()
    ]
    end_s = context.size / rate
    horizon_s = min(x.size for x in outputs.values()) / rate
    entries, offset_s = w.versions(
        f"{stem}.continuation", versions, rate, span=(0, min(v.samples.size for v in versions))
    )
    loops = [
        {
            "label": "around the clip's end",
            "start_s": max(0.0, end_s - LOOP_MARGIN_S),
            "end_s": min(end_s + horizon_s, end_s + 2 * LOOP_MARGIN_S),
        }
    ]
    shown = {("truth" if v.role == "truth" else v.label): v.samples for v in versions}
    figure = new_figure(10.0, 5.6)
    top, bottom = figure.subplots(2, 1)
    plot_waveform_overlay(
        top,
        shown,
        rate,
        center_s=end_s + 0.01,
        window_s=0.04,
        marker_s=end_s,
        marker_label="clip ends",
        title="the first 30 ms of the continuation",
    )
    frame = max(1, rate // 100)  # 10 ms: the level of each version over context and continuation
    palette = iter(LINE_COLORS)
    for label, x in shown.items():
        n_frames = x.size // frame
        rms = np.sqrt(np.mean(x[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1))
        bottom.plot(
            (np.arange(n_frames) + 0.5) * frame / rate,
            20 * np.log10(rms + 1e-9),
            label=label,
            color="black" if label == "truth" else next(palette),
            linewidth=2.5 if label == "truth" else 1.2,
            alpha=0.5 if label == "truth" else 1.0,
            linestyle="--" if label == "untrained start" else "-",
        )
    bottom.axvline(end_s, color="grey", linestyle="--", linewidth=1.2)
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("level (dB, 10 ms RMS)")
    bottom.set_title("level over the context and the whole continuation")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    path = w.picture(f"{stem}.continuation.waveform")
    save_figure(figure, path)
    figures = [
        figure_entry(
            w,
            path,
            "Waveforms of the continuations after the clip's end",
            "Time 0 is the start of the context shown; the dashed line marks the clip's end.",
        )
    ]
    rows = []
    if future is not None:
        n = min(future.size, min(x.size for x in outputs.values()))
        steps = np.unique(np.linspace(max(1, rate // 1000), n, 100).astype(int))
        curves = {
            label: (steps / rate, np.array([snr_db(future[:k], x[:k]) for k in steps]))
            for label, x in outputs.items()
        }
        path = w.picture(f"{stem}.continuation.horizon")
        plot_running_snr(
            path, curves, title="SNR of the continuation over [0, horizon]", xlabel="horizon (s)"
        )
        figures.append(
            figure_entry(
                w,
                path,
                "SNR against horizon for each continuation",
                "SNR over the first h seconds after the clip's end.",
            )
        )
        for label, x in outputs.items():
            if label == "sonode":
                continue
            for ms in (5, 20, 50):
                k = min(n, rate * ms // 1000)
                rows.append(
                    numbers_row(
                        "continuation",
                        f"SNR {ms} ms dB",
                        snr_db(future[:k], outputs["sonode"][:k]),
                        label,
                        snr_db(future[:k], x[:k]),
                        True,
                    )
                )
    note = ""
    if "untrained start" in outputs and "sonode" in outputs:
        a, b = outputs["sonode"], outputs["untrained start"]
        agreement = snr_db(a, b)
        if agreement > 40:  # say why two players sound the same instead of leaving it a puzzle
            same = "are identical" if not np.isfinite(agreement) else f"agree to {agreement:.0f} dB"
            note = (
                f"sonode's continuation and the untrained start's {same}: the continuation ODE is "
                "identified in closed form from the clip's end, not trained."
            )
    return {
        "id": "continuation",
        "title": f"Continuation ({1000 * horizon_s:.0f} ms past the end)",
        "note": note,
        "versions": entries,
        "offset_s": offset_s,
        "rate": rate,
        "loops": loops,
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
    path = w.picture(f"{stem}.fill.gaps")
    save_figure(figure, path)
    figures = [
        figure_entry(
            w,
            path,
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
