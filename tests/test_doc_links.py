"""Nothing in the project cites a file it does not contain.

Scans every *.md and *.py file of the repository (outside .git, virtualenvs and outputs/) for
markdown links and for paths into the project's own folders, and checks each one exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "outputs",
    "build",
    "dist",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}
PROJECT_DIRS = ("docs", "benchmarks", "tests", "sonode", "examples", "data", ".ci")
# A path into one of the project's folders, e.g. docs/fill.md or sonode/ode/options.py; globs and
# templates (data/*.wav, outputs/{...}) are not single files and are skipped.
FOLDERS = "|".join(re.escape(d) for d in PROJECT_DIRS)
PATH_RE = re.compile(rf"(?<![\w./-])((?:{FOLDERS})/[\w./-]*[\w-])")
LINK_RE = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
FORBIDDEN = ("theory.md", "../shared")


def project_files(suffixes: tuple[str, ...]) -> list[Path]:
    found = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_file() and path.suffix in suffixes:
            found.append(path)
    return sorted(found)


def cited_paths(path: Path) -> list[tuple[str, Path]]:
    """(citation, resolved path) for every markdown link and project path in the file."""
    text = path.read_text(encoding="utf-8")
    cites = []
    if path.suffix == ".md":
        # HTML comments are notes to the maintainers (placeholders for what another branch brings),
        # not shown to readers
        text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
        for target in LINK_RE.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a URL, mailto: or an anchor in the same page
            cites.append((target, (path.parent / target.split("#")[0]).resolve()))
    for match in PATH_RE.finditer(text):
        cite = match.group(1).rstrip(".")
        if any(c in text[match.end() : match.end() + 1] for c in "*{<"):
            continue  # the start of a glob or template
        if not re.search(r"\.[A-Za-z]\w*$", cite):
            continue  # a folder or a name inside some other file (a zip member), not a file path
        cites.append((cite, ROOT / cite))
    return cites


FILES = project_files((".md", ".py"))


def test_scan_finds_the_documentation():
    names = {p.relative_to(ROOT).as_posix() for p in FILES}
    assert {"README.md", "docs/design.md", "tests/test_doc_links.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_cited_files_exist(path):
    text = path.read_text(encoding="utf-8")
    if path != Path(__file__).resolve():
        for word in FORBIDDEN:
            assert word not in text, (
                f"{path.relative_to(ROOT)} cites {word}, which the project does not contain"
            )
    missing = sorted({cite for cite, target in cited_paths(path) if not target.exists()})
    assert not missing, (
        f"{path.relative_to(ROOT)} cites files the project does not contain: {missing}"
    )
