"""#30's fuzz and fault suite, CI size: every case (tests/hostile_cases.py) runs `sonode` in a real
subprocess under an address-space limit (setrlimit in the child) and a timeout, and must end in exit 0
or 2 with one line, no traceback, peak memory ≤ 2 GiB. benchmarks/fuzz_hostile.py runs the long mode.
"""

import subprocess

import pytest
import soundfile as sf
from click.testing import CliRunner

from sonode.cli import main
from tests.hostile_cases import make_cases
from tests.hostile_support import run, small_tmpfs, tone, unmount

N_AUDIO, N_MODEL, N_ARGS = 6, 8, 10
N_CASES = N_AUDIO + 5 + N_MODEL + N_ARGS + 5
TIMEOUT_S = 150


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-fuzz")
    sf.write(root / "seed.wav", tone(0.3, 16000), 16000, subtype="PCM_16")
    result = CliRunner().invoke(
        main,
        [
            "fit",
            str(root / "seed.wav"),
            "-o",
            str(root / "seed.sonode"),
            "--steps",
            "1",
            "--latent-dim",
            "8",
            "--hidden",
            "8",
            "--hop",
            "64",
            "--overlap",
            "8",
            "--lp-order",
            "32",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    made = make_cases(
        root / "cases",
        root / "seed.sonode",
        seed=30,
        n_audio=N_AUDIO,
        n_model=N_MODEL,
        n_args=N_ARGS,
    )
    assert len(made) == N_CASES
    return made


@pytest.mark.parametrize("index", range(N_CASES))
def test_fuzz_case_ends_cleanly(cases, index):
    case = cases[index]
    args, mounts = list(case.args), []
    try:
        for need in case.needs:
            point, why = small_tmpfs("64k")
            if point is None:
                pytest.skip(why)
            mounts.append(point)
            if need == "tmpfs-ro":
                subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
            args = [a.replace("{ro}" if need == "tmpfs-ro" else "{full}", str(point)) for a in args]
        outcome = run(args, timeout_s=TIMEOUT_S)
    finally:
        for point in mounts:
            unmount(point)
    assert not outcome.problems(codes=case.codes), f"{case.name}: {outcome.describe()}"
