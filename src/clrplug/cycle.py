"""What a schedule is made of, validated: bounds, cycle geometry, scale, waveform, momentum.

Every public entry point (``learning_rates``, the schedules, the callbacks, the
plots) builds its definition here, so they accept and refuse the same input.
The geometry also holds the step sizes as exact fractions: the compiled step
locates an iteration in its cycle with integer arithmetic, exact at any step.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from clrplug import checks
from clrplug.errors import (
    InvalidArgumentError,
    InvalidPolicyError,
    PolicyEvaluationError,
    UnknownNameError,
)
from clrplug.records import SCALE_MODES, USER, Policy, Waveform
from clrplug.registry import default_registry, resolve

__all__ = [
    "ANNEAL_STRATEGIES",
    "FLOAT32_MAX",
    "INT32_MAX",
    "Bounds",
    "Geometry",
    "Momentum",
    "OneCycle",
    "Scale",
    "check_bounds",
    "check_geometry",
    "check_momentum",
    "check_one_cycle",
    "resolve_scale",
    "resolve_waveform",
]

#: Largest denominator a step size may have (step sizes are multiples of 1/Q, Q <= 4096).
MAX_DENOMINATOR = 4096
#: Integer arithmetic in the compiled step stays within int32 (JAX's and PyTorch's counter).
INT32_MAX = 2**31 - 1
#: The largest rate the float32 step can apply.
FLOAT32_MAX = float(np.finfo(np.float32).max)
ANNEAL_STRATEGIES = ("cos", "linear")


@dataclass(frozen=True)
class Bounds:
    """The cycle's lower and upper learning rate, ``0 <= base_lr <= max_lr``."""

    base_lr: float
    max_lr: float


def check_bounds(base_lr: Any, max_lr: Any) -> Bounds:
    """Validate ``base_lr`` and ``max_lr``; the error names the bad one."""
    base = checks.real("base_lr", base_lr, low=0.0)
    top = checks.real("max_lr", max_lr, low=0.0)
    if top > FLOAT32_MAX:
        raise InvalidArgumentError(
            f"max_lr must be at most {FLOAT32_MAX!r}, the largest float32 (the dtype the rate "
            f"is applied in), got {top!r}."
        )
    if top < base:
        raise InvalidArgumentError(
            f"max_lr ({top!r}) must be >= base_lr ({base!r}): base_lr is the lower and "
            "max_lr the upper boundary of the cycle."
        )
    return Bounds(base, top)


@dataclass(frozen=True)
class Geometry:
    """Iterations per rising and falling half of a cycle, as exact fractions ``n / denominator``.

    Attributes:
        step_size: iterations of the rising half (the seed's ``step_size``).
        step_size_down: iterations of the falling half (``step_size`` when symmetric).
        up, down, denominator: ``step_size == up / denominator`` and
            ``step_size_down == down / denominator``, all integers.
    """

    step_size: float
    step_size_down: float
    up: int
    down: int
    denominator: int

    @property
    def symmetric(self) -> bool:
        return self.up == self.down

    @property
    def period(self) -> int:
        """``up + down``: a cycle lasts ``period / denominator`` iterations."""
        return self.up + self.down


def _fraction(name: str, value: float) -> Fraction:
    exact = Fraction(value).limit_denominator(MAX_DENOMINATOR)
    if float(exact) != value:  # value must be the float nearest to a fraction n / Q
        raise InvalidArgumentError(
            f"{name} must be a multiple of 1/Q for some whole Q <= {MAX_DENOMINATOR} (an "
            f"integer, or a ratio such as 4000/3), got {value!r}: the cycle's position is "
            "computed in integer arithmetic so that it stays exact at any step."
        )
    return exact


def check_geometry(step_size: Any, step_size_down: Any = None) -> Geometry:
    """Validate the step sizes (``step_size_down=None``: symmetric cycles)."""
    hint = " (training iterations per half cycle; a cycle has at least one)"
    up_value = checks.real("step_size", step_size, low=0.5, hint=hint)
    down_value = up_value if step_size_down is None else checks.real(
        "step_size_down", step_size_down, low=0.5, hint=hint
    )
    up, down = _fraction("step_size", up_value), _fraction("step_size_down", down_value)
    denominator = math.lcm(up.denominator, down.denominator)
    period = (up + down) * denominator
    if denominator > MAX_DENOMINATOR or period * denominator > INT32_MAX:
        raise InvalidArgumentError(
            f"step_size={up_value!r} and step_size_down={down_value!r} give a cycle of "
            f"{up_value + down_value!r} iterations that the compiled step cannot count exactly in "
            f"32-bit integers: the cycle times the step sizes' common denominator ({denominator})"
            f" squared must stay below 2**31, and the denominator <= {MAX_DENOMINATOR}."
        )
    return Geometry(
        up_value,
        down_value,
        int(up * denominator),
        int(down * denominator),
        denominator,
    )


