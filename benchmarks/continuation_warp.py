"""Does a pitch-wander (time-warp) model help the continuation of held notes? Oracle and causal.

    python benchmarks/continuation_warp.py data/more/sustained_*.wav          # ~3 min, 1 thread
    python benchmarks/continuation_warp.py --origins 3 /work/corpus/short48   # sustained_*, glide_*

The continuation (`sonode.model.continuation`, untrained) is identified on the *dewarped* history
(the clip read on the clock τ(t) = ∫ r dt on which its pitch stands still, `read_at`), continued
there, and read back on the clock of a pitch track r(t) of the future: the partials share one
relative pitch deviation δ = r − 1, which is what vibrato and drift are. Each variant is scored
against the fixed-mode continuation of the same history (SNR over 5 / 20 / 50 / 200 ms):

* ``zero warp (control)``: r ≡ 1 through the same reader: what re-reading the history alone
  does to the identification (its validated order and window can change);
* ``coarse oracle``: the clip's `ratio_track` (64 ms frames, 1-cent grid) over history and future;
* ``oracle``: `phase_ratio_track` (the partials' phases, ~0.2 cent) over history and future;
* ``causal + true future``: the history's own phase track for the dewarp (held over its last half
  window, which the track cannot reach), the future's true track after it;
* ``hold``: the history's track, the pitch held at its last value;
  (each row also gives the rms error, in cents over the 200 ms, of the future pitch that ``hold``
  and ``vibrato`` assume, against the oracle track;)
* ``vibrato``: the history's track, then a vibrato oscillator (constant + sinusoid of 3-8 Hz, least
  squares over the track's last VIBRATO_FIT_S) extrapolated: a causal prediction of δ;
* ``vibrato + floor``: ``vibrato`` kept only where the same recipe, run on the history minus its
  last 0.2 s, predicts that held-back end better (mean gain > 0.1 dB, none below −0.3 dB), as
  `sonode.model.predict` keeps a trained part.

With ``--waveform-fit`` the vibrato's four parameters are also refined (Nelder-Mead) on the
waveform prediction 0.2 s ahead from WAVEFORM_ANCHORS anchors over the history's last 0.35 s,
each continued as above ("vibrato (waveform fit)"). r is 1 at the history's last sample in every
variant. One row per clip (the mean over its history ends), then the median gain of each variant.
Measured and discussed in docs/continuation_warp.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.dsp.harmonics import harmonic_series  # noqa: E402
from sonode.dsp.metrics import snr_db  # noqa: E402
from sonode.dsp.pitch_track import phase_ratio_track, ratio_track, read_at  # noqa: E402
from sonode.dsp.resample import upsample_sinc  # noqa: E402
from sonode.io.clip import read_clip, resample  # noqa: E402
from sonode.model.continuation import identify_continuation  # noqa: E402
from sonode.model.init import normalisation  # noqa: E402

RATE = 16000
HORIZON = int(0.2 * RATE)
ORIGIN_STEP = int(0.05 * RATE)
HORIZONS_MS = (5, 20, 50, 200)
TRACK_MAX_HZ = 4000.0  # partials tracked (below the band where breath noise dominates)
VIBRATO_FIT_S = 0.6
VIBRATO_HZ = np.arange(3.0, 8.001, 0.05)
WAVEFORM_ANCHORS = 6
WAVEFORM_SPREAD_S = 0.15
MAX_LOSS_DB, MIN_GAIN_DB = 0.3, 0.1  # the floor of sonode.model.predict
AUDIO = (".wav", ".flac", ".ogg")
FINE = 16  # the waveform fit's fine grid (linear reading there: ~-50 dB at 7 kHz)
READER = ("high", 8)  # `read_at`: 65 dB at 7 kHz of 16 kHz (the default 4x reader: 12 dB)
VARIANTS = (
    "coarse oracle",
    "oracle",
    "causal + true future",
    "hold",
    "vibrato",
    "vibrato + floor",
)


def scores(future: np.ndarray, x: np.ndarray) -> list[float]:
    return [snr_db(future[: RATE * ms // 1000], x[: RATE * ms // 1000]) for ms in HORIZONS_MS]


def fixed(history: np.ndarray, n: int) -> np.ndarray:
    """The untrained continuation (n,) of ``history``, as `extrapolate` identifies it."""
    gain, offset = normalisation(history)
    return identify_continuation((history - offset) / gain, RATE).samples(n, RATE) * gain + offset


def clock(log_ratio: np.ndarray, end: int) -> np.ndarray:
    """τ (s) at every sample of a log-ratio curve (per sample), r = 1 at sample end − 1."""
    r = np.exp(log_ratio - log_ratio[end - 1])
    return np.concatenate([[0.0], np.cumsum(0.5 * (r[1:] + r[:-1]))]) / RATE


def warped(history: np.ndarray, tau: np.ndarray, n: int) -> np.ndarray:
    """Continue ``history`` (N,) on the clock tau (≥ N + n samples): dewarp, continue, read back."""
    size = history.size
    m = int(math.floor(tau[size - 1] * RATE + 1e-9)) + 1  # dewarped samples up to τ(N − 1)
    t = np.arange(size) / RATE
    steady = read_at(history, RATE, np.interp(np.arange(m) / RATE, tau[:size], t) * RATE, *READER)
    ahead = fixed(steady, int((tau[size - 1 + n] - tau[size - 1]) * RATE) + 64)
    return read_at(np.concatenate([steady, ahead]), RATE, tau[size : size + n] * RATE, *READER)


def series_of(x: np.ndarray):
    """The clip's harmonic series, looked for in its top octave, then lower."""
    for band in ((RATE / 4, 0.45 * RATE), (RATE / 8, RATE / 4), (RATE / 16, RATE / 8)):
        found = harmonic_series(x, RATE, band)
        if found is not None:
            return found
    return None


