"""How well the band above is predicted, and whether the clip can tell: each level estimator of
`sonode.dsp.band_level` against the truth above 8 kHz, beside its error by pseudo-band-extension on
the clip's own top octave (the self-validation `choose_estimator` chooses by).

    python benchmarks/bench_upsample_level.py data data/more /work/corpus/short48 --synthetic

Per clip (the first --duration s at --truth-rate, band-limited to --rate as in
`bench_upsample_folder.py`): the chosen estimator's error on the truth (energy over 8 kHz to 0.98 ×
the truth's Nyquist frequency, dB, + = too loud) and its mean error on the held-back octave at two
scales (the input's top octave predicted from the input at half its rate, and that octave of the
half-rate input predicted from a quarter rate). Then per estimator and per selection rule: clips
within ±3 dB on the truth, per category, and the correlation between the held-back error and the
error on the truth (if the self-validation were informative it would be near 1).
"""

from __future__ import annotations

import argparse
import collections
import math
import statistics
from pathlib import Path

import numpy as np
import soundfile
import torch
from bench_upsample_folder import categories, synthetic_clips

from sonode.dsp.band_level import (
    PSD_FLOOR,
    _spectrogram,
    band_psd,
    choose_estimator,
    measured,
    octave_cap,
    predictors,
)
from sonode.dsp.bandwidth import SILENT_TOP_OCTAVE_DB, fit_band
from sonode.dsp.resample import output_length, upsample_sinc
from sonode.io.clip import read_clip, resample
from sonode.tasks.band_extension import extend_band, modes_below
from sonode.tasks.upsample import clip_modes

SPLIT_HZ = 8000.0
N_BANDS = 6


def clip_levels(truth: np.ndarray, low: np.ndarray, rate_in: int, rate_out: int) -> dict | None:
    """Each estimator's energy error (dB) on the truth above SPLIT_HZ and its mean error on the
    held-back octave at two scales; None when no band is predicted (a quiet top octave)."""
    modes = clip_modes(low, rate_in)
    high, info = extend_band(low, rate_in, rate_out, modes, 0, None)
    if info.top_octave_db < SILENT_TOP_OCTAVE_DB or info.level_estimator is None:
        return None
    band = fit_band(info.edge_hz, rate_in / 2)
    stop = 0.98 * rate_out / 2
    found = predictors(low, rate_in, band)
    found["synthesis"] = measured(high, rate_out, info.edge_hz, stop)
    freqs_hz, _, power = _spectrogram(truth, rate_out)
    centres, truth_psd = band_psd(freqs_hz, power.mean(axis=1), SPLIT_HZ, stop, N_BANDS)
    width_hz = np.diff(np.geomspace(SPLIT_HZ, stop, N_BANDS + 1))[: centres.size]
    on_truth = {}
    for name, predict in found.items():
        guess = octave_cap(low, rate_in, band, predict)(centres)
        on_truth[name] = 10 * math.log10(
            max(float(np.sum(guess * width_hz)), PSD_FLOOR)
            / max(float(np.sum(truth_psd * width_hz)), PSD_FLOOR)
        )

    def synthesis(x_half: np.ndarray, rate_half: int, rate: int) -> np.ndarray:
        return extend_band(
            x_half, rate_half, rate, modes_below(modes, rate_half / 2), 0, None, "synthesis"
        )[0]

    held = choose_estimator(low, rate_in, synthesis)
    try:
        half = upsample_sinc(low, rate_in, rate_in // 2, quality="high")
        held2 = choose_estimator(half, rate_in // 2, synthesis).bias_db
    except ValueError:
        held2 = {}
    return dict(chosen=info.level_estimator, truth=on_truth, held=held.bias_db, held2=held2)


def counts(rows: list[dict], pick, label: str) -> str:
    """One table row: clips within ±3 dB on the truth for the estimator ``pick(row)`` chooses."""
    err = [(r["category"], r["truth"].get(pick(r), math.nan)) for r in rows]
    err = [(c, e) for c, e in err if math.isfinite(e)]
    per = collections.defaultdict(list)
    for c, e in err:
        per[c].append(abs(e) <= 3)
    cats = ", ".join(f"{c} {sum(v)}/{len(v)}" for c, v in sorted(per.items()))
    within = sum(abs(e) <= 3 for _, e in err)
    med = statistics.median(abs(e) for _, e in err)
    return f"| {label} | {within}/{len(err)} | {med:.1f} | {cats} |"


def correlation(rows: list[dict], name: str, key: str = "held") -> float:
    pairs = [
        (r["truth"][name], r[key][name]) for r in rows if name in r["truth"] and name in r[key]
    ]
    if len(pairs) < 3:
        return math.nan
    a = np.asarray(pairs)
    return float(np.corrcoef(a[:, 0], a[:, 1])[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--truth-rate", type=int, default=48000)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs/bench_upsample_level"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    clips = []
    for folder in args.folders or [Path("data"), Path("data/more")]:
        named = categories(folder)
        for p in sorted(folder.glob("*.wav")) + sorted(folder.glob("*.flac")):
            clips.append((p, named.get(p.name, p.stem.split("_")[0])))
    if args.synthetic:
        clips += [(p, "synthetic") for p in synthetic_clips(args.output)]
    clips = [(p, c) for p, c in clips if not args.only or any(o in p.name for o in args.only)]
    rows = []
    print("| clip | category | chosen | on the truth (dB) | held-back | held-back, half rate |")
    print("|---|---|---|---|---|---|")
    for path, category in clips:
        seconds = min(args.duration, soundfile.info(path).duration)
        truth = read_clip(path, duration_s=seconds, rate=args.truth_rate).samples
        low = resample(truth, args.truth_rate, args.rate)
        n = output_length(low.size, args.rate, args.truth_rate)
        truth = np.pad(truth, (0, max(0, n - truth.size)))[:n]
        found = clip_levels(truth, low, args.rate, args.truth_rate)
        if found is None:
            print(f"| {path.name} | {category} | (quiet top octave) | | | |", flush=True)
            continue
        rows.append(found | dict(clip=path.name, category=category))
        c = found["chosen"]
        print(
            f"| {path.name} | {category} | {c} | {found['truth'][c]:+.1f} "
            f"| {found['held'].get(c, math.nan):+.1f} | {found['held2'].get(c, math.nan):+.1f} |",
            flush=True,
        )
    names = sorted({k for r in rows for k in r["truth"]})
    print("\n| level from | within ±3 dB above 8 kHz | median abs error (dB) | per category |")
    print("|---|---|---|---|")
    print(counts(rows, lambda r: r["chosen"], "chosen by pseudo-band-extension"))
    for name in names:
        print(counts(rows, lambda r, k=name: k, name))
    best = lambda r: min(r["truth"], key=lambda k: abs(r["truth"][k]))  # noqa: E731
    print(counts(rows, best, "best on the truth (oracle)"))
    print("\nCorrelation of the held-back error with the error on the truth, per estimator:")
    for name in names:
        half = correlation(rows, name, "held2")
        print(f"- {name}: {correlation(rows, name):+.2f} (half-rate octave {half:+.2f})")
    chosen = [(r["truth"][r["chosen"]], r["held"].get(r["chosen"], math.nan)) for r in rows]
    a = np.asarray([p for p in chosen if math.isfinite(p[1])])
    print(f"- chosen: {np.corrcoef(a[:, 0], a[:, 1])[0, 1]:+.2f} over {len(a)} clips")


if __name__ == "__main__":
    main()
