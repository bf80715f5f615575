"""Run clrplug's Keras registrations once Keras is imported, whatever the import order.

``import clrplug`` must not import Keras, yet ``keras.models.load_model`` must
find clrplug's schedules even when ``import keras`` comes later. A meta-path
finder watches for the top-level ``keras`` import and imports the registering
modules right after it completes; it touches no other import.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["when_keras_imported"]

_lock = threading.Lock()
_pending: list[str] = []


def _import_pending() -> None:
    with _lock:
        names, _pending[:] = list(_pending), []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # never break the user's `import keras`
            warnings.warn(
                f"clrplug: could not register {name} with Keras ({type(exc).__name__}: {exc}); "
                f"import {name} before keras.models.load_model.",
                stacklevel=2,
            )


class _ThenRegister(importlib.abc.Loader):
    """Keras' own loader, followed by clrplug's registrations."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _import_pending()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _KerasWatcher(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "keras" or not _pending:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader)
        return spec


_watcher = _KerasWatcher()


def when_keras_imported(module: str) -> None:
    """Import ``module`` now if Keras is loaded, else right after ``import keras``."""
    if "keras" in sys.modules:
        importlib.import_module(module)
        return
    with _lock:
        if module not in _pending:
            _pending.append(module)
        if _watcher not in sys.meta_path:
            sys.meta_path.insert(0, _watcher)
