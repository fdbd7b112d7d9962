"""Fast synthesis of modal trajectories for rendering (no gradient).

Trajectory b's read-out is x_b(t) = Re Σ_k a_bk · exp(λ_k t) · E_bk(t), with a_bk = c_bk(0)·(C_u,k −
i C_v,k) and E = exp(Γ) the envelope factor of `sonode.model.modal` (E ≡ 1 for a linear ODE).
Summed sample by sample, as training's `modal_readout` does, it costs a complex exponential per
sample, trajectory and mode: the whole cost of a render. Here instead:

* time is cut into intervals (sub-intervals of the envelope's node intervals, or blocks of
  `LINEAR_BLOCK_SAMPLES` samples for a linear ODE). If interval i's first sample of trajectory b
  is at t_ib, its j-th sample has exp(λ_k t) = exp(λ_k t_ib) · exp(λ_k j dt): an anchor per
  interval times a table of powers shared by all intervals and trajectories. Both factors are
  evaluated directly, never by repeated multiplication, so no error accumulates along a render;
* on an interval E is smooth (Γ has no oscillation in it) and is replaced by its interpolating
  polynomial at P Chebyshev points, P (and if need be a subdivision of the node intervals)
  raised until the read-out's interpolation error, measured where it is largest, is below
  `INTERPOLATION_TOLERANCE`, the envelope solve's own relative error;
* the sum over modes is then a real matrix product, (intervals·P·trajectories, K) × (K, samples
  per interval) for the real and for the imaginary parts, and each sample evaluates a polynomial
  of degree P − 1 in time.

The result equals `modal_readout` on the same grid (same envelope nodes, rtol, atol) to
≈ INTERPOLATION_TOLERANCE.
"""

from __future__ import annotations

import math

import torch

from sonode.model.device import on
from sonode.model.field import ModalField
from sonode.model.modal import envelope_nodes, hermite_fractions, needs_envelope
from sonode.model.oscillator import OscillatorBank

# The envelope is solved to a looser tolerance than training's (RTOL, ATOL): Γ is a log-amplitude
# and phase, so rtol 1e-5 and atol 1e-6 bound the read-out's error by ≈ −100 dB, far below that of
# reading Γ between its 2 ms nodes, which training has too (the fast render agrees with the
# sequential Lawson RK4 reference to 94.8 dB on the guitar model, 94.7 dB at training's
# tolerance), and a third of the solve's steps are saved. A render at the clip's rate then
# equals training's solve to ≈ −110 dB.
RENDER_RTOL = 1e-5
RENDER_ATOL = 1e-6
INTERPOLATION_TOLERANCE = (
    RENDER_RTOL  # relative error of E between nodes: that of the envelope solve
)
MAX_POINTS = 8  # Chebyshev points per interval before node intervals are subdivided instead
MAX_SPLITS = 8  # a field changing faster than this resolves is not one the node spacing can carry
# Samples per interval of a linear ODE: anchors (per interval) and powers (per sample of an
# interval) cost one complex exponential per mode each, fewest when the two counts are similar.
LINEAR_BLOCK_SAMPLES = 128


