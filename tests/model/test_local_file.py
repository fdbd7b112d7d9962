"""Version 5 of the local model file: the continuation and the fit report compressed
(`sonode.model.local_file.pack_extras`), every declared size checked before decompressing."""

import json
import lzma
from pathlib import Path

import numpy as np
import pytest
import torch

import sonode
from sonode.errors import ModelFileError
from sonode.io.model_file import load_model_file, save_model_file
from sonode.model.config import MODEL_KIND
from sonode.model.local_file import PACKED_CONTINUATION, PACKED_INFO

DATA = Path(__file__).parent.parent / "data"
FIXTURE = "model_local_v4_planes2"  # version 4: continuation and report stored plainly


@pytest.fixture
def saved_v5(tmp_path):
    fitted = sonode.load(DATA / f"{FIXTURE}.sonode")
    path = tmp_path / "v5.sonode"
    fitted.save(path)
    return fitted, path


def test_version_5_packs_the_continuation_and_report_and_loads_the_same_model(saved_v5):
    old, path = saved_v5
    tensors, meta = load_model_file(path, kind=MODEL_KIND, supported_versions=[5])
    assert "info" not in meta and {PACKED_CONTINUATION, PACKED_INFO} <= set(tensors)
    plain = set(tensors) - {PACKED_CONTINUATION}
    assert not any(n.startswith(("tail_", "continuation")) for n in plain)
    packed = [name for name, _ in meta["packed"]["continuation"]]
    # a late tensor equal to the early one is not stored (the fixture's late modes differ from
    # the early ones in their decays only)
    assert "tail_late_bank.raw_damping" in packed
    assert "tail_late_bank.omega_rad_per_s" not in packed
    assert path.stat().st_size < 0.85 * (DATA / f"{FIXTURE}.sonode").stat().st_size
    new = sonode.load(path)
    assert new.info == old.info and new.report.epochs == 0
    assert new.model.continuation_float32 and new.model.storage == "quantised"
    for name, got in (("render", new.render().samples), ("extrapolate", new.extrapolate(0.1))):
        expected = np.load(DATA / f"{FIXTURE}_{name}_16000hz.npy")
        assert np.array_equal(got, expected), name


def _rewrite(path, tensors, meta, tmp_path):
    bad = tmp_path / "bad.sonode"
    save_model_file(bad, tensors, meta, kind=MODEL_KIND, version=5)
    return bad


def test_damaged_packed_continuation_or_report_is_refused(saved_v5, tmp_path):
    _, path = saved_v5
    tensors, meta = load_model_file(path, kind=MODEL_KIND, supported_versions=[5])
    packed = meta["packed"]
    listed = packed["continuation"]
    nan_report = lzma.compress(b'{"fit": NaN}')
    changes = [
        ({"info_bytes": packed["info_bytes"] + 1}, {}),  # more than the stream holds
        ({"info_bytes": 1 << 40}, {}),  # beyond any report: refused before decompressing
        ({"continuation": [["freq_hz", listed[0][1]], *listed[1:]]}, {}),  # not a continuation's
        ({"continuation": [listed[0], listed[0], *listed[2:]]}, {}),  # a name twice
        ({"continuation": [[listed[0][0], [1 << 30]], *listed[1:]]}, {}),  # too many numbers
        ({"continuation": "all"}, {}),
        ({}, {PACKED_CONTINUATION: torch.tensor([1, 2, 3], dtype=torch.uint8)}),  # not LZMA
        ({"info_bytes": 12}, {PACKED_INFO: torch.frombuffer(bytearray(nan_report), dtype=torch.uint8)}),
    ]  # fmt: skip
    for meta_change, tensor_change in changes:
        bad = _rewrite(
            path,
            {**tensors, **tensor_change},
            {**meta, "packed": {**packed, **meta_change}},
            tmp_path,
        )
        with pytest.raises(ModelFileError, match="packed continuation or report is damaged"):
            sonode.load(bad)
    # the untouched file loads, so each refusal above is the change's
    assert sonode.load(_rewrite(path, tensors, meta, tmp_path)).info["duration_s"] == 0.3
    assert json.loads(json.dumps(meta))  # plain JSON metadata
