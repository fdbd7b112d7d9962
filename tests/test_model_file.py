"""sonode.io.model_file: round trip, determinism, atomicity, and a clear ModelFileError for every bad
file, including a crafted pickle payload that must not run."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from sonode.errors import ModelFileError
from sonode.io import model_file
from sonode.io.model_file import load_model_file, save_model_file

KIND = "decoder"
SCHEMA = {"A": ("k", "k"), "C": ("k",), "bias": (), "hist": (None, 3)}


def tensors(k: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "A": torch.randn(k, k, generator=g, dtype=torch.float64),
        "C": torch.randn(k, generator=g),
        "bias": torch.tensor(0.25),
        "hist": torch.arange(6, dtype=torch.int64).reshape(2, 3),
    }


META = {"sample_rate": 16000, "snr_db": 31.5, "options": {"latent_dim": 4}, "names": ["a", "b"]}


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "m.sonode"
    save_model_file(path, tensors(), META, kind=KIND, version=2)
    return path


def load(path, **kw):
    kw = {"kind": KIND, "supported_versions": (1, 2), **kw}
    return load_model_file(path, **kw)


def craft(path, payload) -> Path:
    """Write an arbitrary object with plain torch.save: the way a tampered file is made."""
    torch.save(payload, path)
    return path


def container(**overrides):
    """A sonode container as a forger would build it: with a checksum matching its contents, so
    that the later checks (finiteness, shapes, ...) are what must catch it."""
    payload = {
        "format": "sonode",
        "kind": KIND,
        "version": 2,
        "meta_json": "{}",
        "tensors": tensors(),
    }
    payload.update(overrides)
    if "sha256" not in payload:
        try:
            payload["sha256"] = model_file._digest(payload["meta_json"], payload["tensors"])
        except (AttributeError, TypeError):  # malformed on purpose: checked before the digest
            payload["sha256"] = ""
    return payload


# --- round trip -------------------------------------------------------------------------------


def test_round_trip_keeps_values_dtypes_and_meta(good):
    loaded, meta = load(good, schema=SCHEMA)
    assert meta == META and set(loaded) == set(tensors())
    for name, t in tensors().items():
        assert loaded[name].dtype == t.dtype and torch.equal(loaded[name], t)


def test_views_are_stored_compactly(tmp_path):
    big = torch.zeros(1_000_000)
    save_model_file(
        tmp_path / "v.sonode", {"w": big[:4], "t": torch.ones(3, 4).T}, {}, kind=KIND, version=1
    )
    loaded, _ = load(tmp_path / "v.sonode", supported_versions=[1])
    assert os.path.getsize(tmp_path / "v.sonode") < 10_000  # not the 4 MB base storage
    assert loaded["t"].is_contiguous() and loaded["t"].shape == (4, 3)


def test_identical_models_give_identical_bytes(tmp_path):
    save_model_file(tmp_path / "a.sonode", tensors(), META, kind=KIND, version=2)
    save_model_file(
        tmp_path / "other_name.sonode",
        tensors(),
        dict(reversed(META.items())),
        kind=KIND,
        version=2,
    )
    assert (tmp_path / "a.sonode").read_bytes() == (tmp_path / "other_name.sonode").read_bytes()


def test_crash_mid_save_keeps_the_old_file(tmp_path, good, monkeypatch):
    before = good.read_bytes()

    def torn_write(self, data):
        Path.write_text(self, "half")  # leaves a torn temp file, then dies
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", torn_write)
    with pytest.raises(KeyboardInterrupt):
        save_model_file(good, tensors(8), META, kind=KIND, version=2)
    monkeypatch.undo()
    assert good.read_bytes() == before and os.listdir(good.parent) == [good.name]


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        (dict(kind=""), ValueError),
        (dict(version=0), ValueError),
        (dict(version=True), ValueError),
        (dict(tensors={"a": [1.0]}), TypeError),
        (dict(meta={"x": float("nan")}), ValueError),
        (dict(meta={"x": object()}), TypeError),
        (dict(tensors={"a": torch.tensor([float("inf")])}), ValueError),
    ],
)
def test_save_refuses_what_load_would_refuse(tmp_path, kwargs, exc):
    args = {"tensors": tensors(), "meta": META, "kind": KIND, "version": 1, **kwargs}
    with pytest.raises(exc):
        save_model_file(tmp_path / "x.sonode", args.pop("tensors"), args.pop("meta"), **args)
    assert not (tmp_path / "x.sonode").exists()


# --- refusals -------------------------------------------------------------------------------


def refused(path, match, **kw) -> str:
    with pytest.raises(ModelFileError, match=match) as info:
        load(path, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_file_and_folder(tmp_path):
    refused(tmp_path / "nope.sonode", "no such model file")
    refused(tmp_path, "is not a file")


def test_random_bytes_and_text(tmp_path):
    (tmp_path / "r.sonode").write_bytes(os.urandom(1000))
    refused(tmp_path / "r.sonode", "not a torch zip archive")
    (tmp_path / "t.sonode").write_text("hello")
    refused(tmp_path / "t.sonode", "not a torch zip archive")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_truncated_file(tmp_path, good, keep):
    data = good.read_bytes()
    (tmp_path / "cut.sonode").write_bytes(data[: int(len(data) * keep)])
    refused(tmp_path / "cut.sonode", "not a torch zip archive, or truncated|corrupt")


def test_zip_that_is_not_a_torch_file(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.sonode", "w") as z:
        z.writestr("readme.txt", "hi")
    refused(tmp_path / "z.sonode", "corrupt or truncated")


def test_plain_torch_state_dict_is_not_a_sonode_file(tmp_path):
    refused(
        craft(tmp_path / "sd.pt", {"weight": torch.ones(2)}),
        "torch file but not a sonode model file",
    )


def test_wrong_kind(tmp_path):
    refused(
        craft(tmp_path / "k.sonode", container(kind="report")), "holds a 'report', not a 'decoder'"
    )


@pytest.mark.parametrize("version", [3, 0, "2", 2.0])
def test_unsupported_version_names_the_supported_ones(tmp_path, version):
    refused(craft(tmp_path / "v.sonode", container(version=version)), r"reads version\(s\) 1, 2")


def test_missing_keys(tmp_path):
    payload = container()
    del payload["meta_json"], payload["version"]
    refused(craft(tmp_path / "m.sonode", payload), "missing version, meta_json")


@pytest.mark.parametrize("meta_json", ["not json", "[1, 2]", 42])
def test_meta_must_be_a_json_object(tmp_path, meta_json):
    refused(
        craft(tmp_path / "j.sonode", container(meta_json=meta_json)),
        "metadata is not a JSON object",
    )


def test_non_tensor_values(tmp_path):
    refused(
        craft(tmp_path / "n.sonode", container(tensors={"A": [1.0, 2.0]})),
        "'A' is a list, not a tensor",
    )
    refused(
        craft(tmp_path / "d.sonode", container(tensors=[torch.ones(2)])),
        "'tensors' is a list, not a dict",
    )


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
def test_sparse_tensor_is_refused(tmp_path):
    t = tensors()
    t["A"] = t["A"].to_sparse()  # weights_only happily rebuilds sparse tensors
    refused(
        craft(tmp_path / "sp.sonode", container(tensors=t, sha256="x")),
        "'A' is not a plain dense tensor",
    )


def test_flipped_bit_in_tensor_data_is_detected(tmp_path, good):
    """torch does not check zip CRCs of tensor records: without the digest this would load."""
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as z:
        record = next(i for i in z.infolist() if i.filename.endswith("data/0"))
    name_len, extra_len = struct.unpack_from("<HH", data, record.header_offset + 26)  # local header
    start = record.header_offset + 30 + name_len + extra_len
    data[start + 5] ^= 0x10
    (tmp_path / "flip.sonode").write_bytes(bytes(data))
    refused(tmp_path / "flip.sonode", "damaged: its contents do not match the checksum")


def test_edited_metadata_is_detected(tmp_path):
    payload = container(meta_json='{"sample_rate": 16000}')
    payload["meta_json"] = '{"sample_rate": 48000}'
    refused(craft(tmp_path / "e.sonode", payload), "damaged")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_tensor(tmp_path, bad):
    t = tensors()
    t["C"][1] = bad
    refused(
        craft(tmp_path / "f.sonode", container(tensors=t)), "tensor 'C' has NaN or infinite values"
    )


# --- schema: tampered shapes -----------------------------------------------------------------


def test_tampered_shape_breaks_a_symbol(tmp_path):
    t = tensors()
    t["C"] = torch.zeros(5)  # A says k = 4
    msg = refused(craft(tmp_path / "s.sonode", container(tensors=t)), "tampered", schema=SCHEMA)
    assert "k=5" in msg and "k=4" in msg


@pytest.mark.parametrize(
    "name,tensor",
    [
        ("A", torch.zeros(4, 4, 1)),
        ("bias", torch.zeros(1)),
        ("hist", torch.zeros(2, 4, dtype=torch.int64)),
    ],
)
def test_tampered_rank_or_fixed_size(tmp_path, name, tensor):
    t = tensors()
    t[name] = tensor
    refused(
        craft(tmp_path / "s.sonode", container(tensors=t)),
        f"tensor '{name}' has shape .* expected",
        schema=SCHEMA,
    )


def test_schema_none_accepts_any_size(tmp_path):
    t = tensors()
    t["hist"] = torch.zeros(7, 3, dtype=torch.int64)
    loaded, _ = load(craft(tmp_path / "s.sonode", container(tensors=t)), schema=SCHEMA)
    assert loaded["hist"].shape == (7, 3)


def test_schema_missing_and_unexpected_tensors(tmp_path, good):
    refused(good, "missing tensor", schema={**SCHEMA, "D": ("k",)})
    refused(
        good,
        r"unexpected tensor\(s\) hist",
        schema={k: v for k, v in SCHEMA.items() if k != "hist"},
    )


# --- untrusted code -------------------------------------------------------------------------


class Payload:
    """Unpickling this runs a shell command: the classic malicious-checkpoint payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_crafted_pickle_payload_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "PWNED"
    path = craft(tmp_path / "evil.sonode", container(meta_json=Payload(marker)))
    msg = refused(path, "pickled Python objects.*could run code")
    assert not marker.exists(), msg
    # Control: the payload is live; an unsafe torch.load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_payload_in_legacy_non_zip_format_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "legacy.sonode"
    torch.save(container(meta_json=Payload(marker)), path, _use_new_zipfile_serialization=False)
    refused(path, "not a torch zip archive")
    assert not marker.exists()


def test_load_does_not_call_unsafe_torch_load(good, monkeypatch):
    seen = []
    real = torch.load
    monkeypatch.setattr(
        model_file.torch, "load", lambda *a, **kw: seen.append(kw) or real(*a, **kw)
    )
    load(good)
    assert seen == [{"weights_only": True, "map_location": "cpu"}]


def test_file_is_the_documented_plain_container(good):
    """Any torch user can read a sonode file safely: weights_only=True, five plain keys."""
    payload = torch.load(good, weights_only=True)
    assert set(payload) == {"format", "kind", "version", "meta_json", "tensors", "sha256"}
    assert (payload["format"], payload["kind"], payload["version"]) == ("sonode", KIND, 2)


def test_zip_end_record_that_makes_zipfile_raise(tmp_path, good):
    """Fuzz-found: a zip64 locator claiming 2 disks makes zipfile.is_zipfile raise BadZipFile
    instead of returning False; it must still end in ModelFileError."""
    data = good.read_bytes()
    eocd = data.rindex(b"PK\x05\x06")
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, 0, 2)
    (tmp_path / "disks.sonode").write_bytes(data[:eocd] + locator + data[eocd:])
    refused(tmp_path / "disks.sonode", "not a torch zip archive")