@torch.no_grad()
def modal_samples(
    bank: OscillatorBank,
    field: ModalField | None,
    z0: torch.Tensor,
    readout: torch.Tensor,
    first_s: torch.Tensor,
    dt: float,
    counts: torch.Tensor,
    span_s: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read-out samples (without bias) of the trajectories from ``z0`` on uniform grids, and their
    states at ``span_s``.

    Args:
        bank, field: the ODE (field None: linear).
        z0: states at local time 0, shape (B, 2K), layout [u; v].
        readout: C, shape (2K,).
        first_s: float64 (B,), local time of each trajectory's first sample, ≥ 0.
        dt: sample spacing in seconds (> 0).
        counts: int64 (B,), samples of each trajectory (≥ 1); sample s is at first_s + s·dt.
        span_s: local time (≥ 0) up to which the envelope is solved (to RENDER_RTOL), on the
            same nodes as `modal_readout` solves a grid ending there. Samples past it (by at most a
            small part of a node interval) extend the last interval's interpolant.

    Returns:
        (x, z_end): x (max(counts), B) float64, zero past each trajectory's count; z_end (B, 2K),
        the states at local time span_s.
    """
    k = bank.n_modes
    c0 = torch.complex(z0[:, :k], z0[:, k:])
    a = c0 * torch.complex(readout[:k], -readout[k:])  # x = Re Σ_k c_k (C_u,k − i C_v,k)
    decay, omega = bank.decay_per_s, bank.omega_rad_per_s
    if needs_envelope(field, None):
        nodes, values, slopes = envelope_nodes(
            bank,
            field,
            z0[:, :k] ** 2 + z0[:, k:] ** 2,
            0.0,
            span_s,
            rtol=RENDER_RTOL,
            atol=RENDER_ATOL,
        )
        bounds, theta, begin, t_begin, terms = _envelope_terms(
            a, decay, omega, nodes, values, slopes, first_s, dt, counts
        )
        end = _exp_complex(decay * span_s + values[-1, :, :k], omega * span_s + values[-1, :, k:])
    else:
        width = LINEAR_BLOCK_SAMPLES * dt
        origin = float(first_s.min())
        n_blocks = int((float(first_s.max()) + (int(counts.max()) - 1) * dt - origin) / width) + 1
        bounds = origin + width * torch.arange(n_blocks + 1, **on(z0))
        theta = torch.zeros(1, **on(z0))
        begin, t_begin = _interval_starts(bounds, first_s, dt, counts)
        terms = _terms(_anchors(a, decay, omega, t_begin), None)
        end = _exp_complex(decay * span_s, omega * span_s).expand_as(c0)
    x = _sum_terms(terms, theta, decay, omega, bounds, begin, t_begin, dt, counts)
    c_end = c0 * end
    return x, torch.cat([c_end.real, c_end.imag], dim=-1)


def _envelope_terms(
    a: torch.Tensor,
    decay: torch.Tensor,
    omega: torch.Tensor,
    nodes: torch.Tensor,
    values: torch.Tensor,
    slopes: torch.Tensor,
    first_s: torch.Tensor,
    dt: float,
    counts: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """The terms of every interval at its Chebyshev points (see `_terms`), from Γ's nodes (N,)
    and its values and slopes (N, B, 2K); returns (bounds, theta, begin, t_begin, terms).

    The number of points starts from an estimate — on an interval of width w where |dΓ/dt| ≤ ρ,
    |E⁽ᴾ⁾| ≲ ρᴾ|E| and the interpolant errs by ≲ 2 (ρw/4)ᴾ/P! relative, ρ taken as 1.5 × the
    largest rate at the nodes (Γ' also varies between them; with 1 × it is the error measured on the
    guitar model's worst interval, within 20 %) — and is raised (beyond MAX_POINTS,
    node intervals are split in 2, 4, ... instead) until the interpolant matches the terms at
    both ends of every interval, where a Chebyshev interpolant errs the most: Σ_k |error| within
    INTERPOLATION_TOLERANCE × Σ_k |term| for every trajectory and interval."""
    k = values.shape[-1] // 2
    step = float(nodes[1] - nodes[0])
    rate_width = 1.5 * step * float(torch.sqrt(slopes[..., :k] ** 2 + slopes[..., k:] ** 2).max())
    points = next(
        (
            p
            for p in range(1, MAX_POINTS)
            if 2 * (rate_width / 4) ** p / math.factorial(p) <= INTERPOLATION_TOLERANCE
        ),
        MAX_POINTS,
    )
    splits, anchored = 1, 0
    while True:
        if anchored != splits:  # the intervals and their anchors change only with the split
            width = step / splits
            bounds = nodes[0] + width * torch.arange((nodes.numel() - 1) * splits + 1, **on(nodes))
            n_intervals, b = bounds.numel() - 1, values.shape[1]
            begin, t_begin = _interval_starts(bounds, first_s, dt, counts)
            anchors, anchored = _anchors(a, decay, omega, t_begin), splits
        theta, to_monomials = _chebyshev(points, nodes.device)
        within = torch.arange(splits, **on(nodes))[:, None]  # sub-interval of a node interval
        g = hermite_fractions(values, slopes, step, ((within + theta) / splits).reshape(-1))
        terms = _terms(anchors, g.reshape(n_intervals, points, b, 2 * k))
        # the terms at both ends of every interval: exactly, and as the interpolant has them
        # (unsplit, the interval starts are the nodes: their values, without an interpolation)
        starts = (
            values[:-1]
            if splits == 1
            else hermite_fractions(values, slopes, step, within[:, 0] / splits).reshape(
                n_intervals, b, 2 * k
            )
        )
        exact = _terms(anchors, torch.stack([starts, torch.cat([starts[1:], values[-1:]])], 1))
        at_ends = (
            torch.tensor([[(-1.0) ** q for q in range(points)], [1.0] * points], **on(nodes))
            @ to_monomials
        )  # Lagrange weights at u = 0, 1: (2, P)
        interpolated = (at_ends @ terms.reshape(2 * n_intervals, points, -1)).reshape(exact.shape)
        # |Re| + |Im| summed over modes: within √2 of the terms' moduli, and no square roots
        error = float(
            (
                (interpolated - exact).abs().sum((0, -1))
                / exact.abs().sum((0, -1)).clamp(min=1e-300)
            ).max()
        )
        if error <= INTERPOLATION_TOLERANCE or splits >= MAX_SPLITS:
            return bounds, theta, begin, t_begin, terms
        if points < MAX_POINTS:
            points = min(MAX_POINTS, points + 2)
        else:
            splits *= 2


def _chebyshev(
    points: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chebyshev points theta in [0, 1] (P,), and the matrix (P, P) taking values at them to the
    coefficients of the interpolating polynomial in v = 2u − 1 ∈ [−1, 1] (float64, on ``device``)."""
    like = {"dtype": torch.float64, "device": device}
    theta = 0.5 - 0.5 * torch.cos(math.pi * (2 * torch.arange(points, **like) + 1) / (2 * points))
    return theta, torch.linalg.inv((2 * theta[:, None] - 1) ** torch.arange(points, **like))


def _interval_starts(
    bounds: torch.Tensor, first_s: torch.Tensor, dt: float, counts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """First sample of trajectory b in interval i, begin (B, I) int64, and its time t_begin (I, B).

    Interval i is [bounds[i], bounds[i + 1]); the first also takes samples before bounds[0], the
    last those after bounds[-1]; an empty interval begins where the next one does."""
    inner = torch.ceil(
        (bounds[None, 1:-1] - first_s[:, None]) / dt - 1e-9
    ).long()  # a sample on a bound opens it
    begin = torch.cat(
        [
            torch.zeros(first_s.shape[0], 1, dtype=torch.long, device=bounds.device),
            torch.minimum(inner.clamp(min=0), counts[:, None]),
        ],
        1,
    )
    return begin, (first_s[:, None] + begin.to(torch.float64) * dt).T


def _anchors(
    a: torch.Tensor, decay: torch.Tensor, omega: torch.Tensor, t_begin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """log |a_bk e^{λ_k t}| and arg(a_bk e^{λ_k t}) at t = t_begin[i, b]: each (I, 1, B, K)."""
    return (
        (torch.log(a.abs()) + decay * t_begin[..., None])[:, None],
        (torch.angle(a) + omega * t_begin[..., None])[:, None],
    )


def _terms(
    anchors: tuple[torch.Tensor, torch.Tensor], envelope: torch.Tensor | None
) -> torch.Tensor:
    """a_bk · exp(λ_k t_begin[i, b] + Γ) as (real parts, imaginary parts), (2, I, P, B, K), from
    the `_anchors` and envelope values g = [Re Γ, Im Γ] (I, P, B, 2K), or (2, I, 1, B, K) with
    Γ = 0 (envelope None).

    Written as exp(log|a| + σt + Re Γ)·(cos, sin)(arg a + ωt + Im Γ): real functions only (the
    complex exponential kernel is several times slower), computed in place (these passes over
    (I, P, B, K) numbers are memory-bound)."""
    log_size, phase = anchors
    k = log_size.shape[-1]
    shape = log_size.shape if envelope is None else envelope.shape[:-1] + (k,)
    out = torch.empty((2,) + shape, **on(log_size))
    re, im = out
    if envelope is None:
        re.copy_(log_size)
        im.copy_(phase)
    else:
        torch.add(envelope[..., :k], log_size, out=re)
        torch.add(envelope[..., k:], phase, out=im)
    re.exp_()
    cos = torch.cos(im)
    im.sin_().mul_(re)
    re.mul_(cos)
    return out


def _sum_terms(
    terms: torch.Tensor,
    theta: torch.Tensor,
    decay: torch.Tensor,
    omega: torch.Tensor,
    bounds: torch.Tensor,
    begin: torch.Tensor,
    t_begin: torch.Tensor,
    dt: float,
    counts: torch.Tensor,
) -> torch.Tensor:
    """x[s, b] = Re Σ_k exp(λ_k (t − t_begin[i, b])) F_ibk(u) for the sample s of trajectory b at
    t = first_s[b] + s·dt in interval i, u = (t − bounds[i]) / width, F_ibk the polynomial through
    terms[:, i, :, b, k] (real, imaginary parts) at the points theta (P,) in [0, 1].
    Returns (max(counts), B), zero past counts[b]."""
    n_intervals, p, b, k = terms.shape[1], theta.numel(), terms.shape[3], terms.shape[4]
    width = float(bounds[1] - bounds[0])
    rows = max(
        1, int((torch.cat([begin[:, 1:], counts[:, None]], 1) - begin).max())
    )  # samples per interval
    j = dt * torch.arange(rows, **on(terms))[:, None]
    # Re(c·w) = Re c·Re w − Im c·Im w, w = exp(λ j dt): the sum over modes is one real matrix product
    powers = torch.exp(decay * j)
    sums = torch.addmm(
        terms[0].reshape(-1, k) @ (powers * torch.cos(omega * j)).T,
        terms[1].reshape(-1, k),
        (powers * torch.sin(omega * j)).T,
        alpha=-1,
    )  # (I·P·B, rows)
    j = j[:, 0]
    if p == 1:
        per_interval = sums.reshape(n_intervals, b, rows)
    else:
        # values at the points → monomial coefficients in v = 2u − 1 ∈ [−1, 1] (the sum over modes is
        # linear, so the change of basis can follow it, on P numbers instead of P·K), then Horner
        monomials = (
            _chebyshev(p, terms.device)[1] @ sums.reshape(n_intervals, p, b * rows)
        ).reshape(n_intervals, p, b, rows)
        v = (2 / width) * ((t_begin - bounds[:-1, None])[..., None] + j) - 1  # (I, B, rows)
        per_interval = monomials[:, -1]
        for q in range(p - 2, -1, -1):
            per_interval = per_interval * v + monomials[:, q]
    s = torch.arange(int(counts.max()), device=terms.device)
    interval = torch.searchsorted(begin, s.expand(b, -1).contiguous(), right=True) - 1  # (B, n)
    row = (s - begin.gather(1, interval)).clamp(max=rows - 1)  # past counts[b]: masked below
    column = torch.arange(b, device=terms.device)[:, None]
    x = per_interval.reshape(-1)[(interval * b + column) * rows + row]
    return torch.where(s < counts[:, None], x, 0.0).T


def _exp_complex(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """exp(re + i·im) from real exp, cos and sin (the complex exponential kernel is slower)."""
    magnitude = torch.exp(re)
    return torch.complex(magnitude * torch.cos(im), magnitude * torch.sin(im))
