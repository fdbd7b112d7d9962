"""The continuation ODE alone against high-order Burg prediction, on any folders of clips.

    .venv/bin/python benchmarks/continuation_clips.py data/*.wav data/more/*.wav   # ~2 min, 1 thread
    .venv/bin/python benchmarks/continuation_clips.py /work/corpus/short48   # a folder: its audio files

The same task as `sonode eval`'s continuation (first 1.0 s of each clip at 16 kHz; history 0-0.8 s,
continue 0.2 s; SNR over the first 5 / 20 / 50 ms and LSD over the 200 ms), without the neural fit:
the continuation is identified on the clip's end (`sonode.model.continuation`) and does not
depend on training, so this measures it on many clips in minutes (the fitted model's rendering of
it agrees to within ~0.1 dB, see `sonode eval`). Baseline: the best Burg order among 256-2048
per column (an oracle: the order is picked after seeing the future). Prints one row per clip,
then medians and the count of clips where the continuation is ahead, for the bundled clips (data/)
and the others separately.

With ``--origins N`` each clip is continued from N history ends, 50 ms apart (0.8 s, 0.75 s,
...), and its row is the mean over them of each column (sonode's and the best Burg order's, picked
per origin): one 5 ms span is 80 samples, and a change the held-back validation cannot rank moved
a clip's 5 ms SNR by 6-10 dB at one end and not at the next (docs/continuation_modes.md).

With ``--train-steps N`` the continuation is also trained for prediction
(`sonode.model.predict.fit_dynamics`: N adjoint steps, kept only where the history's own held-back
end scores better, limit cycle chosen) and printed beside its untrained start ("trained" rows, with
the SNR over 200 ms as a fifth column and the gain over the untrained start at 50 / 200 ms).
Its rows also say whether the output-error fit of the modes was kept (``--no-modes`` leaves it
out; `sonode.model.mode_fit`), the CPU seconds of the mode fit and of the whole training, whether
the L-BFGS glide fit was kept (``--no-glide`` leaves it out), whether the late decays were
measured at the end's level after it (`glide_fit.measure_end_decays`), and the level trends over 1-2 s that
the trend check compared (identified, rejected, kept). A "trained" summary compares the trained
continuation with the best Burg order as the others do the untrained one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.dsp.lpc import lpc_continue  # noqa: E402
from sonode.dsp.metrics import snr_db  # noqa: E402
from sonode.dsp.spectra import log_spectral_distance
from sonode.io.clip import read_clip, resample  # noqa: E402
from sonode.model import limit_cycle, predict, task_loss  # noqa: E402
from sonode.model.continuation import identify_continuation  # noqa: E402
from sonode.model.init import normalisation  # noqa: E402
from sonode.model.predict import Tail, fit_dynamics  # noqa: E402

RATE = 16000
HORIZON = int(0.2 * RATE)
ORIGIN_STEP = int(0.05 * RATE)  # between the history ends of --origins
BURG_ORDERS = (256, 512, 1024, 2048)
AUDIO = (".wav", ".flac", ".ogg")


def scores(future: np.ndarray, x: np.ndarray) -> list[float]:
    """SNR (dB) over 5 / 20 / 50 ms, LSD over the whole horizon."""
    return [snr_db(future[: RATE * ms // 1000], x[: RATE * ms // 1000]) for ms in (5, 20, 50)] + [
        log_spectral_distance(future, x, RATE)["lsd"]
    ]


def continuation(history: np.ndarray, n: int) -> tuple[np.ndarray, str]:
    gain, offset = normalisation(history)
    fit = identify_continuation((history - offset) / gain, RATE)
    return fit.samples(
        n, RATE
    ) * gain + offset, f"{fit.estimator} p={fit.order} W={fit.window_samples}"


def origin_scores(low: np.ndarray, origins: int) -> tuple[list[float], list[float], str]:
    """(sonode's scores, the best Burg order's, how it was identified) of a clip (n,) at RATE,
    each the mean over ``origins`` history ends ORIGIN_STEP apart, the first HORIZON before the
    end (the best order picked per end)."""
    per_origin = []
    for end in range(low.shape[0] - HORIZON, 0, -ORIGIN_STEP)[:origins]:
        history, future = low[:end], low[end : end + HORIZON]
        ours, how = continuation(history, HORIZON)
        burgs = [scores(future, lpc_continue(history, order, HORIZON)) for order in BURG_ORDERS]
        best = [max(b[i] for b in burgs) for i in range(3)] + [min(b[3] for b in burgs)]
        per_origin.append((scores(future, ours), best, how))
    row, best = (list(np.mean([o[i] for o in per_origin], 0)) for i in (0, 1))
    ends = f" (at the last end; {len(per_origin)} ends)" if origins > 1 else ""
    return row, best, per_origin[0][2] + ends


def trained_continuation(
    history: np.ndarray, n: int, steps: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(untrained, trained) continuations of the ODE whose field `fit_dynamics` trains, and its report."""
    gain, offset = normalisation(history)
    xn = (history - offset) / gain
    tail = Tail.from_fit(identify_continuation(xn, RATE), RATE)
    untrained = tail.continue_clip(n, RATE) * gain + offset
    report = fit_dynamics(tail, xn, RATE, steps)
    return untrained, tail.continue_clip(n, RATE) * gain + offset, report


