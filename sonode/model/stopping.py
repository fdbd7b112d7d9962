"""Stopping a fit from a signal handler within a second (#30).

A fit polls its ``should_stop`` between pieces of work (steps, check blocks, continuation steps).
One piece is too long to wait for: the optimiser step (3.4 s on the README quickstart at load ~6,
more on long clips). It changes nothing until its last line (`torch.optim` step), so it can be
abandoned on the spot: a `StopRequest` raises `StepAbandoned` inside `abandonable` when a stop is
requested, and the fit ends as if the request had come just before the step (same parameters,
optimiser state and checkpoint, so --resume still reproduces the uninterrupted fit).
"""

from __future__ import annotations

from collections.abc import Callable


class StepAbandoned(BaseException):
    """A stop was requested during an abandonable step (a BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` on the way swallows it)."""


class StopRequest:
    """A ``should_stop`` for `sonode.model.train.fit_samples` that a signal handler sets with
    `request`; calling it tells whether a stop was requested."""

    def __init__(self) -> None:
        self.requested = False
        self._abandonable = False

    def __call__(self) -> bool:
        return self.requested

    def request(self) -> None:
        """Ask the fit to stop; inside `abandonable` (the step under way) this raises StepAbandoned
        (from a signal handler: where the main thread is)."""
        self.requested = True
        if self._abandonable:
            self._abandonable = False
            raise StepAbandoned

    def abandonable(self) -> Abandonable:
        """Work a stop request abandons at once: it must change no state the fit keeps."""
        return Abandonable(self)


class Abandonable:
    """The context of `StopRequest.abandonable`: StepAbandoned raised inside it is swallowed and
    ``abandoned`` says so (without a StopRequest, ``request`` None, it only runs the work)."""

    def __init__(self, request: StopRequest | None):
        self.request = request
        self.abandoned = False

    def __enter__(self) -> Abandonable:
        if self.request is not None:  # (a request made before is seen by the caller's poll)
            self.request._abandonable = True
        return self

    def __exit__(self, kind, value, traceback) -> bool:
        if self.request is not None:
            self.request._abandonable = False
        self.abandoned = kind is not None and issubclass(kind, StepAbandoned)
        return self.abandoned


def abandonable(should_stop: Callable[[], bool] | None) -> Abandonable:
    """``should_stop.abandonable()`` when it has one (a `StopRequest`, or a caller's object that
    holds one), else a context that only runs the work (a plain callable is only polled)."""
    enter = getattr(should_stop, "abandonable", None)
    return enter() if enter is not None else Abandonable(None)


def unless_abandoned(should_stop, work: Callable, module=None, prefixes: tuple[str, ...] = ()):
    """``work()`` inside `abandonable` (``should_stop``); None when a stop abandoned it, after the
    entries of ``module``'s state whose names start with ``prefixes`` (all of them by default;
    what ``work`` may change in place) are put back as they were before it."""
    before = {}
    if module is not None:
        state = module.state_dict().items()
        before = {n: t.clone() for n, t in state if not prefixes or n.startswith(prefixes)}
    with abandonable(should_stop) as step:
        return work()
    if module is not None and step.abandoned:
        module.load_state_dict(before, strict=False)
    return None
