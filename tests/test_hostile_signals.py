"""#30: SIGINT/SIGTERM act in every phase (identification included) and a second Ctrl-C exits 130 at
once; --max-time bounds the whole command, identification included.

The bounds asserted here are generous (the machine is shared); benchmarks/fuzz_hostile.py --signals
measures the latency per phase."""

import json
import os
import signal
import time

import pytest
import soundfile as sf

from tests.hostile_support import finish, run, start, tone

RATE = 48000
BOUND_S = 10.0  # from the signal to the exit; the measured latency is well under a second


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """60 s at 48 kHz: identification alone takes seconds (tens on a loaded machine)."""
    path = tmp_path_factory.mktemp("hostile-signals") / "long.wav"
    sf.write(path, tone(60.0, RATE), RATE, subtype="PCM_16")
    return path


def _skip_if_short_of_memory(outcome) -> None:
    """The fit refuses a clip that does not fit in 80 % of the memory available now (sonode.limits):
    on a machine that other work has filled, that refusal (exit 2, one line) is right, and the
    timing this file tests cannot be measured."""
    if outcome.code == 2 and ("memory" in outcome.stderr and "over the limit" in outcome.stderr):
        pytest.skip(f"the machine is short of memory: {outcome.error_lines()[-1]}")


def _signal_when(args, ready, signals, tmp_path, timeout_s=300):
    """Start sonode, wait until ``ready(stderr so far, seconds since start)``, send ``signals``
    (0.2 s apart); returns (outcome, seconds from the first signal to the exit)."""
    began = time.monotonic()
    proc, fd = start(args, cwd=tmp_path)
    err = b""

    os.set_blocking(proc.stderr.fileno(), False)
    while not ready(err.decode(errors="replace"), time.monotonic() - began):
        if proc.poll() is not None:  # ended before the phase: say why (or skip, short of memory)
            os.set_blocking(proc.stderr.fileno(), True)
            early = finish(proc, fd, args, began, timeout_s)
            early.stderr = err.decode(errors="replace") + early.stderr
            _skip_if_short_of_memory(early)
            raise AssertionError(early.describe())
        assert time.monotonic() - began < timeout_s, "never became ready"
        try:
            err += proc.stderr.read() or b""
        except (BlockingIOError, TypeError):
            pass
        time.sleep(0.05)
    sent = time.monotonic()
    for k, signum in enumerate(signals):
        if k:
            time.sleep(0.2)
        proc.send_signal(signum)
    os.set_blocking(proc.stderr.fileno(), True)
    outcome = finish(proc, fd, args, began, timeout_s)
    outcome.stderr = err.decode(errors="replace") + outcome.stderr
    return outcome, time.monotonic() - sent


def _seconds_after(text: str, delay_s: float):
    """A readiness test for `_signal_when`: ``delay_s`` after ``text`` first appears on stderr."""
    seen_at = []

    def ready(err: str, t: float) -> bool:
        if text in err and not seen_at:
            seen_at.append(t)
        return bool(seen_at) and t - seen_at[0] >= delay_s

    return ready


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_identification_acts_at_once(long_clip, tmp_path, signum):
    """Before #30 SIGINT took 22.7 s to act here, SIGTERM over 60 s (--hop 100000); after the
    faster identification ~100 s (one np.unique over all segments' weights, a thread pool joined)."""
    outcome, latency = _signal_when(
        ["fit", long_clip, "-o", tmp_path / "m.sonode", "--max-time", "300"],
        _seconds_after("fitting", 1.0),  # identification takes seconds even idle (60 s at 48 kHz)
        [signum],
        tmp_path,
    )
    assert not outcome.problems(codes=(130,)), outcome.describe()
    assert latency < BOUND_S, latency
    assert (
        signum.name in outcome.stderr and "| loss" not in outcome.stderr
    )  # still identifying (no progress line)
    assert not (tmp_path / "m.sonode").exists() and not list(tmp_path.glob(".m.sonode*"))


def test_a_second_ctrl_c_exits_130_at_once(tmp_path):
    clip = tmp_path / "tone.wav"
    sf.write(clip, tone(1.0, 16000), 16000, subtype="PCM_16")
    outcome, latency = _signal_when(
        [
            "fit",
            clip,
            "-o",
            tmp_path / "m.sonode",
            "--max-time",
            "300",
            "--latent-dim",
            "16",
            "--lp-order",
            "64",
        ],
        lambda err, t: "| loss" in err,
        [signal.SIGINT, signal.SIGINT],
        tmp_path,
    )
    assert outcome.code == 130, outcome.describe()  # was 1 before #30
    assert "Traceback" not in outcome.stderr and latency < BOUND_S


def test_max_time_bounds_identification(long_clip, tmp_path):
    """A 300 s clip with --max-time 20 took 72.6 s before #30 and trained 0 steps."""
    outcome = run(["fit", long_clip, "-o", tmp_path / "m.sonode", "--max-time", "3"], timeout_s=120)
    _skip_if_short_of_memory(outcome)
    assert not outcome.problems(codes=(2, 0)), outcome.describe()
    if outcome.code == 2:
        assert "--max-time 3 s ran out" in outcome.stderr
    startup = run(
        ["info", tmp_path / "none.sonode"], timeout_s=120
    ).wall_s  # imports (torch...), side by side
    assert outcome.wall_s < startup + 3 + BOUND_S, (outcome.wall_s, startup)


