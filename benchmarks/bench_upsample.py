"""Upsampling benchmark: sonode's bandwidth extension next to every baseline, clip by clip.

    python benchmarks/bench_upsample.py                         # data/*.wav, 16 kHz input, 60 s fits
    python benchmarks/bench_upsample.py --budget 20 --reuse other.wav
    python benchmarks/bench_upsample.py --truth-rate 16000 --rate 8000   # held-back top octave

Each clip (its own rate is the truth; the first --duration seconds) is band-limited to --rate with
`sonode.io.clip.resample`, fitted for --budget seconds, and upsampled back by sonode (default
options, and the variants) and by every upsampler in `sonode.evaluation.baselines.UPSAMPLERS`. Scores per
`sonode.evaluation.evaluate.upsampling_scores`: SNR, ssr_eval's LSD below/above the input's Nyquist frequency
(gains matched), energy above Nyquist relative to the truth's. Writes the models, results.json
and spectrogram PNGs above the Nyquist frequency into --output; --reuse loads models saved there by
an earlier run instead of fitting again (the synthesis can then be compared quickly).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from sonode.api import fit, load
from sonode.dsp.bandwidth import CROSSOVER_WIDTH, band_edge_hz, crossover
from sonode.dsp.resample import output_length, upsample_sinc
from sonode.evaluation.evaluate import upsampling_candidates, upsampling_scores
from sonode.io.clip import Clip, read_clip, resample
from sonode.plot.figures import save_band_png
from sonode.tasks.upsample import extend_band, upsample_samples

ROOT = Path(__file__).resolve().parent.parent
SHOWN = ("snr_db", "lsd_below", "lsd_above", "energy_above_vs_truth_db")


def run_clip(path: Path, args) -> dict:
    truth = read_clip(path, duration_s=args.duration, rate=args.truth_rate)
    high = truth.sample_rate
    low = Clip(
        samples=resample(truth.samples, high, args.rate),
        sample_rate=args.rate,
        source_path=truth.source_path,
        source_rate=truth.source_rate,
        source_channels=1,
        channel="mix",
        start_s=0.0,
    )
    model_path = args.output / f"{path.stem}.{args.rate}.{high}.sonode"
    start = time.perf_counter()
    if args.reuse and model_path.exists():
        fitted = load(model_path)
    else:
        fitted = fit(low, max_time_s=args.budget, threads=args.threads, seed=0)
        fitted.save(model_path)
    fit_s = time.perf_counter() - start
    n_high = output_length(low.n_samples, args.rate, high)
    reference = np.zeros(n_high)
    reference[: min(n_high, truth.n_samples)] = truth.samples[:n_high]
    start = time.perf_counter()
    candidates = upsampling_candidates(fitted, low, high)
    render_s = time.perf_counter() - start
    # what the fitted modes add: the same synthesis with the input's spectral peaks alone
    no_modes, _ = extend_band(low.samples, args.rate, high, modes=None)
    edge = band_edge_hz(low.samples, args.rate)
    candidates["sonode_no_modes"] = crossover(
        upsample_sinc(low.samples, args.rate, high),
        no_modes,
        high,
        edge,
        CROSSOVER_WIDTH * args.rate / 2,
    )
    candidates["sonode_high_none"], _ = upsample_samples(
        low.samples, args.rate, high, high_band="none"
    )
    _, extension = upsample_samples(low.samples, args.rate, high, model=fitted.model)
    scores = {
        name: upsampling_scores(reference, x, high, args.rate / 2) for name, x in candidates.items()
    }
    save_band_png(
        args.output / f"{path.stem}.above_nyquist.png",
        reference,
        {k: candidates[k] for k in ("sinc", "sinc_noise", "sonode")},
        high,
        args.rate / 2,
        title=f"{path.name}: above the input's Nyquist ({args.rate / 2000:g} kHz)",
    )
    return {
        "clip": path.name,
        "rate": high,
        "fit_s": fit_s,
        "candidates_s": render_s,
        "fit_snr_db": fitted.info["fit"]["snr_db"],
        "model_energy_above_nyquist_db": fitted.info["fit"].get("energy_above_nyquist_db"),
        "extension": extension.as_dict() if extension else None,
        "scores": scores,
    }


def karplus_strong_clip(
    folder: Path, rate: int = 48000, f0_hz: float = 196.0, seed: int = 0
) -> Path:
    """A clip that is not bundled, so nothing is tuned to the five: a Karplus–Strong pluck
    (Karplus & Strong 1983: a noise burst circulating through a delay line and a two-point
    average, whose partials decay faster the higher they are) at ``rate`` Hz, 1.2 s, plus white
    noise 70 dB down, written as WAV into ``folder``."""
    import soundfile

    rng = np.random.default_rng(seed)
    period = int(round(rate / f0_hz))
    n = int(1.2 * rate)
    y = np.zeros(n)
    y[:period] = rng.uniform(-1, 1, period)
    for i in range(period, n):
        y[i] = 0.996 * 0.5 * (y[i - period] + y[i - period - 1])
    y = 0.5 * y / np.max(np.abs(y)) + 10 ** (-70 / 20) * 0.5 * rng.normal(size=n)
    path = folder / "karplus_strong_G3.wav"
    soundfile.write(path, y, rate, subtype="FLOAT")
    return path


def table(results: list[dict]) -> str:
    methods = list(results[0]["scores"])
    lines = []
    for metric in SHOWN:
        lines += [
            f"#### {metric}",
            "",
            "| method | " + " | ".join(r["clip"] for r in results) + " | median |",
            "|---" * (len(results) + 2) + "|",
        ]
        for m in methods:
            values = [r["scores"][m][metric] for r in results]
            lines.append(
                f"| {m} | "
                + " | ".join(f"{v:.2f}" for v in values)
                + f" | {statistics.median(values):.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path, help="clips (default: data/*.wav)")
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per fit")
    parser.add_argument("--rate", type=int, default=16000, help="input rate (Hz)")
    parser.add_argument(
        "--truth-rate",
        type=int,
        help="resample the truth to this rate first (default: the "
        "clip's); e.g. --truth-rate 16000 --rate 8000 predicts the 16 kHz input's own top octave",
    )
    parser.add_argument(
        "--duration", type=float, default=1.0, help="seconds of each clip (from its start)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--synthetic", action="store_true", help="add a Karplus-Strong pluck (not bundled)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="load the models of an earlier run from --output"
    )
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "outputs" / "bench_upsample")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    clips = args.clips or sorted((ROOT / "data").glob("*.wav"))
    if args.synthetic:
        clips.append(karplus_strong_clip(args.output))
    results = []
    for path in clips:
        print(f"{path.name} ...", flush=True)
        results.append(run_clip(path, args))
    (args.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\n{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, truth {results[0]['rate']} Hz, "
        f"input {args.rate} Hz, "
        f"{args.budget:g} s fits, {args.duration:g} s of each clip, torch {torch.__version__}\n"
    )
    print(table(results))
    for r in results:
        print(
            f"{r['clip']}: fit SNR {r['fit_snr_db']:.2f} dB, model energy above Nyquist "
            f"{r['model_energy_above_nyquist_db']} dB, fit {r['fit_s']:.0f} s, candidates {r['candidates_s']:.1f} s; "
            f"extension {r['extension']}"
        )


if __name__ == "__main__":
    main()