def summary(name: str, rows: list[tuple[list[float], list[float]]]) -> None:
    if not rows:
        return
    ours, best = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    ahead = [int(np.sum(ours[:, i] > best[:, i])) for i in range(3)] + [
        int(np.sum(ours[:, 3] <= best[:, 3]))
    ]
    print(
        f"{name} ({len(rows)} clips): median sonode {np.round(np.median(ours, 0), 2)}, best Burg "
        f"{np.round(np.median(best, 0), 2)}; sonode ahead on {ahead} clips (5/20/50 ms SNR, LSD)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument(
        "--train-steps", type=int, default=0, help="also train the continuation (steps)"
    )
    parser.add_argument(
        "--field-input",
        choices=("level", "modes"),
        default=limit_cycle.TAIL_INPUT,
        help="the trained field's input: the total level, or every mode's energy",
    )
    parser.add_argument(
        "--field-phases",
        choices=("late", "both"),
        default=limit_cycle.FIELD_PHASES,
        help="the trained field acts after the switch to the late modes, or from the end",
    )
    parser.add_argument(
        "--field-train",
        choices=("mlp", "gain", "glide", "all"),
        default=limit_cycle.TAIL_TRAIN,
        help="what training moves: the level MLP, the gain terms, the shared glide, or all",
    )
    parser.add_argument("--anchors", type=int, default=task_loss.ANCHORS, help="anchors per step")
    parser.add_argument(
        "--anchor-span-s",
        type=float,
        default=task_loss.ANCHOR_SPAN_S,
        help="anchors are drawn from the history's last this many seconds",
    )
    parser.add_argument(
        "--no-modes",
        action="store_true",
        help="leave out the output-error fit of the continuation's modes (`mode_fit`)",
    )
    parser.add_argument(
        "--no-glide",
        action="store_true",
        help="leave out the L-BFGS fit of the shared pitch glide (the level MLP alone)",
    )
    parser.add_argument(
        "--origins",
        type=int,
        default=1,
        help="continue each clip from this many history ends 50 ms apart and average (untrained)",
    )
    parser.add_argument(
        "--skip", default="speech", help="skip clips whose name contains this (default: speech)"
    )
    args = parser.parse_args()
    if args.origins < 1 or (args.origins > 1 and args.train_steps > 0):
        parser.error("--origins must be >= 1, and 1 with --train-steps")
    limit_cycle.TAIL_INPUT, limit_cycle.FIELD_PHASES = args.field_input, args.field_phases
    limit_cycle.TAIL_TRAIN = args.field_train
    task_loss.ANCHORS, task_loss.ANCHOR_SPAN_S = args.anchors, args.anchor_span_s
    predict.FIT_GLIDE = not args.no_glide
    predict.FIT_MODES = not args.no_modes
    # a folder stands for its audio files (e.g. /work/corpus/<category>)
    args.clips = [
        f
        for p in args.clips
        for f in (
            sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO) if p.is_dir() else [p]
        )
        if not (args.skip and args.skip in f.name)
    ]
    gains, trained_rows = [], []
    torch.set_num_threads(1)
    bundled, others = [], []
    categories: dict[str, list] = {}  # by the name's first word: sustained_, decaying_, bell_ ...
    for path in args.clips:
        clip = read_clip(path, duration_s=1.0)
        low = resample(clip.samples, clip.sample_rate, RATE)
        row, best, how = origin_scores(low, args.origins)
        history, future = low[:-HORIZON], low[-HORIZON:]  # the training's task: the last end
        print(
            f"{path.name:36s} sonode {' '.join(f'{v:6.2f}' for v in row)} | best Burg "
            f"{' '.join(f'{v:6.2f}' for v in best)} | {how}",
            flush=True,
        )
        (bundled if path.resolve().parent == ROOT / "data" else others).append((row, best))
        categories.setdefault(path.name.split("_")[0], []).append((row, best))
        if args.train_steps > 0:
            cpu_s = time.process_time()
            plain, trained, report = trained_continuation(history, HORIZON, args.train_steps)
            cpu_s = time.process_time() - cpu_s
            a, b = (
                scores(future, plain) + [snr_db(future, plain)],
                scores(future, trained) + [snr_db(future, trained)],
            )
            gains.append((path.name, b[2] - a[2], b[4] - a[4]))
            trained_rows.append((b[:4], best))
            print(
                f"{'':36s} untrained {' '.join(f'{v:6.2f}' for v in a)} | trained "
                f"{' '.join(f'{v:6.2f}' for v in b)} | gain 50/200 ms {b[2] - a[2]:+.2f} {b[4] - a[4]:+.2f} dB | "
                f"modes {report.get('modes_kept')} ({report.get('modes', {}).get('cpu_s', 0):.1f} "
                f"of {cpu_s:.1f} CPU s) field {report['field_kept']} cycle {report['cycle']} held-back gain "
                f"{report.get('held_back_gain_db', float('nan')):+.2f} dB | glide "
                f"{report.get('glide_kept')} {report.get('final_glide', {}).get('glide')} end decays "
                f"{report.get('end_decays')} | mlp steps "
                f"{report.get('kept_steps')} | trend 1-2 s (dB/s) {report.get('trend_db_per_s', {})}",
                flush=True,
            )
    summary("bundled", bundled)
    summary("others", others)
    if len(categories) > 1:
        for category, rows in sorted(categories.items()):
            summary(f"  {category}", rows)
    summary("trained", trained_rows)
    if gains:
        g = np.array([[g50, g200] for _, g50, g200 in gains])
        print(
            f"trained - untrained, median over {len(gains)} clips: {np.median(g[:, 0]):+.2f} dB at 50 ms, "
            f"{np.median(g[:, 1]):+.2f} dB at 200 ms; worst {g.min(0).round(2)}"
        )


if __name__ == "__main__":
    main()
