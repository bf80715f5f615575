"""Every code block of the docs runs: ``README.md`` and ``docs/**/*.md``.

Each page runs in document order, in a temporary working folder and one fresh
namespace, with a fresh policy registry:

- ``python`` blocks are executed (a block that starts with ``>>>`` runs as a
  doctest); a block whose first line is ``# not run`` is skipped;
- a block with ``title="path"`` in its info string shows a file: it is written to
  that path in the page's folder (a Python file is compiled, not run);
- shell blocks (``bash``, ``sh``, ``shell``, and ``console`` lines after ``$ ``; ``&&``
  chains are split) run every command that can run offline in CI:
  ``pip install <local folders>`` (installed with ``--target`` into a temporary
  directory put on ``sys.path``, as a plugin user's ``pip install`` would, without
  touching this environment), ``pytest <local paths>`` (in-process) and every
  ``clrplug ...`` command (in-process, with a fresh registry, as a new process
  would; in ``console`` blocks the lines after it are its expected output: each must
  appear in the real output, whitespace aside). ``VAR=value`` prefixes set
  environment variables for the command. The commands that are not run each have a
  named reason in ``NOT_RUN`` (an install from an index, a benchmark, the CI entry
  point itself, the minutes-long demo, which tests/test_cli_plot_demo.py runs); a
  command that is neither run nor named there fails the test, so a new command in
  the docs is either checked or explicitly excused.

Tracebacks point into the Markdown file at the failing line.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import clrplug.cli
from clrplug import registry as registry_module

ROOT = Path(__file__).resolve().parent.parent
PAGES = [p for p in [ROOT / "README.md"] if p.exists()] + sorted((ROOT / "docs").rglob("*.md"))
GUIDE = ROOT / "docs" / "writing-a-plugin.md"

PYTHON = {"python", "py", "python3", "pycon"}
SHELL = {"bash", "sh", "shell", "console", "shell-session"}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_TITLE = re.compile(r"""title=(?:"([^"]+)"|'([^']+)')""")
_SWITCHES = (registry_module.DISABLE_AUTOLOAD_ENV, registry_module.PLUGINS_ENV)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    lang: str
    title: str | None
    code: str
    line: int  # 1-based line number of the first line of code


def parse_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, indent, info = match["fence"], len(match["indent"]), match["info"].strip()
        lang = info.split()[0].strip("{}").lstrip(".").lower() if info else ""
        title = _TITLE.search(info)
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = re.match(r"^[ \t]*(`{3,}|~{3,})[ \t]*$", lines[j])
            if close and close[1][0] == fence[0] and len(close[1]) >= len(fence):
                break
            line = lines[j]
            body.append(line[indent:] if not line[:indent].strip() else line)
            j += 1
        name = (title[1] or title[2]) if title else None
        blocks.append(Block(lang, name, "\n".join(body) + "\n", i + 2))
        i = j + 1
    return blocks


