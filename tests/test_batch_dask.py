"""Batch fits on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on 127.0.0.1,
`sonode fit` run against them as a user would (a subprocess), a corrupt clip among good ones, and a
worker killed in the middle of a fit."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from sonode.io.fileutil import written_by_sonode
from tests.cli_support import TWO_STEPS
from tests.dask_hold import HELD, HOLD
from tests.hostile_support import HANG_S
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = [*TWO_STEPS, "--duration", "0.1"]
OUTPUT_SUFFIXES = (".sonode", ".recon.wav", ".fit.json", ".fit.png")


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "DASK_SCHEDULER_ADDRESS": "",
    }


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler on a random free port of 127.0.0.1 and two single-thread workers without nannies
    (so that a killed worker stays dead and its task must move to the other one)."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                BIN / "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                scheduler_file,
            ],
            env=_env(),
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        _wait_for(scheduler_file.exists, HANG_S, "the scheduler")
        _wait_for(lambda: "address" in scheduler_file.read_text(), HANG_S, "the scheduler file")
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        BIN / "dask",
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--preload",
                        "tests.dask_hold",
                    ],
                    env=_env(),
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(address, timeout=HANG_S) as client:
            client.wait_for_workers(2, timeout=HANG_S)
        yield {"address": address, "workers": procs[1:]}
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _clips(folder: Path, names) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, name in enumerate(names):
        sf.write(
            folder / f"{name}.wav",
            two_tone_clip(0.1) * (0.5 + 0.1 * index),
            SAMPLE_RATE,
            subtype="PCM_16",
        )
        paths.append(folder / f"{name}.wav")
    return paths


def _sonode_fit(*args) -> list:
    return [sys.executable, "-m", "sonode.cli", "fit", *map(str, args)]


def _summary(out: Path) -> dict:
    with open(out / "sonode-batch.csv", newline="") as f:
        rows = {Path(r["clip"]).name: r for r in csv.DictReader(f)}
    assert json.loads((out / "sonode-batch.json").read_text())["clips"][0]["clip"].endswith(
        next(iter(rows))
    )
    return rows


def _no_leftovers(out: Path) -> None:
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".ckpt"]
    assert leftovers == [], leftovers


def test_three_clips_and_a_corrupt_one(cluster, tmp_path):
    good = _clips(tmp_path / "in", ["a", "b", "c"])
    (tmp_path / "in" / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    out = tmp_path / "out"
    run = subprocess.run(
        _sonode_fit(tmp_path / "in", "--out-dir", out, "--scheduler", cluster["address"], *TINY),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert run.returncode == 1, run.stderr  # exit code = number of failed clips
    rows = _summary(out)
    assert rows["bad.wav"]["status"] == "failed" and "bad.wav" in rows["bad.wav"]["error"]
    for clip in good:
        row = rows[clip.name]
        assert row["status"] == "ok" and int(row["epochs"]) == 2 and float(row["snr_db"]) > 10, row
        for suffix in OUTPUT_SUFFIXES:
            output = out / f"{clip.stem}{suffix}"
            assert written_by_sonode(output) and row[
                {
                    ".sonode": "model",
                    ".recon.wav": "recon",
                    ".fit.json": "report",
                    ".fit.png": "curve",
                }[suffix]
            ] == str(output)
        recon, rate = sf.read(out / f"{clip.stem}.recon.wav")
        assert (
            rate == SAMPLE_RATE
            and recon.shape == (int(0.1 * SAMPLE_RATE),)
            and 0 < abs(recon).max() < 1
        )
        assert json.loads((out / f"{clip.stem}.fit.json").read_text())["source"]["path"] == str(
            clip
        )
    assert "[4/4]" in run.stderr and "1 failed" in run.stderr
    _no_leftovers(out)
    # A rerun skips the complete clips (their files stay as they are) and retries the bad one.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = subprocess.run(
        _sonode_fit(
            *good,
            tmp_path / "in" / "bad.wav",
            "--out-dir",
            out,
            "--scheduler",
            cluster["address"],
            *TINY,
        ),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert again.returncode == 1, again.stderr
    assert [r["status"] for r in _summary(out).values()] == ["skipped"] * 3 + ["failed"]
    assert all(
        before[f"{c.stem}{s}"] == (out / f"{c.stem}{s}").stat().st_mtime_ns
        for c in good
        for s in OUTPUT_SUFFIXES
    )


def test_a_worker_killed_mid_fit_resumes_elsewhere(cluster, tmp_path):
    """Both workers are fitting (each waits after its first step's checkpoint, tests/dask_hold.py)
    when one is killed: its clip moves to the other worker, resumes from the checkpoint, and every
    clip is completed once, with no leftovers."""
    clips = _clips(tmp_path / "in", ["x", "y"])
    out = tmp_path / "out"
    out.mkdir()
    hold = out / HOLD
    hold.touch()
    args = [*TINY[:1], "40", *TINY[2:], "--checkpoint-every", "1e-9"]
    proc = subprocess.Popen(
        _sonode_fit(*clips, "--out-dir", out, "--scheduler", cluster["address"], *args),
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: len(list(out.glob(f"{HELD}.*"))) == 2, HANG_S, "both fits past step 1")
        victim = cluster["workers"][0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        hold.unlink()
        _, stderr = proc.communicate(timeout=HANG_S)
    finally:
        proc.kill()
    for held in out.glob(f"{HELD}.*"):
        held.unlink()
    assert proc.returncode == 0, stderr
    rows = _summary(out)
    assert [r["status"] for r in rows.values()] == ["ok", "ok"] and [
        int(r["epochs"]) for r in rows.values()
    ] == [40] * 2
    assert sum(r["resumed"] == "True" for r in rows.values()) == 1, rows
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{c.stem}{s}" for c in clips for s in OUTPUT_SUFFIXES]
        + ["sonode-batch.csv", "sonode-batch.json"]
    )
    _no_leftovers(out)
