"""Model files written by sonode at d8155b1 (before the package restructure) still load and render
bit-identically.

tests/data/model_d8155b1.sonode was fitted at d8155b1 on the first 0.2 s of
data/decaying_steelguitar_C4.wav at 8 kHz (latent_dim=8, hidden=16, layers=1, steps=5,
lp_order=64, seed=0, one thread); the .npy files are its renders at 8 kHz and 48 kHz written by
that same code.
"""

from pathlib import Path

import numpy as np
import pytest

import sonode

DATA = Path(__file__).parent / "data"


def _assert_bit_identical(got: np.ndarray, expected_file: str) -> None:
    """``got`` equals, in dtype, shape and every value, the array saved in tests/data/``expected_file``."""
    expected = np.load(DATA / expected_file)
    assert got.dtype == expected.dtype and got.shape == expected.shape, expected_file
    assert np.array_equal(got, expected), expected_file


@pytest.mark.parametrize("rate_hz", [8000, 48000])
def test_d8155b1_model_renders_bit_identically(rate_hz):
    fitted = sonode.load(DATA / "model_d8155b1.sonode")
    assert fitted.sample_rate == 8000
    _assert_bit_identical(
        fitted.render(rate=rate_hz).samples, f"model_d8155b1_render_{rate_hz}hz.npy"
    )


def test_local_version_3_model_renders_bit_identically():
    """A `--modes local` file of version 3 (float32 node tables, written at 96151ad on the first
    0.2 s of the melody of test_local_modes.py, steps=0, no continuation) still loads and
    renders exactly as the code that wrote it did."""
    fitted = sonode.load(DATA / "model_local_v3.sonode")
    assert fitted.sample_rate == 16000 and fitted.model.variant == "local"
    _assert_bit_identical(fitted.render().samples, "model_local_v3_render_16000hz.npy")


def test_local_version_4_lzma_planes_1_model_renders_bit_identically():
    """A `--modes local` file of version 4 in the first compact codec ("lzma-planes-1": every
    track predicted, entries in track order; written at c4c9a13 on the first 0.2 s of the melody
    of test_local_modes.py, steps=0, no continuation) still decodes and renders exactly."""
    fitted = sonode.load(DATA / "model_local_v4_planes1.sonode")
    assert fitted.sample_rate == 16000 and fitted.model.storage == "quantised"
    _assert_bit_identical(fitted.render().samples, "model_local_v4_planes1_render_16000hz.npy")


def test_local_version_4_lzma_planes_2_model_with_continuation_loads_bit_identically():
    """A `--modes local` file of version 4 in the codec "lzma-planes-2" with its continuation
    (float32) and fit report in the metadata, as written before version 5 (at 893be9c, on the
    first 0.3 s of the melody of test_local_modes.py, steps=0): it still decodes, renders and
    extrapolates exactly, and keeps its report."""
    fitted = sonode.load(DATA / "model_local_v4_planes2.sonode")
    assert fitted.sample_rate == 16000 and fitted.model.storage == "quantised"
    assert fitted.model.config.tail_modes == 32
    assert fitted.report.epochs == 0 and fitted.info["duration_s"] == 0.3
    for name, got in (
        ("render", fitted.render().samples),
        ("extrapolate", fitted.extrapolate(0.1)),
    ):
        _assert_bit_identical(got, f"model_local_v4_planes2_{name}_16000hz.npy")


# --- files from a newer sonode (docs/design.md, "Model files across versions") ----------------


def _rewritten(tmp_path, fixture: str, edit=None, version: int | None = None) -> Path:
    """tests/data/``fixture`` saved again with its configuration edited by ``edit(config)`` (and
    its format version replaced): a file as a newer or older sonode could write it."""
    from sonode.io.model_file import load_model_file, save_model_file
    from sonode.model.config import MODEL_KIND

    tensors, meta = load_model_file(DATA / fixture, kind=MODEL_KIND, supported_versions=range(99))
    if edit is not None:
        edit(meta["config"])
    if version is None:
        import torch

        version = torch.load(DATA / fixture, weights_only=True)["version"]
    path = tmp_path / fixture
    save_model_file(path, tensors, meta, kind=MODEL_KIND, version=version)
    return path


def test_a_newer_sonodes_setting_left_at_zero_is_ignored_and_an_old_field_may_be_absent(tmp_path):
    """A field this build does not know, at 0 ("changes nothing"), is ignored; a field added
    after the file was written takes its default: the file renders exactly as before."""

    def edit(config):
        config["future_setting_s"] = 0
        del config["continuation_switch_s"]

    fitted = sonode.load(_rewritten(tmp_path, "model_local_v3.sonode", edit))
    _assert_bit_identical(fitted.render().samples, "model_local_v3_render_16000hz.npy")


@pytest.mark.parametrize("fixture", ["model_local_v3.sonode", "model_d8155b1.sonode"])
def test_a_newer_sonodes_setting_is_refused_in_one_line_naming_it(tmp_path, fixture):
    from click.testing import CliRunner

    from sonode.cli import main
    from sonode.errors import ModelFileError

    path = _rewritten(tmp_path, fixture, lambda config: config.update(future_setting_s=2.5))
    with pytest.raises(ModelFileError, match="written by a newer sonode.*future_setting_s = 2.5"):
        sonode.load(path)
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "upgrade sonode" in result.output


def test_a_newer_format_version_is_refused_in_one_line_naming_it(tmp_path):
    from sonode.errors import ModelFileError

    path = _rewritten(tmp_path, "model_local_v3.sonode", version=6)
    with pytest.raises(ModelFileError, match="written by a newer sonode: it has format version 6"):
        sonode.load(path)
