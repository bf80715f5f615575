"""The conformance kit: the checks a policy or waveform must pass to be fit for clrplug.

:func:`check_policy` and :func:`check_waveform` resolve the record as the registry
does and run the properties of :mod:`clrplug.testing.properties`, raising
:class:`PolicyConformanceError` naming the record, its source, the property that broke
and a value that breaks it. Keras is imported only by the twin and serialisation checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import numpy as np

from clrplug import registry as registry_module
from clrplug.errors import ClrplugError
from clrplug.records import Policy, Waveform
from clrplug.testing.properties import (
    CYCLE_RANGE,
    ITERATION_RANGE,
    PROPERTIES,
    Checker,
    PolicyConformanceError,
    sample_x,
)

__all__ = [
    "CYCLE_RANGE",
    "ITERATION_RANGE",
    "PROPERTIES",
    "PolicyConformanceError",
    "check_policy",
    "check_waveform",
    "policies_of",
    "sample_x",
    "waveforms_of",
]


@contextmanager
def _resolvable(record: Policy | Waveform) -> Iterator[None]:
    """Make ``record`` resolvable by name for the serialisation check.

    A record handed to a check directly need not be registered: it is then registered
    at runtime in a temporary default registry (built-ins only), restored afterwards.
    """
    try:
        registered = registry_module.default_registry().get(record.name, record.kind) == record
    except Exception:
        registered = False
    if registered:
        yield
        return
    temporary = registry_module.Registry(autoload=False)
    if record.name not in temporary.names(record.kind):
        temporary.register(record)
    previous = registry_module.set_default_registry(temporary)
    try:
        yield
    finally:
        registry_module.set_default_registry(previous)


def _resolve(name_or_record: Any, kind: str, cls: type) -> tuple[Any, str | None]:
    """The record to check and its source's description."""
    __tracebackhide__ = True
    if isinstance(name_or_record, cls):
        record: Any = name_or_record
        try:
            registered = registry_module.default_registry().get(record.name, kind)
        except ClrplugError:
            return record, None
        if registered != record:
            raise PolicyConformanceError(
                record.name, str(record.source), "resolves",
                f"the registry resolves {record.name!r} to a different {kind}, from "
                f"{registered.source}", kind=kind,
            )
        return registered, str(registered.source)
    if not isinstance(name_or_record, str):
        raise TypeError(
            f"check_{kind}() takes a {kind} name or a clrplug.{cls.__name__}, got "
            f"{type(name_or_record).__name__} {name_or_record!r}."
        )
    try:
        record = registry_module.default_registry().get(name_or_record, kind)
    except ClrplugError as exc:
        raise PolicyConformanceError(
            name_or_record, None, "resolves", f"{type(exc).__name__}: {exc}", kind=kind
        ) from exc
    return record, str(record.source)


def check_policy(
    name_or_policy: str | Policy, *, params: Mapping[str, float] | None = None
) -> None:
    """Verify that a policy has every property clrplug relies on.

    The policy registers and resolves by name; its scale values are finite and within
    ``[0, 1]`` over a long range of x (cycles 1 to 10^4, or iterations 0 to 10^7); it
    is vectorised, deterministic, keeps no state and leaves its input alone; its
    parameters have defaults and are accepted by name; its ``keras.ops`` twin, if it
    has one, agrees with it up to x = 2**31 - 1; and a schedule using it round-trips
    through Keras serialisation.

    Args:
        name_or_policy: a registered policy's name (checked as the registry resolves
            it), or a :class:`~clrplug.Policy` object (checked as given; if its name is
            not registered it is registered temporarily for the serialisation check).
        params: parameter values to check with instead of the defaults, e.g.
            ``{"rate": 2e-4}``; unknown names fail the check.

    Raises:
        PolicyConformanceError: the first property that does not hold (see
            :data:`PROPERTIES`), naming the policy, its source and an x that shows it.

    Example:

    ```python
    from clrplug.testing import check_policy, PolicyConformanceError

    check_policy("exp_range", params={"gamma": 0.99994})
    try:
        check_policy("exp_range", params={"gamma": 1.5})
    except PolicyConformanceError as error:
        assert error.property == "range" and error.x == 1.0
        assert "scale(1.0, gamma=1.5) = 1.5" in str(error)
    else:
        raise AssertionError("gamma=1.5 leaves [0, 1]")
    ```
    """
    __tracebackhide__ = True  # pytest shows the failing test and the message, not the kit
    policy, source = _resolve(name_or_policy, "policy", Policy)
    checker = Checker(policy, source, {})
    try:
        checker.params = policy.resolve_params(params)
    except ClrplugError as exc:
        raise checker.fail("parameters", str(exc)) from exc
    checker.check_signature()
    xs = sample_x(policy.scale_mode)
    values = checker.evaluate(xs)
    checker.check_repeatable(xs, values)
    checker.check_scalars(xs, values)
    checker.check_twin()
    with _resolvable(policy):
        checker.check_serialisation()