def vibrato(times_s: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
    """[c, a, b, ω]: log r ≈ c + a cos ω(t − t_last) + b sin ω(t − t_last) over the last
    VIBRATO_FIT_S of the track, ω the best of VIBRATO_HZ (least squares)."""
    last = times_s[-1]
    sel = times_s >= last - VIBRATO_FIT_S
    best = (math.inf, None)
    for f in VIBRATO_HZ:
        w = 2 * np.pi * f
        basis = np.stack(
            [
                np.ones(sel.sum()),
                np.cos(w * (times_s[sel] - last)),
                np.sin(w * (times_s[sel] - last)),
            ],
            1,
        )
        coef = np.linalg.lstsq(basis, log_ratio[sel], rcond=None)[0]
        rms = float(np.sqrt(np.mean((basis @ coef - log_ratio[sel]) ** 2)))
        if rms < best[0]:
            best = (rms, np.array([*coef, w]))
    return best[1]


def with_vibrato(times_s, log_ratio, params, n_total):
    """The track up to its last point, then the vibrato joined continuously (per sample)."""
    t = np.arange(n_total) / RATE
    c, a, b, w = params
    s = t - times_s[-1]
    model = c + a * np.cos(w * s) + b * np.sin(w * s)
    model += log_ratio[-1] - (c + a)  # continuous at the last tracked point (s = 0)
    return np.where(t <= times_s[-1], np.interp(t, times_s, log_ratio), model)


def vibrato_continuation(history, series, n, refine=False):
    """The causal warped continuation (n,) of ``history`` with its extrapolated vibrato."""
    times_s, ratio = phase_ratio_track(history, RATE, series, TRACK_MAX_HZ)
    params = vibrato(times_s, np.log(ratio))
    if refine:
        params = waveform_fit(history, series, times_s, np.log(ratio), params)
    lr = with_vibrato(times_s, np.log(ratio), params, history.size + n)
    return warped(history, clock(lr, history.size), n)


def waveform_fit(history, series, times_s, log_ratio, params):
    """The vibrato refined on the prediction 0.2 s ahead from anchors before the history's end;
    each anchor's dewarped continuation is computed once (its track up to the anchor), only the
    read-back clock depends on the parameters."""
    from scipy.optimize import minimize  # a benchmark-only dependency

    end = history.size
    anchors = np.linspace(
        end - HORIZON - int(WAVEFORM_SPREAD_S * RATE), end - HORIZON, WAVEFORM_ANCHORS
    ).astype(int)
    runs = []
    for a in anchors:
        keep = times_s <= times_s[-1] - (end - a) / RATE
        lr_a = np.interp(np.arange(a) / RATE, times_s[keep], log_ratio[keep])
        tau = clock(lr_a, a)
        m = int(math.floor(tau[-1] * RATE + 1e-9)) + 1
        steady = read_at(
            history[:a], RATE, np.interp(np.arange(m) / RATE, tau, np.arange(a)), *READER
        )
        ahead = fixed(steady, int(1.2 * HORIZON) + 64)
        # read back linearly on a fine grid (the Nelder-Mead loss reads it ~300 times)
        fine = upsample_sinc(np.concatenate([steady, ahead]), RATE, FINE * RATE, quality="high")
        runs.append((a, fine, tau[-1], times_s[keep][-1]))
    j = np.arange(0, HORIZON, 4)
    scale = np.array([1e-3, 1e-3, 1e-3, 1.0])

    def loss(q: np.ndarray) -> float:
        c, a_, b, w = q * scale
        total = 0.0
        for a, fine, tau_end, t_last in runs:
            t = (a - 1 + np.arange(HORIZON + 1)) / RATE
            s = t - times_s[-1]
            model = c + a_ * np.cos(w * s) + b * np.sin(w * s)
            at_last = (
                c + a_ * np.cos(w * (t_last - times_s[-1])) + b * np.sin(w * (t_last - times_s[-1]))
            )
            r = np.exp(model - at_last)
            tau = tau_end + np.concatenate([[0.0], np.cumsum(0.5 * (r[1:] + r[:-1]))]) / RATE
            pred = np.interp(tau[1:][j] * FINE * RATE, np.arange(fine.size), fine)
            truth = history[a + j]
            total += 10 * math.log10(np.sum((pred - truth) ** 2) / np.sum(truth**2) + 1e-12)
        return total / len(runs)

    fitted = minimize(loss, params / scale, method="Nelder-Mead", options={"maxfev": 300})
    return fitted.x * scale


def synthetic_vibrato(seconds: float = 1.0) -> np.ndarray:
    """A note whose 12 partials (220 Hz, amplitudes 1/k) share one vibrato exactly: 15 cents at
    5.5 Hz, its rate drifting 5 % over the second, plus -60 dB of white noise. (n,) at RATE. The
    warp's model holds exactly, so the oracle's gain here is what a shared δ can give."""
    t = np.arange(int(seconds * RATE)) / RATE
    cents = 15.0 * np.sin(2 * np.pi * 5.5 * (t + 0.025 * t**2))
    r = 2 ** (cents / 1200)
    tau = np.concatenate([[0.0], np.cumsum(0.5 * (r[1:] + r[:-1]))]) / RATE
    x = sum(np.cos(2 * np.pi * k * 220.0 * tau + k) / k for k in range(1, 13))
    x = 0.5 * x / np.max(np.abs(x))
    return x + 5e-4 * np.random.default_rng(0).standard_normal(t.size)


def origin(low: np.ndarray, end: int, series, refine: bool) -> dict[str, list[float]]:
    """Every variant's gain over the fixed-mode continuation, history low[:end]."""
    history, future = low[:end], low[end : end + HORIZON]
    n_total = end + HORIZON
    t = np.arange(n_total) / RATE
    base = scores(future, fixed(history, HORIZON))
    out = {}
    # the oracle tracks read the whole clip, so their windows reach past the scored span where
    # the clip goes on (at the last history end the track holds over its last window)
    coarse_t, coarse = ratio_track(low, RATE, series, TRACK_MAX_HZ, end / RATE)
    clocks = {"coarse oracle": np.interp(t, coarse_t, np.log(coarse))}
    full_t, full = phase_ratio_track(low, RATE, series, TRACK_MAX_HZ)
    past_t, past = phase_ratio_track(history, RATE, series, TRACK_MAX_HZ)
    lr_full, lr_past = np.interp(t, full_t, np.log(full)), np.interp(t, past_t, np.log(past))
    clocks["oracle"] = lr_full
    joined = lr_full - np.interp(past_t[-1], t, lr_full) + np.log(past[-1])
    clocks["causal + true future"] = np.where(t <= past_t[-1], lr_past, joined)
    clocks["hold"] = lr_past
    clocks["zero warp (control)"] = np.zeros(n_total)  # the reader and re-identification alone
    # how well the causal predictions know the future pitch: rms error (cents) against the oracle
    # track over the scored span, each joined at the history's last tracked point
    future_t = (end + np.arange(HORIZON)) / RATE
    truth = np.interp(future_t, t, joined)
    guess = with_vibrato(past_t, np.log(past), vibrato(past_t, np.log(past)), n_total)
    cents = 1200 / math.log(2)
    pitch_error = [
        cents * float(np.sqrt(np.mean((np.log(past[-1]) - truth) ** 2))),
        cents * float(np.sqrt(np.mean((np.interp(future_t, t, guess) - truth) ** 2))),
    ]
    for name, lr in clocks.items():
        out[name] = scores(future, warped(history, clock(lr, end), HORIZON))
    out["vibrato"] = scores(future, vibrato_continuation(history, series, HORIZON))
    probe, held = history[:-HORIZON], history[-HORIZON:]
    gains = np.subtract(
        scores(held, vibrato_continuation(probe, series, HORIZON)),
        scores(held, fixed(probe, HORIZON)),
    )
    kept = gains.min() >= -MAX_LOSS_DB and gains.mean() > MIN_GAIN_DB
    out["vibrato + floor"] = out["vibrato"] if kept else base
    if refine:
        out["vibrato (waveform fit)"] = scores(
            future, vibrato_continuation(history, series, HORIZON, refine=True)
        )
    gains = {k: list(np.subtract(v, base)) for k, v in out.items()}
    return gains | {"base": base, "pitch error cents (hold, vibrato)": pitch_error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="also a synthetic note whose partials share one vibrato exactly (`synthetic_vibrato`)",
    )
    parser.add_argument("--origins", type=int, default=3, help="history ends 50 ms apart")
    parser.add_argument("--waveform-fit", action="store_true", help="also refine on the waveform")
    args = parser.parse_args()
    clips = [
        f
        for p in args.clips
        for f in (
            sorted(
                q
                for q in p.rglob("*")
                if q.suffix.lower() in AUDIO and q.name.startswith(("sustained_", "glide_"))
            )
            if p.is_dir()
            else [p]
        )
    ]
    torch.set_num_threads(1)
    rows: dict[str, list] = {}
    sources = [(p.name, p) for p in clips] + (
        [("synthetic vibrato", None)] if args.synthetic else []
    )
    for name, path in sources:
        if path is None:
            low = synthetic_vibrato()
        else:
            clip = read_clip(path, duration_s=1.0)
            low = resample(clip.samples, clip.sample_rate, RATE)
        series = series_of(low[: low.size - HORIZON])
        if series is None:
            print(f"{name:34s} no harmonic series: skipped", flush=True)
            continue
        ends = list(range(low.size - HORIZON, 0, -ORIGIN_STEP))[: args.origins]
        per = [origin(low, end, series, args.waveform_fit) for end in ends]
        mean = {k: np.mean([p[k] for p in per], 0) for k in per[0]}
        for k, v in mean.items():
            rows.setdefault(k, []).append(v)
        print(
            f"{name:34s} f0 {series.f0_hz:6.1f} Hz  base "
            + " ".join(f"{v:6.2f}" for v in mean["base"])
            + " | gains "
            + " | ".join(
                f"{k}: " + " ".join(f"{v:+.2f}" for v in mean[k]) for k in mean if k != "base"
            ),
            flush=True,
        )
    if not rows:
        return
    print(f"\nmedian over {len(rows['base'])} clips, SNR at {HORIZONS_MS} ms:")
    print(
        f"  {'fixed modes (base)':24s} " + " ".join(f"{v:6.2f}" for v in np.median(rows["base"], 0))
    )
    error = np.median(rows["pitch error cents (hold, vibrato)"], 0)
    print(
        f"  future pitch error, rms cents over 200 ms: hold {error[0]:.2f}, vibrato {error[1]:.2f}"
    )
    for k, v in rows.items():
        if k not in ("base", "pitch error cents (hold, vibrato)"):
            gains = np.array(v)
            print(
                f"  {k:24s} gain median "
                + " ".join(f"{g:+6.2f}" for g in np.median(gains, 0))
                + "  worst "
                + " ".join(f"{g:+6.2f}" for g in gains.min(0))
                + f"  clips ahead at 50/200 ms {int(np.sum(gains[:, 2] > 0))}/{int(np.sum(gains[:, 3] > 0))}"
            )


if __name__ == "__main__":
    main()
