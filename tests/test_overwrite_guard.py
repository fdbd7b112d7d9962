"""No output destroys a user's file: sonode replaces only files it wrote (recognised by a marker in
their content), unless --force; batch output names are made unique or refused before any fit."""

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf
from matplotlib.figure import Figure

from sonode.batch.cluster import local_layout
from sonode.batch.jobs import expand_inputs, plan_fit_jobs
from sonode.errors import OutputPathError
from sonode.io.fileutil import written_by_sonode
from sonode.io.wav import write_wav
from tests.cli_support import FAST, run
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A user's recording tone.wav and a model fitted from it, both in the same folder."""
    root = tmp_path_factory.mktemp("guard")
    sf.write(root / "tone.wav", two_tone_clip(0.1), SAMPLE_RATE, subtype="PCM_16")
    result = run("fit", root / "tone.wav", "-o", root / "tone.sonode", *FAST)
    assert result.exit_code == 0, result.output
    return root


def test_render_over_the_source_recording_is_refused_unless_forced(fitted, tmp_path):
    clip = tmp_path / "tone.wav"
    clip.write_bytes((fitted / "tone.wav").read_bytes())
    before = clip.read_bytes()
    result = run("render", fitted / "tone.sonode", "-o", clip, "--quiet")
    assert (
        result.exit_code == 2
        and "was not written by sonode" in result.output
        and "--force" in result.output
    )
    assert clip.read_bytes() == before
    forced = run("render", fitted / "tone.sonode", "-o", clip, "--quiet", "--force")
    assert forced.exit_code == 0, forced.output
    assert clip.read_bytes() != before and written_by_sonode(clip)


def test_a_previous_sonode_output_is_replaced(fitted, tmp_path):
    out = tmp_path / "render.wav"
    assert run("render", fitted / "tone.sonode", "-o", out, "--quiet").exit_code == 0
    first = sf.read(out)[0]
    again = run("extrapolate", fitted / "tone.sonode", "-o", out, "--seconds", 0.05, "--quiet")
    assert again.exit_code == 0, again.output
    assert sf.read(out)[0].shape[0] != first.shape[0]


def test_fit_refuses_before_fitting_when_an_output_is_a_users_file(fitted, tmp_path):
    users = tmp_path / "tone.fit.png"
    users.write_bytes(b"\x89PNG\r\n\x1a\n my drawing")
    result = run("fit", fitted / "tone.wav", "-o", tmp_path / "tone.sonode", *FAST)
    assert result.exit_code == 2 and f"refusing to overwrite {users}" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tone.fit.png"
    ]  # nothing was fitted or written


def test_refitting_replaces_sonode_outputs(fitted):
    result = run("fit", fitted / "tone.wav", "-o", fitted / "tone.sonode", *FAST)
    assert result.exit_code == 0, result.output


def test_markers_recognise_sonode_outputs_only(fitted, tmp_path):
    for name in ("tone.sonode", "tone.recon.wav", "tone.fit.json", "tone.fit.png"):
        assert written_by_sonode(fitted / name), name
    assert not written_by_sonode(fitted / "tone.wav")
    figure = Figure()
    figure.add_subplot().plot([0, 1])
    figure.savefig(tmp_path / "user.png")
    (tmp_path / "user.json").write_text(json.dumps({"fit": {}, "written_by": "someone else"}))
    with zipfile.ZipFile(tmp_path / "user.zip", "w") as archive:
        archive.writestr(
            "x/data.pkl", b"\x80\x02}q\x00X\x06\x00\x00\x00formatq\x01X\x03\x00\x00\x00zipq\x02s."
        )
    (tmp_path / "notes.md").write_text("# notes\n")
    for name in ("user.png", "user.json", "user.zip", "notes.md", "missing.wav"):
        assert not written_by_sonode(tmp_path / name), name
    write_wav(
        tmp_path / "ours.wav", np.zeros(101), SAMPLE_RATE, subtype="PCM_24"
    )  # odd data size: padded
    assert written_by_sonode(tmp_path / "ours.wav") and sf.read(tmp_path / "ours.wav")[0].shape == (
        101,
    )


def test_batch_names_are_made_unique_and_collisions_with_inputs_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "take.wav", two_tone_clip(0.1), SAMPLE_RATE)
    jobs = plan_fit_jobs(expand_inputs([tmp_path]), tmp_path / "out", force=False)
    assert [job.stem for job in jobs] == ["a__take", "b__take"]
    # Outputs beside the inputs: a user's recording named like an output is never written over.
    sf.write(tmp_path / "a" / "take.recon.wav", two_tone_clip(0.1), SAMPLE_RATE)
    with pytest.raises(OutputPathError, match="take.recon.wav is the input file"):
        plan_fit_jobs(expand_inputs([tmp_path / "a"]), tmp_path / "a", force=True)


def test_a_folder_input_skips_sonode_outputs_found_in_it(tmp_path):
    sf.write(tmp_path / "x.wav", two_tone_clip(0.1), SAMPLE_RATE)
    write_wav(tmp_path / "x.recon.wav", two_tone_clip(0.1), SAMPLE_RATE)
    assert expand_inputs([tmp_path]) == [tmp_path / "x.wav"]


def test_batch_mode_rejects_a_single_model_path(tmp_path):
    result = run("fit", tmp_path, tmp_path, "-o", tmp_path / "m.sonode", *FAST)
    assert result.exit_code == 2 and "--out-dir" in result.output


@pytest.mark.parametrize(
    "tasks,workers,threads,expected",
    [(8, None, None, (2, 1)), (1, None, None, (1, 2)), (8, None, 2, (1, 2)), (2, 5, None, (2, 1))],
)
def test_embedded_cluster_never_oversubscribes_two_cores(tasks, workers, threads, expected):
    assert local_layout(tasks, workers, threads, cores=2) == expected
