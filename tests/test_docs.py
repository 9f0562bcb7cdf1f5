"""Every Python block in README.md and docs/guide/*.md runs here.

The Python blocks of one page form one program, in page order, as a reader would type
them: each block is executed in a namespace shared with the page's earlier blocks, in a
temporary directory of its own (``exec``, compiled with the markdown file's name and
line numbers, so a traceback points at the line of the page).

Blocks that are pytest tests (they define ``test_`` functions or ``@equivtest.pair``
fixtures) also run as what they are: the page's pytest blocks, in page order, become one
test file in a ``pytester`` project, and pytest runs it with the equivtest plugin. The
file is named by the first block's ``# test_name.py`` comment, else after the page. A
page whose tests take a baseline (``equivtest_baseline``) runs twice: the first run
writes the baseline and fails those tests, as the README says; the second passes. A
pytest block may use only the names of the page's earlier pytest blocks.

A block that cannot run here (a model from the hub, a user's own file) says so on the
line before it, ``<!-- skip-test: reason -->``; it is reported as skipped with that
reason (``pytest -rs``). ``bash`` blocks are not run, but every ``equivtest`` command
the README names must be one the command line lists in ``--help``.

The in-process pytester runs follow tests/test_plugin.py: everything heavy is imported
here first, so pytester's snapshot of ``sys.modules`` keeps it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Heavy imports up front, before any pytester snapshot (see the module docstring).
import datafold  # noqa: F401
import numpy  # noqa: F401
import rich.console  # noqa: F401
import rich.table  # noqa: F401
import scipy.interpolate  # noqa: F401
import sklearn  # noqa: F401
import torch  # noqa: F401

import equivtest
import equivtest.baseline  # noqa: F401
import equivtest.engine  # noqa: F401
import equivtest.persist  # noqa: F401
import equivtest.plugin  # noqa: F401
import equivtest.record  # noqa: F401
import equivtest.report.terminal  # noqa: F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)")
SKIP = re.compile(r"^<!--\s*skip-test:\s*(.+?)\s*-->\s*$")
PYTEST_STYLE = re.compile(r"^(def test_\w+\(|@equivtest\.pair\b)", re.M)
TEST_NAME = re.compile(r"^def (test_\w+)\(", re.M)
FILE_NAME = re.compile(r"\A#\s*(test_\w+\.py)\s*$", re.M)
MAX_SKIPPED = 3


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # line of the block's first code line, counted from 1
    language: str
    code: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def is_pytest(self) -> bool:
        return bool(PYTEST_STYLE.search(self.code))

    @property
    def tests(self) -> list[str]:
        return TEST_NAME.findall(self.code)


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of a page, with the skip marker on the line before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(fence) and not lines[j].strip("`")),
                   None)
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: a fenced block is never closed"
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = SKIP.match(previous.strip())
        found.append(Block(page, i + 2, language.lower(), "\n".join(lines[i + 1 : end]) + "\n",
                           marker.group(1) if marker else None))
        i = end + 1
    return found


ALL_BLOCKS = [b for page in PAGES for b in blocks_of(page)]
PYTHON = [b for b in ALL_BLOCKS if b.language == "python"]


def padded(blocks: list[Block]) -> str:
    """The blocks as one source, each at its own line numbers of the page."""
    out: list[str] = []
    for b in blocks:
        out.extend([""] * (b.line - 1 - len(out)))
        out.extend(b.code.splitlines())
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def working_directory(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


class PageProgram:
    """The page's blocks executed in order, each once, in one namespace."""

    def __init__(self, page: Path, folder: Path):
        self.page, self.folder = page, folder
        self.namespace = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
        self.done: list[Block] = []

    def run_up_to(self, block: Block) -> None:
        for b in (b for b in PYTHON if b.page == self.page and b.skip is None and b.line <= block.line):
            if b in self.done:
                continue
            self.done.append(b)  # a failing block is not retried by the next one
            code = compile("\n" * (b.line - 1) + b.code, str(b.page), "exec")
            with working_directory(self.folder):
                exec(code, self.namespace)


_programs: dict[Path, PageProgram] = {}
_pytest_outcomes: dict[Path, dict[str, str]] = {}


def program(page: Path, tmp_path_factory) -> PageProgram:
    if page not in _programs:
        _programs[page] = PageProgram(page, tmp_path_factory.mktemp(f"docs-{page.stem}"))
    return _programs[page]


