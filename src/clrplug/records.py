"""The records a plugin registers: policies, waveforms and range-test rules.

Each record is immutable, validated when it is made, and names what it
provides; the registry stores them by (kind, name). Nothing here imports Keras:
an ``ops_fn`` is only called by the engine, inside the compiled step.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from clrplug.errors import InvalidArgumentError, InvalidPolicyError, PolicyEvaluationError

__all__ = [
    "SCALE_MODES",
    "Policy",
    "PolicySource",
    "Record",
    "SuggestionRule",
    "Waveform",
    "name_key",
    "normalise_name",
]

SCALE_MODES = ("cycle", "iterations")
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class PolicySource:
    """Where a registered record came from.

    Attributes:
        kind: ``"builtin"``, ``"plugin"`` (an installed distribution) or ``"runtime"``
            (registered in this process).
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
#: A scale function given directly to CyclicLR: the user's own, registered nowhere.
USER = PolicySource("user")


def name_key(name: str) -> str:
    """A name as the registry compares it: lower case, ``-``/``.``/spaces as ``_``."""
    return re.sub(r"[-\s.]+", "_", name.strip()).lower()


def normalise_name(name: object, what: str = "policy") -> str:
    """A record name as the registry stores it (:func:`name_key`), checked.

    Raises:
        InvalidPolicyError: not a string, or not an identifier once normalised.
    """
    if not isinstance(name, str):
        raise InvalidPolicyError(f"{what} name must be a string, got {type(name).__name__} {name!r}.")
    normalised = name_key(name)
    if not _NAME_RE.match(normalised):
        raise InvalidPolicyError(
            f"Invalid {what} name {name!r}: names are identifiers made of lower-case "
            "letters, digits and '_' that do not start with a digit (e.g. 'exp_range')."
        )
    return normalised


def check_param_value(where: str, value: Any) -> float:
    """A parameter value: a finite number (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgumentError(f"{where} must be a number, got {type(value).__name__} {value!r}.")
    try:
        number = float(value)
    except OverflowError:
        number = float("inf")
    if not np.isfinite(number):
        raise InvalidArgumentError(f"{where} must be finite, got {value!r}.")
    return number


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
            raise InvalidPolicyError(f"Policy {name!r}: parameter name {key!r} is not a Python identifier.")
        try:
            checked[key] = check_param_value(f"Policy {name!r}: default of parameter {key!r}", value)
        except InvalidArgumentError as exc:
            raise InvalidPolicyError(str(exc)) from None
    return MappingProxyType(checked)


def keyword_parameters(fn: Callable[..., Any]) -> set[str] | None:
    """Names ``fn`` accepts by keyword, or None if it takes ``**kwargs`` or cannot be inspected."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and ufuncs: nothing to check
        return None
    parameters = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in parameters if p.kind in keyword}


def _check_function(owner: str, label: str, fn: object, params: Mapping[str, float]) -> None:
    if not callable(fn):
        raise InvalidPolicyError(f"{owner}: {label} must be callable, got {type(fn).__name__} {fn!r}.")
    accepted = keyword_parameters(fn)
    missing = sorted(set(params) - accepted) if accepted is not None else []
    if missing:
        raise InvalidPolicyError(
            f"{owner}: {label} {getattr(fn, '__name__', fn)!r} does not accept the declared "
            f"parameter(s) {missing} as keyword arguments."
        )


class Record:
    """What every registered record has: a name, a description and a source."""

    kind: ClassVar[str] = "record"
    name: str
    description: str
    source: PolicySource

    def _check_common(self, name: object, description: object, source: object) -> str:
        normalised = normalise_name(name, self.kind)
        if not isinstance(description, str):
            raise InvalidPolicyError(
                f"{self.kind.capitalize()} {normalised!r}: description must be a string, "
                f"got {description!r}."
            )
        if not isinstance(source, PolicySource):
            raise InvalidPolicyError(f"{self.kind.capitalize()} {normalised!r}: source must be a PolicySource.")
        return normalised


