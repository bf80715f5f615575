"""Shared fixtures. The suite runs once per Keras backend (KERAS_BACKEND)."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clrplug import registry as registry_module


def pytest_report_header(config: pytest.Config) -> str:
    return f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '(keras default)')}"


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
