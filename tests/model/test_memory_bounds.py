"""Memory of the continuation's training is bounded by design (#30): what a phase holds at once does
not grow with the read-out's length or the number of anchors (checked by counting, not timing)."""

import math
import weakref
from dataclasses import replace

import numpy as np
import pytest
import torch

from sonode.model import glide_fit, modal
from sonode.model.continuation import identify_continuation
from sonode.model.field import ModalField
from sonode.model.oscillator import OscillatorBank
from sonode.model.tail import Tail

RATE = 8000


def _ode(seed: int = 0):
    """A bank of 4 modes, a non-zero field, 2 start states and a read-out."""
    gen = torch.Generator().manual_seed(seed)
    bank = OscillatorBank(
        -torch.tensor([3.0, 40.0, 5.0, 0.5], dtype=torch.float64),
        2 * math.pi * torch.tensor([440.0, 1250.0, 3000.0, 100.0], dtype=torch.float64),
    )
    field = ModalField(4, hidden=8, layers=1, energy_scale=0.05, rate_scale=5.0)
    with torch.no_grad():
        for p in field.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    z0 = 0.3 * torch.randn(2, 8, generator=gen, dtype=torch.float64)
    return bank, field, z0, torch.randn(8, generator=gen, dtype=torch.float64)


def test_a_long_graph_free_readout_reads_its_envelope_in_pieces_and_equals_the_whole_read(
    monkeypatch,
):
    """Γ is (T, B, 2K) float64: read whole, 2 s of a 513-mode continuation at 48 kHz took +2.2 GB
    (the trend check of a trained continuation). It is read per READOUT_CHUNK_SAMPLES piece."""
    bank, field, z0, readout = _ode()
    n = 3 * modal.READOUT_CHUNK_SAMPLES + 5
    local_s = torch.arange(n, dtype=torch.float64) / RATE
    lengths = []
    inner = modal.hermite

    def counted(nodes, values, slopes, t):
        lengths.append(t.shape[0])
        return inner(nodes, values, slopes, t)

    monkeypatch.setattr(modal, "hermite", counted)
    with torch.no_grad():
        pieces = modal.modal_readout(bank, field, z0, local_s, readout)
    assert max(lengths) <= modal.READOUT_CHUNK_SAMPLES and sum(lengths) == n, lengths
    monkeypatch.setattr(modal, "READOUT_CHUNK_SAMPLES", 10 * n)  # the same read in one piece
    with torch.no_grad():
        whole = modal.modal_readout(bank, field, z0, local_s, readout)
    torch.testing.assert_close(pieces, whole, rtol=1e-12, atol=1e-14)  # the sums' order only


def test_a_long_graph_free_readout_holds_no_piece_while_it_reads_the_next(monkeypatch):
    """Under the fit's retained heap (`sonode.model.heap`: no mmap, trimmed only at its top) each
    piece's result, kept for one torch.cat at the end, sat above its freed temporaries, so the
    next piece could not reuse them: the 2 s trend read-out of a 513-mode continuation at 48 kHz
    grew the heap by 799 MiB instead of 94, and a 1.5 s 48 kHz fit peaked at 1836 MiB in its
    continuation's training (docs/memory.md). The pieces are written into the output as read."""
    bank, _, z0, readout = _ode()
    n = 3 * modal.READOUT_CHUNK_SAMPLES + 5
    local_s = torch.arange(n, dtype=torch.float64) / RATE
    results, alive = [], []
    inner = modal._ModalReadout.apply

    def counted(*args):
        alive.append(sum(r() is not None for r in results))  # earlier pieces still held
        out = inner(*args)
        results.append(weakref.ref(out))
        return out

    monkeypatch.setattr(modal._ModalReadout, "apply", counted)
    with torch.no_grad():
        pieces = modal.modal_readout(bank, None, z0, local_s, readout)
    assert alive == [0, 0, 0, 0], alive
    monkeypatch.setattr(modal, "READOUT_CHUNK_SAMPLES", 10 * n)  # the same read in one piece
    with torch.no_grad():
        whole = modal.modal_readout(bank, None, z0, local_s, readout)
    torch.testing.assert_close(pieces, whole, rtol=1e-12, atol=1e-14)


