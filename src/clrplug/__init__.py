"""clrplug: cyclical learning rates for Keras 3, with policies as plugins.

``import clrplug`` loads no plugin (the registry loads them on the first lookup) and
does not import Keras. Imported after Keras, it registers its schedules with Keras'
deserialisation at once, so ``keras.models.load_model`` finds them; imported before,
the first use of a schedule or callback does (or ``import clrplug.schedule``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from clrplug.hookspecs import hookimpl

if TYPE_CHECKING:
    from clrplug.callback import CyclicLR
    from clrplug.formula import learning_rates, one_cycle_rates
    from clrplug.one_cycle import OneCycleLR
    from clrplug.one_cycle_schedule import OneCycleSchedule
    from clrplug.plotting import plot_history, plot_schedule
    from clrplug.range_test import lr_range_test
    from clrplug.records import Policy, Record, SuggestionRule, Waveform
    from clrplug.registry import PluginFailure
    from clrplug.schedule import CyclicalSchedule

__version__ = "0.2.0"

# What a user types: the callbacks and schedules, the float64 references, the records a
# plugin registers and registration, the range test and the plots. The rest (the
# exceptions, the registry's and the range test's classes) is imported from its module:
# clrplug.errors, clrplug.registry, ... (docs/api.md).
__all__ = [
    "CyclicLR",
    "CyclicalSchedule",
    "OneCycleLR",
    "OneCycleSchedule",
    "Policy",
    "SuggestionRule",
    "Waveform",
    "get_policy",
    "get_waveform",
    "hookimpl",
    "learning_rates",
    "list_plugin_failures",
    "list_policies",
    "list_waveforms",
    "lr_range_test",
    "one_cycle_rates",
    "plot_history",
    "plot_schedule",
    "register_policy",
    "unregister_policy",
]

# Public names loaded on first attribute access: ``import clrplug`` (and so pytest's
# start-up, which loads clrplug's pytest plugin) imports neither numpy nor Keras.
_LAZY = {
    "learning_rates": "clrplug.formula",
    "one_cycle_rates": "clrplug.formula",
    "Policy": "clrplug.records",
    "SuggestionRule": "clrplug.records",
    "Waveform": "clrplug.records",
    "CyclicLR": "clrplug.callback",
    "OneCycleLR": "clrplug.one_cycle",
    "CyclicalSchedule": "clrplug.schedule",
    "OneCycleSchedule": "clrplug.one_cycle_schedule",
    "lr_range_test": "clrplug.range_test",
    "plot_history": "clrplug.plotting",
    "plot_schedule": "clrplug.plotting",
}

# Names the top level exported up to 0.2.0, now imported from their module. They still
# resolve here, with a DeprecationWarning naming the module, until 0.3.
_MOVED = {
    "ClrplugError": "clrplug.errors",
    "InvalidArgumentError": "clrplug.errors",
    "InvalidPolicyError": "clrplug.errors",
    "NameConflictError": "clrplug.errors",
    "PolicyConflictError": "clrplug.errors",
    "PolicyEvaluationError": "clrplug.errors",
    "UnknownNameError": "clrplug.errors",
    "UnknownPolicyError": "clrplug.errors",
    "PolicySource": "clrplug.records",
    "Record": "clrplug.records",
    "PluginFailure": "clrplug.registry",
    "default_registry": "clrplug.registry",
    "RangeTestResult": "clrplug.range_test",
}

#: The modules that register clrplug's saved objects with Keras' deserialisation when
#: imported: the schedules (and, through them, clrplug.engine.rate's OptimizerRate).
_KERAS_REGISTRATIONS = ("clrplug.schedule", "clrplug.one_cycle_schedule")
#: The lazy names whose module imports Keras: loading one registers them all.
_KERAS_NAMES = frozenset({"CyclicLR", "OneCycleLR", "CyclicalSchedule", "OneCycleSchedule",
                          "lr_range_test", "plot_history", "plot_schedule"})


def _register_with_keras() -> None:
    for module in _KERAS_REGISTRATIONS:
        importlib.import_module(module)


# Keras already loaded: register now (no import hook waits for a later ``import keras``).
if "keras" in sys.modules:
    _register_with_keras()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        if name in _KERAS_NAMES:
            _register_with_keras()
        globals()[name] = value
        return value
    module = _MOVED.get(name)
    if module is not None:
        warnings.warn(
            f"clrplug.{name} is deprecated and goes in clrplug 0.3: use {module}.{name} "
            f"(from {module} import {name}).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)
    if importlib.util.find_spec(f"clrplug.{name}") is not None:  # clrplug.errors, ...
        return importlib.import_module(f"clrplug.{name}")
    raise AttributeError(f"module 'clrplug' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _registry() -> Any:
    from clrplug.registry import default_registry

    return default_registry()


def get_policy(name: str) -> Policy:
    """The registered policy called ``name`` (built-in, plugin or runtime).

    Raises:
        UnknownPolicyError: no such name; the message lists every available name.
        PolicyConflictError: two sources registered the name.
    """
    return _registry().get(name)


def get_waveform(name: str) -> Waveform:
    """The registered waveform called ``name`` (``triangular``, ``cosine``, ``welch``, plugins')."""
    return _registry().get(name, "waveform")


def list_policies() -> list[Policy]:
    """Every registered policy, sorted by name; ``policy.source`` says where it came from."""
    return _registry().policies()


def list_waveforms() -> list[Waveform]:
    """Every registered waveform, sorted by name."""
    return _registry().records("waveform")


def list_plugin_failures() -> list[PluginFailure]:
    """Plugins that failed to load, with the reason (they are skipped)."""
    return _registry().failures()


@overload
def register_policy(policy: Record, /, *, replace: bool = ...) -> Record: ...
@overload
def register_policy(
    policy: None = ...,
    /,
    *,
    name: str | None = ...,
    scale_mode: str = ...,
    params: dict[str, float] | None = ...,
    description: str = ...,
    ops_fn: Callable[..., Any] | None = ...,
    replace: bool = ...,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...


def register_policy(
    policy: Record | None = None,
    /,
    *,
    name: str | None = None,
    scale_mode: str = "cycle",
    params: dict[str, float] | None = None,
    description: str = "",
    ops_fn: Callable[..., Any] | None = None,
    replace: bool = False,
) -> Any:
    """Register a policy (or a :class:`Waveform` or :class:`SuggestionRule`) in this process.

    By call with a record, or as a decorator of a scale function:

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
        policy: the record to register (call form).
        name: the policy's name (decorator form); defaults to the function's name.
        scale_mode: ``"cycle"`` or ``"iterations"`` (decorator form).
        params: the policy's parameters and defaults (decorator form).
        description: one line for ``clrplug policies`` (decorator form; defaults to
            the function's docstring).
        ops_fn: the policy's ``keras.ops`` twin (decorator form; see :class:`Policy`).
        replace: allow replacing an earlier runtime registration of the same name.

    Raises:
        NameConflictError: the name is already registered for that kind (built-ins and
            plugins are never replaced).
    """
    registry = _registry()
    if policy is not None:
        return registry.register(policy, replace_existing=replace)

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        from clrplug.records import Policy

        registry.register(
            Policy(name or fn.__name__, fn, scale_mode, params,
                   description or (fn.__doc__ or "").strip(), ops_fn),
            replace_existing=replace,
        )
        return fn

    return decorator


def unregister_policy(name: str, kind: str = "policy") -> None:
    """Remove a record registered at runtime (``kind``: ``"policy"``, ``"waveform"`` or ``"rule"``)."""
    _registry().unregister(name, kind)
