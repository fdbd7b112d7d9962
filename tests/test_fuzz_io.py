"""Fuzzing the audio reader and the model loader with hypothesis.

Property: whatever bytes a file holds (random, or a real file with mutated header/data, truncated,
spliced), ``read_clip`` returns a valid Clip or raises AudioInputError, and ``load_model_file``
returns checked tensors or raises ModelFileError. Any other exception type fails the test; a slow
example fails the deadline; a real hang is turned into a crash with tracebacks by faulthandler.

Runs are deterministic by default (derandomize) so CI is stable. For a longer, random campaign:
``SONODE_FUZZ_EXAMPLES=5000 python -m pytest -s tests/test_fuzz_io.py``. Each test prints how many
cases ran and what they ended in.
"""

from __future__ import annotations

import faulthandler
import io
import os
import struct
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from sonode.errors import AudioInputError, ModelFileError
from sonode.io.checks import SILENCE_PEAK
from sonode.io.clip import Clip, read_clip
from sonode.io.model_file import load_model_file, save_model_file

DATA = Path(__file__).resolve().parents[1] / "data"
REAL_WAVS = sorted(DATA.glob("*.wav"))
_ENV_EXAMPLES = os.environ.get("SONODE_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_ENV_EXAMPLES or 150),
    derandomize=_ENV_EXAMPLES is None,
    deadline=5000,  # ms; generous for 2 shared cores, a normal case takes ~5 ms
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCHEMA = {"A": ("k", "k"), "C": ("k",), "bias": ()}

# Header fields are where parsers branch; these values sit on their edges.
EDGE_INTS = [
    0,
    1,
    2,
    3,
    7,
    8,
    255,
    256,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    8000,
    192000,
    0x7FFFFFFF,
    0xFFFFFFFF,
]
offsets = st.one_of(
    st.integers(4, 80), st.integers(0, 1 << 30)
)  # half in the header, past the magic
mutation = st.one_of(
    st.tuples(st.just("set"), offsets, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("u32"), offsets, st.sampled_from(EDGE_INTS)),
    st.tuples(st.just("u16"), offsets, st.sampled_from([v & 0xFFFF for v in EDGE_INTS])),
    st.tuples(st.just("insert"), offsets, st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), offsets, st.integers(1, 64)),
    st.tuples(st.just("cut"), offsets, st.none()),
)
read_options = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["mix", 0, 1]),
        "start_s": st.sampled_from([0.0, 0.1, 1.4]),
        "duration_s": st.sampled_from([None, 0.2]),
        "rate": st.sampled_from([None, None, 8000, 16000]),
    }
)


def mutate(data: bytes, mutations) -> bytes:
    buf = bytearray(data)
    for kind, offset, arg in mutations:
        at = offset % (len(buf) + 1)
        if kind == "set":
            buf[at : at + len(arg)] = arg
        elif kind in ("u32", "u16"):
            buf[at : at + (4 if kind == "u32" else 2)] = struct.pack(
                "<I" if kind == "u32" else "<H", arg
            )
        elif kind == "insert":
            buf[at:at] = arg
        elif kind == "delete":
            del buf[at : at + arg]
        else:
            del buf[at:]
    return bytes(buf)


@pytest.fixture(autouse=True)
def hang_guard():
    """A hang inside C code cannot be interrupted: dump every thread's stack and exit instead."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def real_audio(tmp_path_factory) -> dict[str, bytes]:
    """Real clips as WAV (the bundled files), FLAC, OGG and 2-channel WAV (made from them)."""
    folder = tmp_path_factory.mktemp("real")
    files = {p.name: p.read_bytes() for p in REAL_WAVS}
    x, sr = sf.read(REAL_WAVS[0])
    for name, kw, data in [
        ("c.flac", dict(format="FLAC"), x),
        ("c.ogg", dict(format="OGG", subtype="VORBIS"), x),
        ("st.wav", dict(subtype="PCM_24"), np.stack([x, x[::-1]], axis=1)),
    ]:
        sf.write(folder / name, data, sr, **kw)
        files[name] = (folder / name).read_bytes()
    return files


@pytest.fixture(scope="module")
def real_model(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("model") / "m.sonode"
    g = torch.Generator().manual_seed(0)
    save_model_file(
        path,
        {
            "A": torch.randn(6, 6, generator=g),
            "C": torch.randn(6, generator=g),
            "bias": torch.tensor(0.1),
        },
        {"sample_rate": 16000, "snr_db": 30.0},
        kind="decoder",
        version=1,
    )
    return path.read_bytes()


def read_outcome(path: Path, **options) -> str:
    """read_clip's result class; asserts a returned Clip keeps every promise of the reader."""
    try:
        clip = read_clip(path, **options)
    except AudioInputError as err:
        assert str(err) and "\n" not in str(err)
        return "AudioInputError"
    assert isinstance(clip, Clip) and clip.samples.dtype == np.float64 and clip.samples.ndim == 1
    assert np.isfinite(clip.samples).all() and np.abs(clip.samples).max() >= SILENCE_PEAK
    assert 0 < clip.duration_s <= 30.0 + 1.0 / clip.sample_rate
    return "Clip"


