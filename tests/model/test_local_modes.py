"""Modes that follow the notes (`fit --modes local`): solution, least squares, capacity, files."""

import math

import numpy as np
import pytest
import scipy.integrate
import torch

from sonode.dsp.metrics import snr_db
from sonode.dsp.partials import block_tridiagonal_solve, link_tracks
from sonode.model import FitOptions, SonodeModel, fit_samples
from sonode.model.init import initial_model
from sonode.model.local import LocalModel
from sonode.model.local_synthesis import Pieces, piece_values

RATE = 16000


def melody(seconds_per_note=0.1, notes=(262, 330, 392, 523, 440, 349), harmonics=3, seed=0):
    """Notes one after another, each with decaying harmonics: many more frequencies over the clip
    than sound at once."""
    n_note = int(seconds_per_note * RATE)
    t = np.arange(n_note) / RATE
    parts = []
    for i, f0 in enumerate(notes):
        note = sum(
            np.exp(-(4 + 3 * h) * t) * np.cos(2 * np.pi * h * f0 * t + i + h) / h
            for h in range(1, harmonics + 1)
        )
        fade = np.sin(0.5 * np.pi * np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)) ** 2
        parts.append(note * fade)  # 10 ms attack and release: legato, not a click per note
    x = np.concatenate(parts)
    return x + 1e-5 * np.random.default_rng(seed).standard_normal(x.size)


def test_piece_solves_its_ode_against_scipy():
    """Between two nodes c(t) solves dc/dt = iω(t)c + e^{iψ}(c_R e^{−iψ(1)} − c_L)/Δ from c_L
    and reaches c_R: compared with scipy's RK45 at tight tolerance."""
    pieces = Pieces.build(np.array([0]), np.array([2]), 2)  # one track on nodes 0 and 1
    freq = torch.tensor([440.0, 452.0], dtype=torch.float64)
    c_l, c_r = 0.7 - 0.2j, -0.3 + 0.5j
    re = torch.tensor([c_l.real, c_r.real], dtype=torch.float64)
    im = torch.tensor([c_l.imag, c_r.imag], dtype=torch.float64)
    delta = 0.01
    s = torch.linspace(0, 1, 41, dtype=torch.float64)[None, :]
    ours = piece_values(pieces, torch.tensor([0]), freq, re, im, s, delta)[0].numpy()
    w_l, w_r = 2 * np.pi * 440.0, 2 * np.pi * 452.0
    psi1 = delta * (w_l + w_r) / 2

    def rhs(t, y):
        c = y[0] + 1j * y[1]
        sf = t / delta
        omega = w_l + (w_r - w_l) * sf
        psi = delta * (w_l * sf + (w_r - w_l) * sf * sf / 2)
        dc = 1j * omega * c + np.exp(1j * psi) * (c_r * np.exp(-1j * psi1) - c_l) / delta
        return [dc.real, dc.imag]

    sol = scipy.integrate.solve_ivp(
        rhs, (0, delta), [c_l.real, c_l.imag], t_eval=s[0].numpy() * delta, rtol=1e-11, atol=1e-13
    )
    assert np.max(np.abs(sol.y[0] - ours)) < 1e-8
    assert abs(sol.y[0, -1] + 1j * sol.y[1, -1] - c_r) < 1e-8


def test_block_tridiagonal_solve_matches_dense():
    rng = np.random.default_rng(1)
    sizes = [3, 0, 2, 4]
    n = sum(sizes)
    a = rng.standard_normal((n + 5, n))
    dense = a.T @ a + 0.1 * np.eye(n)
    cut = np.cumsum([0, *sizes])
    for i in range(len(sizes)):  # keep only the block-tridiagonal part (still SPD: add diagonal)
        for j in range(len(sizes)):
            if abs(i - j) > 1:
                dense[cut[i] : cut[i + 1], cut[j] : cut[j + 1]] = 0
    dense += n * np.eye(n)
    b = rng.standard_normal(n)
    blocks = [dense[cut[i] : cut[i + 1], cut[i] : cut[i + 1]] for i in range(len(sizes))]
    upper = [dense[cut[i] : cut[i + 1], cut[i + 1] : cut[i + 2]] for i in range(len(sizes) - 1)]
    rhs = [b[cut[i] : cut[i + 1]] for i in range(len(sizes))]
    upper.append(np.zeros((sizes[-1], 0)))
    x = np.concatenate(block_tridiagonal_solve(zip(blocks, upper, rhs, strict=True)))
    np.testing.assert_allclose(x, np.linalg.solve(dense, b), rtol=1e-10, atol=1e-12)


