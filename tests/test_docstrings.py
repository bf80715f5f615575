"""Every ``python`` example in the public API's docstrings runs.

The public API is every module under ``src/clrplug`` whose name has no leading
underscore: the module's own docstring, each public name it defines (its ``__all__``,
or the public names defined in it), and for classes the methods, properties and
class attributes defined in the class itself. Each fenced ````python`` block of a
docstring (Keras' ``Example:`` style) runs in a fresh namespace, in a temporary
folder, with a fresh policy registry and matplotlib's non-interactive backend. A block
is identified as ``module.qualname#n`` in the test ids; objects re-exported elsewhere
run once, under the module that defines them.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from test_docs import _FENCE, PYTHON, parse_blocks

import clrplug
from clrplug.registry import Registry


@dataclass(frozen=True)
class Example:
    """One fenced python block of one docstring."""

    where: str  # module.qualname#n
    code: str
    filename: str  # the source file, for tracebacks (or "<docstring ...>" if not found)
    line: int  # the code's first line in that file (1-based)


def python_blocks(doc: str) -> list[tuple[str, int]]:
    """The fenced python blocks of a (cleaned) docstring, with their first line."""
    return [(block.code, block.line) for block in parse_blocks(doc) if block.lang in PYTHON]


def source_lines(obj: Any, fences: int) -> tuple[str, list[int]] | None:
    """The file defining ``obj`` and the first code line of each of its docstring's first
    ``fences`` python blocks there (the docstring comes first in an object's source)."""
    try:
        filename = inspect.getsourcefile(obj)
        lines, start = inspect.getsourcelines(obj)
    except (OSError, TypeError):
        return None
    if filename is None:
        return None
    start = max(start, 1)
    found = [start + i + 1 for i, text in enumerate(lines)
             if (m := _FENCE.match(text)) and m["info"].strip().split()[:1] in ([p] for p in PYTHON)]
    return (filename, found[:fences]) if len(found) >= fences else None


def public_modules() -> list[ModuleType]:
    modules = [clrplug]
    for info in pkgutil.walk_packages(clrplug.__path__, "clrplug."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items()
                 if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]
    return list(names)


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    for name, member in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            member = member.fget
        if inspect.isfunction(member) or inspect.isclass(member):
            yield name, member


def collect() -> list[Example]:
    examples: list[Example] = []
    seen: set[int] = set()

    def add(where: str, obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        doc = inspect.getdoc(obj) if not isinstance(obj, ModuleType) else (obj.__doc__ or "")
        blocks = python_blocks(inspect.cleandoc(doc or ""))
        located = source_lines(obj, len(blocks)) if blocks else None
        for n, (code, line) in enumerate(blocks, 1):
            if located is not None:
                examples.append(Example(f"{where}#{n}", code, located[0], located[1][n - 1]))
            else:
                examples.append(Example(f"{where}#{n}", code, f"<docstring {where}>", line))

    modules = public_modules()
    for module in modules:
        add(module.__name__, module)
    for module in modules:
        for name in _public_names(module):
            obj = getattr(module, name, None)
            if obj is None or isinstance(obj, ModuleType):
                continue
            # Run each object once, under the module that defines it.
            home = getattr(obj, "__module__", module.__name__)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if home != module.__name__ and home.startswith("clrplug"):
                    continue
                add(f"{module.__name__}.{obj.__qualname__}", obj)
            if inspect.isclass(obj):
                for member_name, member in _members(obj):
                    add(f"{module.__name__}.{obj.__qualname__}.{member_name}", member)
    return examples


EXAMPLES = collect()


def test_examples_were_found() -> None:
    """The collection itself works: the callbacks' and schedules' examples are among them."""
    where = {e.where.split("#")[0].rsplit(".", 1)[-1] for e in EXAMPLES}
    assert {"CyclicLR", "OneCycleLR", "CyclicalSchedule", "OneCycleSchedule",
            "learning_rates"} <= where


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             fresh_registry: Registry) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:  # pragma: no cover - matplotlib is a test dependency
        pass
    yield tmp_path
    try:
        import matplotlib.pyplot as plt

        plt.close("all")
    except ImportError:  # pragma: no cover
        pass


#: Examples that fail because of a bug in the library (strict: remove when fixed).
KNOWN_BUGS: dict[str, str] = {}


def _param(example: Example) -> Any:
    reason = KNOWN_BUGS.get(example.where)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(example, id=example.where, marks=marks)


@pytest.mark.parametrize("example", [_param(e) for e in EXAMPLES])
def test_docstring_example_runs(example: Example, isolated: Path) -> None:
    # Blank lines before the code: tracebacks show the line in the source file.
    code = compile("\n" * (example.line - 1) + example.code, example.filename, "exec")
    exec(code, {"__name__": "__main__"})


def test_known_bugs_are_examples_that_exist() -> None:
    assert set(KNOWN_BUGS) <= {e.where for e in EXAMPLES}


def test_examples_point_into_their_source_files() -> None:
    located = [e for e in EXAMPLES if Path(e.filename).is_file()]
    assert len(located) == len(EXAMPLES)
    for example in located:
        first = Path(example.filename).read_text().splitlines()[example.line - 1]
        assert first.strip() == example.code.splitlines()[0].strip(), example.where
