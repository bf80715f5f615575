"""The conformance kit for plugin authors, and a harness that measures applied rates.

A plugin author runs the kit from the plugin's own test suite:

```
import pytest
from clrplug.testing import policies_of

@pytest.mark.parametrize("name", policies_of("clrplug-mine"))
def test_policy_conforms(name, clrplug_policy_check):
    clrplug_policy_check(name)
```

The fixtures ``clrplug_policy_check`` and ``clrplug_waveform_check`` and the option
``--clrplug-policy NAME`` come from :mod:`clrplug.testing.pytest_plugin`, which pytest
loads wherever clrplug is installed. docs/writing-a-plugin.md lists every property.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clrplug.testing.harness import applied_rates
    from clrplug.testing.kit import (
        CYCLE_RANGE,
        ITERATION_RANGE,
        PROPERTIES,
        PolicyConformanceError,
        check_policy,
        check_waveform,
        policies_of,
        sample_x,
        waveforms_of,
    )

__all__ = [
    "CYCLE_RANGE",
    "ITERATION_RANGE",
    "PROPERTIES",
    "PolicyConformanceError",
    "applied_rates",
    "check_policy",
    "check_waveform",
    "policies_of",
    "sample_x",
    "waveforms_of",
]

# Loaded on first access, so that pytest's start-up (the pytest plugin lives in this
# package) imports no numpy.
_LAZY = {name: "clrplug.testing.kit" for name in __all__} | {
    "applied_rates": "clrplug.testing.harness"
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clrplug.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