def test_tracks_link_nearest_peaks_and_start_new_ones():
    peaks = [
        (np.array([440.0, 880.0]), np.array([1.0, 0.5])),
        (np.array([442.0, 1200.0]), np.array([1.0, 0.4])),
        (np.array([445.0]), np.array([1.0])),
    ]
    tracks = link_tracks(peaks, 15.0, 0.02)
    assert tracks.first.tolist() == [0, 0, 1]
    assert tracks.length.tolist() == [3, 1, 1]
    assert tracks.freq_hz.tolist() == [440.0, 442.0, 445.0, 880.0, 1200.0]


@pytest.fixture(scope="module")
def melody_fits():
    x = melody()
    local, report = fit_samples(
        x, RATE, FitOptions(modes="local", steps=0, continuation_samples=0, max_time_s=None)
    )
    tables = 3 * local.n_entries + 2 * local.n_tracks
    hop = 256
    segments = math.ceil((x.size - 32) / hop)
    k = max(1, round(tables / (2 * segments)))  # global modes at the same count of numbers
    global_model, _ = initial_model(x, RATE, k, hop, 32, 8, 1, 256, continuation_samples=0)
    with torch.no_grad():
        global_fit = global_model.denormalise(global_model.reconstruct()[0])
    return x, local, report, snr_db(x, global_fit), global_model.states.numel(), tables


def test_local_modes_beat_the_global_set_at_equal_numbers_on_a_melody(melody_fits):
    """Six notes one after another: the global model's few modes (at the local model's count of
    numbers) cannot hold eighteen frequencies; tracked modes follow each note."""
    x, local, report, global_db, global_numbers, local_numbers = melody_fits
    assert global_numbers <= 1.1 * local_numbers
    local_db = snr_db(x, local.denormalise(local.reconstruct()))
    assert local_db == pytest.approx(report.snr_db, abs=1e-3)
    print(f"local {local_db:.2f} dB, global {global_db:.2f} dB at {local_numbers} numbers")
    assert local_db >= global_db + 15.0, (local_db, global_db)
    assert local_numbers / x.size <= 0.5


def test_local_model_file_round_trip_and_render(melody_fits, tmp_path):
    x, local, _, _, _, _ = melody_fits
    path = tmp_path / "melody.sonode"
    local.save(path, {"note": "melody"}, storage="float64")
    again, info = SonodeModel.load(path)
    assert isinstance(again, LocalModel) and info == {"note": "melody"}
    times = torch.arange(2 * x.size, dtype=torch.float64) / (2 * RATE)  # twice the rate
    assert torch.equal(again.render_normalised(times), local.render_normalised(times))
    # float32 tables: half the file, the render within the float32 check's error
    small = tmp_path / "melody32.sonode"
    local.save(small, storage="float32")
    rounded, _ = SonodeModel.load(small)
    assert small.stat().st_size < path.stat().st_size
    grid = torch.arange(x.size, dtype=torch.float64) / RATE
    assert (
        snr_db(local.render_normalised(grid).numpy(), rounded.render_normalised(grid).numpy()) > 100
    )
    # the render at twice the rate is the same continuous signal: every other sample is the clip's
    twice = local.render_normalised(times)
    np.testing.assert_allclose(twice[::2].numpy(), local.reconstruct().numpy(), atol=1e-12)


