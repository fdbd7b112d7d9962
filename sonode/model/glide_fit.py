"""The continuation's shared pitch glide, fitted by L-BFGS on continuations identified at anchors.

A tension-modulated string or reed shifts every partial by the same ratio as its level falls: the
level field's shared glide a (`LevelField.glide[1]`, Δω_k = a ω_k (r − 1), r the energy relative
to the clip's end) is one scalar. It is fitted here as the task says, not as the Adam recipe of
`sonode.model.task_loss` does:

* **As extrapolate runs it.** At each anchor a the continuation is *identified* on the clip up to
  a (`identify_continuation`: its own modes, state and level unit), and continued H ahead with the
  shared glide. Fitting the end's modes to earlier windows instead (`Tail.states_at`) puts the
  pitch mismatch into cancelling neighbour modes whose energy overstates the level 2-6x (measured
  on the synthetic string: r = 2.2-11.5 where the signal's power ratio is 1.4-1.9); the glide
  then double-counts the pitch and the loss prefers it the wrong way (docs/continuation_trained.md §7).
* **Second order.** With fixed anchors and samples the loss is deterministic, and one scalar is
  what L-BFGS with a strong-Wolfe line search solves in a few steps; Adam's first steps at a
  useful rate cost a clean start's 60 dB short horizons. The gradient is the engine's adjoint.
* **The pitch alone.** Fitted on the waveform, the shared decay b went the way that shrinks a
  prediction whose phase drifts (the MSE of an out-of-phase prediction falls with its level):
  on the string both together reached the lowest loss and lost 4 dB at 200 ms. b stays zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sonode.model.continuation import identify_continuation
from sonode.model.late_modes import ENVELOPE_SPAN_S, end_decays
from sonode.model.oscillator import OscillatorBank
from sonode.model.tail import Tail
from sonode.model.task_loss import H_MAX_S, _objective

GLIDE_ANCHORS = 8
ANCHOR_SPREAD_S = 0.15  # anchors lie over this span before the last one (the end minus H)
MIN_CONTEXT_S = 0.1  # an anchor needs this much clip before it to identify a continuation
GLIDE_ITERATIONS = 15  # L-BFGS iterations per horizon (each a few adjoint solves)
GLIDE_STRIDE = 4  # every 4th sample of a horizon...
GLIDE_MAX_POINTS = 2400  # ...and at most 200 ms at 48 kHz of them: a sparser stride above (#30)
GATE_FRAME_S = 0.04  # frames of the pitch-against-level regression (`glide_phase_rad`)
# The glide is fitted only if the clip's pitch-against-level slope would move the strongest
# partial's phase this much over the continuation: less is an error below -20 dB of it (|1 − e^{iφ}|),
# which no glide can win back a decibel of
MIN_GLIDE_PHASE_RAD = 0.1
PITCH = torch.tensor([0.0, 1.0], dtype=torch.float64)  # the glide entry fitted: a, not b


def glide_phase_rad(tail: Tail, x: np.ndarray, rate: int, horizon_s: float = H_MAX_S) -> float:
    """How far (radians) a level-dependent pitch glide, as the clip shows it, would move the
    strongest partial's phase over ``horizon_s`` of continuation: the cheap reason to fit one.

    The strongest continuation mode is demodulated over the clip's last ENVELOPE_SPAN_S in Hann
    frames of GATE_FRAME_S (hop half a frame); each hop's phase advance gives its frequency offset,
    regressed (energy-weighted) on r − 1, r the frame's energy relative to the last frame's: that is
    the glide's relative pitch shift per unit r − 1 (a of `LevelField.glide`). Over the
    continuation r follows the late modes' decays, r(t) = Σ e_k exp(2σ_k t) / Σ e_k, so the phase moves by
    ω · a · ∫(r − 1) dt. A held note (r ≈ 1) or a pitch that does not follow the level gives ≈ 0.
    """
    k = tail.early.n_modes
    energy = (tail.state[0, :k] ** 2 + tail.state[0, k:] ** 2).detach().numpy()
    energy = energy * np.exp(2 * tail.early.decay_per_s.detach().numpy() * tail.window / rate)
    strongest = int(np.argmax(energy))
    omega = float(tail.late.omega_rad_per_s[strongest])
    frame = max(16, int(GATE_FRAME_S * rate))
    hop = frame // 2
    span = np.asarray(x, dtype=np.float64)[-min(x.shape[0], int(ENVELOPE_SPAN_S * rate)) :]
    starts = np.arange(0, span.shape[0] - frame + 1, hop)
    if starts.shape[0] < 4 or omega <= 0:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(span, frame)[starts] * np.hanning(frame)
    amplitude = frames @ np.exp(-1j * omega * (starts[0] + np.arange(frame)) / rate)
    amplitude *= np.exp(-1j * omega * (starts - starts[0]) / rate)  # each frame at its own start
    offset = np.angle(amplitude[1:] * np.conj(amplitude[:-1])) / (hop / rate) / omega  # relative
    power = np.abs(amplitude) ** 2
    total = np.sum(frames**2, axis=1)  # the level r is the whole sound's, as the field's
    level = 0.5 * (total[1:] + total[:-1]) / max(total[-1], 1e-300) - 1.0  # r − 1 per hop
    weight = np.sqrt(power[1:] * power[:-1])
    if weight.sum() <= 0:
        return 0.0
    mean_level = np.average(level, weights=weight)
    mean_offset = np.average(offset, weights=weight)
    spread = np.average((level - mean_level) ** 2, weights=weight)
    if spread <= 0:
        return 0.0
    glide = np.average((level - mean_level) * (offset - mean_offset), weights=weight) / spread
    t = np.linspace(0.0, horizon_s, 201)
    late = tail.late.decay_per_s.detach().numpy()
    r = np.exp(2 * t[:, None] * late[None, :]) @ energy / max(energy.sum(), 1e-300)
    excess = np.trapezoid(r - 1.0, t)  # ∫(r − 1) dt over the continuation
    return float(abs(omega * glide * excess))


def fit_glide(
    tail: Tail,
    x: np.ndarray,
    rate: int,
    window_samples: int | None = None,
    max_order: int = 1024,
    horizon_max_s: float = H_MAX_S,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Fit ``tail.field.glide[1]`` (in place) on the normalised clip x (n,) whose continuation
    ``tail`` is; returns a report (the glide, the loss before and after, the anchors used).
    The caller validates and keeps or zeroes it."""
    if not hasattr(tail.field, "glide"):  # a `ModalField`: no shared terms
        return {"skipped": "no glide term"}
    glide = tail.field.glide
    n = x.shape[0]
    h = int(min(horizon_max_s * rate, n // 3))
    last = n - h
    first = max(last - int(ANCHOR_SPREAD_S * rate), int(MIN_CONTEXT_S * rate))
    if h < 1 or first > last:
        return {"skipped": "clip too short"}
    runs = []
    for a in np.unique(np.linspace(first, last, GLIDE_ANCHORS).astype(int)):
        if should_stop is not None and should_stop():
            return {"skipped": "stopped"}
        anchored = Tail.from_fit(
            identify_continuation(x[:a], rate, window_samples, max_order), rate
        )
        anchored.field.glide = glide  # shared: the one scalar every anchor's continuation uses
        runs.append((int(a), anchored))
    report = {"anchors": len(runs), "horizons_s": [], "loss": []}
    for horizon in (max(1, h // 4), h):
        before = glide.detach().clone()
        try:
            start, end = _stage(runs, glide, x, rate, horizon, should_stop)
        except (RuntimeError, _Stopped) as error:  # a non-finite solve, or --max-time / a signal
            with torch.no_grad():
                glide.copy_(before)
            report["stopped" if isinstance(error, _Stopped) else "failed"] = True
            break
        if not math.isfinite(end) or end > start:
            with torch.no_grad():
                glide.copy_(before)
            end = start
        report["horizons_s"].append(horizon / rate)
        report["loss"].append([start, end])
    report["glide"] = [float(v) for v in glide.detach()]
    return report


def measure_end_decays(
    tail: Tail, x: np.ndarray, rate: int, frame_samples: int
) -> torch.Tensor | None:
    """Set ``tail``'s late decays (in place) to the clip's decays at its end (`end_decays` of the
    normalised clip x (n,) in frames of ``frame_samples``, the identification's own) where a kept
    glide shows that the sound's dynamics depend on its level; returns the late modes' previous
    parameter for `restore_late_decays`, or None (and changes nothing) if the continuation has no
    late modes or the clip is too short to measure them.

    The late modes' decays are the clip's average over its last second (`late_modes`): right for
    a note whose decay does not depend on its level, wrong for one that glides, whose partials
    leave the end's frequency as one goes back in the clip (the synthetic string's strongest
    partial: 0.47/s where its law gives 0.80/s at the end)."""
    if tail.switch_s <= 0:
        return None
    decays = end_decays(x, rate, tail.late.omega_rad_per_s.detach().numpy(), frame_samples)
    if decays is None:
        return None
    saved = tail.late.raw_damping.detach().clone()
    measured = OscillatorBank(  # the bank's own parametrisation (σ = −softplus(ρ), σ ≤ −0.001)
        torch.as_tensor(decays, dtype=torch.float64), tail.late.omega_rad_per_s.detach()
    )
    with torch.no_grad():
        tail.late.raw_damping.copy_(measured.raw_damping)
    return saved


def restore_late_decays(tail: Tail, saved: torch.Tensor | None) -> None:
    """Undo `measure_end_decays` (``saved``, its result; None: nothing to undo)."""
    if saved is not None:
        with torch.no_grad():
            tail.late.raw_damping.copy_(saved)


class _Stopped(Exception):
    """should_stop() said so within an L-BFGS stage."""


def _stage(
    runs: list[tuple[int, Tail]],
    glide: torch.nn.Parameter,
    x: np.ndarray,
    rate: int,
    horizon: int,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[float, float]:
    """L-BFGS on the glide's pitch entry for the task loss over ``horizon`` samples from each run's
    anchor; returns the loss before and after."""
    j = torch.arange(0, horizon, max(GLIDE_STRIDE, -(-horizon // GLIDE_MAX_POINTS)))
    after_s = j.to(torch.float64) / rate

    def run_loss(a: int, run: Tail) -> torch.Tensor:
        w = run.window / rate
        pred = run.run(run.state, w + after_s, w + run.switch_s, gradient="adjoint", linear_s=w)
        truth = torch.from_numpy(x[a + j.numpy()])[:, None]
        return _objective(pred, truth, after_s, "db") / len(runs)

    def loss() -> torch.Tensor:
        return sum((run_loss(a, run) for a, run in runs), torch.zeros((), dtype=torch.float64))

    optimiser = torch.optim.LBFGS(
        [glide], lr=1, max_iter=GLIDE_ITERATIONS, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        if should_stop is not None and should_stop():  # a stage is up to 15 iterations: end it
            raise _Stopped
        optimiser.zero_grad(set_to_none=False)
        # one anchor's graph at a time (the gradient is their sum): all 8 held at once were the
        # peak of a 60 s 48 kHz fit (+690 MiB; the late phase is backprop through the solver)
        value = torch.zeros((), dtype=torch.float64)
        for a, run in runs:
            part = run_loss(a, run)
            part.backward()
            value = value + part.detach()
        glide.grad.mul_(PITCH)  # b is held at zero
        return value

    with torch.no_grad():
        start = float(loss())
    optimiser.step(closure)
    with torch.no_grad():
        return start, float(loss())
