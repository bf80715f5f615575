"""The LR range test: one sweep of the learning rate, and the bounds it suggests.

A small package, one job per module: :mod:`.sweep` (the rising rate, in the
compiled step), :mod:`.recorder` (each step's own logs and the stop rule),
:mod:`.snapshot` (the model's state, put back exactly), :mod:`.data` (epoch
lengths), :mod:`.run` (``lr_range_test``), :mod:`.result` (``RangeTestResult`` and
its suggestions) and :mod:`.rules` (the named suggestion rules). Importing the
package, ``.result`` or ``.rules`` does not import Keras; the other names load on
first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clrplug.range_test.result import (
        DEFAULT_LOWER,
        DEFAULT_RULE,
        RangeTestResult,
        Suggestion,
    )
    from clrplug.range_test.run import lr_range_test
    from clrplug.range_test.sweep import STEP_MODES, SweepSchedule, sweep_rates

__all__ = [
    "DEFAULT_LOWER",
    "DEFAULT_RULE",
    "STEP_MODES",
    "RangeTestResult",
    "Suggestion",
    "SweepSchedule",
    "lr_range_test",
    "sweep_rates",
]

_LAZY = {
    "DEFAULT_LOWER": "clrplug.range_test.result",
    "DEFAULT_RULE": "clrplug.range_test.result",
    "RangeTestResult": "clrplug.range_test.result",
    "Suggestion": "clrplug.range_test.result",
    "lr_range_test": "clrplug.range_test.run",
    "STEP_MODES": "clrplug.range_test.sweep",
    "SweepSchedule": "clrplug.range_test.sweep",
    "sweep_rates": "clrplug.range_test.sweep",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clrplug.range_test' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
