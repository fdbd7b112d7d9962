"""Issue #11 goal 4: the level of `sonode extrapolate --seconds 2` on the bundled clips.

    .venv/bin/python benchmarks/extrapolate_levels.py --models /tmp/el              # ~5 min idle
    .venv/bin/python benchmarks/extrapolate_levels.py --models /tmp/el --trim-fade  # without the fade-out

Every clip of data/ is read at 16 kHz, fitted with the default options and a fixed number of
optimiser steps (--steps, 60; no wall-clock budget, so the result does not depend on the machine's
load) and continued for --seconds (2) with `sonode.tasks.render.extrapolate`: what
`sonode fit --rate 16000 --steps 60 clip.wav` then `sonode extrapolate --seconds 2` write.
--models keeps the fits (and reuses them on the next run); --trim-fade fits each clip without its
last 10 ms, the fade-out every bundled clip ends with (data/README.md), which the continuation
otherwise identifies as the sound's final dynamics.

The goal (issue #11, goal 4): the continuation is finite, the ±10× blow-up cut of
`sonode.tasks.render` does not fire (Rendering.stopped_at_s is None), and

* a sustained clip continues within ±6 dB of the level of its last 100 ms: every 100 ms block of
  the continuation is within ±6 dB of it;
* a decaying clip continues at its measured decay rate, ±30 %, from its level: the continuation's
  decay rate (below) is within ±30 % of the clip's, and the continuation's first 100 ms block is
  within ±6 dB of the clip's last 100 ms (a continuation that drops by 40 dB and then decays at
  the right rate does not continue the sound; this second condition is this script's reading of
  the goal, not the issue's words);
* the speech clip ends in near-silence and has no level to hold: only finiteness, the cut and
  "no 100 ms block louder than the clip's last 100 ms + 6 dB" are checked (also for "other":
  noise recordings).

Definitions (levels are dB relative to digital full scale, file amplitude):

* level of a block: 10·log10(mean x²) over the block, x being the clip followed by its
  continuation high-passed at 20 Hz (2nd-order Butterworth run forward over both): levels of the
  audible band. The recordings carry DC offsets (the celesta's is −0.0024 at its end, 21 dB below
  the note by 1.2 s) that a faithful continuation keeps and that are not sound: counted, they make
  a decaying note's level stop at the offset's.
* last-100 ms level: the level of the clip's last 100 ms (of the fitted clip: with --trim-fade,
  the 100 ms before the fade-out).
* measured decay rate of the clip: the slope (dB/s) of the least-squares line through the levels
  of consecutive 20 ms blocks over the clip's last 500 ms before its 10 ms fade-out (the fade is
  an artefact of the clip's preparation, not the instrument's decay; 500 ms averages over the
  beating of close partials while staying in the end of the sound that the continuation must
  follow). The same line over the last 250 ms and 1 s is printed too: how much the figure
  depends on the span (a plucked string's decay is not one exponential).
* decay rate of the continuation: the same line fit, through the 20 ms block levels of the whole
  continuation (the judged figure). The table also shows it over the continuation's first 500 ms,
  which tells a continuation that decays at the clip's rate and then stops decaying (slow or
  neutral modes left over) from one that decays too slowly from the start.
* kind: the category data/README.md gives the clip (blown horn and tuba: sustained; plucked
  guitar and struck celesta ("bell"): decaying; speech: neither; for data/more the file name's
  first word: sustained, decaying, bell (decaying), speech, other (noise)), checked by the measured
  columns of the table: over their last second the sustained clips' 100 ms levels stay within a
  few dB with no consistent trend (the horn's level wanders, rates of either sign), the decaying
  ones lose 4–19 dB/s over every span.

The table also prints the continuation's level in every 100 ms block relative to the clip's last
100 ms, so that a continuation that holds its level on average but swells or fades can be seen.
The exit status is 0 whatever the outcome: a benchmark reports, it does not gate.

Measured 2026-12-01 (commits 1f1a07b/6826d2a, 1 thread, other jobs on the second core), clips as
bundled (the continuation now finds their fade-out itself): all five pass — horn and tuba hold
within +0.3…+1.4 / −1.4…+0.7 dB for 2 s, celesta decays at −15.5 dB/s (clip −18.3), the guitar at
−5.2 (clip −4.0 over 0.5 s, −6.9 / −6.1 over 0.25 s / 1 s: on the 30 % edge), speech stays below
its end. `--data data/more --steps 0` (the continuation is identified in closed form at the fit's
start, so 0 steps give the same continuation in seconds): all five sustained recordings hold
within ±5 dB, bass, harpsichord and bells decay at their rate, the piano fails (−2.3 dB/s against
−5.0: its later partials decay slower, a double decay the clip's last 0.5 s does not show), the
applause continuation dies within 100 ms (noise is not predictable; it passes only the loose
check of "other"). The ±10× cut never fired and every continuation was finite.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.signal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.api import Fitted, fit, load  # noqa: E402
from sonode.io.clip import Clip, read_clip  # noqa: E402
from sonode.tasks.render import extrapolate  # noqa: E402

RATE = 16000
LAST_S = 0.1  # the clip's last 100 ms: the level a sustained continuation must hold
BLOCK_S = 0.1  # continuation levels are reported per 100 ms block
LEVEL_TOLERANCE_DB = 6.0
RATE_TOLERANCE = 0.30
SLOPE_BLOCK_S = 0.02  # blocks of the level line fits
SLOPE_SPANS_S = (0.25, 0.5, 1.0)  # spans of the clip's measured rates; the judged one is 0.5 s
JUDGED_SPAN = 1
FADE_OUT_S = 0.01  # data/README.md: every bundled clip ends in a 10 ms fade-out
AUDIBLE_FROM_HZ = 20.0  # levels are of the audible band (see the module docstring)
# data/README.md's category (the file name's first word) -> what the continuation must do
KINDS = {
    "sustained": "sustained",
    "decaying": "decaying",
    "mallet": "decaying",
    "bell": "decaying",
    "speech": "speech",
}


def audible(x: np.ndarray, rate: int) -> np.ndarray:
    """x without what lies below AUDIBLE_FROM_HZ (2nd-order Butterworth high-pass, run forward)."""
    sos = scipy.signal.butter(2, AUDIBLE_FROM_HZ, "highpass", fs=rate, output="sos")
    return scipy.signal.sosfilt(sos, np.asarray(x, dtype=np.float64))


def level_db(x: np.ndarray) -> float:
    """10·log10(mean x²), dBFS for file amplitudes."""
    return 10.0 * math.log10(float(np.mean(np.asarray(x, dtype=np.float64) ** 2)) + 1e-30)


def block_levels(x: np.ndarray, block: int) -> np.ndarray:
    """Levels (dB) of the consecutive whole blocks of ``block`` samples of x."""
    n = x.shape[0] // block
    return np.array([level_db(x[i * block : (i + 1) * block]) for i in range(n)])


def decay_rate_db_per_s(x: np.ndarray, rate: int) -> float:
    """Slope (dB/s) of the least-squares line through the 20 ms block levels of x."""
    block = int(round(SLOPE_BLOCK_S * rate))
    levels = block_levels(x, block)
    times = (np.arange(levels.shape[0]) + 0.5) * block / rate
    return float(np.polyfit(times, levels, 1)[0])


@dataclass
class Clipped:
    """What is measured on a clip (see the module docstring)."""

    kind: str  # sustained / decaying / speech
    last_db: float  # level of the last 100 ms
    rates_db_per_s: list[float]  # over the last SLOPE_SPANS_S before the fade-out
    spread_db: (
        float  # max − min of the 100 ms block levels over the last second before the fade-out
    )

    @property
    def rate_db_per_s(self) -> float:
        return self.rates_db_per_s[JUDGED_SPAN]


def measure_clip(name: str, x: np.ndarray, rate: int, fade_s: float) -> Clipped:
    """The clip's kind, last-100 ms level and measured decay rates; ``fade_s``: its fade-out (0 if cut off)."""
    end = x.shape[0] - int(round(fade_s * rate))
    rates = [
        decay_rate_db_per_s(x[end - int(round(span * rate)) : end], rate) for span in SLOPE_SPANS_S
    ]
    blocks = block_levels(x[end - rate : end], int(round(BLOCK_S * rate)))
    return Clipped(
        kind=KINDS.get(name.split("_")[0], "other"),
        last_db=level_db(x[-int(round(LAST_S * rate)) :]),
        rates_db_per_s=rates,
        spread_db=float(blocks.max() - blocks.min()),
    )


