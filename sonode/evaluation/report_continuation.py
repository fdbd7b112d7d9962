"""The continuation part of a listening report (`sonode.evaluation.report`): the clip's end
continued by sonode beside the best Burg order and the untrained start (and the truth in an
evaluation), with the waveforms, spectrograms and running SNR."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sonode.dsp.metrics import snr_db
from sonode.dsp.predictor import lpc_continue
from sonode.evaluation.report_media import (
    LINE_COLORS,
    LOOP_MARGIN_S,
    MediaWriter,
    Version,
    figure_entry,
    numbers_row,
    saved_figure,
)
from sonode.plot.panels import new_figure, plot_running_snr, plot_waveform_overlay

#: Burg orders a continuation is compared with (as `sonode eval`'s "best Burg order" column).
BURG_ORDERS = (256, 512, 1024, 2048)


#: Clip end held back to choose the Burg order when there is no truth (the validated horizon of
#: sonode's own continuation ODE, `sonode.model.continuation`).
BURG_VALIDATION_S = 0.05


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
    figures = [
        saved_figure(
            w,
            figure,
            f"{stem}.continuation.waveform",
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
