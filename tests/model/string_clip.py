"""A string whose decay and pitch depend on its amplitude (linear modes cannot follow it), shared
by the continuation's tests (tests/model/test_predict.py, test_end_decay_order.py)."""

import numpy as np
import torch
from scipy.integrate import solve_ivp

from sonode.model import predict

RATE = 8000
STRING_HZ = (220.0, 440.0)
STRING_AMPLITUDES = (1.0, 0.5)


def string(n_samples: int) -> np.ndarray:
    """Two partials with dc/dt = (−(0.5 + 2E) + i2πf(1 + 0.05E)) c, E = Σ|c|²: the decay falls and
    the pitch glides down as the string rings down (tension modulation), plus −80 dB of noise."""
    f = np.array(STRING_HZ)

    def rhs(t, y):
        c = y[:2] + 1j * y[2:]
        e = np.sum(np.abs(c) ** 2)
        dc = (-(0.5 + 2.0 * e) + 2j * np.pi * f * (1 + 0.05 * e)) * c
        return np.concatenate([dc.real, dc.imag])

    t = np.arange(n_samples) / RATE
    y = solve_ivp(
        rhs,
        (0, t[-1]),
        np.concatenate([STRING_AMPLITUDES, [0.0, 0.0]]),
        t_eval=t,
        rtol=1e-10,
        atol=1e-12,
        method="DOP853",
    ).y
    return y[0] + y[1] + 1e-4 * np.random.default_rng(0).standard_normal(n_samples)


def set_strings_glide(monkeypatch) -> None:
    """The glide fit replaced by the glide L-BFGS finds on the string's 0.8 s history (seconds
    saved), the mode fit off, and the glide's 1.2 dB loss at 20 ms (59.2 against 60.5) allowed,
    so that the end decays that follow a kept glide are reached."""

    def glide(tail, *args, **kwargs):
        with torch.no_grad():
            tail.field.glide.copy_(torch.tensor([0.0, 0.0099], dtype=torch.float64))
        return {"glide": [0.0, 0.0099]}

    monkeypatch.setattr(predict, "fit_glide", glide)
    monkeypatch.setattr(predict, "FIT_MODES", False)
    monkeypatch.setattr(predict, "MAX_LOSS_DB", 2.0)
