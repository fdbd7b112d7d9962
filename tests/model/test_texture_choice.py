"""The texture chosen per clip on the held-back end (`sonode.model.texture_choice`) and the level a
held note's cycle holds (`sonode.model.cycle_level`), on synthetic notes."""

import numpy as np
from scipy.signal import lfilter

from sonode.model.continuation import identify_continuation
from sonode.model.predict import Tail, fit_dynamics, hold_cycle

RATE = 8000
PARTIALS = ((220.0, 1.0, 0.1), (440.0, 0.5, 1.0), (660.0, 0.3, 2.0), (880.0, 0.2, 0.5))


def note(decay_per_s: float, noise: float, noise_decay_per_s: float, step_db: float = 0.0):
    """1.2 s of four harmonic partials (amplitude e^{−decay·t}) plus low-passed noise (e^{−noise
    decay·t}), peak 1; ``step_db``: its last 0.1 s that much louder."""
    t = np.arange(int(1.2 * RATE)) / RATE
    x = sum(a * np.exp(-decay_per_s * t) * np.sin(2 * np.pi * f * t + p) for f, a, p in PARTIALS)
    drive = np.random.default_rng(0).standard_normal(t.shape[0])
    x = x + noise * np.exp(-noise_decay_per_s * t) * lfilter([1.0], [1.0, -0.9], drive)
    x[t >= t[-1] - 0.1] *= 10 ** (step_db / 20)
    return x / np.abs(x).max()


def choice(x: np.ndarray) -> dict:
    report = fit_dynamics(Tail.from_fit(identify_continuation(x, RATE), RATE), x, RATE, 0)
    return report["texture"]


def test_a_held_noisy_note_gets_its_texture():
    # the mean loses the noise between the partials within 50 ms; the sound keeps it
    chosen = choice(note(0.0, 0.1, 0.0))
    assert chosen["chosen"], chosen
    assert chosen["lsd"][1] < chosen["lsd"][0] - 0.2 and chosen["texture_to_error_db"] <= 0


def test_a_pluck_whose_noise_falls_faster_than_its_partials_gets_none():
    # the texture would restore the noise at its level over the last 0.5 s (capped 3 dB above the
    # last frame), where the sound's noise has fallen by tens of dB: the spectrum moves away
    chosen = choice(note(1.0, 1.0, 5.0))
    assert not chosen["chosen"], chosen
    assert chosen["lsd"][1] > chosen["lsd"][0]


def level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x**2)))


def test_the_cycle_holds_the_notes_level_over_half_a_second_not_the_state_windows():
    for step_db in (3.0, -3.0):  # the state's window (the last 64 ms) louder, then quieter
        x = note(0.0, 0.02, 0.0, step_db)
        tail = Tail.from_fit(identify_continuation(x, RATE), RATE)
        note_db = level_db(x[-RATE // 2 :])
        assert abs(level_db(x[-RATE // 10 :]) - note_db - 0.75 * step_db) < 0.5
        hold_cycle(tail, RATE)  # the window's level
        window_db = level_db(tail.continue_clip(2 * RATE, RATE)[RATE // 2 :]) - note_db
        hold_cycle(tail, RATE, x)
        held_db = level_db(tail.continue_clip(2 * RATE, RATE)[RATE // 2 :]) - note_db
        assert abs(window_db) > 1.5 and np.sign(window_db) == np.sign(step_db)
        if step_db > 0:  # a window louder than the note: the note's level
            assert abs(held_db) < 0.6, (step_db, window_db, held_db)
        else:  # quieter: never raised (the texture fills what the mean lacks)
            assert abs(held_db - window_db) < 0.3, (step_db, window_db, held_db)