@dataclass(frozen=True)
class Momentum:
    """Momentum cycled inversely to the rate: ``max_momentum`` at ``base_lr``."""

    base_momentum: float
    max_momentum: float


def check_momentum(base_momentum: Any, max_momentum: Any) -> Momentum:
    """Validate the momentum bounds: ``0 <= base_momentum <= max_momentum < 1``."""
    base = checks.real("base_momentum", base_momentum, low=0.0, high=1.0, high_open=True)
    top = checks.real("max_momentum", max_momentum, low=0.0, high=1.0, high_open=True)
    if base > top:
        raise InvalidArgumentError(
            f"base_momentum ({base!r}) must be <= max_momentum ({top!r}): momentum is "
            "max_momentum where the rate is base_lr and falls to base_momentum at the peak."
        )
    return Momentum(base, top)


@dataclass(frozen=True)
class Scale:
    """A resolved amplitude scaling: the policy and the parameter values it runs with.

    ``elementwise`` is set for a scale function given directly that only works on
    one number at a time (valid for the seed's callback, which called it so).
    """

    policy: Policy
    params: Mapping[str, float]
    elementwise: bool = False

    @property
    def scale_mode(self) -> str:
        return self.policy.scale_mode

    def __call__(self, x: Any) -> np.ndarray:
        """Checked float64 values on ``x`` (see :meth:`clrplug.Policy.scale`)."""
        if not self.elementwise:
            return self.policy.scale(x, **self.params)
        xs = np.asarray(x, dtype=np.float64)
        unique, inverse = np.unique(xs, return_inverse=True)
        values = np.array([self.policy.scale(v, **self.params) for v in unique], dtype=np.float64)
        return values[inverse].reshape(xs.shape)


#: x values probed when a scale function is resolved, to refuse a bad one early.
_PROBE = np.concatenate([np.arange(0.0, 64.0), np.geomspace(64.0, 1e7, 32)])


