"""The fast no-gradient synthesis that rendering uses, against training's per-sample read-out."""

import math

import numpy as np
import pytest
import torch

from sonode.model.field import ModalField
from sonode.model.modal import modal_readout, modal_solve
from sonode.model.oscillator import OscillatorBank
from sonode.model.synthesis import RENDER_ATOL, RENDER_RTOL, modal_samples

DECAYS = (3.0, 40.0, 900.0, 5.0, 4000.0, 0.5)  # 1/s
FREQS_HZ = (440.0, 1250.0, 3000.0, 5000.0, 7800.0, 100.0)
SPAN_S = 0.018  # a segment window


def _ode(rate_scale: float, seed: int = 0):
    """A bank, a random non-zero field of size ``rate_scale`` (1/s), 4 start states, a read-out."""
    k = len(DECAYS)
    gen = torch.Generator().manual_seed(seed)
    bank = OscillatorBank(
        -torch.tensor(DECAYS, dtype=torch.float64),
        2 * math.pi * torch.tensor(FREQS_HZ, dtype=torch.float64),
    )
    field = ModalField(k, hidden=8, layers=1, energy_scale=0.05, rate_scale=rate_scale)
    with torch.no_grad():
        for p in field.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
        field.mlp[-1].bias[:k] -= 1.0  # mostly damping
    z0 = 0.3 * torch.randn(4, 2 * k, generator=gen, dtype=torch.float64)
    return bank, field, z0, torch.randn(2 * k, generator=gen, dtype=torch.float64)


def _readout(*args):
    """Training's per-sample read-out, its envelope solved to the render's tolerance."""
    return modal_readout(*args, rtol=RENDER_RTOL, atol=RENDER_ATOL)


def _snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return 10 * math.log10(float((reference**2).sum() / ((reference - estimate) ** 2).sum()))


@pytest.mark.parametrize("rate_scale", [30.0, 1000.0])  # 1000/s: node intervals must be split
@pytest.mark.parametrize("rate", [16000, 48000])
def test_samples_equal_the_per_sample_readout_on_the_same_nodes(rate, rate_scale):
    bank, field, z0, readout = _ode(rate_scale)
    local = torch.arange(int(SPAN_S * rate) + 1, dtype=torch.float64) / rate
    expected = _readout(bank, field, z0, local, readout)
    with torch.no_grad():
        x, _ = modal_samples(
            bank,
            field,
            z0,
            readout,
            torch.zeros(4, dtype=torch.float64),
            1 / rate,
            torch.full((4,), local.numel()),
            float(local[-1]),
        )
    assert _snr_db(expected, x) >= 100.0  # the interpolation tolerance: 1e-5, as the envelope solve


def test_every_trajectory_has_its_own_offset_and_length():
    """One state four times (so the batch's envelope solve is the single one's), read on grids
    offset by fractions of a sample and of different lengths, all within the solved span."""
    bank, field, z0, readout = _ode(30.0)
    z0, rate = z0[:1].expand(4, -1), 44100
    first = torch.tensor([0.0, 0.3, 0.71, 0.999], dtype=torch.float64) / rate
    counts = torch.tensor([700, 794, 500, 793])
    with torch.no_grad():
        x, _ = modal_samples(bank, field, z0, readout, first, 1 / rate, counts, SPAN_S)
    assert x.shape == (794, 4)
    for b in range(4):
        grid = first[b] + torch.arange(int(counts[b]), dtype=torch.float64) / rate
        local = torch.cat(
            [torch.zeros(1, dtype=torch.float64), grid, torch.tensor([SPAN_S], dtype=torch.float64)]
        )
        expected = _readout(bank, field, z0[:1], local, readout)[
            1:-1, 0
        ]  # nodes 0 .. SPAN_S, as above
        assert _snr_db(expected, x[: counts[b], b]) >= 100.0
        assert torch.all(x[counts[b] :, b] == 0)


def test_the_end_state_is_the_solvers():
    bank, field, z0, readout = _ode(30.0)
    with torch.no_grad():
        _, z_end = modal_samples(
            bank,
            field,
            z0,
            readout,
            torch.zeros(4, dtype=torch.float64),
            1 / 16000,
            torch.full((4,), 10),
            SPAN_S,
        )
    expected = modal_solve(
        bank,
        field,
        z0,
        torch.tensor([0.0, SPAN_S], dtype=torch.float64),
        rtol=RENDER_RTOL,
        atol=RENDER_ATOL,
    )[-1]
    torch.testing.assert_close(z_end, expected, rtol=1e-12, atol=1e-15)


def test_a_linear_ode_is_its_closed_form_to_round_off_over_a_long_run():
    """Anchors per block times powers within it: no error accumulates along 0.5 s at 48 kHz."""
    bank, _, z0, readout = _ode(30.0)
    rate, n, first = 48000, 24000, 0.064
    with torch.no_grad():
        x, z_end = modal_samples(
            bank,
            None,
            z0[:1],
            readout,
            torch.tensor([first], dtype=torch.float64),
            1 / rate,
            torch.tensor([n]),
            first + (n - 1) / rate,
        )
    k = len(DECAYS)
    t = (np.longdouble(first) + np.arange(n).astype(np.longdouble) / rate)[:, None]
    sigma, omega = bank.decay_per_s.detach().numpy(), bank.omega_rad_per_s.detach().numpy()
    u, v = z0[0, :k].numpy(), z0[0, k:].numpy()
    c = np.exp(sigma * t) * (
        (u * np.cos(omega * t) - v * np.sin(omega * t)) * readout[:k].numpy()
        + (u * np.sin(omega * t) + v * np.cos(omega * t)) * readout[k:].numpy()
    )
    assert _snr_db(torch.from_numpy(c.sum(1).astype(np.float64)), x[:, 0]) >= 240.0
    expected = modal_solve(
        bank, None, z0[:1], torch.tensor([0.0, first + (n - 1) / rate], dtype=torch.float64)
    )[-1]
    torch.testing.assert_close(z_end, expected, rtol=1e-12, atol=1e-15)
