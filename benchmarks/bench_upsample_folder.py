"""Upsampling scored over folders of recordings: sonode's band extension against sinc, soxr and
shaped noise, per clip and median per category. No model is trained (the `upsample CLIP` path).

    python benchmarks/bench_upsample_folder.py data data/more --synthetic
    python benchmarks/bench_upsample_folder.py /work/corpus --duration 2

Each clip (the first --duration seconds, resampled to --truth-rate = the truth) is band-limited to
--rate with `sonode.io.clip.resample` (the input) and upsampled back by:
sinc (`upsample_sinc`), soxr_hq (libsoxr), sinc_noise (`upsample_shaped_noise`), sonode (the
defaults of `upsample_samples` with the clip's identified oscillators, as `sonode upsample CLIP`),
sonode_static (partials stationary with random phases: no pitch trajectory), sonode_full_level
(no SNR-cost bound: the band at its predicted level), sonode_static_full_level (both: the
model's dynamics compared at the predicted level, where the bound's cut does not weigh partials
against floor) and sonode_synthesis_level (no estimator chosen by pseudo-band-extension: the
synthesis' own levels), sonode_expected (the bound on the "expected" SNR cost: the truth taken
to hold the predicted level), sonode_validated (the "validated" cost: that level less the chosen
estimator's error on the clip's held-back top octave) and, with --cost C, sonode_costC (the bound at C dB); and, as
diagnoses that read the truth, oracle_level (the predicted band scaled by one gain to the
truth's energy above 8 kHz: where it beats shaped noise and sonode does not, sonode loses on its
level alone), oracle_noise_level (shaped noise scaled so) and oracle_truth_band (the truth's own
band above Nyquist, random phases, at the most energy the SNR goal allows an uncorrelated band:
what knowing its shape and level would give).
--only NAME keeps the clips whose names contain NAME.

Scores: SNR (dB); in-band SNR (truth and output both cut at the input's band edge: what goal 1
bounds: below `exact_below_hz`, the cross-over's start); ssr_eval's LSD (gains matched) over all
bins and above the input's Nyquist frequency;
level above 8 kHz (dB, output's energy there over the truth's; 0 is right); what the SNR cost
against sinc is made of: the energy added to sinc's output over sinc's error (dB) and the share of
it the truth cancels (in results.json); per clip, the window of levels at which a band
uncorrelated with the truth meets both the level and the SNR goal (`uncorrelated_window_db`). The category of a
clip is the folder's README table entry when it has one (a "| file | category |" row), else its
name up to the first "_". --png NAME writes the spectrograms of the clips whose names contain NAME
(truth, sinc, sinc_noise, sonode_static, sonode), full band with the input's Nyquist dashed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from upsample_diagnosis import (  # noqa: F401  (uncorrelated_window_db: its test imports it here)
    SPLIT_HZ,
    band_energy,
    diagnosis,
    lowpassed,
    oracle_level,
    oracle_truth_band,
    tradeoff,
    uncorrelated_window_db,
)

from sonode.dsp.metrics import lsd_ssr, snr_db
from sonode.dsp.resample import output_length
from sonode.evaluation.baselines import upsample_shaped_noise, upsample_sinc, upsample_soxr
from sonode.io.clip import read_clip, resample
from sonode.plot.figures import save_band_png
from sonode.tasks.upsample import clip_modes, exact_below_hz, upsample_samples

ROOT = Path(__file__).resolve().parent.parent
SHOWN = ("snr_db", "snr_below_db", "lsd", "lsd_above", "level_above_8k_db")


def scores(
    truth: np.ndarray, x: np.ndarray, rate: int, nyquist: float, edge: float, sinc: np.ndarray
) -> dict:
    lsd = lsd_ssr(truth, x, rate, split_hz=nyquist)
    # what the SNR cost against sinc is made of: the energy added to sinc's output, over sinc's
    # error, and the share of it that the truth's band cancels (2<truth - sinc, added>/|added|²)
    added, missed = x - sinc, truth - sinc
    added_energy = float(np.sum(added**2))
    above = band_energy(x, rate, SPLIT_HZ, rate / 2)
    truth_above = band_energy(truth, rate, SPLIT_HZ, rate / 2)
    return {
        "snr_db": snr_db(truth, x),
        "snr_below_db": snr_db(lowpassed(truth, rate, edge), lowpassed(x, rate, edge)),
        "lsd": lsd["lsd"],
        "lsd_above": lsd["lsd_above"],
        "level_above_8k_db": 10 * np.log10(max(above, 1e-30) / max(truth_above, 1e-30)),
        "added_over_sinc_error_db": 10
        * np.log10(max(added_energy, 1e-30) / max(float(np.sum(missed**2)), 1e-30)),
        "added_correlation": 2 * float(np.dot(missed, added)) / max(added_energy, 1e-30),
    }


def candidates(
    low: np.ndarray, rate_in: int, rate_out: int, costs: tuple[float, ...] = ()
) -> tuple[dict, dict]:
    modes = clip_modes(low, rate_in)
    out = {
        "sinc": upsample_sinc(low, rate_in, rate_out),
        "soxr_hq": upsample_soxr(low, rate_in, rate_out),
        "sinc_noise": upsample_shaped_noise(low, rate_in, rate_out),
    }
    out["sonode"], info = upsample_samples(low, rate_in, rate_out, modes=modes)
    variants = {
        "sonode_static": dict(dynamics=False),
        "sonode_full_level": dict(max_snr_cost_db=None),
        "sonode_static_full_level": dict(max_snr_cost_db=None, dynamics=False),
        "sonode_synthesis_level": dict(level="synthesis"),
        "sonode_expected": dict(snr_cost_case="expected"),
        "sonode_validated": dict(snr_cost_case="validated"),
    } | {f"sonode_cost{c:g}": dict(max_snr_cost_db=c) for c in costs}
    for name, kw in variants.items():
        try:
            out[name], _ = upsample_samples(low, rate_in, rate_out, modes=modes, **kw)
        except TypeError:  # an option this tree does not have
            continue
    return out, (info.as_dict() if info else {})


def categories(folder: Path) -> dict[str, str]:
    """file name -> category from the README.md (of the folder, else its parent) table whose header
    has a "category" column."""
    readme = (
        folder / "README.md" if (folder / "README.md").exists() else folder.parent / "README.md"
    )
    found, column = {}, None
    if readme.exists():
        for line in readme.read_text(errors="replace").splitlines():
            cells = [c.strip(" `*").lower() for c in line.strip().strip("|").split("|")]
            if "category" in cells:
                column = cells.index("category")
            elif (
                column is not None and len(cells) > column and re.search(r"\.(wav|flac)$", cells[0])
            ):
                found[Path(cells[0]).name] = cells[column]
    return found


def synthetic_clips(folder: Path, rate: int = 48000, seconds: float = 2.0) -> list[Path]:
    """Clips not bundled, so nothing is tuned to a folder: a string whose pitch glides up a fifth
    (196 → 294 Hz, partials 1/k with decay growing with frequency) and a tone with 5.5 Hz vibrato
    of ±40 cents (partials 1/k^1.2), both with white noise 70 dB down, written as float WAVs."""
    import soundfile

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    glide = 196.0 * (1.5 ** np.clip(t / seconds, 0, 1))
    vibrato = 440.0 * 2 ** (40 / 1200 * np.sin(2 * np.pi * 5.5 * t))
    paths = []
    for name, f0, power, decay in (
        ("synthetic_glide_string.wav", glide, 1.0, 4e-4),
        ("synthetic_vibrato_tone.wav", vibrato, 1.2, 0.0),
    ):
        phase0 = 2 * np.pi * np.cumsum(f0) / rate
        y = np.zeros_like(t)
        for k in range(1, 200):
            if k * f0.max() > 0.45 * rate:
                break
            y += (
                np.exp(-decay * k * f0 * t)
                * np.cos(k * phase0 + rng.uniform(0, 2 * np.pi))
                / k**power
            )
        y = 0.5 * y / np.max(np.abs(y)) + 10 ** (-70 / 20) * 0.5 * rng.normal(size=t.size)
        paths.append(folder / name)
        soundfile.write(paths[-1], y, rate, subtype="FLOAT")
    return paths


def run_clip(path: Path, category: str, args) -> dict:
    import soundfile

    seconds = min(args.duration, soundfile.info(path).duration)  # shorter clips whole
    truth = read_clip(path, duration_s=seconds, rate=args.truth_rate).samples
    low = resample(truth, args.truth_rate, args.rate)
    n = output_length(low.size, args.rate, args.truth_rate)
    reference = np.pad(truth, (0, max(0, n - truth.size)))[:n]
    start = time.perf_counter()
    outs, info = candidates(low, args.rate, args.truth_rate, tuple(args.cost))
    seconds = time.perf_counter() - start
    if "sonode_full_level" in outs:
        outs["oracle_level"] = oracle_level(
            reference, low, outs["sonode_full_level"], args.rate, args.truth_rate
        )
    # shaped noise at the truth's level too: where it beats oracle_level, noise's shape is better
    outs["oracle_noise_level"] = oracle_level(
        reference, low, outs["sinc_noise"], args.rate, args.truth_rate
    )
    plain, _ = upsample_samples(low, args.rate, args.truth_rate, high_band="none")
    outs["oracle_truth_band"] = oracle_truth_band(
        reference, outs["sinc"], plain, args.truth_rate, args.rate / 2
    )
    edge = exact_below_hz(args.rate, info.get("edge_hz", args.rate / 2))
    result = {
        "uncorrelated_window_db": uncorrelated_window_db(
            reference, outs["sinc"], args.truth_rate, args.rate / 2
        ),
        "clip": path.name,
        "category": category,
        "seconds": seconds,
        "extension": info,
        "scores": {
            k: scores(reference, v, args.truth_rate, args.rate / 2, edge, outs["sinc"])
            for k, v in outs.items()
        },
    }
    if any(p in path.name for p in args.png):
        shown = {k: outs[k] for k in ("sinc", "sinc_noise", "sonode_static", "sonode") if k in outs}
        save_band_png(
            args.output / f"{path.stem}.bands.png",
            reference,
            shown,
            args.truth_rate,
            0.0,
            title=f"{path.name}: {args.rate} Hz input, its Nyquist dashed",
        )
        result["png"] = str(args.output / f"{path.stem}.bands.png")
    return result


def tables(results: list[dict]) -> str:
    methods = list(results[0]["scores"])
    lines = []
    for metric in SHOWN:
        lines += [f"#### {metric}", "", "| clip | category | " + " | ".join(methods) + " |"]
        lines.append("|---" * (len(methods) + 2) + "|")
        for r in results:
            values = " | ".join(
                f"{r['scores'][m][metric]:.2f}" if m in r["scores"] else "" for m in methods
            )
            lines.append(f"| {r['clip']} | {r['category']} | {values} |")
        for cat in sorted({r["category"] for r in results}) + ["all"]:
            rows = [r for r in results if cat in ("all", r["category"])]
            med = " | ".join(
                f"{statistics.median(r['scores'][m][metric] for r in rows):.2f}" for m in methods
            )
            lines.append(f"| **median {cat}** ({len(rows)}) | | {med} |")
        lines.append("")
    return "\n".join(lines)


def goals(results: list[dict]) -> str:
    n = len(results)
    s = [r["scores"] for r in results]
    below_noise = sum(x["sonode"]["lsd_above"] < x["sinc_noise"]["lsd_above"] for x in s)
    level_ok = sum(abs(x["sonode"]["level_above_8k_db"]) <= 3 for x in s)
    level_full = sum(
        abs(x.get("sonode_full_level", x["sonode"])["level_above_8k_db"]) <= 3 for x in s
    )
    window = [r["uncorrelated_window_db"] for r in results if "uncorrelated_window_db" in r]
    in_band = max(abs(x["sonode"]["snr_below_db"] - x["sinc"]["snr_below_db"]) for x in s)
    snr_loss = max(x["sinc"]["snr_db"] - x["sonode"]["snr_db"] for x in s)
    return "\n".join(
        [
            f"- in-band SNR, largest |sonode - sinc|: {in_band:.4f} dB (goal <= 0.05)",
            f"- LSD above Nyquist below sinc_noise's: {below_noise}/{n} = {100 * below_noise / n:.0f} % (goal >= 90 %)",
            f"- level above 8 kHz within +-3 dB: sonode {level_ok}/{n} = {100 * level_ok / n:.0f} %, "
            f"sonode_full_level {level_full}/{n} = {100 * level_full / n:.0f} % (goal >= 80 %)",
            f"- largest full-band SNR loss against sinc: {snr_loss:.2f} dB (goal <= 1.5)",
            f"- an uncorrelated band can meet both the level (-3 dB) and the SNR goal on "
            f"{sum(w >= 0 for w in window)}/{len(window)} clips; the window of levels that does "
            f"is {statistics.median(window) if window else float('nan'):.2f} dB wide (median; "
            "negative: none)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders", nargs="*", type=Path, help="folders of clips (default: data, data/more)"
    )
    parser.add_argument("--rate", type=int, default=16000, help="input rate (Hz)")
    parser.add_argument("--truth-rate", type=int, default=48000, help="truth and output rate (Hz)")
    parser.add_argument(
        "--duration", type=float, default=2.0, help="seconds of each clip (from its start)"
    )
    parser.add_argument(
        "--synthetic", action="store_true", help="add a gliding string and a vibrato tone"
    )
    parser.add_argument(
        "--png", action="append", default=[], help="spectrograms of clips whose name contains this"
    )
    parser.add_argument("--cost", action="append", type=float, default=[], help="also this bound")
    parser.add_argument("--only", action="append", default=[], help="clips whose name has this")
    parser.add_argument(
        "-o", "--output", type=Path, default=ROOT / "outputs" / "bench_upsample_folder"
    )
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    clips = []
    for folder in args.folders or [ROOT / "data", ROOT / "data" / "more"]:
        named = categories(folder)
        for p in sorted(folder.glob("*.wav")) + sorted(folder.glob("*.flac")):
            clips.append((p, named.get(p.name, p.stem.split("_")[0])))
    if args.synthetic:
        clips += [(p, "synthetic") for p in synthetic_clips(args.output)]
    if args.only:
        clips = [(p, c) for p, c in clips if any(o in p.name for o in args.only)]
    results = []
    for path, category in clips:
        print(f"{path.name} ...", flush=True)
        results.append(run_clip(path, category, args))
    (args.output / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    now = datetime.datetime.now(datetime.timezone.utc)
    print(
        f"\n{now:%Y-%m-%d %H:%M} UTC, truth {args.truth_rate} Hz, input {args.rate} Hz, "
        f"{args.duration:g} s of each clip, torch {torch.__version__}\n"
    )
    print(tables(results))
    print(goals(results))
    print("\nThe level/SNR trade-off:\n")
    print(tradeoff(results))
    print("\nWhere sonode's LSD above Nyquist is not below shaped noise's:\n")
    print(diagnosis(results))
    for r in results:
        ext = r["extension"]
        print(
            f"{r['clip']}: {r['seconds']:.1f} s; level estimator {ext.get('level_estimator')} "
            f"{ext.get('level_scores_db')}; f0 {ext.get('f0_hz')}"
        )


if __name__ == "__main__":
    main()
