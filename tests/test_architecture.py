"""The package's shape: docs/architecture.md names every module, and only modules that
exist; no import cycle, lazy imports included; no module over the size limit; the import
layering the page states holds; the top level is what docs/api.md lists, and stays light."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "clrplug"
PAGE = (ROOT / "docs" / "architecture.md").read_text()


def modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] in {"__init__", "__main__"}:
            continue
        names.append(".".join(parts))
    return names


@pytest.mark.parametrize("module", modules())
def test_every_module_is_on_the_page(module: str) -> None:
    package, _, leaf = module.rpartition(".")
    assert f"`{module}`" in PAGE or (f"`{package}`" in PAGE and f"`{leaf}`" in PAGE), module


def test_every_module_on_the_page_exists() -> None:
    named = set(re.findall(r"`(clrplug(?:\.[a-z_]+)+)`", PAGE))
    assert named, "the page names no module"
    for name in named:
        assert importlib.util.find_spec(name) is not None, name


# -- what each module imports ----------------------------------------------------------


def module_path(module: str) -> Path:
    path = PACKAGE.parent / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def every_module() -> list[str]:
    """Every module of the package, the packages' ``__init__`` included (as the package)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = frozenset(every_module())
FACADE = "clrplug"  # the top level, clrplug/__init__.py