def check_waveform(name_or_waveform: str | Waveform) -> None:
    """Verify that a waveform has every property clrplug relies on.

    Its shape is 0 at t=0 and 1 at t=1, finite and within ``[0, 1]`` on ``[0, 1]``,
    vectorised, deterministic and stateless; its ``keras.ops`` twin agrees with it;
    and a schedule using it round-trips through Keras serialisation.

    Raises:
        PolicyConformanceError: the first property that does not hold.

    Example:

    ```python
    import numpy as np
    import clrplug
    from clrplug.testing import check_waveform, PolicyConformanceError

    check_waveform("cosine")
    bad = clrplug.Waveform("half", lambda t: 0.5 * t, lambda t: 0.5 * t)
    try:
        check_waveform(bad)
    except PolicyConformanceError as error:
        assert error.property == "ends"
    else:
        raise AssertionError("a shape ending at 0.5 is not a waveform")
    ```
    """
    __tracebackhide__ = True
    waveform, source = _resolve(name_or_waveform, "waveform", Waveform)
    checker = Checker(waveform, source, {})
    t = np.linspace(0.0, 1.0, 1025)
    values = checker.evaluate(t)
    if abs(values[0]) > 1e-12 or abs(values[-1] - 1.0) > 1e-12:
        raise checker.fail(
            "ends", f"shape(0) = {float(values[0])!r}, shape(1) = {float(values[-1])!r}"
        )
    checker.check_repeatable(t, values)
    checker.check_scalars(t, values)
    checker.check_twin()
    with _resolvable(waveform):
        checker.check_serialisation()


def _records_of(distribution: str, kind: str) -> list[str]:
    if not isinstance(distribution, str) or not distribution.strip():
        raise TypeError(f"{kind}s_of() takes a distribution name, got {distribution!r}.")
    registry = registry_module.default_registry()
    key = registry_module.canonical_distribution_name(distribution)
    names = sorted(
        {
            r.name
            for r in registry.records(kind)
            if r.source.distribution
            and registry_module.canonical_distribution_name(r.source.distribution) == key
        }
    )
    if names:
        return names
    failures = [
        f for f in registry.failures()
        if registry_module.canonical_distribution_name(f.source.distribution or "") == key
    ]
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        reason = "it is not installed in this environment"
    else:
        groups = {ep.group for ep in dist.entry_points}
        plugin_groups = {registry_module.ENTRY_POINT_GROUP, registry_module.POLICY_ENTRY_POINT_GROUP}
        allowed = registry_module.allowed_distributions()
        if failures:
            reason = "it failed to load: " + "; ".join(f.error for f in failures)
        elif registry_module.plugins_switched_off():
            switch = registry_module.DISABLE_AUTOLOAD_ENV
            reason = f"plugin loading is switched off by {switch}={os.environ[switch]!r}"
        elif allowed is not None and key not in allowed:
            env = registry_module.PLUGINS_ENV
            reason = f"{env}={os.environ[env]!r} does not include it"
        elif not groups & plugin_groups:
            reason = f"it has no entry point in the groups {sorted(plugin_groups)}"
        else:
            reason = "its hook registered nothing"
    raise LookupError(f"distribution {distribution!r} registers no clrplug {kind}: {reason}.")


def policies_of(distribution: str) -> list[str]:
    """The names of the policies a distribution registers, sorted.

    For ``@pytest.mark.parametrize("name", policies_of("clrplug-mine"))``.
    ``"clrplug"`` gives the built-ins. Distribution names compare as pip does
    (``clrplug_mine`` is ``clrplug-mine``).

    Raises:
        LookupError: the distribution registers no policy; the message says why
            (not installed, switched off, failed to load, or no entry point).
    """
    return _records_of(distribution, "policy")


def waveforms_of(distribution: str) -> list[str]:
    """The names of the waveforms a distribution registers, sorted (see :func:`policies_of`)."""
    return _records_of(distribution, "waveform")