def _probed(scale: Scale) -> Scale:
    """Evaluate a sample of x now, so a bad function or parameter fails here, not mid-run.

    A function that raises on an array but works on each number alone (a Python
    ``if`` on ``x``) is kept and evaluated element by element.
    """
    probe = _PROBE + (1.0 if scale.scale_mode == "cycle" else 0.0)
    try:
        scale(probe)
    except PolicyEvaluationError:
        if scale.policy.source is not USER or scale.elementwise:
            raise
        elementwise = Scale(scale.policy, scale.params, elementwise=True)
        elementwise(probe)
        return elementwise
    return scale


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
      agree with the policy's; ``gamma`` sets the policy's ``gamma`` parameter and
      must be in (0, 1]; ``policy_params`` sets any parameter by name.

    Either way the scale function is probed on a sample of x at once.
    """
    if scale_mode is not None and scale_mode not in SCALE_MODES:
        raise InvalidArgumentError(f"scale_mode must be one of {list(SCALE_MODES)}, got {scale_mode!r}.")
    if policy_params is not None and not isinstance(policy_params, Mapping):
        raise InvalidArgumentError(
            f"policy_params must be a mapping of parameter names to numbers, got "
            f"{type(policy_params).__name__} {policy_params!r}."
        )
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
                                description="scale_fn given directly", source=USER)
            except InvalidPolicyError as exc:
                raise InvalidArgumentError(f"scale_fn: {exc}") from exc
        checks.real("gamma", gamma)
        return _probed(Scale(policy, policy.resolve_params(overrides)))
    if not isinstance(mode, str):
        raise InvalidArgumentError(
            f"mode must be a policy name (str), got {type(mode).__name__} {mode!r}; "
            "pass a function as scale_fn instead."
        )
    try:
        policy = default_registry().get(mode)
    except UnknownNameError as exc:
        raise type(exc)(exc.name, exc.available, exc.hint, argument="mode") from None
    if scale_mode is not None and scale_mode != policy.scale_mode:
        raise InvalidArgumentError(
            f"scale_mode={scale_mode!r} contradicts policy {policy.name!r}, which is "
            f"evaluated on {policy.scale_mode!r}. scale_mode only applies to a scale_fn "
            "given directly; leave it out when using mode."
        )
    assert policy.params is not None
    if "gamma" in policy.params:
        gamma_value = checks.real("gamma", gamma, low=0.0, high=1.0, low_open=True,
                                  hint=f" for policy {policy.name!r}")
        if "gamma" in overrides and gamma_value != 1.0 and overrides["gamma"] != gamma_value:
            raise InvalidArgumentError(
                f"gamma={gamma!r} and policy_params['gamma']={overrides['gamma']!r} disagree; "
                "give it once."
            )
        overrides.setdefault("gamma", gamma_value)
        given = "policy_params['gamma']" if policy_params and "gamma" in policy_params else "gamma"
        checks.real(given, overrides["gamma"], low=0.0, high=1.0, low_open=True,
                    hint=f" for policy {policy.name!r}")
    elif checks.real("gamma", gamma) != 1.0:
        warnings.warn(
            f"gamma={gamma!r} is ignored: policy {policy.name!r} has no 'gamma' parameter.",
            UserWarning,
            stacklevel=3,
        )
    return _probed(Scale(policy, policy.resolve_params(overrides)))


def resolve_waveform(waveform: Any) -> Waveform:
    """The registered waveform called ``waveform`` (or a :class:`~clrplug.Waveform` itself)."""
    record: Waveform = resolve(waveform, "waveform", "waveform")
    return record


@dataclass(frozen=True)
class OneCycle:
    """Smith's 1cycle, as PyTorch's ``OneCycleLR`` defines it (argument names and defaults).

    ``phases`` holds, per phase, ``(end_step, start_lr, end_lr, start_momentum,
    end_momentum)``; a phase runs from the previous phase's end (0 for the first).
    """

    max_lr: float
    total_steps: int
    pct_start: float
    anneal_strategy: str
    div_factor: float
    final_div_factor: float
    three_phase: bool
    momentum: Momentum | None

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def min_lr(self) -> float:
        return self.initial_lr / self.final_div_factor

    @property
    def phases(self) -> tuple[tuple[float, float, float, float, float], ...]:
        total, pct = self.total_steps, self.pct_start
        low_m, high_m = (
            (self.momentum.base_momentum, self.momentum.max_momentum) if self.momentum else (0.0, 0.0)
        )
        initial, top, bottom = self.initial_lr, self.max_lr, self.min_lr
        if self.three_phase:
            return (
                (pct * total - 1, initial, top, high_m, low_m),
                (2 * pct * total - 2, top, initial, low_m, high_m),
                (total - 1.0, initial, bottom, high_m, high_m),
            )
        return ((pct * total - 1, initial, top, high_m, low_m), (total - 1.0, top, bottom, low_m, high_m))


def check_one_cycle(
    max_lr: Any,
    total_steps: Any,
    pct_start: Any = 0.3,
    anneal_strategy: Any = "cos",
    div_factor: Any = 25.0,
    final_div_factor: Any = 1e4,
    three_phase: Any = False,
    momentum: Momentum | None = None,
) -> OneCycle:
    """Validate a 1cycle's arguments (``total_steps`` already known)."""
    top = check_bounds(0.0, max_lr).max_lr
    if top == 0.0:
        raise InvalidArgumentError("max_lr must be > 0 for a 1cycle (the peak rate), got 0.0.")
    total = checks.integer("total_steps", total_steps, low=2, high=INT32_MAX)
    pct = checks.real("pct_start", pct_start, low=0.0, high=1.0, low_open=True, high_open=True)
    strategy = checks.one_of("anneal_strategy", anneal_strategy, ANNEAL_STRATEGIES)
    div = checks.real("div_factor", div_factor, low=0.0, low_open=True)
    final = checks.real("final_div_factor", final_div_factor, low=0.0, low_open=True)
    spec = OneCycle(top, total, pct, strategy, div, final, checks.flag("three_phase", three_phase), momentum)
    ends = [phase[0] for phase in spec.phases]
    if not (0 < ends[0] and all(a < b for a, b in itertools.pairwise(ends))):
        raise InvalidArgumentError(
            f"pct_start={pct!r} with total_steps={total} leaves a phase without steps "
            f"(phases end at steps {[round(e, 3) for e in ends]}): the warm-up needs "
            "pct_start * total_steps > 1"
            + (" and three_phase needs pct_start < 0.5." if three_phase else ".")
        )
    return spec
