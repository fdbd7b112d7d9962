"""The exact oscillator bank and the segment cross-fade layout."""

import math

import pytest
import torch

from sonode.model.layout import SegmentLayout
from sonode.model.oscillator import OscillatorBank


def _bank():
    return OscillatorBank(
        torch.tensor([-5.0, -0.0, -300.0]), torch.tensor([2000.0, 300.0, 40000.0])
    )


def test_expm_apply_equals_matrix_exponential_of_the_block_matrix():
    bank = _bank()
    k = bank.n_modes
    sigma, omega = bank.decay_per_s.detach(), bank.omega_rad_per_s.detach()
    L = torch.zeros(2 * k, 2 * k, dtype=torch.float64)
    idx = torch.arange(k)
    L[idx, idx] = L[idx + k, idx + k] = sigma
    L[idx, idx + k], L[idx + k, idx] = -omega, omega
    z = torch.randn(5, 2 * k, dtype=torch.float64)
    for h in (1 / 16000, -3e-4, 0.01):
        expected = z @ torch.linalg.matrix_exp(L * h).T
        torch.testing.assert_close(bank.expm_apply(h, z), expected, rtol=1e-10, atol=1e-12)


def test_exponential_group_property_and_no_growing_mode():
    bank = _bank()
    z = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(
        bank.expm_apply(0.002, bank.expm_apply(0.001, z)), bank.expm_apply(0.003, z)
    )
    assert torch.all(bank.decay_per_s < 0)  # even the mode given as 0 decays (floor 1e-3 / s)


def test_cached_factors_follow_parameter_updates():
    bank = _bank()
    z = torch.randn(2, 6, dtype=torch.float64)
    with torch.no_grad():
        before = bank.expm_apply(1e-3, z)
        bank.omega_rad_per_s.add_(100.0)  # an in-place update, as an optimiser makes
        after = bank.expm_apply(1e-3, z)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(
        after, bank.expm_apply(1e-3, z).detach()
    )  # grad mode: computed afresh


@pytest.mark.parametrize(
    "n_samples,hop,overlap", [(1000, 128, 16), (200, 64, 0), (129, 128, 16), (90, 128, 16)]
)
def test_training_weights_partition_unity_over_the_clip(n_samples, hop, overlap):
    layout = SegmentLayout(16000, n_samples, hop, overlap)
    summed = layout.overlap_add(layout.training_weights())
    torch.testing.assert_close(summed, torch.ones(n_samples, dtype=torch.float64))


@pytest.mark.parametrize("n_samples,hop,overlap", [(1000, 128, 16), (200, 64, 0), (90, 128, 16)])
def test_training_weights_of_chosen_segments_are_those_columns(n_samples, hop, overlap):
    """A step's or a run's weights are formed for its segments alone (not sliced from the whole
    clip's: ~250 MB of temporaries on a 600 s clip), with the same values."""
    layout = SegmentLayout(16000, n_samples, hop, overlap)
    last = layout.n_segments - 1
    for chosen in ([0], [last], [0, 2, 3, last], list(range(last + 1))):
        index = torch.tensor(sorted({m for m in chosen if m <= last}))
        assert torch.equal(layout.training_weights(index), layout.training_weights()[:, index])


def test_weights_sum_to_one_at_arbitrary_times_and_are_continuous():
    layout = SegmentLayout(16000, 1000, 128, 16)
    t = torch.linspace(0, 0.1, 7919, dtype=torch.float64)  # includes times past the clip's end
    seg = torch.arange(layout.n_segments)[:, None]
    w = layout.weights(t[None, :] - layout.start_s()[:, None], seg)
    torch.testing.assert_close(w.sum(0), torch.ones_like(t))
    # C⁰ and no jumps: neighbouring times never differ by more than the steepest ramp allows
    steepest = math.pi / 2 / (16 / 16000) * float(t[1] - t[0])
    assert float((w[:, 1:] - w[:, :-1]).abs().max()) <= steepest * 1.01


def test_split_gives_each_segment_its_window():
    layout = SegmentLayout(16000, 300, 100, 10)
    x = torch.arange(300, dtype=torch.float64)
    windows = layout.split(x)
    assert windows.shape == (110, layout.n_segments)
    torch.testing.assert_close(windows[:, 1], x[100:210])
    assert float(windows[-1, -1]) == 0.0  # past the clip's end


def test_layout_rejects_overlap_longer_than_hop():
    with pytest.raises(ValueError, match="overlap"):
        SegmentLayout(16000, 100, 10, 20)
