"""The hook specification a clrplug plugin implements.

A plugin is a module (or object) implementing this hook with
:data:`clrplug.hookimpl`, advertised under the ``clrplug`` entry-point group.
clrplug's own records come through the same hook, from :mod:`clrplug.builtin`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from clrplug.records import Record

PROJECT_NAME = "clrplug"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def clrplug_register_policies(register: Callable[[Record], None]) -> None:
    """Register the policies (and waveforms and range-test rules) this plugin provides.

    Called once per process, the first time a name is looked up or the records are
    listed (never at ``import clrplug``).

    Args:
        register: call ``register(record)`` once per :class:`clrplug.Policy`,
            :class:`clrplug.Waveform` or :class:`clrplug.SuggestionRule` the plugin
            provides. Registering anything else fails the whole plugin: none of its
            records are kept.

    Example:

    ```python
    import numpy as np
    import clrplug

    @clrplug.hookimpl
    def clrplug_register_policies(register):
        register(clrplug.Policy("half", lambda x: np.full_like(x, 0.5)))
    ```
    """