def call_outcomes(result) -> dict[str, str]:
    reports = result.reprec.getreports("pytest_runtest_logreport")
    return {r.nodeid.split("::")[-1]: r.outcome for r in reports if r.when == "call"}


def run_page_tests(page: Path, pytester) -> dict[str, str]:
    """Run the page's pytest blocks as one test file; the outcome of each test."""
    blocks = [b for b in PYTHON if b.page == page and b.skip is None and b.is_pytest]
    named = FILE_NAME.search(blocks[0].code)
    filename = named.group(1) if named else f"test_{page.stem.replace('-', '_').lower()}.py"
    pytester.path.joinpath(filename).write_text(padded(blocks), encoding="utf-8")
    args = ("-p", "no:cacheprovider", "--color=no", "-p", "no:randomly")
    first = pytester.runpytest(*args)
    outcomes = call_outcomes(first)
    assert first.ret in (0, 1) and outcomes, "\n".join(first.outlines + first.errlines)
    takes_baseline = [t for b in blocks if "equivtest_baseline" in b.code for t in b.tests]
    if takes_baseline:
        # The first run writes the baselines and fails those tests, naming the files.
        out = "\n".join(first.outlines)
        for test in takes_baseline:
            assert outcomes[test] == "failed", out
            assert (pytester.path / Path(filename).stem / f"{test}.json").is_file(), out
        assert "BaselineFailure" in out, out
        second = pytester.runpytest(*args)
        outcomes = call_outcomes(second)
        first = second
    failed = {t: o for t, o in outcomes.items() if o != "passed"}
    assert not failed, "\n".join(first.outlines + first.errlines)
    return outcomes


@pytest.fixture
def docs_pytester(pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return pytester


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_block_runs(block, tmp_path_factory, request):
    if block.skip is not None:
        pytest.skip(f"{block.where}: {block.skip}")
    page = program(block.page, tmp_path_factory)
    page.run_up_to(block)
    if block.is_pytest:
        if block.page not in _pytest_outcomes:
            last = [b for b in PYTHON if b.page == block.page and b.skip is None and b.is_pytest][-1]
            page.run_up_to(last)  # imports every module the tests use before pytester's snapshot
            _pytest_outcomes[block.page] = run_page_tests(block.page, request.getfixturevalue("docs_pytester"))
        outcomes = _pytest_outcomes[block.page]
        for test in block.tests:
            assert outcomes.get(test) == "passed", f"{block.where}: {test}: {outcomes.get(test, 'not run')}"


def test_the_blocks_are_found_and_few_are_skipped():
    assert any(b.page.name == "README.md" and b.is_pytest for b in PYTHON)
    assert {b.page.name for b in PYTHON} >= {"README.md", "writing-tests.md", "sequences.md", "transformers.md",
                                              "weights.md"}
    odd = [b.where for b in ALL_BLOCKS if b.language in ("py", "python3", "pycon", "ipython")]
    assert not odd, f"fence these as ```python so that they run: {odd}"
    skipped = [f"{b.where}: {b.skip}" for b in PYTHON if b.skip is not None]
    assert len(skipped) <= MAX_SKIPPED, "\n".join(skipped)
    markers = [b.where for b in ALL_BLOCKS if b.skip is not None and b.language != "python"]
    assert not markers, f"skip-test markers before blocks that are not Python: {markers}"


def test_the_readme_names_only_commands_the_cli_has():
    from typer.testing import CliRunner

    from equivtest.cli import app

    # the console script `equivtest` is this app
    assert re.search(r'^equivtest = "equivtest\.cli:app"$', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    named = {m.group(1) for b in ALL_BLOCKS if b.page.name == "README.md" and b.language == "bash"
             for m in re.finditer(r"(?:^|&&\s*)equivtest (\w[\w-]*)", b.code, re.M)}
    assert {"run", "list", "report"} <= named
    help_text = CliRunner().invoke(app, ["--help"], terminal_width=200).output
    listed = set(re.findall(r"^\W*(\w[\w-]*)\s{2,}", help_text, re.M))
    assert named <= listed, f"the README names {sorted(named - listed)}, `equivtest --help` lists {sorted(listed)}"


def _anchors(page: Path) -> set[str]:
    """The heading anchors MkDocs gives a page (its default slugs)."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings}


def test_the_readme_links_to_pages_and_headings_that_exist():
    # the docs build checks the links between pages of docs/; the README is outside it
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"\w+:", link)]
    assert local
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README links to {link}, which does not exist"
        assert not anchor or anchor in _anchors(target), f"README links to {link}: no such heading"