def _shell_commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) pairs of a shell block."""
    lines = block.code.splitlines()
    if block.lang != "console":
        commands = [part.strip() for line in lines for part in line.split(" && ")]
        return [(c, []) for c in commands if c and not c.startswith("#")]
    result: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("$ "):
            parts = [part.strip() for part in line[2:].split(" && ")]
            result.extend((part, []) for part in parts if part)
        elif result and line.strip():
            result[-1][1].append(line)
    return result


# Commands of the docs that tests/test_docs.py does not run, each with the reason.
NOT_RUN: list[tuple[Callable[[list[str]], bool], str]] = [
    (lambda w: w[:2] == ["pip", "install"], "installs from a package index"),
    (lambda w: w[:1] == ["pytest"], "runs tests outside the page's folder (the repo's own suite)"),
    (
        lambda w: w[:2] == ["clrplug", "demo"],
        "trains for minutes; tests/test_cli_plot_demo.py runs it",
    ),
    (
        lambda w: w[:1] in (["python"], ["python3"]) and w[1:2] == ["scripts/dev.py"],
        "the developer entry point: CI itself runs it",
    ),
    (
        lambda w: w[:1] in (["python"], ["python3"]) and w[1:2] in (
            ["train_jax.py"], ["train_tf.py"], ["train_torch.py"]),
        "a worker of docs/distributed.md's two-process examples: "
        "tests/test_multiworker.py starts two of them",
    ),
    (
        lambda w: any(word.startswith("benchmarks/") for word in w),
        "a benchmark: minutes of timed runs, figures go into the docs by hand",
    ),
]


def not_run_reason(words: list[str]) -> str | None:
    """Why the docs command ``words`` is not run here, or None if nothing excuses it."""
    for matches, reason in NOT_RUN:
        if matches(words):
            return reason
    return None


class PageRunner:
    """Runs one page's blocks; see the module docstring."""

    def __init__(self, page: Path, folder: Path) -> None:
        self.page = page
        self.name = str(page.relative_to(ROOT))
        self.folder = folder
        self.namespace: dict[str, object] = {"__name__": "__main__"}
        self.installed: set[Path] = set()
        self.sites = 0

    # -- blocks ------------------------------------------------------------------------

    def run(self, block: Block) -> None:
        if block.title is not None:
            self.write(block)
        elif block.lang in PYTHON:
            if block.code.lstrip().startswith("# not run"):
                return
            if block.code.lstrip().startswith(">>>"):
                self.doctest(block)
            else:
                # Pad so that tracebacks show the page's own line numbers.
                code = compile("\n" * (block.line - 1) + block.code, str(self.page), "exec")
                exec(code, self.namespace)
        elif block.lang in SHELL:
            for command, expected in _shell_commands(block):
                self.shell(command, expected, block)

    def write(self, block: Block) -> None:
        assert block.title is not None
        path = (self.folder / block.title).resolve()
        assert self.folder.resolve() in path.parents, f"{self.name}: {block.title} is outside"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code)
        if path.suffix == ".py":
            compile("\n" * (block.line - 1) + block.code, str(self.page), "exec")

    def doctest(self, block: Block) -> None:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(block.code, self.namespace, self.name, str(self.page), block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        out = io.StringIO()
        runner.run(test, out=out.write, clear_globs=False)
        assert runner.failures == 0, f"{self.name}, block at line {block.line}:\n{out.getvalue()}"

    # -- shell commands --------------------------------------------------------------------

    def shell(self, command: str, expected: list[str], block: Block) -> None:
        words = shlex.split(command, comments=True)
        env: dict[str, str] = {}
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        where = f"{self.name}, line {block.line}: $ {command}"
        if words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
            if self.pip_install(words[words.index("install") + 1 :], where):
                return
        elif words[:1] == ["clrplug"]:
            if words[1:2] != ["demo"]:
                output = self.clrplug(words[1:], env, where)
                if block.lang == "console":
                    self.compare(output, expected, where)
                return
        elif words[:1] == ["pytest"]:
            if self.pytest(words[1:], env, where):
                return
        reason = not_run_reason(words)
        assert reason is not None, (
            f"{where}: this command is neither run by tests/test_docs.py nor named in "
            "its NOT_RUN list; make it runnable offline or add it there with a reason"
        )

    def _local(self, args: list[str]) -> list[Path] | None:
        paths = []
        for arg in args:
            if arg.startswith("-"):
                continue
            path = (self.folder / re.sub(r"\[.*\]$", "", arg)).resolve()
            if not path.exists() or self.folder.resolve() not in [path, *path.parents]:
                return None
            paths.append(path)
        return paths or None

    def pip_install(self, args: list[str], where: str) -> bool:
        paths = self._local(args)
        if paths is None:  # installs from an index: see NOT_RUN
            return False
        self.sites += 1
        target = self.folder.parent / f"site-{self.sites}"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-index",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "--target",
                str(target),
                *map(str, paths),
            ],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, f"{where}\n{run.stdout}\n{run.stderr}"
        self.installed.update(paths)
        sys.path.insert(0, str(target))
        importlib.invalidate_caches()
        # The next lookup loads plugins again, as a new process would.
        registry_module.set_default_registry(registry_module.Registry())
        return True

    @contextlib.contextmanager
    def process(self, env: dict[str, str]):
        """Environment variables and a fresh registry, as for a new process."""
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            previous = registry_module.set_default_registry(registry_module.Registry())
            try:
                yield
            finally:
                registry_module.set_default_registry(previous)

    def clrplug(self, args: list[str], env: dict[str, str], where: str) -> str:
        out = io.StringIO()
        with self.process(env), contextlib.redirect_stdout(out):
            code = clrplug.cli.main(args)
        assert code == 0, f"{where}: exit status {code}\n{out.getvalue()}"
        return out.getvalue()

    def compare(self, output: str, expected: list[str], where: str) -> None:
        actual = {" ".join(line.split()) for line in output.splitlines()}
        for line in expected:
            if line.strip() in ("...", "…"):
                continue
            assert " ".join(line.split()) in actual, (
                f"{where}: the page shows the line\n  {line}\nwhich is not in the output:\n{output}"
            )

    def pytest(self, args: list[str], env: dict[str, str], where: str) -> bool:
        folder = self.folder.resolve()
        paths = [
            (self.folder / a).resolve()
            for a in args
            if not a.startswith("-") and (self.folder / a).exists()
        ]
        if not paths or any(folder not in [p, *p.parents] for p in paths):
            return False  # tests outside the page's folder: see NOT_RUN
        with self.process(env):
            code = pytest.main([*args, "-q", "-p", "no:cacheprovider"])
        assert code == 0, f"{where}: pytest exited with {code!r}"
        return True