class _SavedBytes:
    """Peak bytes of tensors autograd holds for backward, via saved-tensor hooks."""

    def __init__(self):
        self.alive = self.peak = 0

    def pack(self, tensor):
        size = tensor.numel() * tensor.element_size()
        self.alive += size
        self.peak = max(self.peak, self.alive)
        holder = [tensor]
        weakref.finalize(holder_box := _Box(holder), self._free, size)
        return holder_box

    def _free(self, size):
        self.alive -= size

    @staticmethod
    def unpack(box):
        return box.value[0]


class _Box:
    def __init__(self, value):
        self.value = value


def _glide_peak_bytes(tail: Tail, x: np.ndarray, anchors: int) -> int:
    """Peak saved-for-backward bytes of one L-BFGS iteration of the glide's loss over ``anchors``
    runs (the same continuation at different anchors of the clip x)."""
    horizon = int(0.05 * RATE)
    runs = [(int(a), tail) for a in np.linspace(0.2 * RATE, x.size - horizon, anchors)]
    saved = _SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
        glide_fit._stage(runs, tail.field.glide, x, RATE, horizon)
    return saved.peak


def test_the_glide_fit_holds_one_anchors_graph_at_a_time(monkeypatch):
    """Summed over 8 anchors before one backward, a 60 s 48 kHz fit's glide stage took +690 MiB
    (+875 MiB on a 513-mode continuation); the gradient is the anchors' sum, so it is taken one
    anchor at a time and the graph held does not grow with the anchors."""
    monkeypatch.setattr(glide_fit, "GLIDE_ITERATIONS", 1)
    t = np.arange(int(0.6 * RATE)) / RATE
    x = 0.6 * np.exp(-3 * t) * np.sin(2 * np.pi * 330 * t) + 0.2 * np.sin(2 * np.pi * 990 * t)
    tail = Tail.from_fit(identify_continuation(x, RATE, max_order=32), RATE)
    one, four = _glide_peak_bytes(tail, x, 1), _glide_peak_bytes(tail, x, 4)
    assert one > 0 and four < 1.5 * one, (one, four)  # summed first: 4 times as much


