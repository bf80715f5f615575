"""The cyclical learning-rate formula: the one source of truth.

:func:`learning_rates` evaluates the seed's formula, vectorised in float64, for
any policy. Everything else (the Keras schedule, the callback's ``history``,
plots, the range test) either calls it or is tested against it.

This module also holds the argument checks shared by every entry point
(:func:`check_cycle` and :func:`resolve_scale`), so that ``learning_rates``,
``CyclicalSchedule`` and ``CyclicLR`` accept and refuse exactly the same input.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from clrplug.errors import InvalidArgumentError, InvalidPolicyError, UnknownPolicyError
from clrplug.policy import SCALE_MODES, Policy
from clrplug.registry import default_registry

__all__ = ["Cycle", "Scale", "check_cycle", "learning_rates", "resolve_scale", "triangle"]

#: x values probed when a scale function is given directly, to refuse a bad one early.
_PROBE = np.concatenate([np.arange(0.0, 64.0), np.geomspace(64.0, 1e7, 32)])


_MAX_ITERATION = float(2**63)  # the optimizer's counter is at most int64
_FLOAT64_MAX = float(np.finfo(np.float64).max)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise InvalidArgumentError(
            f"{name} must be a number, got {type(value).__name__} {value!r}."
        )
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range: refused as infinite below
        return math.inf if value > 0 else -math.inf


@dataclass(frozen=True)
class Cycle:
    """The triangle's bounds and half-period, validated.

    ``base_lr`` and ``max_lr`` are finite and non-negative with ``max_lr >= base_lr``
    (the seed's lower and upper boundary); ``step_size`` is finite and positive.
    """

    base_lr: float
    max_lr: float
    step_size: float


def check_cycle(base_lr: Any, max_lr: Any, step_size: Any) -> Cycle:
    """Validate the cycle arguments; raise :class:`InvalidArgumentError` naming the bad one."""
    base = _number("base_lr", base_lr)
    top = _number("max_lr", max_lr)
    step = _number("step_size", step_size)
    for name, value in (("base_lr", base), ("max_lr", top)):
        if not math.isfinite(value) or value < 0:
            raise InvalidArgumentError(
                f"{name} must be a finite number >= 0, got {value!r}."
            )
    if top < base:
        raise InvalidArgumentError(
            f"max_lr ({top!r}) must be >= base_lr ({base!r}): base_lr is the lower and "
            "max_lr the upper boundary of the cycle."
        )
    if not math.isfinite(step) or step <= 0:
        raise InvalidArgumentError(
            f"step_size must be a finite number > 0 (training iterations per half cycle), "
            f"got {step!r}."
        )
    if not math.isfinite(_MAX_ITERATION / step):
        raise InvalidArgumentError(
            f"step_size must be at least {_MAX_ITERATION / _FLOAT64_MAX!r} (iterations / "
            f"step_size must stay finite), got {step!r}."
        )
    if top > _FLOAT32_MAX:
        raise InvalidArgumentError(
            f"max_lr must be at most {_FLOAT32_MAX!r}, the largest float32 (the dtype the "
            f"rate is applied in), got {top!r}."
        )
    return Cycle(base, top, step)


@dataclass(frozen=True)
class Scale:
    """A resolved amplitude scaling: the policy and the parameter values it runs with."""

    policy: Policy
    params: Mapping[str, float]

    @property
    def scale_mode(self) -> str:
        return self.policy.scale_mode

    def __call__(self, x: Any) -> np.ndarray:
        return self.policy.scale(x, **self.params)


def resolve_scale(
    mode: Any = "triangular",
    gamma: Any = 1.0,
    scale_fn: Callable[..., Any] | None = None,
    scale_mode: Any = None,
    policy_params: Mapping[str, Any] | None = None,
) -> Scale:
    """Turn the seed's ``mode``/``gamma``/``scale_fn``/``scale_mode`` into a :class:`Scale`.

    - ``scale_fn`` given: it is the policy (``mode`` is ignored, as in the seed),
      evaluated on ``scale_mode`` (default ``"cycle"``).
    - otherwise ``mode`` is looked up in the registry. ``scale_mode``, if given, must
      agree with the policy's (the seed ignored it silently; we refuse a contradiction).
      ``gamma`` sets the policy's ``gamma`` parameter (exp_range) and must be in (0, 1];
      ``policy_params`` sets any parameter by name.

    Either way the scale function is probed on a sample of x at once, so a function
    or parameter value that raises or leaves [0, 1] is refused here, not mid-training.
    """
    if scale_mode is not None and scale_mode not in SCALE_MODES:
        raise InvalidArgumentError(
            f"scale_mode must be one of {list(SCALE_MODES)}, got {scale_mode!r}."
        )
    if policy_params is not None and not isinstance(policy_params, Mapping):
        raise InvalidArgumentError(
            f"policy_params must be a mapping of parameter names to numbers, got "
            f"{type(policy_params).__name__} {policy_params!r}."
        )
    gamma_value = _number("gamma", gamma)
    overrides = dict(policy_params or {})
    if scale_fn is not None:
        if not callable(scale_fn):
            raise InvalidArgumentError(
                f"scale_fn must be a callable scale_fn(x) -> values in [0, 1], got "
                f"{type(scale_fn).__name__} {scale_fn!r}."
            )
        known = default_registry().find_by_scale_fn(scale_fn)
        if known is not None and scale_mode in (None, known.scale_mode):
            policy = known
        else:
            name = getattr(scale_fn, "__name__", "scale_fn")
            name = name if name.isidentifier() and name != "<lambda>" else "custom"
            try:
                policy = Policy(name.lower(), scale_fn, scale_mode or "cycle",
                                description="scale_fn given to CyclicLR")
            except InvalidPolicyError as exc:
                raise InvalidArgumentError(f"scale_fn: {exc}") from exc
        return _probed(Scale(policy, policy.resolve_params(overrides)))
    if not isinstance(mode, str):
        raise InvalidArgumentError(
            f"mode must be a policy name (str), got {type(mode).__name__} {mode!r}; "
            "pass a function as scale_fn instead."
        )
    try:
        policy = default_registry().get(mode)
    except UnknownPolicyError as exc:
        raise UnknownPolicyError(exc.name, exc.available, exc.hint, argument="mode") from None
    if scale_mode is not None and scale_mode != policy.scale_mode:
        raise InvalidArgumentError(
            f"scale_mode={scale_mode!r} contradicts policy {policy.name!r}, which is "
            f"evaluated on {policy.scale_mode!r}. scale_mode only applies to a scale_fn "
            "given directly; leave it out when using mode."
        )
    assert policy.params is not None
    if "gamma" in policy.params:
        if "gamma" in overrides and gamma_value != 1.0 and overrides["gamma"] != gamma_value:
            raise InvalidArgumentError(
                f"gamma={gamma!r} and policy_params['gamma']={overrides['gamma']!r} disagree; "
                "give it once."
            )
        given = "policy_params['gamma']" if "gamma" in overrides else "gamma"
        overrides.setdefault("gamma", gamma_value)
        effective = _number(given, overrides["gamma"])
        if not (0.0 < effective <= 1.0):
            raise InvalidArgumentError(
                f"gamma must be in (0, 1] for policy {policy.name!r}, got {effective!r}."
            )
    elif gamma_value != 1.0:
        warnings.warn(
            f"gamma={gamma!r} is ignored: policy {policy.name!r} has no 'gamma' parameter.",
            UserWarning,
            stacklevel=3,
        )
    return _probed(Scale(policy, policy.resolve_params(overrides)))


def _probed(scale: Scale) -> Scale:
    """Evaluate a sample of x now, so a bad function or parameter fails here, not mid-run."""
    scale(_PROBE + (1.0 if scale.scale_mode == "cycle" else 0.0))
    return scale


def triangle(iterations: Any, step_size: float) -> tuple[np.ndarray, np.ndarray]:
    """The seed's ``cycle`` and ``max(0, 1 - x)`` for cycle iterations, in float64."""
    k = np.asarray(iterations, dtype=np.float64)
    cycle = np.floor(1.0 + k / (2.0 * step_size))
    x = np.abs(k / step_size - 2.0 * cycle + 1.0)
    return cycle, np.maximum(0.0, 1.0 - x)


def learning_rates(
    iterations: Any,
    base_lr: float = 0.001,
    max_lr: float = 0.006,
    step_size: float = 2000,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[..., Any] | None = None,
    scale_mode: str | None = None,
    policy_params: Mapping[str, float] | None = None,
) -> np.ndarray:
    """The learning rate at each cycle iteration, in float64: the seed's formula.

    ```
    cycle = floor(1 + iterations / (2 * step_size))
    x = abs(iterations / step_size - 2 * cycle + 1)
    lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale_fn(cycle or iterations)
    ```

    Args:
        iterations: cycle iterations (training steps since the cycle started or was
            last reset), any array-like of non-negative numbers.
        base_lr: lower boundary of the cycle.
        max_lr: upper boundary of the cycle.
        step_size: training iterations per half cycle.
        mode: a registered policy name (ignored when ``scale_fn`` is given).
        gamma: the ``exp_range`` constant, in (0, 1].
        scale_fn: a scale function used instead of ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``; defaults to the policy's own
            (``"cycle"`` for a ``scale_fn``).
        policy_params: values for the policy's own parameters.

    Returns:
        A float64 array of the shape of ``iterations``.

    Example:

    ```python
    import clrplug
    lr = clrplug.learning_rates(range(8001), mode="triangular2")
    assert lr[0] == 0.001 and abs(lr[2000] - 0.006) < 1e-15 and abs(lr[6000] - 0.0035) < 1e-15
    ```
    """
    cycle_args = check_cycle(base_lr, max_lr, step_size)
    scale = resolve_scale(mode, gamma, scale_fn, scale_mode, policy_params)
    return rates(iterations, cycle_args, scale)


def rates(iterations: Any, cycle: Cycle, scale: Scale) -> np.ndarray:
    """:func:`learning_rates` for already validated arguments."""
    k = np.asarray(iterations, dtype=np.float64)
    if k.size and not (np.all(np.isfinite(k)) and k.min() >= 0):
        raise InvalidArgumentError(
            "iterations must be finite and >= 0 (cycle iterations since the last reset)."
        )
    cycle_number, height = triangle(k, cycle.step_size)
    scaled = scale(cycle_number if scale.scale_mode == "cycle" else k)
    return cycle.base_lr + (cycle.max_lr - cycle.base_lr) * height * scaled
