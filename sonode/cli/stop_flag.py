"""How `sonode fit` handles SIGINT, SIGTERM and --max-time's deadline in each phase of a fit (#30)."""

from __future__ import annotations

import math
import os
import select
import signal
import threading
import time

from sonode.cli.common import (
    Interrupted,
    OutOfTime,
    already_ending,
    deferred_for_import,
    exit_at_once,
    interrupted_line,
)


class StopFlag:
    """SIGINT/SIGTERM while training stop the fit (the step under way is abandoned, see
    `sonode.model.stopping`) so that the best model is saved; before training (reading,
    identification, the identified model's check), when there is no model to save yet, they raise
    `Interrupted` at once, and so does --max-time (`OutOfTime`, one second of grace) when that
    phase overruns it.

    The first signal also puts the previous handlers back (fail_cleanly's, which raise), so a
    second Ctrl-C aborts at once with exit 130 (outputs are written atomically: no partial file).
    Training polls the flag (``stop()``), which is what switches it from raising to stopping.
    """

    GRACE_S = 1.0
    WATCHDOG_S = 0.5  # how long one C call may hold up a handler before a model exists
    # the reconstruction and the curve may end this long after --max-time (#30: "within ~2 s")
    WRITING_GRACE_S = 2.0

    def __init__(self, max_time_s: float | None = None, what: str = ""):
        from sonode.model.stopping import StopRequest  # not at import: it imports torch

        self._request = StopRequest()
        self.abandonable = self._request.abandonable  # makes the step abandonable (fit_samples)
        self.signal: int | None = None
        self.raising = True
        self.writing = False
        self.max_time_s = max_time_s
        self.what = what

    def __enter__(self):
        # the state first: a signal may arrive as soon as the handlers are in place
        self.before_model, self._acted, self._closed = True, False, False
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        self.deadline = time.monotonic() + (self.max_time_s or math.inf)
        if self.max_time_s is not None:
            self._old_alarm = signal.signal(signal.SIGALRM, self._alarm)
            signal.setitimer(signal.ITIMER_REAL, self.max_time_s + self.GRACE_S)
        self._wakeup = os.pipe()
        os.set_blocking(self._wakeup[1], False)
        self._old_wakeup = signal.set_wakeup_fd(self._wakeup[1], warn_on_full_buffer=False)
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _watch(self) -> None:
        """Before a model exists nothing is being written, so when a handler (signal or --max-time)
        is held up by one long C call (the identified model's reconstruction of a 60 s clip: 7-9 s
        at load ~12) this thread ends the process after WATCHDOG_S, as the handler would have."""
        try:
            self._watching()
        finally:  # here, not in __exit__: select() and read() must never see a closed descriptor
            for fd in self._wakeup:
                os.close(fd)

    def _watching(self) -> None:
        pending = None
        while not self._closed:
            ready, _, _ = select.select([self._wakeup[0]], [], [], 0.1)
            if ready:  # the C-level handler wrote the signal's number at once
                for signum in os.read(self._wakeup[0], 64):
                    if signum in (signal.SIGINT, signal.SIGTERM) and pending is None:
                        pending = (signum, time.monotonic())
            if not self.before_model or self._acted or self._closed:
                continue
            now = time.monotonic()
            if pending is not None and now - pending[1] > self.WATCHDOG_S:
                exit_at_once(f"\n{interrupted_line(signal.Signals(pending[0]).name)}", 130)
            if now > self.deadline + self.GRACE_S + self.WATCHDOG_S:
                exit_at_once(f"sonode: error: {self._out_of_time_text()}", 2)

    def _out_of_time_text(self) -> str:
        return (
            f"--max-time {self.max_time_s:g} s ran out before training could start ({self.what}); "
            "nothing was written: raise --max-time, or fit a shorter part with --duration"
        )

    def _handle(self, signum, frame):
        # both ways raise where the main thread is (`Interrupted`, or StepAbandoned from the step);
        # neither while an earlier signal or --max-time is on its way out (cleaning up)
        if already_ending() or deferred_for_import(signum, frame):
            return
        for s, handler in self._old.items():
            signal.signal(s, handler)
        if self.raising:
            self._acted = self.before_model
            raise Interrupted(signum)
        self.signal = signum
        # at once, so the user sees the signal act; os.write: a signal handler may interrupt a
        # buffered write to stderr (the progress line), which must not be re-entered
        os.write(
            2,
            f"\nsonode: {signal.Signals(signum).name}: stopping; saving the best model so far "
            f"(send it again to abort)\n".encode(),
        )
        self._request.request()  # raises StepAbandoned in the step under way

    def _alarm(self, signum, frame):
        if already_ending() or (self.raising and deferred_for_import(signum, frame)):
            return
        if self.raising and self.writing:
            raise OutOfTime("--max-time ran out")
        if self.raising:
            self._acted = True
            raise OutOfTime(self._out_of_time_text())

    def defer(self) -> None:
        """From now on a signal sets the flag (training started, or the outputs are being written)."""
        self.raising = False

    def abort(self) -> None:
        """From now on a signal raises `Interrupted` where the command is, and the end of
        --max-time's writing grace `OutOfTime` (the outputs that matter are written; what is left
        may be abandoned)."""
        self.raising = self.writing = True
        if self.max_time_s is not None:
            left_s = self.deadline + self.WRITING_GRACE_S - time.monotonic()
            if left_s <= 0:
                raise OutOfTime("--max-time ran out")
            signal.setitimer(signal.ITIMER_REAL, left_s)

    def settle(self) -> None:
        """The outputs are written: a signal sets the flag again, --max-time no longer acts."""
        self.raising = False
        if self.max_time_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def __exit__(self, *exc):
        signal.set_wakeup_fd(self._old_wakeup)
        self._closed = True  # the watcher closes the pipe
        for s, handler in self._old.items():
            signal.signal(s, handler)
        if self.max_time_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old_alarm)

    def __call__(self) -> bool:
        # polled by the training loop: a model to keep exists from here on
        self.raising = self.before_model = False
        return self._request()

    @property
    def name(self) -> str:
        """The signal received, e.g. "SIGINT" (empty if none)."""
        return signal.Signals(self.signal).name if self.signal is not None else ""
