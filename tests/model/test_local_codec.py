"""Compact node tables of local model files (`sonode.model.local_codec`, model file version 4)."""

import numpy as np
import pytest
import torch

from sonode.errors import ModelFileError
from sonode.model import SonodeModel
from sonode.model.config import MODEL_KIND
from sonode.model.local import LocalConfig, LocalModel
from sonode.model.local_codec import (
    NodeTables,
    choose_prediction,
    code_states,
    decode,
    encode,
    pack,
    track_shifts,
    unpack,
)

RATE, HOP = 16000, 160


def tables(seed=0):
    """Three tracks: a steady loud partial, a gliding one born late, a weak short one."""
    rng = np.random.default_rng(seed)
    first, length = np.array([0, 5, 9]), np.array([40, 30, 4])
    freq = np.concatenate([440 + 0.1 * rng.standard_normal(40), 700 + np.arange(30), [1234.5] * 4])
    turn = np.exp(1j * np.pi * 2 * freq * HOP / RATE)  # the phase each node adds, steady decay
    states = []
    for f0, n in zip(first, length, strict=True):
        part = np.cumprod(np.full(n, 0.98)) * np.cumprod(
            turn[sum(length[: list(first).index(f0)]) :][:n]
        )
        states.append(part * (0.01 if n == 4 else 1.0))
    c = np.concatenate(states) * (1 + 0.01 * rng.standard_normal(freq.size))
    return first, length, freq, c.real.copy(), c.imag.copy()


def test_decoding_reproduces_the_encoders_values_bit_for_bit():
    first, length, freq, re, im = tables()
    shifts = track_shifts(length, re, im)
    assert shifts[2] > shifts[0] == 0  # the weak track is rounded coarser
    blob, freq_d, re_d, im_d = encode(first, length, freq, re, im, HOP, RATE, 0.05, 1e-4, shifts)
    out = decode(blob, 3, int(length.sum()), HOP, RATE, 0.05, 1e-4)
    flags = [True, True, True]  # every track here is steady enough to be predicted
    for got, want in zip(out, (first, length, freq_d, re_d, im_d, shifts, flags), strict=True):
        assert np.array_equal(got, want)
    # rounding errors stay within half a step and do not accumulate along a track (closed loop)
    assert np.max(np.abs(freq_d - freq)[:70]) <= 0.025 + 1e-12
    assert (
        np.max(np.abs(re_d - re)) <= 0.5e-4 * 1.0001
        and np.max(np.abs(im_d - im)) <= 0.5e-4 * 1.0001
    )
    # prediction along the track: a steady partial's codes are its small changes, not its values
    (code_re, code_im), _ = code_states(length, freq_d, HOP, RATE, 1e-4, target=(re, im))
    later = np.ones(freq.size, dtype=bool)
    later[[0, 40, 70]] = False  # each track's first state has nothing to be predicted from
    raw = np.abs(np.rint(re / 1e-4))[later].mean()
    assert np.abs(code_re[later]).mean() < 0.05 * raw, (np.abs(code_re[later]).mean(), raw)


def test_streams_only_gives_the_streams_the_bytes_pack():
    first, length, freq, re, im = tables()
    shifts = track_shifts(length, re, im)
    args = (first, length, freq, re, im, HOP, RATE, 0.05, 1e-4, shifts)
    blob, *decoded = encode(*args)
    streams, *same = encode(*args, streams_only=True)
    n_entries = int(length.sum())
    assert [s.size for s in streams] == [3] * 5 + [n_entries - 3] + [3, 3] + [n_entries - 3] * 2
    assert pack(streams) == blob
    assert all(np.array_equal(a, b) for a, b in zip(decoded, same, strict=True))


def test_tracks_whose_states_jump_are_not_predicted_and_still_decode_exactly():
    """A track whose states jump from node to node (as where neighbouring modes trade off) is
    coded as it is, a steady partial by prediction along the track; both decode exactly."""
    first, length, freq, re, im = tables()
    rng = np.random.default_rng(1)
    jumping = slice(40, 70)  # the gliding track's states replaced by unrelated ones
    re[jumping], im[jumping] = rng.standard_normal(30), rng.standard_normal(30)
    predict = choose_prediction(NodeTables(first, length, freq, re, im, HOP, RATE))
    assert predict.tolist() == [True, False, True]
    shifts = track_shifts(length, re, im)
    blob, freq_d, re_d, im_d = encode(first, length, freq, re, im, HOP, RATE, 0.05, 1e-4, shifts)
    out = decode(blob, 3, int(length.sum()), HOP, RATE, 0.05, 1e-4)
    for got, want in zip(out, (first, length, freq_d, re_d, im_d, shifts, predict), strict=True):
        assert np.array_equal(got, want)
    # unpredicted, its codes are its values; predicted, they would be larger (the carried state
    # is a worse guess than none)
    codes = {}
    for flags in ([True, False, True], [True, True, True]):
        (code_re, _), _ = code_states(
            length, freq_d, HOP, RATE, 1e-4, target=(re, im), predict=np.array(flags)
        )
        codes[flags[1]] = np.abs(code_re[41:70]).mean()
    assert codes[False] < 0.8 * codes[True], codes


