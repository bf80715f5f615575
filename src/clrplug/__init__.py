"""clrplug: cyclical learning rates for Keras 3, with policies as plugins.

Importing ``clrplug`` loads neither Keras nor any plugin: the policy registry
loads plugins on the first lookup, and the Keras pieces (``CyclicLR``,
``CyclicalSchedule`` and the tools built on them) are imported on first use.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from clrplug.errors import (
    ClrplugError,
    InvalidArgumentError,
    InvalidPolicyError,
    PolicyConflictError,
    PolicyEvaluationError,
    UnknownPolicyError,
)
from clrplug.formula import learning_rates
from clrplug.hookspecs import hookimpl
from clrplug.policy import Policy, PolicySource
from clrplug.registry import PluginFailure, default_registry

if TYPE_CHECKING:
    from clrplug.callback import CyclicLR
    from clrplug.plotting import plot_schedule
    from clrplug.range_test import RangeTestResult, lr_range_test
    from clrplug.schedule import CyclicalSchedule

__version__ = "0.1.0"

__all__ = [
    "ClrplugError",
    "CyclicLR",
    "CyclicalSchedule",
    "InvalidArgumentError",
    "InvalidPolicyError",
    "PluginFailure",
    "Policy",
    "PolicyConflictError",
    "PolicyEvaluationError",
    "PolicySource",
    "RangeTestResult",
    "UnknownPolicyError",
    "get_policy",
    "hookimpl",
    "learning_rates",
    "list_plugin_failures",
    "list_policies",
    "lr_range_test",
    "plot_schedule",
    "register_policy",
    "unregister_policy",
]

# Public names whose modules import Keras: loaded on first attribute access.
_LAZY = {
    "CyclicLR": "clrplug.callback",
    "CyclicalSchedule": "clrplug.schedule",
    "RangeTestResult": "clrplug.range_test",
    "lr_range_test": "clrplug.range_test",
    "plot_schedule": "clrplug.plotting",
}


if "keras" in sys.modules:
    # Keras is loaded already: register CyclicalSchedule with it now, so that
    # keras.models.load_model finds it without touching clrplug.CyclicLR first.
    importlib.import_module("clrplug.schedule")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clrplug' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def get_policy(name: str) -> Policy:
    """The registered policy called ``name`` (built-in, plugin or runtime).

    Raises:
        UnknownPolicyError: no such name; the message lists every available name.
        PolicyConflictError: two sources registered the name.
    """
    return default_registry().get(name)


def list_policies() -> list[Policy]:
    """Every registered policy, sorted by name; ``policy.source`` says where it came from."""
    return default_registry().policies()


def list_plugin_failures() -> list[PluginFailure]:
    """Plugins that failed to load, with the reason (they are skipped)."""
    return default_registry().failures()


@overload
def register_policy(policy: Policy, /, *, replace: bool = ...) -> Policy: ...
@overload
def register_policy(
    policy: None = ...,
    /,
    *,
    name: str | None = ...,
    scale_mode: str = ...,
    params: dict[str, float] | None = ...,
    description: str = ...,
    replace: bool = ...,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...


def register_policy(
    policy: Policy | None = None,
    /,
    *,
    name: str | None = None,
    scale_mode: str = "cycle",
    params: dict[str, float] | None = None,
    description: str = "",
    replace: bool = False,
) -> Any:
    """Register a policy in this process, by call or as a decorator.

    ```python
    import numpy as np
    import clrplug

    clrplug.register_policy(clrplug.Policy("halfway", lambda x: np.full_like(x, 0.5)))

    @clrplug.register_policy(name="quarter", scale_mode="iterations")
    def quarter(x):
        return np.full_like(x, 0.25)

    assert clrplug.get_policy("quarter").scale_mode == "iterations"
    clrplug.unregister_policy("halfway"); clrplug.unregister_policy("quarter")
    ```

    Args:
        policy: the :class:`Policy` to register (call form).
        name: the policy's name (decorator form); defaults to the function's name.
        scale_mode: ``"cycle"`` or ``"iterations"`` (decorator form).
        params: the policy's parameters and defaults (decorator form).
        description: one line for ``clrplug policies`` (decorator form; defaults to
            the function's docstring).
        replace: allow replacing an earlier runtime registration of the same name.

    Raises:
        PolicyConflictError: the name is already registered (built-ins and plugins
            are never replaced).
    """
    registry = default_registry()
    if policy is not None:
        if not isinstance(policy, Policy):
            raise InvalidPolicyError(
                f"register_policy() takes a clrplug.Policy (or is used as a decorator), got "
                f"{type(policy).__name__} {policy!r}."
            )
        return registry.register(policy, replace_existing=replace)

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        registry.register(
            Policy(name or fn.__name__, fn, scale_mode, params, description or (fn.__doc__ or "").strip()),
            replace_existing=replace,
        )
        return fn

    return decorator


def unregister_policy(name: str) -> None:
    """Remove a policy registered at runtime."""
    default_registry().unregister(name)
