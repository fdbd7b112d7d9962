"""Can the phases of a harmonic series' partials above the input's Nyquist frequency be predicted?

An added band uncorrelated with the truth adds its whole energy to sinc's error: at −3 dB of the
truth's level above Nyquist that costs ≥ 1.76 dB of SNR (docs/upsampling.md, "The level goal
against the SNR goal"). Only partials whose phases follow the truth's can have both. This measures,
per clip, whether phases predicted from the input are correlated with the truth's:

1. the series (f₀, B) and its pitch track r(t) are found in the 16 kHz input as `sonode upsample`
   finds them (`harmonic_series`, `ratio_track`; clock τ(t) = ∫ r dt);
2. every partial k is demodulated on that clock in Hann frames (4 periods of f₀, at least 32 ms,
   hop 10 ms): z_k = Σ w(n)·x(n)·exp(−i·2π·f_k·τ(n)), phase θ_k, in the input (partials in the top
   octave) and in the 48 kHz truth (partials from 8 kHz to 0.98 × 24 kHz);
3. per frame, the input's phases are fitted by θ_k ≈ α + β·k (a fixed waveform shape moved in
   time: the only phase relation that carries across harmonic numbers; the fit's concentration
   R = |Σ w·e^{i(θ − βk)}| / Σ w is 1 for a sawtooth or a pulse train) and continued upwards.

Printed per clip: R (median over frames); ``hold`` = the prediction of the top octave's upper half
from its lower half, scored in the input itself (weighted mean cos of the phase error: 1 = exact,
0 = random); ``truth`` = the same score of the continued phases against the truth's partials above
8 kHz (amplitude² weighted); ``share`` = the share of the truth's energy above 8 kHz that its
partials of the series hold (an oracle bound: a band of those partials with the truth's phases
would have that correlation² with it); ``rho`` = truth × √share, the expected correlation of a
phase-predicted band (with the truth's partial amplitudes) with the truth's band above 8 kHz; and
``rho_random`` the same with random phases (one draw), for scale. Where the level goal (−3 dB)
meets the SNR goal (1.5 dB) needs rho ≥ 0.06 (docs/upsampling.md).

    python benchmarks/bench_partial_phase.py data/more /work/corpus/short48 --synthetic
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_upsample_folder import synthetic_clips  # noqa: E402

from sonode.dsp.bandwidth import band_edge_hz, fit_band  # noqa: E402
from sonode.dsp.harmonics import harmonic_series  # noqa: E402
from sonode.dsp.pitch_track import (  # noqa: E402
    dewarped,
    ratio_track,
    track_depth_cents,
    warped_time,
)
from sonode.io.clip import read_clip, resample  # noqa: E402
from sonode.tasks.band_extension import loudest_series  # noqa: E402
from sonode.tasks.upsample import clip_modes  # noqa: E402

HOP_S = 0.010
SPLIT_HZ = 8000.0


def demodulated(
    x: np.ndarray, rate: int, tau: np.ndarray, f_k: np.ndarray, centres_s: np.ndarray, f0: float
) -> np.ndarray:
    """z_k per frame: (n_frames, K) complex, Hann frames of max(4/f₀, 32 ms) around ``centres_s``,
    demodulated on the clock ``tau`` ((n,) s at ``rate``)."""
    half = int(max(4 / f0, 0.032) * rate / 2)
    window = np.hanning(2 * half + 1)
    out = np.zeros((centres_s.size, f_k.size), dtype=complex)
    for i, c in enumerate(np.round(centres_s * rate).astype(int)):
        sl = slice(c - half, c + half + 1)
        basis = np.exp(-2j * np.pi * np.outer(tau[sl], f_k))  # (L, K)
        out[i] = (window * x[sl]) @ basis / np.sum(window) * 2
    return out


def linear_fit(theta: np.ndarray, w: np.ndarray, k: np.ndarray) -> tuple[float, float, float]:
    """(α, β, R) maximising |Σ w·e^{i(θ − βk)}| over β on a 0.5° grid."""
    betas = np.linspace(-np.pi, np.pi, 720, endpoint=False)
    sums = (w * np.exp(1j * theta))[None, :] @ np.exp(-1j * np.outer(k, betas))
    j = int(np.argmax(np.abs(sums[0])))
    return float(np.angle(sums[0, j])), float(betas[j]), float(np.abs(sums[0, j]) / np.sum(w))


def run(path: Path, args) -> dict | None:
    import soundfile

    seconds = min(args.duration, soundfile.info(path).duration)
    truth = read_clip(path, duration_s=seconds, rate=args.truth_rate).samples
    low = resample(truth, args.truth_rate, args.rate)
    edge = band_edge_hz(low, args.rate)
    band = fit_band(edge, args.rate / 2)
    partials = harmonic_series(low, args.rate, band, clip_modes(low, args.rate))
    ref_time_s = None
    if partials is None:  # as `extend_band`: a glide smears the whole clip's series
        ref_time_s, partials = loudest_series(low, args.rate, band)
    if partials is None:
        return None
    times_s, ratio = ratio_track(low, args.rate, partials, band[1], ref_time_s)
    if track_depth_cents(ratio) > 3.0:  # as `extend_band`: the series where it stands still
        partials = harmonic_series(dewarped(low, args.rate, (times_s, ratio)), args.rate, band) or (
            partials
        )
    f0 = partials.f0_hz
    k_all = np.arange(1, int(0.49 * args.truth_rate / f0) + 1, dtype=np.float64)
    f_all = partials.frequency(k_all)
    half_s = max(4 / f0, 0.032) / 2 + 0.002
    centres = np.arange(half_s, seconds - half_s, HOP_S)
    tau_in = warped_time(times_s, ratio, low.size, args.rate)
    tau_out = warped_time(times_s, ratio, truth.size, args.truth_rate)
    inside = (f_all >= band[0]) & (f_all < edge)
    above = (f_all >= SPLIT_HZ) & (f_all < 0.98 * args.truth_rate / 2)
    if np.sum(inside) < 4 or not np.any(above):
        return None
    z_in = demodulated(low, args.rate, tau_in, f_all[inside], centres, f0)
    z_hi = demodulated(truth, args.truth_rate, tau_out, f_all[above], centres, f0)
    k_in, k_hi = k_all[inside], k_all[above]
    lower = k_in < np.median(k_in)
    rng = np.random.default_rng(0)
    conc, hold_num, hold_den, num, num_random, den = [], 0.0, 0.0, 0.0, 0.0, 0.0
    for z, zt in zip(z_in, z_hi, strict=True):
        w, theta = np.abs(z), np.angle(z)
        alpha, beta, r = linear_fit(theta, w, k_in)
        conc.append(r)
        a2, b2, _ = linear_fit(theta[lower], w[lower], k_in[lower])
        err = theta[~lower] - (a2 + b2 * k_in[~lower])
        hold_num += float(np.sum(w[~lower] ** 2 * np.cos(err)))
        hold_den += float(np.sum(w[~lower] ** 2))
        p = np.abs(zt) ** 2
        num += float(np.sum(p * np.cos(np.angle(zt) - (alpha + beta * k_hi))))
        num_random += float(np.sum(p * np.cos(np.angle(zt) - rng.uniform(0, 2 * np.pi, k_hi.size))))
        den += float(np.sum(p))
    spectrum = np.fft.rfft(truth)
    spectrum[np.fft.rfftfreq(truth.size, 1 / args.truth_rate) < SPLIT_HZ] = 0
    hi = np.fft.irfft(spectrum, n=truth.size)
    n = slice(int(centres[0] * args.truth_rate), int(centres[-1] * args.truth_rate))
    p_hi = float(np.mean(hi[n] ** 2))
    share = min(1.0, den / centres.size / 2 / max(p_hi, 1e-300))  # A²/2 per partial
    score = num / max(den, 1e-300)
    return {
        "clip": path.name,
        "f0_hz": f0,
        "depth_cents": track_depth_cents(ratio),
        "n_above": int(np.sum(above)),
        "R": statistics.median(conc),
        "hold": hold_num / max(hold_den, 1e-300),
        "truth": score,
        "share": share,
        "rho": score * math.sqrt(share),
        "rho_random": num_random / max(den, 1e-300) * math.sqrt(share),
    }


def control_clip(
    folder: Path, rate: int = 48000, seconds: float = 2.0, random_phases: bool = False
) -> Path:
    """The measurement's own check: a sawtooth (every partial in the same phase, 1/k) with ±40 cent
    vibrato at 5.5 Hz on 330 Hz, white noise 70 dB down. Its phases are exactly linear in k, so
    ``truth`` must come out near 1 (with ``random_phases``, a phase per partial: near 0)."""
    import soundfile

    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(330.0 * 2 ** (40 / 1200 * np.sin(2 * np.pi * 5.5 * t))) / rate
    ks = np.arange(1, int(0.45 * rate / 350))
    offsets = rng.uniform(0, 2 * np.pi, ks.size) if random_phases else np.zeros(ks.size)
    y = sum(np.sin(k * phase + o) / k for k, o in zip(ks, offsets, strict=True))
    y = 0.5 * y / np.max(np.abs(y)) + 10 ** (-70 / 20) * 0.5 * rng.normal(size=t.size)
    name = "control_random_phases.wav" if random_phases else "control_sawtooth_vibrato.wav"
    soundfile.write(folder / name, y, rate, subtype="FLOAT")
    return folder / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--truth-rate", type=int, default=48000)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--only", default="", help="clips whose name contains this")
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs/bench_partial_phase"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    clips = [p for f in args.folders for p in sorted(f.glob("*.wav")) + sorted(f.glob("*.flac"))]
    if args.synthetic:
        clips += synthetic_clips(args.output) + [control_clip(args.output)]
    keys = ("f0_hz", "depth_cents", "n_above", "R", "hold", "truth", "share", "rho", "rho_random")
    print("| clip | " + " | ".join(keys) + " |\n" + "|---" * (len(keys) + 1) + "|")
    rows = []
    for path in clips:
        if args.only not in path.name:
            continue
        row = run(path, args)
        if row is None:
            print(f"| {path.name} | no harmonic series with partials in and above the band |")
            continue
        rows.append(row)
        print(f"| {row['clip']} | " + " | ".join(f"{row[k]:.3g}" for k in keys) + " |", flush=True)
    if rows:
        med = " | ".join(f"{statistics.median(r[k] for r in rows):.3g}" for k in keys)
        print(f"| **median** ({len(rows)}) | {med} |")
        print(f"rho >= 0.06 on {sum(r['rho'] >= 0.06 for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
