"""The hook specifications a clrplug plugin implements.

A plugin is a module (or object) that implements these hooks with
:data:`clrplug.hookimpl` and is advertised under the ``clrplug`` entry-point
group. clrplug's own policies are registered through the same hook, by the
module :mod:`clrplug.builtin_policies`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from clrplug.policy import Policy

PROJECT_NAME = "clrplug"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def clrplug_register_policies(register: Callable[[Policy], None]) -> None:
    """Register the policies this plugin provides.

    Called once per process, the first time a policy name is looked up or the
    policies are listed (never at ``import clrplug``).

    Args:
        register: call ``register(policy)`` once per :class:`clrplug.Policy` the
            plugin provides. Registering something that is not a ``Policy`` fails
            the whole plugin: none of its policies are kept.

    Example:

    ```python
    import numpy as np
    import clrplug

    @clrplug.hookimpl
    def clrplug_register_policies(register):
        register(clrplug.Policy("half", lambda x: np.full_like(x, 0.5)))
    ```
    """
