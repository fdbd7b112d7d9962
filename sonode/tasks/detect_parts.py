"""The parts of dropout and click detection (`sonode.tasks.detect` describes the method): what a
block of a channel yields — levels, runs and repeats, the prediction residual. The click candidates
and their judging are in `sonode.tasks.detect_clicks`; `sonode.tasks.detect_blocks` runs them over
a channel block by block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.signal

SOUNDING_DB = -30.0
QUIET_DB = -60.0
MIN_RUN_S = 0.0005
MAX_REPEAT_LAG_S = 0.2
LP_ORDER = 32
BLOCK_S = 0.05
REPEAT_VERIFY_BATCH = 1 << 16  # window pairs compared at once (× window × 16 B of memory)
RESIDUAL_BATCH_BLOCKS = 512  # blocks whose predictors are found together (bounds the memory)


@dataclass(frozen=True)
class Defect:
    """Samples [start, end) of one defect, its kind ("zeros", "hold", "repeat", "click") and why."""

    start: int
    end: int
    kind: str
    reason: str = ""  # why it was flagged, one line with the measured figures (--dry-run lists it)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=False)
    )


class _Loudness:
    """Local RMS over 10 ms windows, to tell sounding passages from pauses.

    ``x`` holds samples [origin, origin + x.size) of a channel of ``total`` samples (default: all
    of it); ``loudest`` is the channel's loudest 20 ms mean square (default: measured on ``x``),
    so a block of a long file is judged against the whole file's level. Positions are global."""

    def __init__(
        self,
        x: np.ndarray,
        rate: int,
        loudest: float | None = None,
        origin: int = 0,
        total: int | None = None,
    ):
        self.window = max(1, int(0.01 * rate))
        self.energy = np.concatenate([[0.0], np.cumsum(x**2)])
        self.origin, self.total = origin, x.size if total is None else total
        loudest = loudest_mean_square(x, rate) if loudest is None else loudest
        self.threshold = loudest * 10 ** (SOUNDING_DB / 10)
        self.quiet = loudest * 10 ** (QUIET_DB / 10)

    def before(self, start: int) -> float:
        """Mean square of the 10 ms before global position ``start`` (inside this block)."""
        i = start - self.origin
        return (self.energy[i] - self.energy[max(0, i - self.window)]) / self.window

    def after(self, end: int) -> float:
        """Mean square of the 10 ms from global position ``end`` (inside this block)."""
        i, n = end - self.origin, self.energy.size - 1
        return (self.energy[min(n, i + self.window)] - self.energy[i]) / self.window

    def sounding(self, start: int, end: int, before: float, after: float, one_side: bool) -> bool:
        """The rule of `sounding_around` on the energies ``before`` ``start`` and ``after`` ``end``."""
        if start < self.window or end + self.window > self.total:
            return False
        if one_side:
            return max(before, after) >= self.threshold and min(before, after) >= self.quiet
        return min(before, after) >= self.threshold

    def sounding_around(self, start: int, end: int, one_side: bool = False) -> bool:
        """The 10 ms before ``start`` and the 10 ms after ``end`` are sounding; with ``one_side``,
        one of them is and the other is at least QUIET_DB re the loudest (not digital silence:
        a dropout may run from a note into the quiet end of a word)."""
        if start < self.window or end + self.window > self.total:
            return False
        return self.sounding(start, end, self.before(start), self.after(end), one_side)


def loudest_mean_square(x: np.ndarray, rate: int) -> float:
    """Mean square of the loudest 20 ms of ``x`` (n,) (of all of it when shorter)."""
    w20 = max(1, int(0.02 * rate))
    if x.size <= w20:
        return float(np.mean(x**2))
    energy = np.concatenate([[0.0], np.cumsum(x**2)])
    return float(np.max(energy[w20:] - energy[:-w20]) / w20)


def min_run_samples(rate: int) -> int:
    """The shortest run of identical samples taken for a dropout (MIN_RUN_S, at least 4)."""
    return max(4, int(round(MIN_RUN_S * rate)))


