"""#30: `fit --max-time T` wall time against T, and how fast SIGINT/SIGTERM act in each phase of a fit.

    python benchmarks/bench_deadline.py CLIP_OR_FOLDER ... [--times 3 10 60] [--signals]
    python benchmarks/bench_deadline.py --synthetic          # a 1.5 s and a 60 s clip at 48 kHz

Every run is a `sonode fit` subprocess (tests/hostile_support.py: one torch thread, address space
capped). The start-up (imports) is measured side by side as `sonode info` on a missing file and
printed, so wall − start-up is the part --max-time governs. Signals: sent as soon as the child
announces the phase (tests/phase_trace.py prints a line as each phase begins; the phases after
training are reached with --steps 1); "ack" is the signal to sonode's "stopping" line (before
training: its "interrupted" line), "exit" the signal to the process's end (the outputs are written
in between); "last phase" is the last one announced, i.e. where the signal was acted on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402

from tests.hostile_support import finish, run, start, tone  # noqa: E402
from tests.phase_trace import announced, in_phase  # noqa: E402

AUDIO = (".wav", ".flac", ".ogg")


def clips_of(paths: list[str]) -> list[Path]:
    """The audio files named or found in folders, as absolute paths: the fits run in a scratch
    folder (a relative path there found nothing, so every phase was "never reached")."""
    found = []
    for p in (Path(q).resolve() for q in paths):
        found += sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO) if p.is_dir() else [p]
    return found


def max_time(clips: list[Path], times: list[float], work: Path, fit_args: list[str]) -> None:
    startup = run(["info", work / "none.sonode"], timeout_s=300).wall_s
    print(f"start-up (sonode info, imports): {startup:.1f} s")
    print(
        f"{'clip':34s} {'T s':>5s} {'exit':>4s} {'wall s':>7s} {'wall-T-startup':>14s} {'fit s':>6s} "
        "steps curve stop"
    )
    for clip in clips:
        for t in times:
            out = work / f"{clip.stem}-{t:g}.sonode"
            outcome = run(
                ["fit", clip, "-o", out, "--max-time", f"{t:g}", "--force", "--quiet", *fit_args],
                timeout_s=10 * t + 600,
            )
            report, last = {}, (outcome.error_lines() or [""])[-1][:60]
            if out.with_suffix(".fit.json").exists():
                report = json.loads(out.with_suffix(".fit.json").read_text())["fit"]
            print(
                f"{clip.name[:34]:34s} {t:5g} {outcome.code!s:>4s} {outcome.wall_s:7.1f} "
                f"{outcome.wall_s - t - startup:14.1f} {report.get('wall_time_s', float('nan')):6.1f} "
                f"{report.get('epochs', '-')!s:>5s} {_curve(out, outcome):5s} "
                f"{report.get('stop_reason', last)}",
                flush=True,
            )


# (phase, extra fit arguments, the phase line after which the signal goes, a phase line that must
# have come before it): the phases come from tests/phase_trace.py, so the signal lands in the phase
# whatever the clip's length and the machine's load.
PHASES = [
    ("identification", [], "identification", ""),
    ("training", [], "training", ""),
    ("checks", ["--steps", "1"], "checks", "training"),
    ("continuation", ["--steps", "1"], "continuation", ""),
    ("report", ["--steps", "1"], "report", ""),
    ("writing", ["--steps", "1"], "writing", ""),
]


def _lines(err: str) -> list[str]:
    """stderr's last lines: the phase lines, or why the fit ended before the phase (a fit whose
    work after its one step does not fit the budget skips the check, e.g. a 60 s clip)."""
    return [ln.split("\r")[-1] for ln in err.splitlines() if ln.split("\r")[-1].strip()]


def _curve(model: Path, outcome) -> str:
    """Whether the fit wrote its loss curve: "yes", "cut" (abandoned at the end of --max-time's
    grace), "none" (no step trained: there is no curve to draw) or "-" (no model)."""
    if model.with_suffix(".fit.png").exists():
        return "yes"
    if "fit.png not written" in outcome.stderr:
        return "cut"
    return "none" if model.exists() else "-"


def _latency(args, ready, signals, work: Path, timeout_s: float = 900):
    """(seconds from the first signal to the "stopping" line or None, to the exit, exit code, the
    last phase announced before the exit)."""
    began = time.monotonic()
    proc, fd = start(args, cwd=work, phases=True)
    os.set_blocking(proc.stderr.fileno(), False)
    err = b""

    def read():
        nonlocal err
        try:
            err += proc.stderr.read() or b""
        except (BlockingIOError, TypeError):
            pass

    while not ready(err.decode(errors="replace")):
        if proc.poll() is not None or time.monotonic() - began > timeout_s:
            proc.kill()
            outcome = finish(proc, fd, args, began, 5)
            last = (_lines(err.decode(errors="replace") + outcome.stderr) or ["-"])[-1]
            return None, None, "never reached the phase", last[:60]
        read()
        time.sleep(0.005)
    sent = time.monotonic()
    ack = None
    for k, signum in enumerate(signals):
        if k:
            time.sleep(0.3)
        proc.send_signal(signum)
    while proc.poll() is None and time.monotonic() - sent < timeout_s:
        read()
        if ack is None and (b"stopping" in err or b"interrupted" in err):
            ack = time.monotonic() - sent
        time.sleep(0.005)
    done = time.monotonic() - sent
    os.set_blocking(proc.stderr.fileno(), True)
    outcome = finish(proc, fd, args, began, timeout_s)
    text = err.decode(errors="replace") + outcome.stderr
    if ack is None and ("stopping" in text or "interrupted" in text):
        ack = done
    return ack, done, outcome.code, (announced(text) or ["-"])[-1]


SIGNAL_SETS = {
    "int": [signal.SIGINT],
    "term": [signal.SIGTERM],
    "int2": [signal.SIGINT, signal.SIGINT],  # 0.3 s apart: the second aborts
}


def signals(
    clips: list[Path], work: Path, fit_args: list[str], only: str = "", kinds=tuple(SIGNAL_SETS)
) -> None:
    """Per clip and phase: one SIGINT, one SIGTERM, and two SIGINTs 0.3 s apart (``kinds``)."""
    print(
        f"{'clip':28s} {'phase':15s} {'signal':14s} {'ack s':>6s} {'exit s':>7s} code  last phase"
    )
    for clip in clips:
        # not --quiet, so that the "stopping" line shows
        base = ["fit", clip, "--max-time", "600", "--force", *fit_args]
        for name, extra, phase, after in PHASES:
            if only and not any(f"{clip.name}:{name}".find(o) >= 0 for o in only.split(",")):
                continue
            for signals_sent in (SIGNAL_SETS[k] for k in kinds):
                out = work / f"{clip.stem}-sig.sonode"
                args = base[:2] + ["-o", out] + base[2:] + extra
                ack, done, code, last = _latency(args, in_phase(phase, after), signals_sent, work)
                label = "+".join(s.name for s in signals_sent)
                shown = "-" if ack is None else f"{ack:.2f}"
                exit_s = "-" if done is None else f"{done:.2f}"
                print(
                    f"{clip.name[:28]:28s} {name:15s} {label:14s} {shown:>6s} {exit_s:>7s} "
                    f"{code!s:4s}  {last}",
                    flush=True,
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", help="audio files or folders")
    parser.add_argument("--times", type=float, nargs="+", default=[3, 10, 60])
    parser.add_argument("--signals", action="store_true", help="also the signal latencies")
    parser.add_argument(
        "--only",
        default="",
        help="--signals: only CLIP:PHASE pairs containing one of these comma-separated texts, "
        "e.g. '60s_48k.wav:ident,1.5s_48k.wav:'",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=list(SIGNAL_SETS),
        default=list(SIGNAL_SETS),
        help="--signals: which signals to send (int2: two SIGINTs 0.3 s apart)",
    )
    parser.add_argument("--no-max-time", action="store_true", help="skip the --max-time table")
    parser.add_argument("--rate", type=int, help="fit at this rate (fit --rate), e.g. 16000")
    parser.add_argument(
        "--synthetic", action="store_true", help="add a 1.5 s and a 60 s 48 kHz tone"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sonode-deadline-") as tmp:
        work = Path(tmp)
        clips = clips_of(args.clips)
        if args.synthetic:
            for seconds in (1.5, 60.0):
                path = work / f"tone_{seconds:g}s_48k.wav"
                sf.write(path, tone(seconds, 48000), 48000, subtype="PCM_16")
                clips.append(path)
        if not clips:
            parser.error("give clips or --synthetic")
        fit_args = ["--rate", str(args.rate)] if args.rate else []
        if not args.no_max_time:
            max_time(clips, args.times, work, fit_args)
        if args.signals:
            signals(clips, work, fit_args, args.only, args.kinds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