@dataclass
class Verdict:
    cont_rate_db_per_s: float  # line through the continuation's 20 ms levels (the judged figure)
    early_rate_db_per_s: float  # the same over its first 500 ms only (shown, not judged)
    blocks_rel_db: np.ndarray  # continuation's 100 ms block levels minus the clip's last 100 ms
    finite: bool
    cut_at_s: float | None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def judge(clip: Clipped, cont: np.ndarray, cut_at_s: float | None, rate: int) -> Verdict:
    """Goal 4's checks of a continuation ``cont`` (file amplitude) of a clip measured as ``clip``."""
    finite = bool(np.all(np.isfinite(cont)))
    blocks = (
        block_levels(cont, int(round(BLOCK_S * rate))) - clip.last_db if finite else np.zeros(0)
    )
    early = cont[: int(round(SLOPE_SPANS_S[JUDGED_SPAN] * rate))]
    verdict = Verdict(
        decay_rate_db_per_s(cont, rate) if finite and cont.size else math.nan,
        decay_rate_db_per_s(early, rate) if finite and early.size else math.nan,
        blocks,
        finite,
        cut_at_s,
    )
    if not finite:
        verdict.problems.append("not finite")
    if cut_at_s is not None:
        verdict.problems.append(f"cut at {cut_at_s:.3f} s")
    if not blocks.size:
        return verdict
    if clip.kind == "sustained" and np.max(np.abs(blocks)) > LEVEL_TOLERANCE_DB:
        verdict.problems.append(f"level off by {blocks[np.argmax(np.abs(blocks))]:+.1f} dB")
    if clip.kind == "decaying":
        if not abs(verdict.cont_rate_db_per_s - clip.rate_db_per_s) <= RATE_TOLERANCE * abs(
            clip.rate_db_per_s
        ):
            verdict.problems.append(
                f"rate {verdict.cont_rate_db_per_s:+.1f} vs {clip.rate_db_per_s:+.1f} dB/s"
            )
        if abs(blocks[0]) > LEVEL_TOLERANCE_DB:
            verdict.problems.append(f"starts {blocks[0]:+.1f} dB off")
    if clip.kind in ("speech", "other") and np.max(blocks) > LEVEL_TOLERANCE_DB:
        verdict.problems.append(f"louder by {np.max(blocks):+.1f} dB")
    return verdict