def imports_of(module: str) -> set[str]:
    """The clrplug modules ``module`` imports, wherever the import is (a function's body
    too: a lazy import closes a cycle as surely when it runs), and those it names in a
    string that is exactly a module's name (``importlib.import_module``, the top level's
    lazy table, its Keras registrations; not the bare ``"clrplug"``). ``from package import name`` depends on the
    submodule when ``name`` is one, on the package otherwise."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module_path(module).read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import"
            if node.module is None or node.module.split(".")[0] != "clrplug":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.Constant) and node.value in MODULES - {FACADE}:
            found.add(node.value)  # not "clrplug": the project's name, in many a string
    found.discard(module)
    return found


# -- no cycle ---------------------------------------------------------------------------


def cycles() -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), sorted."""
    graph = {module: sorted(imports_of(module)) for module in sorted(MODULES)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return sorted(groups)


# Cycles still there while their owners untangle them (issue 22). Remove an entry when
# its cycle is gone: the second test fails while a listed one is.
KNOWN_CYCLES: list[list[str]] = []


def test_no_import_cycle() -> None:
    new = [group for group in cycles() if group not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"


def test_the_known_cycles_are_still_there() -> None:
    gone = [group for group in KNOWN_CYCLES if group not in cycles()]
    assert not gone, f"untangled, remove from KNOWN_CYCLES: {gone}"


def test_the_cycle_finder_sees_lazy_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    real = imports_of

    def with_a_lazy_import_back(module: str) -> set[str]:
        # as if clrplug.checks imported clrplug.cycle inside a function
        return real(module) | ({"clrplug.cycle"} if module == "clrplug.checks" else set())

    monkeypatch.setattr(__import__(__name__), "imports_of", with_a_lazy_import_back)
    assert ["clrplug.checks", "clrplug.cycle"] in cycles()


# -- the size limit ---------------------------------------------------------------------

#: No module of the package is longer (lines); split one that grows past it.
MAX_LINES = 450
#: Modules still over the limit while their owners split them (issue 22). Remove an
#: entry when its module is split: the test below fails while a listed one fits.
OVER_THE_LIMIT: dict[str, int] = {}


def line_counts() -> dict[str, int]:
    return {
        path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text().splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_is_over_the_size_limit() -> None:
    over = {path: n for path, n in line_counts().items() if n > MAX_LINES}
    assert set(over) <= set(OVER_THE_LIMIT), f"over {MAX_LINES} lines: {over}"


def test_the_allow_list_holds_only_modules_still_over_the_limit() -> None:
    counts = line_counts()
    fitting = {path: counts.get(path) for path in OVER_THE_LIMIT if counts.get(path, 0) <= MAX_LINES}
    assert not fitting, f"split or gone, remove from OVER_THE_LIMIT: {fitting}"


# -- the data path reads one way ----------------------------------------------------------

# The page's diagram, and the layers it stands for: a module may import the ones before
# it, never those after. The top level (the facade, clrplug/__init__.py) sits above them
# all: only the tools may import from it.
DIAGRAM = "records -> registry -> cycle -> formula -> engine -> schedules -> callbacks -> tools"
LAYERS = [
    {"errors", "checks", "records", "hookspecs"},
    {"registry", "builtin"},
    {"cycle"},
    {"formula"},
    {"engine"},
    {"schedule", "one_cycle_schedule"},
    {"history", "applied"},
    {"schedule_callback", "callback", "one_cycle"},
    {"range_test", "plotting", "testing", "scaffold", "cli", "digits", "demo"},
]


def test_the_page_states_the_layering_tested_here() -> None:
    assert f"\n{DIAGRAM}\n" in PAGE


def layer_of(module: str) -> int:
    if module == FACADE:
        return len(LAYERS) - 1
    top = module.split(".")[1]
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"{module} is in no layer")


# builtin registers the range test's rules: a lazy import of pure-numpy modules.
LAZY_EXCEPTION = re.compile(r"clrplug\.range_test\.(\w+_)?rules")


@pytest.mark.parametrize("module", sorted(MODULES - {FACADE}))
def test_imports_run_one_way(module: str) -> None:
    own = layer_of(module)
    for imported in sorted(imports_of(module)):
        if imported != FACADE and imported.split(".")[1] == module.split(".")[1]:
            continue  # within one package
        if module == "clrplug.builtin" and LAZY_EXCEPTION.fullmatch(imported):
            continue
        assert layer_of(imported) <= own, f"{module} imports {imported}, a later layer"


# -- the top level ------------------------------------------------------------------------

API_PAGE = (ROOT / "docs" / "api.md").read_text()


def test_the_top_level_is_what_the_api_page_lists() -> None:
    import clrplug

    table = API_PAGE.split("## The top level", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"`(\w+)`", table))
    assert listed == set(clrplug.__all__)
    for name in clrplug.__all__:
        assert getattr(clrplug, name) is not None, name


def test_moved_names_resolve_with_a_warning_naming_their_module() -> None:
    import clrplug

    for name, module in clrplug._MOVED.items():
        assert name not in dir(clrplug) and name not in clrplug.__all__
        with pytest.warns(DeprecationWarning, match=rf"^clrplug\.{name} is deprecated.*use {module}\.{name} "):
            value = getattr(clrplug, name)
        assert value is getattr(importlib.import_module(module), name)
        assert f"`{name}`" in API_PAGE or name.endswith("Error"), f"{name} is not on docs/api.md"


def test_import_clrplug_imports_neither_numpy_nor_keras() -> None:
    code = "import sys, clrplug; print(sorted({'numpy', 'keras'} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


# -- the docs name tests that exist --------------------------------------------------------

_TEST_REFERENCE = re.compile(r"(?:(test_\w+\.py)(?:::(\w+))?|(?<![\w.])::(\w+))")


def _names_in(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def test_every_test_the_docs_name_exists() -> None:
    """``test_x.py::test_y`` (and ``::test_z`` after it on the same line, meaning the same
    file) in README.md and docs/ name a test file of tests/ or of a plugin, and a test in
    it; the reliability page's table is made of such references."""
    files = {p.name: p for p in [*ROOT.glob("tests/test_*.py"), *ROOT.glob("plugins/*/tests/test_*.py")]}
    missing = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            module: str | None = None
            for match in _TEST_REFERENCE.finditer(line):
                named, test, alone = match.groups()
                if named is not None:
                    module = named
                    if named not in files and test is not None:  # (a bare name: a user's file)
                        missing.append(f"{page.name}:{number}: {named} (no such test file)")
                        continue
                else:
                    test = alone
                if test is None or module is None or module not in files:
                    continue
                if test not in _names_in(files[module]):
                    missing.append(f"{page.name}:{number}: {module}::{test}")
    assert not missing, "the docs name tests that do not exist:\n" + "\n".join(missing)
