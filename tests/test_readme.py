"""The README is for users: short, readable lines; its quickstart commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# A contract: the README's quickstart, byte for byte (the second is what .ci/run executes).
INSTALL_AND_FIT = (
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/sonode fit "
    "data/decaying_steelguitar_C4.wav -r 16000 -t 60"
)
INSTALL_AND_TEST = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest -q"
)


def test_the_quickstart_commands_are_unchanged_and_ci_runs_the_second():
    lines = README.splitlines()
    assert INSTALL_AND_FIT in lines and INSTALL_AND_TEST in lines
    assert INSTALL_AND_TEST in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_readme_is_short_with_readable_lines():
    lines = README.splitlines()
    assert len(lines) <= 150
    long = [(i + 1, len(line)) for i, line in enumerate(lines) if len(line) > 120]
    assert not long, f"README lines over 120 characters (line, length): {long}"


def test_the_readme_shows_the_api_and_links_the_docs():
    for text in (
        "import sonode",
        "sonode.fit(",
        "sonode.load(",
        "from sonode.ode import odeint",
        "docs/results.md",
        "docs/design.md",
        "docs/extending.md",
        "docs/img/",
    ):
        assert text in README