def fitted_model(
    clip: Clip, cached: Path | None, steps: int, threads: int | None
) -> tuple[Fitted, float]:
    """The fit of ``clip`` (read from ``cached`` if that file exists, else fitted and saved there)."""
    if cached is not None and cached.exists():
        return load(cached), math.nan
    start = time.perf_counter()
    fitted = fit(clip, steps=steps, max_time_s=None, threads=threads)
    elapsed = time.perf_counter() - start
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fitted.save(cached)
    return fitted, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument(
        "--trim-fade",
        action="store_true",
        help="fit each clip without its last 10 ms (the fade-out data/README.md describes)",
    )
    parser.add_argument(
        "--models", type=Path, help="directory of fitted models: reused if present, else written"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", help="run the clips whose name contains this")
    args = parser.parse_args()
    rows = []
    for path in sorted(args.data.glob("*.wav")):
        if args.only and args.only not in path.name:
            continue
        clip = read_clip(path, rate=RATE)
        if args.trim_fade:  # as `sonode fit --rate 16000 --duration <length − 10 ms>` reads it
            clip = read_clip(path, rate=RATE, duration_s=clip.duration_s - FADE_OUT_S)
        fade_s = 0.0 if args.trim_fade else FADE_OUT_S
        cached = (
            args.models / f"{path.stem}{'.trimmed' if args.trim_fade else ''}.sonode"
            if args.models
            else None
        )
        fitted, fit_s = fitted_model(clip, cached, args.steps, args.threads)
        start = time.perf_counter()
        cont = extrapolate(fitted.model, args.seconds)
        cont_s = time.perf_counter() - start
        heard = audible(np.concatenate([clip.samples, cont.samples]), RATE)
        measured = measure_clip(path.stem, heard[: clip.samples.shape[0]], RATE, fade_s)
        verdict = judge(measured, heard[clip.samples.shape[0] :], cont.stopped_at_s, RATE)
        report = fitted.info.get("fit", {})
        tail = report.get("identification", {}).get("continuation") or {}
        print(
            f"# {path.stem}: {clip.duration_s:.3f} s fitted in {fit_s:.0f} s (nan: cached), continued in "
            f"{cont_s:.1f} s; fit SNR {report.get('snr_db', math.nan):.1f} dB; continuation order "
            f"{tail.get('order')}, window {tail.get('window_samples')}, validation SNR "
            f"{tail.get('validation_snr_db') or math.nan:.1f} dB",
            flush=True,
        )
        rows.append((path.stem, measured, verdict))
    print()
    print(
        f"{RATE} Hz, {args.steps} steps, {'fade-out trimmed' if args.trim_fade else 'clips as bundled'}, "
        f"continuation {args.seconds} s. Levels dBFS, rates dB/s (line through 20 ms levels)."
    )
    print()
    print(
        "| clip | kind | last 100 ms (dB) | last 1 s spread (dB) | clip rate, last 0.25 / **0.5** / 1 s | "
        "continuation rate, first 0.5 s / **all** | "
        "continuation 100 ms blocks re last 100 ms: first / min / max (dB) | finite | "
        "cut | goal 4 |"
    )
    print("|---|---|---:|---:|---:|---:|---|---|---|---|")
    for name, m, v in rows:
        rates = " / ".join(
            f"**{r:+.1f}**" if i == JUDGED_SPAN else f"{r:+.1f}"
            for i, r in enumerate(m.rates_db_per_s)
        )
        blocks = (
            f"{v.blocks_rel_db[0]:+.1f} / {v.blocks_rel_db.min():+.1f} / {v.blocks_rel_db.max():+.1f}"
            if v.blocks_rel_db.size
            else "-"
        )
        cut = "-" if v.cut_at_s is None else f"at {v.cut_at_s:.3f} s"
        print(
            f"| {name} | {m.kind} | {m.last_db:.1f} | {m.spread_db:.1f} | {rates} | "
            f"{v.early_rate_db_per_s:+.1f} / **{v.cont_rate_db_per_s:+.1f}** | "
            f"{blocks} | {'yes' if v.finite else 'NO'} | {cut} | "
            f"{'pass' if v.passed else 'FAIL: ' + '; '.join(v.problems)} |"
        )
    print()
    print("continuation level per 100 ms block, dB re the clip's last 100 ms:")
    for name, _, v in rows:
        print(f"  {name:26s}" + "".join(f"{b:+6.1f}" for b in v.blocks_rel_db))


if __name__ == "__main__":
    main()