def load_outcome(path: Path) -> str:
    try:
        tensors, meta = load_model_file(path, kind="decoder", supported_versions=[1], schema=SCHEMA)
    except ModelFileError as err:
        assert str(err) and "\n" not in str(err)
        return "ModelFileError"
    assert isinstance(meta, dict) and tensors["A"].shape[0] == tensors["C"].shape[0]
    assert all(torch.isfinite(t).all() for t in tensors.values())
    return "loaded"


def report(name: str, outcomes: Counter, record_property) -> None:
    total = sum(outcomes.values())
    print(f"\nfuzz {name}: {total} cases -> {dict(outcomes)}")
    record_property(f"fuzz_cases[{name}]", total)
    assert total >= min(FUZZ.max_examples, 50)  # the property really was exercised


def test_fuzz_reader_random_bytes(tmp_path, record_property):
    outcomes = Counter()
    magic = st.sampled_from(
        [b"", b"RIFF\x24\x08\x00\x00WAVEfmt ", b"fLaC", b"OggS\x00\x02", b"RIFX", b"RF64"]
    )

    @FUZZ
    @given(prefix=magic, body=st.binary(max_size=2048), options=read_options)
    def check(prefix, body, options):
        path = tmp_path / "fuzz.wav"
        path.write_bytes(prefix + body)
        outcomes[read_outcome(path, **options)] += 1

    check()
    report("read_clip(random bytes)", outcomes, record_property)


def test_fuzz_reader_mutated_real_files(tmp_path, real_audio, record_property):
    outcomes = Counter()

    @FUZZ
    @given(
        name=st.sampled_from(sorted(real_audio)),
        mutations=st.lists(mutation, min_size=1, max_size=6),
        options=read_options,
    )
    def check(name, mutations, options):
        path = tmp_path / f"fuzz{Path(name).suffix}"
        path.write_bytes(mutate(real_audio[name], mutations))
        outcomes[read_outcome(path, **options)] += 1

    check()
    report("read_clip(mutated real WAV/FLAC/OGG)", outcomes, record_property)
    assert outcomes["Clip"] > 0 and outcomes["AudioInputError"] > 0  # both branches reached


def test_fuzz_loader_random_bytes(tmp_path, record_property):
    outcomes = Counter()

    @FUZZ
    @given(prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02"]), body=st.binary(max_size=2048))
    def check(prefix, body):
        path = tmp_path / "fuzz.sonode"
        path.write_bytes(prefix + body)
        outcomes[load_outcome(path)] += 1

    check()
    report("load_model_file(random bytes)", outcomes, record_property)


def test_fuzz_loader_mutated_real_model(tmp_path, real_model, record_property):
    outcomes = Counter()

    @FUZZ
    @given(mutations=st.lists(mutation, min_size=1, max_size=6))
    def check(mutations):
        path = tmp_path / "fuzz.sonode"
        path.write_bytes(mutate(real_model, mutations))
        outcomes[load_outcome(path)] += 1

    check()
    report("load_model_file(mutated real model)", outcomes, record_property)


@pytest.mark.filterwarnings(
    "ignore:Detected pickle protocol"
)  # torch notes odd pickles; we judge them
def test_fuzz_loader_mutated_pickle_in_valid_zip(tmp_path, real_model, record_property):
    """Byte flips in the raw file mostly trip the zip checksums; mutate the pickle itself and re-zip
    it with valid checksums so that the unpickler and the container checks get the bad data."""
    with zipfile.ZipFile(io.BytesIO(real_model)) as z:
        members = {info.filename: z.read(info) for info in z.infolist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))
    outcomes = Counter()

    @FUZZ
    @given(mutations=st.lists(mutation, min_size=1, max_size=4))
    def check(mutations):
        path = tmp_path / "fuzz.sonode"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for name, data in members.items():
                z.writestr(name, mutate(data, mutations) if name == pkl else data)
        outcomes[load_outcome(path)] += 1

    check()
    report("load_model_file(mutated pickle, valid zip)", outcomes, record_property)