@pytest.mark.parametrize("command", ["render", "fill"])
def test_sigterm_in_other_commands_exits_130_without_partial_files(tmp_path, command):
    clip = tmp_path / "tone.wav"
    sf.write(clip, tone(30.0, 16000), 16000, subtype="PCM_16")
    if command == "render":
        fit = run(
            [
                "fit",
                clip,
                "--duration",
                "0.5",
                "-o",
                tmp_path / "m.sonode",
                "--steps",
                "1",
                "--latent-dim",
                "8",
                "--lp-order",
                "32",
                "--quiet",
            ],
            timeout_s=300,
        )
        assert fit.code == 0, fit.describe()
        args = ["render", tmp_path / "m.sonode", "--end", "600", "-o", tmp_path / "out.wav"]
    else:
        args = [
            "fill",
            clip,
            "--gap",
            "10",
            "10.2",
            "--method",
            "sonode_fit",
            "--budget-s",
            "60",
            "-o",
            tmp_path / "out.wav",
        ]
    busy = (
        "rendering" if command == "render" else "gap 1/1"
    )  # the progress bar / the fill's first gap
    outcome, latency = _signal_when(args, lambda err, t: busy in err, [signal.SIGTERM], tmp_path)
    assert not outcome.problems(codes=(130, 0)), outcome.describe()
    assert latency < BOUND_S
    if outcome.code == 130:
        assert not (tmp_path / "out.wav").exists() and not list(tmp_path.glob(".out.wav*"))


def test_max_time_bounds_training_the_final_checks_and_the_continuation(tmp_path):
    """The training loop stops early enough for what follows it: the continuation's training and
    the final check used to run after --max-time (23 s of a 57 s fit)."""
    clip = tmp_path / "short.wav"
    sf.write(clip, tone(1.5, RATE), RATE, subtype="PCM_16")
    outcome = run(["fit", clip, "-o", tmp_path / "m.sonode", "--max-time", "10"], timeout_s=300)
    _skip_if_short_of_memory(outcome)
    assert outcome.code == 0, outcome.describe()
    startup = run(["info", tmp_path / "none.sonode"], timeout_s=120).wall_s
    assert outcome.wall_s < startup + 10 + BOUND_S, (outcome.wall_s, startup)
    report = json.loads((tmp_path / "m.fit.json").read_text())["fit"]
    assert report["wall_time_s"] < 10 + BOUND_S


def test_a_signal_after_training_stops_the_final_work(tmp_path):
    """After the last step come the last check, the final check (8 Lawson steps per sample) and
    the continuation's training: a signal there used to wait for all of them (13.6 s)."""
    clip = tmp_path / "short.wav"
    sf.write(clip, tone(1.5, RATE), RATE, subtype="PCM_16")
    args = ["fit", clip, "-o", tmp_path / "m.sonode", "--max-time", "300", "--steps", "1"]
    outcome, latency = _signal_when(args, lambda err, t: "| loss" in err, [signal.SIGINT], tmp_path)
    _skip_if_short_of_memory(outcome)
    assert outcome.code == 130 and "Traceback" not in outcome.stderr, outcome.describe()
    assert "SIGINT: stopping" in outcome.stderr, outcome.describe()
    report = json.loads((tmp_path / "m.fit.json").read_text())["fit"]
    # the work after the step was skipped or cut short: no fine check, no continuation training
    assert report["discretisation_check"]["substeps_per_sample"] == 2 or (
        report["discretisation_check"]["window_samples"] < 300
    )
    assert report["continuation_training"].get("skipped") == "stopped" or report[
        "continuation_training"
    ].get("stopped")
    # exit = the outputs written (the curve's matplotlib import alone is seconds on a loaded
    # machine); the same fit without the signal spent 180 s here at load ~37
    assert latency < 6 * BOUND_S, latency


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_starting_exits_130_with_one_line(tmp_path, signum):
    """Importing torch and the audio libraries takes seconds: a SIGTERM there killed sonode
    (exit −15) and SIGINT printed a KeyboardInterrupt traceback."""
    clip = tmp_path / "tone.wav"
    sf.write(clip, tone(1.0, 16000), 16000, subtype="PCM_16")
    began = time.monotonic()
    proc, fd = start(["fit", clip, "-o", tmp_path / "m.sonode"], cwd=tmp_path)
    time.sleep(0.5)  # the interpreter is up and importing (or, on a fast machine, already fitting)
    proc.send_signal(signum)
    outcome = finish(proc, fd, ["fit"], began, 120)
    assert outcome.code == 130 and "Traceback" not in outcome.stderr, outcome.describe()
    assert len(outcome.error_lines()) <= 2 and not (tmp_path / "m.sonode").exists()