def test_first_frequencies_at_one_node_are_coded_as_increments():
    first, length = np.array([0, 0, 0, 4]), np.array([2, 2, 2, 1])
    freq = np.array([200.0, 200.0, 300.0, 300.0, 450.0, 450.0, 1000.0])
    re, im = np.ones(7), np.zeros(7)
    shifts = np.zeros(4, dtype=np.int64)
    streams, *_ = encode(
        first, length, freq, re, im, HOP, RATE, 0.05, 1e-3, shifts, streams_only=True
    )
    assert streams[4].tolist() == [4000, 2000, 3000, 20000]  # 200 Hz, +100, +150; a new node
    blob = pack(streams)
    assert np.array_equal(decode(blob, 4, 7, HOP, RATE, 0.05, 1e-3)[2], freq)


def test_both_configurations_place_the_span_and_continuation_alike():
    from sonode.model.config import ModelConfig

    local = LocalConfig(RATE, 24000, HOP, 1.0, 0.0, continuation_samples=4000)
    global_ = ModelConfig(RATE, 24000, 256, 32, 64, 2, 1024, 1.0, 0.0, continuation_samples=4000)
    for config in (local, global_):
        assert config.duration_s == 1.5
        assert config.continuation_start_s == 1.25


def test_unpack_refuses_wrong_sizes_and_garbage():
    blob = pack([np.arange(10), -np.arange(5)])
    assert [a.tolist() for a in unpack(blob, [10, 5])] == [list(range(10)), [0, -1, -2, -3, -4]]
    with pytest.raises(ValueError):
        unpack(blob, [10, 6])
    with pytest.raises(ValueError):
        unpack(blob, [10, 4])
    with pytest.raises(ValueError):
        unpack(b"not lzma at all", [3])


def compact_model(tmp_path):
    first, length, freq, re, im = tables()
    config = LocalConfig(RATE, 39 * HOP, HOP, 1.0, 0.0)
    shifts = track_shifts(length, re, im)
    _, freq_d, re_d, im_d = encode(first, length, freq, re, im, HOP, RATE, 0.05, 1e-4, shifts)
    model = LocalModel(config, first, length, freq_d, re_d, im_d)
    model.storage, model.steps, model.freq_shifts = "quantised", (0.05, 1e-4), shifts
    path = tmp_path / "compact.sonode"
    model.save(path)
    return model, path


def test_compact_file_loads_and_renders_exactly(tmp_path):
    model, path = compact_model(tmp_path)
    loaded, _ = SonodeModel.load(path)
    assert loaded.storage == "quantised" and loaded.steps == (0.05, 1e-4)
    assert torch.equal(loaded.reconstruct(), model.reconstruct())
    float_path = tmp_path / "float.sonode"
    model.save(float_path, storage="float32")
    assert path.stat().st_size < float_path.stat().st_size


def test_damaged_compact_tables_are_refused(tmp_path):
    from sonode.io.model_file import load_model_file, save_model_file

    _, path = compact_model(tmp_path)
    tensors, meta = load_model_file(path, kind=MODEL_KIND, supported_versions=[5])
    for change in (
        {"n_entries": meta["tables"]["n_entries"] + 1},
        {"state_step": -1.0},
        {"codec": "zip"},
    ):
        bad = tmp_path / "bad.sonode"
        save_model_file(
            bad,
            tensors,
            {**meta, "tables": {**meta["tables"], **change}},
            kind=MODEL_KIND,
            version=5,
        )
        with pytest.raises(ModelFileError):
            SonodeModel.load(bad)


def test_a_decoded_model_saved_again_is_the_same_file(tmp_path):
    """The prediction flags travel with the model (from the rounding or the file), so saving
    codes exactly the values it holds: flags chosen again from decoded values could differ (4 of
    4,830 tracks on a 3 s music excerpt) and re-round those tracks."""
    first, length, freq, re, im = tables()
    shifts = track_shifts(length, re, im)
    flags = np.array([False, True, False])  # not what choose_prediction picks for these tracks
    tables_now = NodeTables(first, length, freq, re, im, HOP, RATE)
    assert not np.array_equal(choose_prediction(tables_now), flags)
    step = 3e-3
    _, freq_d, re_d, im_d = encode(
        first, length, freq, re, im, HOP, RATE, 0.05, step, shifts, predict=flags
    )
    model = LocalModel(
        LocalConfig(RATE, 39 * HOP, HOP, 1.0, 0.0), first, length, freq_d, re_d, im_d
    )
    model.storage, model.steps, model.freq_shifts = "quantised", (0.05, step), shifts
    model.predict_flags = flags
    path, again = tmp_path / "a.sonode", tmp_path / "b.sonode"
    model.save(path)
    loaded, _ = SonodeModel.load(path)
    assert np.array_equal(loaded.predict_flags, flags)
    assert torch.equal(loaded.amp_re, model.amp_re) and torch.equal(loaded.amp_im, model.amp_im)
    loaded.save(again)
    assert again.read_bytes() == path.read_bytes()