def run_defect(
    start: int, end: int, value: float, rate: int, loud: _Loudness, before: float, after: float
) -> Defect | None:
    """The defect of a run [start, end) of samples equal to ``value``, if long enough and inside a
    sounding passage (``before``/``after``: the mean squares around it, see `_Loudness`)."""
    if end - start < min_run_samples(rate) or not loud.sounding(
        start, end, before, after, one_side=True
    ):
        return None
    kind = "zeros" if value == 0 else "hold"
    reason = (
        f"{end - start} identical samples ({(end - start) / rate * 1000:.1f} ms"
        f"{'' if kind == 'zeros' else f' at {value:.6g}'}) inside a sounding passage"
    )
    return Defect(start, end, kind, reason)


def repeat_width(rate: int) -> int:
    """Samples per window compared by `repeat_mask`."""
    return max(8, int(round(MIN_RUN_S * rate)))


def repeat_mask(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask (n,) bool, lag (n,) int64): samples inside a window equal to the audio at most
    MAX_REPEAT_LAG_S earlier, and at each such window's start the lag of the copy it repeats.
    The mask at n depends on x[n − lag − width, n + width) only (block-wise detection relies on it)."""
    width = repeat_width(rate)
    mask = np.zeros(x.size, dtype=bool)
    lag = np.zeros(x.size, dtype=np.int64)
    if x.size < 2 * width:
        return mask, lag
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    # A random linear hash of each window (int64 arithmetic wraps; equal windows, equal hashes).
    # The bits are mixed first (multiply, xor-shift): 16-bit audio as float64 has its low ~37
    # mantissa bits zero, so the plain linear hash kept ~27 bits and a 3-minute channel had 1.6
    # million colliding values (4 million windows to compare: 3/4 of --detect's time on a song).
    weights = np.random.default_rng(0).integers(1, 2**62, size=width, dtype=np.int64)
    with np.errstate(over="ignore"):
        mixed = bits * np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15, Fibonacci hashing
        mixed ^= mixed >> 29
        hashes = np.lib.stride_tricks.sliding_window_view(mixed, width) @ weights
    # Only windows whose hash occurs twice can repeat: an unstable sort of the values finds those
    # hashes, and only their windows are sorted stably (by hash, then position). Sorting every
    # window stably cost 4.5 s of a 3-minute channel at 44.1 kHz, this 1.5 s.
    values = np.sort(hashes)
    repeated = np.unique(values[1:][values[1:] == values[:-1]])
    if repeated.size == 0:
        return mask, lag
    slot = np.minimum(np.searchsorted(repeated, hashes), repeated.size - 1)
    candidates = np.flatnonzero(repeated[slot] == hashes)
    order = candidates[np.argsort(hashes[candidates], kind="stable")]
    same = hashes[order[1:]] == hashes[order[:-1]]
    later, earlier = order[1:][same], order[:-1][same]
    close = (later - earlier > 0) & (later - earlier <= MAX_REPEAT_LAG_S * rate)
    # Constant windows (digital silence, a held value) repeat trivially and are runs, not repeats:
    # dropped before the exact comparison (one ptp per pair cost ~4 s of a 3-minute song).
    changes = np.concatenate([[0], np.cumsum(x[1:] != x[:-1])])
    varying = changes[width - 1 :] - changes[: changes.size - width + 1] > 0  # per window start
    later, earlier = later[close], earlier[close]
    keep = varying[later]
    later, earlier = later[keep], earlier[keep]
    # The pairs compared exactly, a batch at a time (a periodic file pairs every window: one
    # Python comparison per window took minutes on an hour of audio).
    windows = np.lib.stride_tricks.sliding_window_view(x, width)
    equal = np.zeros(later.size, dtype=bool)
    for i in range(0, later.size, REPEAT_VERIFY_BATCH):
        part = slice(i, i + REPEAT_VERIFY_BATCH)
        equal[part] = np.all(windows[later[part]] == windows[earlier[part]], axis=1)
    starts = later[equal]
    lag[starts] = starts - earlier[equal]
    cover = np.bincount(starts, minlength=x.size + 1) - np.bincount(
        starts + width, minlength=x.size + 1
    )
    mask[:] = np.cumsum(cover[: x.size]) > 0  # inside some verified window
    return mask, lag


def repeat_defect(
    start: int, end: int, lag: int, rate: int, loud: _Loudness, before: float, after: float
) -> Defect | None:
    """The defect of a repeated stretch [start, end) (a copy of the audio ``lag`` samples earlier)
    if inside a sounding passage (``before``/``after`` as in `run_defect`)."""
    if not loud.sounding(start, end, before, after, one_side=False):
        return None
    return Defect(
        start,
        end,
        "repeat",
        f"{end - start} samples ({(end - start) / rate * 1000:.1f} ms) equal to the audio "
        f"{lag / rate * 1000:.1f} ms earlier, inside a sounding passage",
    )


def prediction_residual(x: np.ndarray, rate: int, origin: int = 0) -> np.ndarray:
    """Forward prediction error (n,) of an order-LP_ORDER predictor fitted per BLOCK_S block
    (on the block and LP_ORDER samples before it, so the filter starts with its true history).
    ``origin``: the channel position of x[0]; the blocks start at multiples of BLOCK_S of the
    channel, so a part of a file gets the residual of the whole file away from its ends.

    All blocks at once: autocorrelations by one batched FFT, the predictors by Levinson's
    recursion vectorised over blocks (`batched_levinson`), the errors by the product of spectra.
    Burg block by block (the predictor before) took 7-11 s of a 3-minute 44.1 kHz channel on the
    shared machine; this about a second. Same order, same blocks."""
    block = max(4 * LP_ORDER, int(BLOCK_S * rate))
    p = LP_ORDER
    lead = origin % block  # zeros before x up to the channel's block grid
    n_blocks = -(-(lead + x.size) // block)
    padded = np.concatenate([np.zeros(p + lead), x, np.zeros(n_blocks * block - x.size - lead)])
    residual = np.empty(n_blocks * block)
    for first in range(0, n_blocks, RESIDUAL_BATCH_BLOCKS):  # bounded memory on long files
        rows = np.arange(first, min(n_blocks, first + RESIDUAL_BATCH_BLOCKS))
        # (B, p + L): each block with the p samples before it (zeros before the clip's start)
        segments = np.lib.stride_tricks.sliding_window_view(padded, p + block)[rows * block]
        # lags ≤ p and the filter's p taps: n_fft ≥ p + L + p keeps both free of wrap-around
        n_fft = scipy.fft.next_fast_len(2 * p + block + 1, real=True)
        spectrum = scipy.fft.rfft(segments, n_fft, axis=1)
        r = scipy.fft.irfft(np.abs(spectrum) ** 2, n_fft, axis=1)[:, : p + 1]
        a = batched_levinson(r)  # (B, p + 1)
        # e[n] = Σ_k a[k] x[n − k]: the product of the spectra, the block's own samples kept
        e = scipy.fft.irfft(spectrum * scipy.fft.rfft(a, n_fft, axis=1), n_fft, axis=1)
        residual[first * block : (rows[-1] + 1) * block] = e[:, p : p + block].ravel()
    return residual[lead : lead + x.size]


def batched_levinson(r: np.ndarray) -> np.ndarray:
    """Prediction-error filters (B, p + 1), a[:, 0] = 1, of the autocorrelations ``r`` (B, p + 1)
    by Levinson-Durbin, one vector step per order for all rows. A row whose error reaches
    round-off (silence, or an exactly predictable block) keeps its lower-order filter."""
    n_rows, order = r.shape[0], r.shape[1] - 1
    a = np.zeros((n_rows, order + 1))
    a[:, 0] = 1.0
    error = r[:, 0].copy()
    floor = 1e-12 * np.maximum(r[:, 0], np.finfo(float).tiny)
    for m in range(1, order + 1):
        live = error > floor
        acc = np.einsum("ij,ij->i", a[:, :m], r[:, m:0:-1])
        k = np.where(live, -acc / np.where(live, error, 1.0), 0.0)
        a[:, : m + 1] += k[:, None] * a[:, m::-1]
        error = error * (1.0 - k**2)
    return a
