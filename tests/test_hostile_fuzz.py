"""#30's fuzz and fault suite, CI size: every case (tests/hostile_cases.py) runs `sonode` in a real
subprocess under an address-space limit (setrlimit in the child) and a timeout, and must end in exit 0
or 2 with one line, no traceback, peak memory ≤ 2 GiB. benchmarks/fuzz_hostile.py runs the long mode.
"""

import pytest

from tests.hostile_cases import make_cases, run_case
from tests.hostile_support import HANG_S, fit_take

N_AUDIO, N_MODEL, N_ARGS = 4, 5, 6  # 25 cases, every kind; the long mode runs 60+
N_CASES = N_AUDIO + 5 + N_MODEL + N_ARGS + 5


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = fit_take(tmp_path_factory.mktemp("hostile-fuzz"), 0.3)
    made = make_cases(
        root / "cases",
        root / "take.sonode",
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
    outcome, why = run_case(case, HANG_S)
    if outcome is None:
        pytest.skip(why)
    assert not outcome.problems(codes=case.codes), f"{case.name}: {outcome.describe()}"