def test_local_model_extrapolates_with_the_continuation(tmp_path):
    x = melody(notes=(330, 440))
    model, report = fit_samples(x, RATE, FitOptions(modes="local", steps=0, max_time_s=None))
    assert model.continuation_state.shape[0] == 1
    times = torch.arange(x.size + 800, dtype=torch.float64) / RATE
    out = model.render_normalised(times)
    assert out.numel() == times.numel() and bool(torch.isfinite(out).all())
    tail = out[x.size :]
    assert 0 < float(tail.abs().max()) < 2.0  # the continuation sounds on, without blowing up
    # a compact file stores the continuation in float32, as the fit rounded it: the same model,
    # continuation included, and smaller than with float64 continuation tensors
    assert model.storage == "quantised" and model.continuation_float32
    path = tmp_path / "compact.sonode"
    model.save(path)
    again, _ = SonodeModel.load(path)
    assert again.continuation_float32
    assert torch.equal(again.render_normalised(times), out)
    model.continuation_float32 = False
    model.save(tmp_path / "wide.sonode")
    assert path.stat().st_size < (tmp_path / "wide.sonode").stat().st_size


def test_damaged_tables_are_refused(melody_fits, tmp_path):
    from sonode.errors import ModelFileError
    from sonode.io.model_file import load_model_file, save_model_file

    _, local, _, _, _, _ = melody_fits
    path = tmp_path / "m.sonode"
    local.save(path, storage="float32")  # version 3: plain tables
    tensors, meta = load_model_file(path, kind="sonode-decoder", supported_versions=[3])
    tensors["track_length"] = tensors["track_length"] + 1
    save_model_file(path, tensors, meta, kind="sonode-decoder", version=3)
    with pytest.raises(ModelFileError, match="inconsistent"):
        SonodeModel.load(path)


def test_cli_fit_local_then_info_render_and_plot(tmp_path):
    """`sonode fit --modes local` writes a model that info, render and plot read."""
    import soundfile

    from tests.cli_support import run

    clip = tmp_path / "melody.wav"
    soundfile.write(clip, 0.5 * melody(notes=(330, 440, 392)) / 1.5, RATE, "PCM_16")
    model = tmp_path / "melody.sonode"
    fitted = run(
        "fit", clip, "--modes", "local", "--steps", "2", "--lp-order", "32", "--quiet", "-o", model
    )
    assert fitted.exit_code == 0, fitted.output
    info = run("info", model)
    assert info.exit_code == 0 and "modes:        local:" in info.output, info.output
    assert "storage:      compact tables, rounding check" in info.output, info.output
    wav = tmp_path / "twice.wav"
    rendered = run("render", model, "-o", wav, "--rate", 2 * RATE, "--end", 0.4)
    assert rendered.exit_code == 0, rendered.output
    data, rate = soundfile.read(wav)
    assert rate == 2 * RATE and data.shape == (int(0.4 * 2 * RATE),) and np.all(np.isfinite(data))
    assert np.max(np.abs(data)) > 0.05  # not silent
    png = tmp_path / "melody.png"
    plotted = run("plot", model, "-o", png)
    assert plotted.exit_code == 0, plotted.output
    assert png.with_suffix(".modes.png").stat().st_size > 10_000
    bad = run("fit", clip, "--modes", "everywhere", "-o", tmp_path / "x.sonode")
    assert bad.exit_code == 2 and "everywhere" in bad.output


def test_least_squares_in_overlapping_runs_matches_one_run(melody_fits):
    """Long clips are solved in runs of nodes (bounded memory); with enough overlap the states
    are those of the single solve (the coupling decays geometrically along the chain)."""
    from sonode.model.local_synthesis import chunked_least_squares

    x, local, _, _, _, _ = melody_fits
    xn = (x - local.config.offset) / local.config.gain
    hop, rate = local.config.hop_samples, local.config.sample_rate
    tables = (local.track_first.numpy(), local.track_length.numpy())
    cycles = local.freq_hz.detach().numpy() * hop / rate
    whole = chunked_least_squares(*tables, cycles, xn, hop)
    runs = chunked_least_squares(*tables, cycles, xn, hop, chunk_nodes=50, overlap_nodes=20)
    scale = np.max(np.abs(whole[0]))
    assert np.max(np.abs(runs[0] - whole[0])) < 0.01 * scale
    assert np.max(np.abs(runs[1] - whole[1])) < 0.01 * scale


def test_auto_chooses_local_modes_for_a_melody():
    options = FitOptions(
        modes="auto", steps=0, continuation_samples=0, max_time_s=None, latent_dim=16, lp_order=64
    )
    model, report = fit_samples(melody(), RATE, options)
    assert isinstance(model, LocalModel) and report.identification["variant"] == "local"
