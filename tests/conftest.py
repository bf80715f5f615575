"""Shared fixtures, which test module runs where, and the guard against torch.

``scripts/dev.py test`` runs pytest on ``tests/`` more than once, telling each run which
part it is through ``CLRPLUG_TEST_PART``:

* ``independent``: the modules of ``BACKEND_INDEPENDENT``, which touch no Keras backend
  (no model, no tensor, no ``keras.ops``; nothing in a child process that does), once,
  under the first backend selected;
* ``backend``: every other module, once per Keras backend (``KERAS_BACKEND``).

Unset (a plain ``pytest``), every module is collected. A module not listed here is
backend-dependent: a new test module runs on every backend until it is listed.

The modules of ``TORCH_ONLY`` import torch themselves and are collected only where
``KERAS_BACKEND=torch``: no test process that runs JAX or TensorFlow may import torch (a
CUDA torch wheel brings ``triton``, which crashes a process holding either). PyTorch's
schedulers reach the other runs as stored data (tests/oracles.py, tests/torch_oracle.py).
A run whose backend is not torch fails at its end if torch was imported anyway, naming
the first test after which it was there.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clrplug import registry as registry_module

PART_ENV = "CLRPLUG_TEST_PART"
PARTS = ("independent", "backend")

#: Test modules that need no Keras backend: run once, not once per backend. Each was
#: checked to make no backend computation (under JAX, no primitive is bound while its
#: tests run) and to start no child process that does. Not here, though they look
#: backend-free: test_docs and test_docstrings (they run the pages' and docstrings' code,
#: fits included), test_cli_plot_demo (the demo trains), test_convergence_benchmark (it
#: trains in a child process), test_scaffold_installed (the generated plugins' tests run on
#: the backend), test_plugin_install and test_conformance (clrplug.testing computes rates
#: with keras.ops).
BACKEND_INDEPENDENT = frozenset({
    "test_architecture.py",
    "test_fastai_parity_data.py",
    "test_fastai_rules.py",
    "test_formula.py",
    "test_fuzz.py",
    "test_history_rows.py",
    "test_policy.py",
    "test_registry.py",
    "test_rules.py",
    "test_scaffold.py",
})

#: Test modules that import torch: collected in the PyTorch run only.
TORCH_ONLY = frozenset({"test_oracles.py"})

_torch_seen_after: list[str] = []


def backend() -> str:
    """This process's Keras backend, without importing Keras when nothing has."""
    keras = sys.modules.get("keras")
    if keras is not None:
        return str(keras.backend.backend())
    return os.environ.get("KERAS_BACKEND", "tensorflow")  # Keras' own default


def _part() -> str | None:
    part = os.environ.get(PART_ENV) or None
    if part is not None and part not in PARTS:
        raise pytest.UsageError(f"{PART_ENV}={part!r}: expected one of {', '.join(PARTS)}")
    return part


def pytest_configure(config: pytest.Config) -> None:
    _part()  # refuse an unknown part before collecting


def pytest_report_header(config: pytest.Config) -> list[str]:
    part = _part()
    lines = [f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '(keras default)')}"]
    if part == "independent":
        lines.append(f"{PART_ENV}=independent: only the backend-independent modules of tests/")
    elif part == "backend":
        lines.append(f"{PART_ENV}=backend: tests/ without its backend-independent modules")
    return lines


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    name = collection_path.name
    if collection_path.parent != Path(__file__).parent or not name.startswith("test_"):
        return None
    if name in TORCH_ONLY and backend() != "torch":
        return True
    part = _part()
    if part == "independent" and name not in BACKEND_INDEPENDENT:
        return True
    if part == "backend" and name in BACKEND_INDEPENDENT:
        return True
    return None


# Only this process is watched. A child process may import torch on purpose: the one that
# does, in tests/test_portable_checkpoints.py, loads a .keras file saved on PyTorch (it names
# Keras' torch optimizer class) in a JAX or TensorFlow child, one file per process, and the
# test compares the outcome, a crash included, with what a plain Keras file saved there does.


def _note_torch(where: str) -> None:
    if not _torch_seen_after and "torch" in sys.modules and backend() != "torch":
        _torch_seen_after.append(where)


def pytest_collection_finish(session: pytest.Session) -> None:
    _note_torch("collection")


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _note_torch(nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _note_torch("the last test")
    if _torch_seen_after:
        message = (f"torch was imported in a {backend()} run (first seen after "
                   f"{_torch_seen_after[0]}): no process that runs JAX or TensorFlow may "
                   "import torch; use the stored oracles of tests/oracles.py")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"FAILED {message}", red=True, bold=True)
        else:
            print(message, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[registry_module.Registry]:
    """A new process-wide registry for the test, restored afterwards."""
    for key in (registry_module.DISABLE_AUTOLOAD_ENV, registry_module.PLUGINS_ENV):
        monkeypatch.delenv(key, raising=False)
    registry = registry_module.Registry()
    previous = registry_module.set_default_registry(registry)
    try:
        yield registry
    finally:
        registry_module.set_default_registry(previous)


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Install a fake distribution: a module plus a ``*.dist-info`` with entry points.

    ``fake_dist(name, version, modules={"mod": "source"}, entry_points={group: {name: value}})``
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(
        name: str,
        version: str = "1.0",
        modules: dict[str, str] | None = None,
        entry_points: dict[str, dict[str, str]] | None = None,
    ) -> Path:
        for module, source in (modules or {}).items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            sys.modules.pop(module, None)
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        lines = []
        for group, eps in (entry_points or {}).items():
            lines.append(f"[{group}]")
            lines.extend(f"{ep} = {value}" for ep, value in eps.items())
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        return info

    return make
