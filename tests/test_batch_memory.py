"""#30: a batch fit stays within the memory budget as a whole. Its workers each hold one fit, so the
count of fits side by side comes from each fit's own peak estimate (`fit_peak_bytes` of the samples
the clip's header announces), with a one-line notice when it is reduced; one fit at a time runs
in a plain child process (no cluster), which a signal to the command ends at once."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf

from sonode.batch import memory
from sonode.batch.child import map_in_children
from sonode.batch.outputs import FitJob
from sonode.limits import GIB, PROCESS_BASELINE_BYTES, available_cores
from sonode.model.fit_size import fit_peak_bytes, fit_span
from tests.hostile_support import (
    FAST,
    HANG_S,
    RATE,
    ROOT,
    dying_task,
    failing_task,
    run,
    square_task,
    tone,
)

FIT_OPTIONS = {"rate": None, "duration_s": None, "threads": None}


def test_two_of_the_largest_fits_do_not_run_side_by_side():
    largest = int(1.8 * GIB)  # a fit of the longest clip accepted (measured 1.79-1.81 GiB)
    assert memory.memory_workers([largest, largest], 2, 2 * GIB) == 1
    assert memory.memory_workers([PROCESS_BASELINE_BYTES] * 2, 2, 2 * GIB) == 2
    assert memory.memory_workers([PROCESS_BASELINE_BYTES] * 8, 2, 2 * GIB) == 2
    assert memory.memory_workers([largest], 2, 2 * GIB) == 1


def _silent_wav(path, seconds, rate=48_000):
    sf.write(path, np.zeros(int(seconds * rate), np.int16), rate, subtype="PCM_16")
    return FitJob(str(path), path.stem, str(path.parent))


def _spans(jobs, rate=None, duration_s=None):
    """What a batch reads from each clip's header while it plans (`fit_span`)."""
    return [fit_span(job.clip, rate, duration_s) for job in jobs]


def test_the_worker_count_follows_the_clips_headers(tmp_path, monkeypatch):
    monkeypatch.setattr("sonode.limits.available_cores", lambda: 2)
    short = _spans([_silent_wav(tmp_path / f"s{k}.wav", 1.0) for k in range(3)])
    long_jobs = [_silent_wav(tmp_path / f"l{k}.wav", 150.0) for k in range(2)]  # 7.2 M samples
    long = _spans(long_jobs)
    assert long[0] == (150 * 48_000 + 1, 48_000)
    # A budget that holds two fits of the short clips side by side, not two of the long ones.
    budget = memory.cluster_bytes([memory.fit_peak(*short[0])] * 2)
    monkeypatch.setattr("sonode.limits.memory_budget_bytes", lambda: budget)
    assert memory.fit_peak(*long[0]) > memory.fit_peak(*short[0])
    assert memory.fit_workers(short, FIT_OPTIONS, None) == (2, "")
    workers, note = memory.fit_workers(short + long, FIT_OPTIONS, None)
    assert workers == 1
    assert note.startswith("sonode: running 1 fit(s) at a time, not 2") and "--workers N" in note
    assert "\n" not in note and f"over the memory budget of {budget / GIB:.2f} GiB" in note
    # The fit's rate and duration decide its samples, as in the fit itself.
    assert memory.fit_workers(_spans(long_jobs, rate=8000), FIT_OPTIONS, None) == (2, "")
    # (the estimate grows with the samples past the fixed work: cut to the short clips' second)
    assert memory.fit_workers(_spans(long_jobs, duration_s=1.0), FIT_OPTIONS, None) == (2, "")
    # An explicit --workers is kept, with a note that it may not fit.
    workers, note = memory.fit_workers(long, FIT_OPTIONS, 2)
    assert workers == 2 and note.startswith("sonode: note: --workers 2:")


def test_a_short_fit_is_sized_by_its_fixed_spans_not_its_length(tmp_path):
    # A 1.5 s clip with the default options peaked at 1148 MiB at 48 kHz and 1084 MiB at 16 kHz
    # (benchmarks/memory_estimate.py), not the 0.76 GiB its samples alone give: the fit's own
    # estimate, at its rate.
    job = _silent_wav(tmp_path / "s.wav", 1.5)
    assert memory.fit_peak(*fit_span(job.clip)) >= 1148 << 20
    assert memory.fit_peak(*fit_span(job.clip, 16000)) >= 1084 << 20
    assert memory.fit_peak(*fit_span(job.clip)) == fit_peak_bytes(72001, 48000)
    assert fit_span(tmp_path / "none.wav") == (0, 0)  # unreadable: reading it will say why