def _checked_values(
    what: str, fn_name: str, x: np.ndarray, call: Callable[[], Any], context: str = ""
) -> np.ndarray:
    """Evaluate ``call()`` on float64 ``x``; refuse an exception or a value outside [0, 1]."""
    try:
        with np.errstate(all="ignore"):
            values = np.broadcast_to(np.asarray(call(), dtype=np.float64), x.shape)
    except Exception as exc:
        raise PolicyEvaluationError(f"{what} raised {type(exc).__name__}: {exc}") from exc
    bad = ~(np.isfinite(values) & (values >= 0.0) & (values <= 1.0))
    if bad.any():
        index = np.flatnonzero(bad.ravel())[0]
        raise PolicyEvaluationError(
            f"{what} returned {float(values.ravel()[index])!r} at {fn_name}="
            f"{float(x.ravel()[index])!r}{context}; values must be finite and within [0, 1]."
        )
    return np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class Policy(Record):
    """A cyclical learning-rate policy: an amplitude scale function and its scale mode.

    The rate at cycle iteration ``k`` is the seed's formula::

        cycle = floor(1 + k / (2 * step_size))
        x = abs(k / step_size - 2 * cycle + 1)
        lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale_fn(arg)

    where ``arg`` is ``cycle`` when ``scale_mode == "cycle"`` and ``k`` when
    ``scale_mode == "iterations"``.

    Args:
        name: the name ``CyclicLR(mode=...)`` resolves. Normalised to lower case with
            ``-``, ``.`` and spaces turned into ``_``; must then be an identifier.
        scale_fn: ``scale_fn(x, **params)``, a pure numpy function of a float64
            array ``x`` returning values in ``[0, 1]`` (a scalar is broadcast). The
            reference: everything else is checked against it.
        scale_mode: ``"cycle"`` or ``"iterations"``.
        params: the policy's own parameters and their defaults, e.g. ``{"gamma": 1.0}``.
        description: one line shown by ``clrplug policies``.
        ops_fn: optional, the same function written with ``keras.ops``:
            ``ops_fn(x, **params)`` where ``x`` is an integer tensor (the cycle number or
            cycle iteration) and the parameters are Python floats. With it the policy
            runs inside the compiled step and works in a stand-alone
            :class:`~clrplug.CyclicalSchedule`; without it :class:`~clrplug.CyclicLR`
            tabulates ``scale_fn`` as training goes. It is checked against ``scale_fn``
            when a schedule first uses it.

    Example:

    ```python
    import numpy as np
    import clrplug

    sinusoidal = clrplug.Policy(
        "my_sine", lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0)), scale_mode="cycle"
    )
    np.testing.assert_allclose(sinusoidal.scale(np.array([1.0, 2.0])), [1.0, 0.5])
    ```
    """

    kind: ClassVar[str] = "policy"

    name: str
    scale_fn: Callable[..., Any]
    scale_mode: str = "cycle"
    params: Mapping[str, float] | None = None
    description: str = ""
    ops_fn: Callable[..., Any] | None = None
    source: PolicySource = field(default=RUNTIME, compare=False)

    def __post_init__(self) -> None:
        name = self._check_common(self.name, self.description, self.source)
        object.__setattr__(self, "name", name)
        if self.scale_mode not in SCALE_MODES:
            raise InvalidPolicyError(
                f"Policy {name!r}: scale_mode must be one of {list(SCALE_MODES)}, got {self.scale_mode!r}."
            )
        params = _check_params(name, self.params)
        object.__setattr__(self, "params", params)
        _check_function(f"Policy {name!r}", "scale_fn", self.scale_fn, params)
        if self.ops_fn is not None:
            _check_function(f"Policy {name!r}", "ops_fn", self.ops_fn, params)

    @property
    def label(self) -> str:
        """How messages name the policy: its name and source, or "your scale_fn"."""
        if self.source.kind == "user":
            return f"your scale_fn {getattr(self.scale_fn, '__name__', '')!r}".replace(" ''", "")
        return f"policy {self.name!r} (from {self.source})"

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
            resolved[key] = check_param_value(f"policy_params[{key!r}]", value)
        return resolved

    def scale(self, x: Any, **params: Any) -> np.ndarray:
        """Evaluate the scale function on ``x`` as a float64 array of ``x``'s shape.

        ``params`` override the defaults (unknown names are refused). An exception from
        the scale function, or a value that is not finite or outside ``[0, 1]``, raises
        :class:`~clrplug.errors.PolicyEvaluationError` naming the policy and the first
        offending ``x``.
        """
        resolved = self.resolve_params(params)
        xs = np.asarray(x, dtype=np.float64)
        return _checked_values(
            f"the scale function of {self.label}", "x", xs, lambda: self.scale_fn(xs, **resolved),
            f" (scale_mode={self.scale_mode!r})",
        )


