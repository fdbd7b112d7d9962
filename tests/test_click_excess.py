"""The click check "not explained by the sound around it" (`excess_energy`, `judge`), issue #21."""

import numpy as np
import scipy.signal

from sonode.tasks.click_checks import MIN_EXCESS, EventIsolation, excess_energy, judge, new_sound

RATE = 16000
P = 32


def _ar2(n: int, seed: int) -> tuple[np.ndarray, float]:
    """A resonant AR(2) process (pole radius 0.95 at 1 kHz) driven by unit white noise; (x, σ=1)."""
    w = 2 * np.pi * 1000 / RATE
    noise = np.random.default_rng(seed).standard_normal(n)
    return scipy.signal.lfilter([1.0], [1.0, -2 * 0.95 * np.cos(w), 0.95**2], noise), 1.0


def test_without_a_click_the_excess_is_chi_square_per_sample():
    """Under the AR model the energy the fill removes is σ²·χ²_k: its mean over many spans is k·σ²,
    so the excess per span sample averages 1 (with the exact predictor and σ)."""
    x, sigma = _ar2(200_000, 1)
    w = 2 * np.pi * 1000 / RATE
    a = np.zeros(P + 1)
    a[:3] = [1.0, -2 * 0.95 * np.cos(w), 0.95**2]
    k = 40
    values = [
        excess_energy(x[s - P : s + k + P], P, a, sigma, k) for s in range(1000, 199_000, 500)
    ]
    assert abs(np.mean(values) - 1.0) < 0.05  # 396 spans: the mean's sd is √(2/k)/√396 ≈ 0.011


def test_an_added_burst_counts_per_burst_sample():
    """A burst d on samples [s, s + b) of the AR process: the excess is its whitened energy
    ‖a ∗ d‖² over σ²·b (the process's own χ²_k and the cross term are small beside it), whatever
    the padding around it (the span's length k = b + 2·pad does not dilute it)."""
    w = 2 * np.pi * 1000 / RATE
    a = np.zeros(P + 1)
    a[:3] = [1.0, -2 * 0.95 * np.cos(w), 0.95**2]
    for seed in range(3):
        x, sigma = _ar2(40_000, seed)
        b, s = 6, 20_000
        burst = 20.0 * np.random.default_rng(100 + seed).choice([-1.0, 1.0], b)
        y = x.copy()
        y[s : s + b] += burst
        whitened = np.sum(np.convolve(burst, a[:3]) ** 2) / (sigma**2 * b)
        for pad in (0, 8, 40):
            value = excess_energy(y[s - pad - P : s + b + pad + P], P, a, sigma, b)
            assert abs(value / whitened - 1.0) < 0.06


def _events() -> EventIsolation:
    return EventIsolation(np.array([]))  # no tail: the rarity check does not decide


def test_a_burst_the_fill_explains_is_not_a_click():
    """The same burst judged with the excess just under and just over MIN_EXCESS: only the change
    of the excess decides, and the reason says why."""
    below = judge((0.0, 0.0, 0.9 * MIN_EXCESS), 10.0, _events())
    above = judge((0.0, 0.0, 1.1 * MIN_EXCESS), 10.0, _events())
    assert not below[0] and "explained by the sound around it" in below[1]
    assert above[0] and "beyond the fill" in above[1]
    assert not judge((0.0, 0.0, float("nan")), 10.0, _events())[0]


def test_new_sound_measures_the_excess_of_an_added_click():
    """On a held two-partial tone with a little noise, a 4-sample click of 0.3 shows a whitened
    power far above MIN_EXCESS; the tone without it, far below."""
    t = np.arange(RATE) / RATE
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 660 * t + 1)
    x += 1e-3 * np.random.default_rng(4).standard_normal(t.size)
    start, end = 8000 - 8, 8004 + 32
    clean = new_sound(x, RATE, start, end, 4)
    y = x.copy()
    y[8000:8004] += 0.3 * np.exp(-np.arange(4) / 2.0)
    damaged = new_sound(y, RATE, start, end, 4)
    assert clean is not None and damaged is not None
    assert clean[2] < 0.2 * MIN_EXCESS < 10 * MIN_EXCESS < damaged[2]