@pytest.fixture
def page_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A page's working folder, with sys.path, modules and the registry restored after."""
    folder = tmp_path / "page"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for key in _SWITCHES:
        monkeypatch.delenv(key, raising=False)
    path, modules = list(sys.path), set(sys.modules)
    previous = registry_module.set_default_registry(registry_module.Registry())
    try:
        yield folder
    finally:
        registry_module.set_default_registry(previous)
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if file.startswith(str(tmp_path)):
                del sys.modules[name]
        importlib.invalidate_caches()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_code_runs(page: Path, page_env: Path) -> None:
    runner = PageRunner(page, page_env)
    blocks = parse_blocks(page.read_text(encoding="utf-8"))
    for block in blocks:
        runner.run(block)
    projects = {
        (page_env / b.title).resolve().parent
        for b in blocks
        if b.title is not None and Path(b.title).name == "pyproject.toml"
    }
    missing = sorted(str(p.relative_to(page_env.resolve())) for p in projects - runner.installed)
    assert not missing, f"{runner.name} shows project(s) {missing} but never pip-installs them"


# -- the parser and the guide itself -------------------------------------------------


def test_parse_blocks() -> None:
    text = (
        "Intro\n\n"
        '```toml title="pkg/pyproject.toml"\n[project]\nname = "x"\n```\n\n'
        "- item\n\n    ```python\n    x = 1\n    ```\n\n"
        "````console\n$ clrplug policies\nNAME  SOURCE\n```\n````\n"
        "```\nplain\n```\n"
    )
    blocks = parse_blocks(text)
    assert [(b.lang, b.title, b.line) for b in blocks] == [
        ("toml", "pkg/pyproject.toml", 4),
        ("python", None, 11),
        ("console", None, 15),
        ("", None, 20),
    ]
    assert blocks[1].code == "x = 1\n"
    assert _shell_commands(blocks[2]) == [("clrplug policies", ["NAME  SOURCE", "```"])]


def test_chains_split_and_unexcused_commands_fail(tmp_path: Path) -> None:
    block = Block("bash", None, "pip install -e x && pytest x   # both\nmake html\n", 1)
    assert _shell_commands(block) == [
        ("pip install -e x", []),
        ("pytest x   # both", []),
        ("make html", []),
    ]
    runner = PageRunner(ROOT / "README.md", tmp_path)
    with pytest.raises(AssertionError, match=r"neither run by tests/test_docs\.py nor named"):
        runner.shell("make html", [], block)
    runner.shell("pip install clrplug", [], block)  # excused: an index install
    assert not_run_reason(["python", "benchmarks/convergence.py"]) is not None
    assert not_run_reason(["clrplug", "plot", "triangular"]) is None


def test_plugin_guide_covers_both_routes_and_runs_them() -> None:
    blocks = parse_blocks(GUIDE.read_text(encoding="utf-8"))
    files = {b.title: b.code for b in blocks if b.title}
    tomls = [code for name, code in files.items() if name.endswith("pyproject.toml")]
    assert any("[project.entry-points.clrplug]" in code for code in tomls)
    assert any('[project.entry-points."clrplug.policies"]' in code for code in tomls)
    assert any(name.endswith(".py") and "/tests/" in name for name in files)
    commands = [c for b in blocks if b.lang in SHELL for c, _ in _shell_commands(b)]
    assert "pip install ./clrplug-mine" in commands
    assert any(c.startswith("pytest ") for c in commands)
    assert any(c.startswith("CLRPLUG_PLUGINS=") for c in commands)
    untitled = [b for b in blocks if b.lang in PYTHON and b.title is None]
    assert untitled and not any(b.code.startswith("# not run") for b in untitled)
    assert 'CyclicLR(base_lr=0.001, max_lr=0.006, step_size=8, mode="mine")' in GUIDE.read_text()


def test_no_page_is_left_out() -> None:
    assert GUIDE in PAGES
    assert os.path.isdir(ROOT / "docs")
