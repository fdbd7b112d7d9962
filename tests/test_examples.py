"""The scripts in examples/ run as a user would run them (a subprocess each, short budgets) and
write finite, non-silent audio of the right length."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def run_example(name: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def audible(path: Path) -> tuple[np.ndarray, int]:
    x, rate = sf.read(path, dtype="float64")
    assert np.all(np.isfinite(x)), f"{path.name} has NaN or inf samples"
    assert np.sqrt(np.mean(x**2)) > 1e-3, f"{path.name} is silent"
    return x, rate


def test_upsample_a_file(tmp_path):
    out = tmp_path / "celesta_48k.wav"
    run_example(
        "upsample_file.py",
        str(DATA / "mallet_celesta_Cs5.wav"),
        str(out),
        "--fit-rate",
        "16000",
        "--rate",
        "48000",
        "--duration",
        "0.25",
        "--budget",
        "2",
    )
    x, rate = audible(out)
    assert rate == 48000 and x.shape == (12000,)  # 0.25 s at 48 kHz


def test_continue_a_note(tmp_path):
    out = tmp_path / "guitar_longer.wav"
    run_example(
        "continue_note.py",
        str(DATA / "decaying_steelguitar_C4.wav"),
        str(out),
        "--rate",
        "16000",
        "--duration",
        "0.25",
        "--seconds",
        "0.2",
        "--budget",
        "2",
    )
    x, rate = audible(out)
    assert rate == 16000 and x.shape == (7200,)  # 0.25 s of clip + 0.2 s of continuation
    assert np.sqrt(np.mean(x[4000:] ** 2)) > 1e-3  # the continuation itself is not silent


def test_repair_a_recording(tmp_path):
    stdout = run_example(
        "repair_recording.py",
        str(DATA / "sustained_horn_As3.wav"),
        str(tmp_path),
        "--gap-start",
        "0.6",
        "--gap-ms",
        "20",
    )
    damaged, rate = sf.read(tmp_path / "damaged.wav", dtype="float64")
    repaired, rate_out = audible(tmp_path / "repaired.wav")
    start, end = round(0.6 * rate), round(0.6 * rate) + round(0.02 * rate)
    assert rate_out == rate and repaired.shape == damaged.shape
    assert np.all(damaged[start:end] == 0) and np.sqrt(np.mean(repaired[start:end] ** 2)) > 1e-3
    outside = np.ones(damaged.shape[0], bool)
    outside[start:end] = False
    assert np.array_equal(repaired[outside], damaged[outside])  # only the gap changed
    assert "SNR over the gap" in stdout
