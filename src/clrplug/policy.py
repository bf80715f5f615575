"""The policy record: what a plugin registers and what ``mode`` resolves to.

A policy is the seed's "amplitude scale function" together with the quantity it
is evaluated on (``scale_mode``): the cycle number (``"cycle"``, 1, 2, 3, ...) or
the number of iterations since the cycle was last reset (``"iterations"``).
It is plain data plus a numpy function; nothing here imports Keras.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from clrplug.errors import InvalidArgumentError, InvalidPolicyError, PolicyEvaluationError

__all__ = ["SCALE_MODES", "Policy", "PolicySource"]

SCALE_MODES = ("cycle", "iterations")
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class PolicySource:
    """Where a registered policy came from.

    Attributes:
        kind: ``"builtin"``, ``"plugin"`` (an installed distribution) or ``"runtime"``
            (``clrplug.register_policy`` in this process).
        distribution: the distribution's name, for plugins.
        version: the distribution's version, for plugins.
        entry_point: the entry point that loaded it, as ``group:name``.
    """

    kind: str
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None

    def __str__(self) -> str:
        if self.kind == "plugin" and self.distribution:
            return f"{self.distribution} {self.version or ''}".strip()
        if self.kind == "builtin":
            return "built-in"
        return self.kind


BUILTIN = PolicySource("builtin", "clrplug")
RUNTIME = PolicySource("runtime")


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond the float range
        return False


def _normalise_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidPolicyError(
            f"Policy name must be a string, got {type(name).__name__} {name!r}."
        )
    normalised = re.sub(r"[-\s.]+", "_", name.strip()).lower()
    if not _NAME_RE.match(normalised):
        raise InvalidPolicyError(
            f"Invalid policy name {name!r}: names are identifiers made of lower-case "
            "letters, digits and '_' that do not start with a digit (e.g. 'exp_range')."
        )
    return normalised


def _check_params(name: str, params: object) -> Mapping[str, float]:
    if params is None:
        return MappingProxyType({})
    if not isinstance(params, Mapping):
        raise InvalidPolicyError(
            f"Policy {name!r}: params must be a mapping of parameter names to default "
            f"values, got {type(params).__name__} {params!r}."
        )
    checked: dict[str, float] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise InvalidPolicyError(
                f"Policy {name!r}: parameter name {key!r} is not a Python identifier."
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise InvalidPolicyError(
                f"Policy {name!r}: default of parameter {key!r} must be a number, "
                f"got {type(value).__name__} {value!r}."
            )
        if not _finite(value):
            raise InvalidPolicyError(
                f"Policy {name!r}: default of parameter {key!r} must be finite, got {value!r}."
            )
        checked[key] = float(value)
    return MappingProxyType(checked)


def _check_signature(name: str, scale_fn: Callable[..., Any], params: Mapping[str, float]) -> None:
    """Refuse a scale function that cannot take the declared parameters by name."""
    try:
        signature = inspect.signature(scale_fn)
    except (TypeError, ValueError):  # builtins and ufuncs: nothing to check
        return
    kinds = {p.kind for p in signature.parameters.values()}
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return
    accepted = {
        p.name
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    missing = sorted(set(params) - accepted)
    if missing:
        raise InvalidPolicyError(
            f"Policy {name!r}: scale_fn {getattr(scale_fn, '__name__', scale_fn)!r} does not "
            f"accept the declared parameter(s) {missing} as keyword arguments."
        )


@dataclass(frozen=True)
class Policy:
    """A cyclical learning-rate policy: an amplitude scale function and its scale mode.

    The learning rate at cycle iteration ``k`` is the seed's formula::

        cycle = floor(1 + k / (2 * step_size))
        x = abs(k / step_size - 2 * cycle + 1)
        lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale_fn(arg)

    where ``arg`` is ``cycle`` when ``scale_mode == "cycle"`` and ``k`` when
    ``scale_mode == "iterations"``.

    Args:
        name: the name ``CyclicLR(mode=...)`` resolves. Normalised to lower case with
            ``-``, ``.`` and spaces turned into ``_``; must then be an identifier.
        scale_fn: ``scale_fn(x, **params)``, a pure numpy function of a float64
            array ``x`` returning values in ``[0, 1]`` (a scalar is broadcast).
        scale_mode: ``"cycle"`` or ``"iterations"``.
        params: the policy's own parameters and their defaults, e.g. ``{"gamma": 1.0}``.
        description: one line shown by ``clrplug policies``.

    Example:

    ```python
    import numpy as np
    import clrplug

    sinusoidal = clrplug.Policy(
        "my_sine", lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0)), scale_mode="cycle"
    )
    assert sinusoidal.scale(np.array([1.0, 2.0])).tolist() == [1.0, 0.5]
    ```
    """

    name: str
    scale_fn: Callable[..., Any]
    scale_mode: str = "cycle"
    params: Mapping[str, float] | None = None
    description: str = ""
    source: PolicySource = field(default=RUNTIME, compare=False)

    def __post_init__(self) -> None:
        name = _normalise_name(self.name)
        object.__setattr__(self, "name", name)
        if not callable(self.scale_fn):
            raise InvalidPolicyError(
                f"Policy {name!r}: scale_fn must be callable, got "
                f"{type(self.scale_fn).__name__} {self.scale_fn!r}."
            )
        if self.scale_mode not in SCALE_MODES:
            raise InvalidPolicyError(
                f"Policy {name!r}: scale_mode must be one of {list(SCALE_MODES)}, "
                f"got {self.scale_mode!r}."
            )
        params = _check_params(name, self.params)
        object.__setattr__(self, "params", params)
        _check_signature(name, self.scale_fn, params)
        if not isinstance(self.description, str):
            raise InvalidPolicyError(
                f"Policy {name!r}: description must be a string, got {self.description!r}."
            )
        if not isinstance(self.source, PolicySource):
            raise InvalidPolicyError(f"Policy {name!r}: source must be a PolicySource.")

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
        """The policy's parameters with ``overrides`` applied.

        Raises:
            InvalidArgumentError: an override names a parameter the policy does not
                have, or its value is not a finite number.
        """
        assert self.params is not None
        resolved = dict(self.params)
        for key, value in (overrides or {}).items():
            if key not in resolved:
                valid = ", ".join(sorted(resolved)) or "none"
                raise InvalidArgumentError(
                    f"policy_params: policy {self.name!r} has no parameter {key!r}; "
                    f"its parameters are: {valid}."
                )
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise InvalidArgumentError(
                    f"policy_params[{key!r}] must be a number, got {type(value).__name__} {value!r}."
                )
            if not _finite(value):
                raise InvalidArgumentError(f"policy_params[{key!r}] must be finite, got {value!r}.")
            resolved[key] = float(value)
        return resolved

    def scale(self, x: Any, **params: Any) -> np.ndarray:
        """Evaluate the scale function on ``x`` as a float64 array of ``x``'s shape.

        ``params`` override the defaults (unknown names are refused). The result is
        checked: an exception from the scale function, or a value that is not finite
        or outside ``[0, 1]``, raises :class:`~clrplug.PolicyEvaluationError` naming
        the policy, where it came from and the first offending ``x``.
        """
        resolved = self.resolve_params(params)
        xs = np.asarray(x, dtype=np.float64)
        try:
            with np.errstate(all="ignore"):
                values = np.asarray(self.scale_fn(xs, **resolved), dtype=np.float64)
            values = np.broadcast_to(values, xs.shape)
        except Exception as exc:
            raise PolicyEvaluationError(
                f"scale function of policy {self.name!r} (from {self.source}) raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        bad = ~(np.isfinite(values) & (values >= 0.0) & (values <= 1.0))
        if bad.any():
            index = np.flatnonzero(bad.ravel())[0]
            raise PolicyEvaluationError(
                f"scale function of policy {self.name!r} (from {self.source}) returned "
                f"{float(values.ravel()[index])!r} at x={float(xs.ravel()[index])!r} (scale_mode="
                f"{self.scale_mode!r}); scale values must be finite and within [0, 1]."
            )
        return np.array(values, dtype=np.float64)
