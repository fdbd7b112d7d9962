"""`sonode fit` under SIGINT, SIGTERM and kill -9 (real subprocesses), --resume, and determinism."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from sonode.api import load
from sonode.cli import EXIT_INTERRUPTED, main
from sonode.io.model_file import load_model_file
from sonode.model.checkpoint import CHECKPOINT_KIND, CHECKPOINT_VERSION
from tests.cli_support import TINY_MODEL
from tests.hostile_support import HANG_S, stopped
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

ROOT = Path(__file__).resolve().parents[1]
SMALL = [*TINY_MODEL, "--continuation-steps", "2"]
STEPS = 8  # the stopping rule of the runs that are compared bit for bit
TIMEOUT_S = HANG_S  # a hang net only: every wait here is for an announced state
CLIP_S = 0.1  # short: the subprocesses should spend their time on the signals, not on fitting


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("signals") / "tone.wav"
    sf.write(path, two_tone_clip(CLIP_S), SAMPLE_RATE, subtype="PCM_16")
    return path


# `python -m sonode`, frozen once a checkpoint after the first step is written (tests/phase_trace.py)
_HELD = (
    "import runpy, sys\n"
    "import tests.phase_trace\n"
    "tests.phase_trace.hold_after_checkpoint(epoch=1)\n"
    "sys.argv = ['sonode'] + sys.argv[1:]\n"
    "runpy.run_module('sonode', run_name='__main__')\n"
)


class _Fit:
    """`python -m sonode fit` (as the `sonode` command runs) in a subprocess, its stderr collected
    as it arrives; with ``held``, stopped (SIGSTOP) after its first checkpoint past step 1."""

    def __init__(self, clip, model, *extra, held: bool = False):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *(["-c", _HELD] if held else ["-m", "sonode"]),
                "fit",
                str(clip),
                "-o",
                str(model),
                *SMALL,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.stderr = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        # the progress line is rewritten with \r and no newline: read raw chunks, not lines
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self.stderr += chunk

    def wait_for(self, condition, what):
        deadline = time.monotonic() + TIMEOUT_S
        while not condition():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"never saw {what}; stderr: {self.stderr.decode(errors='replace')}")
            time.sleep(0.01)

    def finish(self):
        code = self.proc.wait(timeout=TIMEOUT_S)
        self._reader.join(timeout=10)
        return code, self.stderr.decode(errors="replace")


def _fit_in_process(clip, model, *extra):
    result = CliRunner().invoke(
        main, ["fit", str(clip), "-o", str(model), *SMALL, "--quiet", *map(str, extra)]
    )
    assert result.exit_code == 0, result.output
    return model


def _assert_same_model(a, b):
    """Model files leave wall-clock figures out, so equal fits give byte-identical files."""
    assert a.read_bytes() == b.read_bytes()


@pytest.fixture(scope="module")
def reference(clip, tmp_path_factory):
    """An uninterrupted `fit --steps STEPS`."""
    return _fit_in_process(
        clip, tmp_path_factory.mktemp("reference") / "tone.sonode", "--steps", STEPS
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_the_best_model_and_exits_130(clip, tmp_path, signum):
    model = tmp_path / "tone.sonode"
    # held after step 1 (its checkpoint written), so the signal finds it training whatever the
    # load: seen on the progress line only, a fast fit could end before the signal was sent
    fit = _Fit(clip, model, "--max-time", "300", "--checkpoint-every", "1e-9", held=True)
    fit.wait_for(lambda: stopped(fit.proc.pid), "the fit to stop after step 1")
    fit.proc.send_signal(signum)
    fit.proc.send_signal(signal.SIGCONT)
    code, stderr = fit.finish()
    assert code == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr
    messages = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(messages) == 1 and signum.name in messages[0] and str(model) in messages[0], stderr
    assert "--resume" in messages[0]
    fitted = load(model)  # loads: a complete, valid model file
    assert fitted.info["fit"]["stop_reason"] == "interrupted"
    assert (tmp_path / "tone.fit.json").exists()
    # the reconstruction and the curve (seconds of render and matplotlib) are left to `sonode
    # render` and `sonode plot`, and said so: the exit took 2-15 s before #30
    assert not (tmp_path / "tone.recon.wav").exists() and not (tmp_path / "tone.fit.png").exists()
    assert "tone.recon.wav and" in stderr and "sonode render" in stderr
    assert (tmp_path / "tone.sonode.ckpt").exists()  # kept for --resume


def test_resume_after_kill_9_reaches_the_uninterrupted_model(clip, tmp_path, reference):
    model = tmp_path / "tone.sonode"
    checkpoint = tmp_path / "tone.sonode.ckpt"
    # a checkpoint before every step; the fit is frozen once the one after step 1 is written, so
    # the kill finds it there whatever the machine's load (it reached any step before)
    fit = _Fit(clip, model, "--steps", "1000", "--checkpoint-every", "1e-9", held=True)
    fit.wait_for(lambda: stopped(fit.proc.pid), "the fit to stop after step 1")
    fit.proc.kill()  # SIGKILL: nothing runs after this, only the periodic checkpoint survives
    fit.finish()
    assert not model.exists()
    _, meta = load_model_file(
        checkpoint, kind=CHECKPOINT_KIND, supported_versions=[CHECKPOINT_VERSION]
    )
    assert meta["epoch"] == 1 < STEPS
    refused = CliRunner().invoke(
        main, ["fit", str(clip), "-o", str(model), *SMALL, "--hidden", "16", "--resume"]
    )
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "other options (hidden: checkpoint 8, now 16)" in refused.output
    _fit_in_process(clip, model, "--steps", STEPS, "--resume")
    _assert_same_model(reference, model)
    assert not checkpoint.exists()  # deleted once the fit completed and its outputs were written


def test_same_clip_options_and_seed_give_the_same_model_file(clip, tmp_path, reference):
    again = _fit_in_process(clip, tmp_path / "tone.sonode", "--steps", STEPS)
    _assert_same_model(reference, again)
    _, meta = load_model_file(again, kind="sonode-decoder", supported_versions=[2])
    assert meta["info"]["fit"]["epochs"] == STEPS


def test_resume_without_a_checkpoint_fails_with_one_clear_line(clip, tmp_path):
    result = CliRunner().invoke(
        main, ["fit", str(clip), "-o", str(tmp_path / "none.sonode"), *SMALL, "--resume"]
    )
    assert (
        result.exit_code == 2
        and "no checkpoint at" in result.output
        and "Traceback" not in result.output
    )