def test_a_horizons_points_are_capped_above_48_khz_and_unchanged_below(monkeypatch):
    """The task loss and the glide read a horizon every 8th / 4th sample: 200 ms at 192 kHz would be
    4800 / 9600 points per anchor, 4 times the graph of 48 kHz. Above 48 kHz the stride grows."""
    from sonode.model import task_loss

    monkeypatch.setattr(task_loss, "H_MIN_S", task_loss.H_MAX_S)  # the longest horizon at once
    for rate, steps, glide_points in ((48000, 8, 2400), (192000, 32, 2400)):
        t = np.arange(int(0.6 * rate)) / rate
        x = 0.6 * np.exp(-3 * t) * np.sin(2 * np.pi * 330 * t)
        tail = Tail.from_fit(identify_continuation(x, rate, max_order=16), rate)
        points = []

        def record(self, z0, local_s, *args, _points=points, **kwargs):  # no solve needed
            _points.append(local_s.shape[0])
            raise RuntimeError("recorded")

        monkeypatch.setattr(Tail, "run", record)
        task_loss.train_field(tail, x, rate, steps=1)
        horizon = int(task_loss.H_MAX_S * rate)
        assert points == [-(-horizon // steps)], (rate, points)  # every 8th, every 32nd
        assert points[0] <= task_loss.MAX_HORIZON_POINTS
        with pytest.raises(RuntimeError, match="recorded"):
            glide_fit._stage([(int(0.3 * rate), tail)], tail.field.glide, x, rate, horizon)
        assert points[1] == glide_points <= glide_fit.GLIDE_MAX_POINTS, (rate, points)


def test_local_least_squares_runs_are_bounded_by_bytes(monkeypatch):
    """The chunked least squares of the local model sets its run length from RUN_BYTES: one
    (width·modes)² coupling per node, so many modes per node mean shorter runs (never below
    RUN_NODES[0]), for the states (width 2) and the Gauss–Newton solve (width 3) alike."""
    import numpy as np

    from sonode.model import local_synthesis as synthesis

    hop, n_nodes, n_tracks = 8, 700, 4
    first, length = np.zeros(n_tracks, dtype=np.int64), np.full(n_tracks, n_nodes)
    cycles = np.repeat([0.05, 0.11, 0.17, 0.23], n_nodes)
    x = np.random.default_rng(0).standard_normal((n_nodes - 1) * hop + 1)
    runs = []
    solve = synthesis.node_least_squares

    def recording(pieces, *args, **kwargs):
        runs.append(int(pieces.start.numel()))
        return solve(pieces, *args, **kwargs)

    monkeypatch.setattr(synthesis, "node_least_squares", recording)
    synthesis.chunked_least_squares(first, length, cycles, x, hop)
    assert runs == [n_nodes]  # 4 modes: far under the bytes, one run
    for width, states in ((2, None), (3, (np.ones(cycles.size), np.zeros(cycles.size)))):
        runs.clear()
        # bytes for 400 nodes of this width's couplings
        monkeypatch.setattr(synthesis, "RUN_BYTES", 400 * 8 * (width * n_tracks) ** 2)
        synthesis.chunked_least_squares(first, length, cycles, x, hop, states=states)
        assert len(runs) > 1 and max(runs) <= 400 + 1, (width, runs)  # a run's nodes: a..b
        monkeypatch.setattr(synthesis, "RUN_BYTES", 1)
        runs.clear()
        synthesis.chunked_least_squares(first, length, cycles, x, hop, states=states)
        assert len(runs) > 2 and max(runs) <= synthesis.RUN_NODES[0] + 1, (width, runs)


def test_the_fade_check_reads_only_the_clips_end():
    """`terminal_fade_samples` of a long clip allocates what its end needs (|x| of a whole 600 s
    clip was a 77 MB temporary on every call), and finds the same fade."""
    import tracemalloc

    from sonode.model.continuation import terminal_fade_samples

    x = np.sin(np.arange(40 * RATE) * 0.05)
    x[-RATE // 25 :] *= np.linspace(1.0, 0.0, RATE // 25)  # a 40 ms fade-out
    tracemalloc.start()
    fade = terminal_fade_samples(x, RATE)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0.03 * RATE < fade < 0.05 * RATE  # found, not the 50 ms cap
    assert fade == terminal_fade_samples(x[-4 * RATE :], RATE)
    assert peak < 0.1 * x.nbytes


def test_the_continuations_training_starts_without_the_steps_optimiser_state(monkeypatch):
    """What training held (Adam's moments, the last gradient, the kept copies of the parameters:
    5 × 77 MB on a 600 s clip) is released before the continuation trains."""
    from sonode.model import FitOptions, adam, fit_samples, train
    from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

    seen, optimisers = {}, []

    class Recorded(adam.Adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            optimisers.append(self)

    def probe(model, *args, **kwargs):
        seen["moments"] = sum(len(o.state) for o in optimisers)
        seen["grads"] = [p for p in model.parameters() if p.grad is not None]
        return {"field_kept": False, "cycle": False}

    monkeypatch.setattr(train, "Adam", Recorded)
    monkeypatch.setattr(train, "train_continuation", probe)
    options = FitOptions(latent_dim=8, hop_samples=64, overlap_samples=8, hidden=16, layers=1)
    fit_samples(two_tone_clip(0.1), SAMPLE_RATE, replace(options, lp_order=32, steps=2))
    assert len(optimisers) == 1 and seen == {"moments": 0, "grads": []}