@dataclass(frozen=True)
class Waveform(Record):
    """The shape of the rate within a cycle.

    The cycle's linear shape (the seed's ``max(0, 1 - x)``, or PyTorch's rise and
    fall for asymmetric cycles) is a value ``t`` that is 0 at the cycle's start and
    end and 1 at its peak. A waveform maps it to the height actually used:
    ``lr = base_lr + (max_lr - base_lr) * shape(t) * scale``. ``shape(0) == 0`` and
    ``shape(1) == 1``, with values in ``[0, 1]``.

    Args:
        name: the name ``CyclicLR(waveform=...)`` resolves (normalised like a policy's).
        shape_fn: ``shape_fn(t)``, numpy on a float64 array in ``[0, 1]``: the reference.
        ops_fn: ``ops_fn(t)``, the same with ``keras.ops`` on a float32 tensor, run
            inside the compiled step; checked against ``shape_fn`` when first used.
        description: one line shown by ``clrplug policies``.

    Example:

    ```python
    import numpy as np
    from keras import ops
    import clrplug

    smooth = clrplug.Waveform(
        "smoothstep", lambda t: t * t * (3 - 2 * t), lambda t: t * t * (3 - 2 * t),
        description="Hermite smoothstep.")
    assert smooth.shape(np.array([0.0, 0.5, 1.0])).tolist() == [0.0, 0.5, 1.0]
    ```
    """

    kind: ClassVar[str] = "waveform"

    name: str
    shape_fn: Callable[[Any], Any]
    ops_fn: Callable[[Any], Any]
    description: str = ""
    source: PolicySource = field(default=RUNTIME, compare=False)

    def __post_init__(self) -> None:
        name = self._check_common(self.name, self.description, self.source)
        object.__setattr__(self, "name", name)
        _check_function(f"Waveform {name!r}", "shape_fn", self.shape_fn, {})
        _check_function(f"Waveform {name!r}", "ops_fn", self.ops_fn, {})

    @property
    def label(self) -> str:
        return f"waveform {self.name!r} (from {self.source})"

    def shape(self, t: Any) -> np.ndarray:
        """Evaluate ``shape_fn`` on ``t`` in float64, refusing values outside ``[0, 1]``."""
        ts = np.asarray(t, dtype=np.float64)
        return _checked_values(f"the shape function of {self.label}", "t", ts, lambda: self.shape_fn(ts))


@dataclass(frozen=True)
class SuggestionRule(Record):
    """A rule that reads the LR range test's curves and suggests the cycle's bounds.

    Args:
        name: the name ``RangeTestResult.suggest(rule=...)`` resolves.
        rule_fn: ``rule_fn(curve) -> RuleResult | None`` on a
            :class:`clrplug.range_test.rules.RangeCurve`; None when the curve shows
            nothing usable.
        description: one line shown by ``clrplug policies``.
    """

    kind: ClassVar[str] = "rule"

    name: str
    rule_fn: Callable[[Any], Any]
    description: str = ""
    source: PolicySource = field(default=RUNTIME, compare=False)

    def __post_init__(self) -> None:
        name = self._check_common(self.name, self.description, self.source)
        object.__setattr__(self, "name", name)
        _check_function(f"Rule {name!r}", "rule_fn", self.rule_fn, {})

    @property
    def label(self) -> str:
        return f"rule {self.name!r} (from {self.source})"


#: The record types a plugin may register, by kind.
RECORD_TYPES: Mapping[str, type[Record]] = MappingProxyType(
    {"policy": Policy, "waveform": Waveform, "rule": SuggestionRule}
)
