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
