"""docs/architecture.md names every module of the package, and only modules that exist;
and the import layering it states holds."""

from __future__ import annotations

import ast
import importlib.util
import re
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


# The layering of the page: a module may import the ones before it, never those after.
LAYERS = [
    {"errors", "checks", "records", "hookspecs", "_keras_import"},
    {"registry", "builtin"},
    {"cycle"},
    {"formula"},
    {"engine"},
    {"schedule", "one_cycle_schedule"},
    {"history"},
    {"schedule_callback", "callback", "one_cycle"},
    {"range_test", "plotting", "testing", "scaffold", "cli", "demo"},
]


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else module
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"{module} is in no layer")


@pytest.mark.parametrize("module", [m for m in modules() if m.split(".")[1] != "__init__"])
def test_imports_run_one_way(module: str) -> None:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    own = layer_of(module)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("clrplug."):
            imported = node.module
        elif isinstance(node, ast.Import):
            found = [a.name for a in node.names if a.name.startswith("clrplug.")]
            if not found:
                continue
            imported = found[0]
        else:
            continue
        if imported.split(".")[1] == module.split(".")[1]:
            continue  # within one package
        # builtin registers the range test's rules: a lazy import of a pure-numpy module.
        if module == "clrplug.builtin" and imported == "clrplug.range_test.rules":
            continue
        assert layer_of(imported) <= own, f"{module} imports {imported}, a later layer"