def test_tasks_in_child_processes_fail_alone(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the tasks are importable in the children
    failed = lambda item, message: ("failed", item, message)  # noqa: E731
    assert map_in_children(square_task, [2, 3], threads=1, on_failure=failed) == [4, 9]
    [(status, item, message)] = map_in_children(failing_task, [7], threads=1, on_failure=failed)
    assert (status, item, message) == ("failed", 7, "ValueError: item 7 is bad")
    [(status, _, message)] = map_in_children(dying_task, [1], threads=1, on_failure=failed)
    assert status == "failed" and "killed by signal 9" in message


PARENT = textwrap.dedent(
    """
    import sys
    from sonode.batch.cluster import map_on_cluster
    from sonode.cli.common import _install_interrupt_handlers
    _install_interrupt_handlers()  # as every command does: SIGINT and SIGTERM raise
    from tests.hostile_support import waiting_task
    try:  # one worker: a child process; two: an embedded Dask cluster
        map_on_cluster(waiting_task, sys.argv[1:], workers=len(sys.argv) - 1, on_failure=print)
    except KeyboardInterrupt:
        sys.exit(130)
    """
)


def _gone(pid: int) -> bool:
    """The process has ended (a zombie whose new parent has not reaped it yet counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize(
    "signum, workers",
    [(signal.SIGINT, 1), (signal.SIGTERM, 1), (signal.SIGKILL, 1), (signal.SIGTERM, 2)],
)
def test_a_signal_to_the_command_ends_its_fits_at_once(tmp_path, signum, workers):
    pid_files = [tmp_path / f"task{k}.pid" for k in range(workers)]
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, *map(str, pid_files)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "DASK_SCHEDULER_ADDRESS": ""},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + HANG_S  # a hang net: the tasks announce themselves (pid files)
    while time.monotonic() < deadline and not all(p.exists() and p.read_text() for p in pid_files):
        time.sleep(0.05)
    tasks = [int(p.read_text()) for p in pid_files]
    parent.send_signal(signum)
    parent.wait(timeout=HANG_S)
    if signum != signal.SIGKILL:
        assert parent.returncode == 130 and b"Traceback" not in parent.stderr.read()
        # killed before the command ended (a Dask cluster's graceful close left one running)
        assert all(_gone(pid) for pid in tasks)
    deadline = time.monotonic() + HANG_S  # (SIGKILL) the child sees its parent go
    while not all(_gone(pid) for pid in tasks):
        if time.monotonic() > deadline:
            for pid in tasks:
                os.kill(pid, signal.SIGKILL)
            pytest.fail("a task outlived its command")
        time.sleep(0.05)


@pytest.mark.skipif(available_cores() < 2, reason="one core: a batch runs one fit at a time anyway")
def test_a_batch_over_the_budget_runs_one_fit_at_a_time_without_a_cluster(tmp_path):
    for k in range(2):
        sf.write(tmp_path / f"c{k}.wav", tone(0.3, RATE, seed=k), RATE, subtype="PCM_16")
    # A budget that holds one fit of these clips but not two side by side.
    budget = PROCESS_BASELINE_BYTES + (256 << 20)
    outcome = run(
        ["fit", tmp_path / "c0.wav", tmp_path / "c1.wav", "--out-dir", tmp_path / "out", *FAST],
        env={"SONODE_MEMORY_BUDGET": str(budget), "DASK_SCHEDULER_ADDRESS": ""},
        address_space_bytes=None,
    )
    assert outcome.code == 0, outcome.describe()
    assert "running 1 fit(s) at a time, not 2" in outcome.stderr, outcome.describe()
    assert "Traceback" not in outcome.stderr
    for k in range(2):
        assert (tmp_path / "out" / f"c{k}.sonode").exists()
    assert (tmp_path / "out" / "sonode-batch.csv").exists()
