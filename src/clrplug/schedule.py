"""The schedules: ``CyclicalSchedule``, ``OneCycleSchedule``, and the rate the callbacks install.

Both schedules are Keras ``LearningRateSchedule``s computing their rate inside
the compiled step from the optimizer's counter. Stand-alone their numbers are
constants; bound to an optimizer (the callbacks bind them) the numbers live in
optimizer variables, so resets, holds and checkpoints change them without a new
trace. Saving stores plain numbers and registered names, never code.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from clrplug import checks
from clrplug.cycle import (
    INT32_MAX,
    Bounds,
    Geometry,
    Momentum,
    OneCycle,
    Scale,
    check_bounds,
    check_geometry,
    check_momentum,
    check_one_cycle,
    resolve_scale,
    resolve_waveform,
)
from clrplug.engine import compat, step, twins
from clrplug.engine.state import PackedState
from clrplug.errors import (
    ClrplugError,
    InvalidArgumentError,
    PolicyEvaluationError,
    UnknownNameError,
)
from clrplug.formula import cyclic_values, one_cycle_values
from clrplug.records import USER, Waveform
from clrplug.registry import default_registry

__all__ = ["TABLE_SIZE", "CyclicalSchedule", "OneCycleSchedule", "OptimizerRate"]

#: Entries of the scale table a policy without a keras.ops twin is read from (256 KiB).
TABLE_SIZE = 2**16
_COMMON_INTS = ("accumulation", "hold")
_COMMON_FLOATS = ("held_lr", "held_momentum")


@dataclass(frozen=True)
class _Hold:
    """A plain rate (and momentum) in force instead of the schedule's, when ``on``."""

    on: bool = False
    rate: float = 0.0
    momentum: float = 0.0


def _step_value(step: Any) -> int:
    return int(getattr(step, "value", step))


class _EngineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """What both schedules share: state, binding to an optimizer, holding, evaluation."""

    _INTS: ClassVar[tuple[str, ...]]
    _FLOATS: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        *,
        momentum: Momentum | None,
        accumulation_steps: int,
        hold: _Hold,
        saved_bound: bool,
        name: str,
    ) -> None:
        super().__init__()
        if not isinstance(name, str):
            raise InvalidArgumentError(f"name must be a string, got {name!r}.")
        self.name = name
        self._momentum = momentum
        self._accumulation = checks.integer("accumulation_steps", accumulation_steps, low=1, high=INT32_MAX)
        checks.real("held_lr", hold.rate, low=0.0)
        checks.real("held_momentum", hold.momentum, low=0.0, high=1.0)
        self._hold = hold
        self._packed = PackedState((*self._INTS, *_COMMON_INTS), (*self._FLOATS, *_COMMON_FLOATS), "clrplug")
        self._optimizer: Any = None
        self._momentum_variable: Any = None
        self._own_momentum: float | None = None
        self._saved_bound = saved_bound
        self._version: Any = None

    # -- the fields the state variables hold ------------------------------------------

    def _fields(self) -> tuple[dict[str, int], dict[str, float]]:
        ints, floats = self._own_fields()
        ints.update(accumulation=self._accumulation, hold=int(self._hold.on))
        floats.update(held_lr=self._hold.rate, held_momentum=self._hold.momentum)
        return ints, floats

    def _own_fields(self) -> tuple[dict[str, int], dict[str, float]]:
        raise NotImplementedError

    def _set_own_fields(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> None:
        raise NotImplementedError

    def _store(self) -> None:
        """Write the host's numbers into the variables (once bound)."""
        self._packed.write(*self._fields())
        self._remember_version()

    def _remember_version(self) -> None:
        if self._packed.bound and keras.backend.backend() == "torch":
            self._version = self._packed.version()

    def state_key(self) -> tuple[Any, ...]:
        """The numbers that define the schedule now, for comparisons."""
        ints, floats = self._fields()
        return tuple(sorted(ints.items())) + tuple(sorted(floats.items()))

    def refresh(self) -> None:
        """Read the numbers back from the variables, e.g. after a checkpoint was loaded.

        On JAX, call it only while the trainer's state is in the variables (outside
        ``fit``, or after ``Callback.model`` was read).
        """
        if not self._packed.bound:
            return
        ints, floats = self._packed.read()
        self._accumulation = ints["accumulation"]
        self._hold = _Hold(bool(ints["hold"]), floats["held_lr"], floats["held_momentum"])
        self._set_own_fields(ints, floats)
        self._remember_version()

    @property
    def momentum(self) -> Momentum | None:
        """The momentum bounds, when momentum is cycled."""
        return self._momentum

    # -- binding ------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        """Whether the schedule's numbers live in an optimizer's variables."""
        return self._packed.bound

    @property
    def optimizer(self) -> Any:
        """The optimizer the schedule is bound to, or None."""
        return self._optimizer

    @property
    def variable_count(self) -> int:
        """How many variables binding adds to the optimizer."""
        return self._packed.variable_count + int(self._momentum is not None) + self._extra_variable_count()

    def _extra_variable_count(self) -> int:
        return 0

    def _bind_extra(self, optimizer: Any) -> None:
        """Create variables beyond the packed state (a scale table)."""

    def bind(self, optimizer: Any) -> None:
        """Keep the schedule's numbers in ``optimizer``'s variables from now on.

        ``CyclicLR`` and ``OneCycleLR`` call it; call it yourself only to reset or hold a
        schedule you installed by hand, or to cycle momentum with one. It adds
        :attr:`variable_count` variables to the optimizer (saved in its checkpoints),
        so bind the same way before loading a checkpoint saved with a bound schedule.

        Raises:
            ClrplugError: the optimizer is not built yet, is bound to another schedule's
                owner, or cannot cycle momentum when ``cycle_momentum=True``.
        """
        inner = compat.inner_optimizer(optimizer)
        if self._optimizer is inner:
            return
        if self._optimizer is not None:
            raise ClrplugError(
                f"{type(self).__name__} {self.name!r} is already bound to optimizer "
                f"{self._optimizer.name!r}; one schedule drives one optimizer."
            )
        if not getattr(inner, "built", False):
            raise ClrplugError(
                f"optimizer {inner.name!r} is not built yet, so the schedule's variables would "
                "come before its own: build it first, model.optimizer.build("
                "model.trainable_variables) (CyclicLR and OneCycleLR do it for you)."
            )
        attribute = None
        if self._momentum is not None:
            attribute = self.check_momentum_support(inner)
        gradient_accumulation = getattr(inner, "gradient_accumulation_steps", None) or 1
        self._accumulation = int(gradient_accumulation)
        self._packed.bind(inner, *self._fields())
        self._bind_extra(inner)
        if attribute is not None:
            self._own_momentum = float(getattr(inner, attribute))
            self._momentum_variable = compat.momentum_variable(inner, self._own_momentum)
            compat.drive_momentum(inner, self._momentum_variable, self._own_momentum)
        self._optimizer = inner
        self._saved_bound = True
        self._remember_version()

    def check_momentum_support(self, optimizer: Any) -> str:
        """The attribute momentum cycling drives on ``optimizer``; refuses what cannot cycle."""
        inner = compat.inner_optimizer(optimizer)
        attribute = compat.momentum_attribute(inner)
        if attribute is None:
            raise InvalidArgumentError(
                f"cycle_momentum=True needs an optimizer with a momentum to cycle: SGD with "
                f"momentum > 0, or Adam, AdamW or Adamax (beta_1); got {type(inner).__name__}."
            )
        if attribute == "momentum" and not float(getattr(inner, attribute)) > 0:
            raise InvalidArgumentError(
                "cycle_momentum=True with SGD needs momentum > 0 (SGD keeps no velocity "
                f"otherwise), got SGD(momentum={getattr(inner, attribute)!r}). Compile with "
                "SGD(momentum=0.9), or pass cycle_momentum=False."
            )
        return attribute

    def _clrplug_bind_for_load(self, optimizer: Any, extra: int) -> None:
        """Called by the load hook: bind if the checkpoint holds exactly our variables."""
        if not self.bound and self._saved_bound and extra == self.variable_count:
            self.bind(optimizer)

    # -- holding a plain rate ---------------------------------------------------------------

    @property
    def holding(self) -> bool:
        """Whether a plain rate is in force instead of the schedule's."""
        return self._hold.on

    def hold(self, rate: Any, momentum: Any = None) -> None:
        """Apply the plain rate ``rate`` from the next step on, until :meth:`release`.

        ``momentum`` (when momentum is cycled) defaults to the optimizer's own. This is
        what ``optimizer.learning_rate = rate`` does on an optimizer a clrplug callback
        drives, and what the callbacks do when their ``fit`` ends.
        """
        value = checks.real("learning_rate", rate, low=0.0)
        if momentum is None:
            momentum = self._own_momentum if self._own_momentum is not None else 0.0
        self._hold = _Hold(True, value, checks.real("momentum", momentum, low=0.0, high=1.0))
        self._store()
        if self._momentum_variable is not None:  # the optimizer reads its own momentum again now
            self._momentum_variable.assign(self._hold.momentum)
            if compat.torch_eager():
                compat.drive_momentum(self._optimizer, self._hold.momentum, self._own_momentum or 0.0)

    def release(self) -> None:
        """Let the schedule drive the rate again (the callbacks call it when ``fit`` begins)."""
        if self._hold.on:
            self._hold = dataclasses.replace(self._hold, on=False)
            self._store()

    # -- evaluation ---------------------------------------------------------------------------

    def _values(self, u: Any, *, checked: bool = True) -> tuple[Any, Any]:
        """Float64 rate and momentum at update counts ``u``, ignoring any hold."""
        raise NotImplementedError

    def values_at(self, steps: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Float64 rate and momentum the schedule gives at raw optimizer counts ``steps``.

        The reference values (:mod:`clrplug.formula`) for the current state, hold
        included; what the compiled step applies, before its float32 rounding.
        """
        u = np.floor_divide(np.asarray(steps, dtype=np.int64), self._accumulation)
        rates, momenta = self._values(u)
        if self._hold.on:
            rates = np.full(np.shape(u), self._hold.rate)
            momenta = None if momenta is None else np.full(np.shape(u), self._hold.momentum)
        return np.asarray(rates, dtype=np.float64), (
            None if momenta is None else np.asarray(momenta, dtype=np.float64)
        )

    def _in_step(self, u: Any, ints: Mapping[str, Any], floats: Mapping[str, Any]) -> tuple[Any, Any]:
        raise NotImplementedError

    def __call__(self, step: Any) -> Any:
        if self._momentum is not None and self._optimizer is None:
            raise ClrplugError(
                f"{type(self).__name__} {self.name!r} cycles momentum, so it must be bound to its "
                "optimizer: schedule.bind(optimizer) once the optimizer is built, or use the "
                "CyclicLR / OneCycleLR callback, which does it."
            )
        if compat.torch_eager():
            return self._eager(step)
        return self._compiled(step)

    def _eager(self, step: Any) -> float:
        """PyTorch runs the step eagerly: the float64 reference is cheaper than tensor ops."""
        if self._packed.bound and self._packed.version() != self._version:
            self.refresh()  # a checkpoint or another owner assigned the variables
        if self._hold.on:
            rate, moment = self._hold.rate, self._hold.momentum
        else:
            rate, moment = self._values(_step_value(step) // self._accumulation, checked=False)
        if self._momentum_variable is not None:
            compat.drive_momentum(self._optimizer, float(moment), self._own_momentum or 0.0)
        return float(rate)

    def _compiled(self, step: Any) -> Any:
        t = ops.convert_to_tensor(step)
        if not keras.backend.is_int_dtype(t.dtype):
            t = ops.cast(ops.floor(t), "int32")
        ints, floats = self._packed.tensors(*self._fields(), keras.backend.standardize_dtype(t.dtype))
        u = ops.floor_divide(t, ints["accumulation"])
        rate, moment = self._in_step(u, ints, floats)
        held = ints["hold"] > 0
        rate = ops.where(held, floats["held_lr"], rate)
        if self._momentum_variable is not None:
            self._momentum_variable.assign(ops.where(held, floats["held_momentum"], moment))
        return rate

    # -- serialisation --------------------------------------------------------------------------

    def _current(self) -> None:
        """Bring the host's numbers up to date before reporting them."""
        if self._packed.bound:
            try:
                self.refresh()
            except Exception:  # JAX mid-epoch, state not synced: the host's copy is current
                pass

    def _common_config(self) -> dict[str, Any]:
        return {
            "cycle_momentum": self._momentum is not None,
            "base_momentum": self._momentum.base_momentum if self._momentum else 0.85,
            "max_momentum": self._momentum.max_momentum if self._momentum else 0.95,
            "accumulation_steps": self._accumulation,
            "hold": self._hold.on,
            "held_lr": self._hold.rate,
            "held_momentum": self._hold.momentum,
            "bound": self._saved_bound,
            "name": self.name,
        }

    _COMMON_TYPES: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "cycle_momentum": (bool,),
        "base_momentum": (int, float),
        "max_momentum": (int, float),
        "accumulation_steps": (int,),
        "hold": (bool,),
        "held_lr": (int, float),
        "held_momentum": (int, float),
        "bound": (bool,),
        "name": (str,),
    }
    _CONFIG_TYPES: ClassVar[Mapping[str, tuple[type, ...]]]

    @classmethod
    def _checked_config(cls, config: Any) -> dict[str, Any]:
        """Only plain values of known keys: loading a file never runs code from it."""
        kind = cls.__name__
        if not isinstance(config, Mapping):
            raise InvalidArgumentError(f"{kind} config must be a dict, got {config!r}.")
        allowed = {**cls._COMMON_TYPES, **cls._CONFIG_TYPES}
        unknown = sorted(set(config) - set(allowed))
        if unknown:
            raise InvalidArgumentError(
                f"{kind} config has unsupported key(s) {unknown}; allowed: {sorted(allowed)}. "
                "Policies are stored by name, never as code."
            )
        for key, value in config.items():
            types = allowed[key]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise InvalidArgumentError(
                    f"{kind} config[{key!r}] must be {' or '.join(t.__name__ for t in types)}, "
                    f"got {type(value).__name__} {value!r}."
                )
        return dict(config)

    @staticmethod
    def _pop_common(kwargs: dict[str, Any]) -> dict[str, Any]:
        hold = _Hold(
            kwargs.pop("hold", False),
            float(kwargs.pop("held_lr", 0.0)),
            float(kwargs.pop("held_momentum", 0.0)),
        )
        return {"_hold": hold, "_saved_bound": kwargs.pop("bound", False)}


class CyclicalSchedule(_EngineSchedule):
    """Cyclical learning rate (Smith, arXiv:1506.01186) as a Keras schedule.

    At optimizer step ``t`` (``u`` updates with gradient accumulation) the rate is
    :func:`clrplug.learning_rates` at cycle iteration ``k = u - cycle_start``:

    ```
    cycle = floor(1 + k / (2 * step_size))
    x = abs(k / step_size - 2 * cycle + 1)
    lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale_fn(cycle or k)
    ```

    computed inside the compiled step, exact at any step. Most users want
    :class:`clrplug.CyclicLR`, which installs one and adds history, resets and
    momentum cycling; use the schedule directly as an optimizer's ``learning_rate``.
    A policy without a ``keras.ops`` twin (a plain ``scale_fn``) cannot be evaluated
    in the step for every step, so it is refused here: use ``CyclicLR``.

    Args:
        base_lr: lower boundary of the cycle. Default 0.001.
        max_lr: upper boundary of the cycle. Default 0.006.
        step_size: training iterations per half cycle (the rising half with
            ``step_size_down``). Any integer, or a fraction with denominator <= 4096.
        mode: name of a registered policy (``clrplug policies`` lists them).
        gamma: the ``exp_range`` constant, in (0, 1].
        scale_fn: a scale function used instead of ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``, for ``scale_fn``.
        policy_params: values for the policy's own parameters.
        step_size_down: iterations of the falling half; None for symmetric cycles.
        waveform: the shape within a cycle: ``"triangular"`` (default), ``"cosine"``,
            ``"welch"`` or a plugin's.
        cycle_momentum: also cycle the optimizer's momentum (SGD's ``momentum``, Adam's
            ``beta_1``) inversely to the rate; needs the schedule bound (:meth:`bind`).
        base_momentum: momentum at the peak rate.
        max_momentum: momentum at ``base_lr``.
        cycle_start: the optimizer update at which the current cycle began.
        accumulation_steps: micro-batches per update (set from the optimizer on bind).
        origin: the bounds the schedule was first created with, before any reset.
        name: the schedule's name.

    Example:

    ```python
    import keras
    from clrplug import CyclicalSchedule

    schedule = CyclicalSchedule(base_lr=0.001, max_lr=0.006, step_size=2000, mode="triangular2")
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    assert abs(float(schedule(2000)) - 0.006) < 1e-9
    ```
    """

    _INTS = ("cycle_start", "up", "down", "denominator", "table_origin")
    _FLOATS = ("base_lr", "max_lr", "base_momentum", "max_momentum")

    def __init__(
        self,
        base_lr: float = 0.001,
        max_lr: float = 0.006,
        step_size: float = 2000.0,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[..., Any] | None = None,
        scale_mode: str | None = None,
        policy_params: Mapping[str, float] | None = None,
        *,
        step_size_down: float | None = None,
        waveform: str | Waveform = "triangular",
        cycle_momentum: bool = False,
        base_momentum: float = 0.8,
        max_momentum: float = 0.9,
        cycle_start: int = 0,
        accumulation_steps: int = 1,
        origin: Mapping[str, float] | None = None,
        name: str = "CyclicalSchedule",
        _tabulate: bool = False,
        _hold: _Hold = _Hold(),
        _saved_bound: bool = False,
    ) -> None:
        bounds = check_bounds(base_lr, max_lr)
        geometry = check_geometry(step_size, step_size_down)
        momentum = (
            check_momentum(base_momentum, max_momentum)
            if checks.flag("cycle_momentum", cycle_momentum) else None
        )
        scale = resolve_scale(mode, gamma, scale_fn, scale_mode, policy_params)
        shape = resolve_waveform(waveform)
        self._shape_twin = twins.shape_twin(shape)
        try:
            self._scale_twin = twins.scale_twin(scale)
        except PolicyEvaluationError as exc:
            if not _tabulate:
                raise
            warnings.warn(f"{exc} CyclicLR tabulates the numpy function instead.", UserWarning,
                          stacklevel=3)
            self._scale_twin = None
        if self._scale_twin is None and not _tabulate:
            raise InvalidArgumentError(
                f"the scale function of {scale.policy.label} has no keras.ops twin (ops_fn), "
                "so a stand-alone CyclicalSchedule cannot evaluate it inside the compiled step "
                "at every step. Use clrplug.CyclicLR, which tabulates it as training goes, or "
                "register it as a clrplug.Policy with an ops_fn."
            )
        super().__init__(
            momentum=momentum, accumulation_steps=accumulation_steps, hold=_hold,
            saved_bound=_saved_bound, name=name,
        )
        self._bounds = bounds
        self._geometry = geometry
        self._scale = scale
        self._waveform = shape
        self._cycle_start = checks.integer("cycle_start", cycle_start, low=-(2**62), high=2**62)
        self._origin = self._check_origin(origin, bounds, geometry)
        # The first x the table holds: cycles count from 1, cycle iterations from 0.
        self._table_origin = 1 if scale.scale_mode == "cycle" else 0
        self._table_variable: Any = None
        # A function given directly that is not a registered policy cannot be saved by name.
        self._user_fn = scale.policy.source is USER

    @staticmethod
    def _check_origin(origin: Any, bounds: Bounds, geometry: Geometry) -> tuple[Bounds, Geometry]:
        if origin is None:
            return bounds, geometry
        keys = {"base_lr", "max_lr", "step_size"}
        if not isinstance(origin, Mapping) or not keys <= set(origin) <= keys | {"step_size_down"}:
            raise InvalidArgumentError(
                f"origin must be a dict with keys base_lr, max_lr, step_size (and "
                f"step_size_down), got {origin!r}."
            )
        return (
            check_bounds(origin["base_lr"], origin["max_lr"]),
            check_geometry(origin["step_size"], origin.get("step_size_down")),
        )

    # -- what the schedule is -----------------------------------------------------------

    @property
    def bounds(self) -> Bounds:
        """The current ``base_lr`` and ``max_lr``."""
        return self._bounds

    @property
    def geometry(self) -> Geometry:
        """The current step sizes."""
        return self._geometry

    @property
    def scale(self) -> Scale:
        """The resolved policy and its parameter values."""
        return self._scale

    @property
    def waveform(self) -> Waveform:
        """The shape within a cycle."""
        return self._waveform

    @property
    def cycle_start(self) -> int:
        """The optimizer update at which the current cycle began."""
        return self._cycle_start

    @property
    def origin(self) -> tuple[Bounds, Geometry]:
        """The bounds and step sizes the schedule was created with, before any reset."""
        return self._origin

    @property
    def tabulated(self) -> bool:
        """Whether the scale is read from a table the callback keeps filled (no ops twin)."""
        return self._scale_twin is None

    # -- state ----------------------------------------------------------------------------

    def _own_fields(self) -> tuple[dict[str, int], dict[str, float]]:
        momentum = self._momentum or Momentum(0.0, 0.0)
        return (
            {
                "cycle_start": self._cycle_start,
                "up": self._geometry.up,
                "down": self._geometry.down,
                "denominator": self._geometry.denominator,
                "table_origin": self._table_origin,
            },
            {
                "base_lr": self._bounds.base_lr,
                "max_lr": self._bounds.max_lr,
                "base_momentum": momentum.base_momentum,
                "max_momentum": momentum.max_momentum,
            },
        )

    def _set_own_fields(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> None:
        self._cycle_start = ints["cycle_start"]
        self._table_origin = ints["table_origin"]
        den = ints["denominator"]
        if den < 1 or ints["up"] < 1 or ints["down"] < 1:
            raise ClrplugError(
                f"the cycle state read from {self._optimizer.name!r}'s variables is damaged "
                f"(step sizes {ints['up']}/{den}, {ints['down']}/{den}); the checkpoint it was "
                "loaded from is not a clrplug checkpoint of this schedule."
            )
        self._geometry = check_geometry(ints["up"] / den, ints["down"] / den)
        self._bounds = check_bounds(floats["base_lr"], floats["max_lr"])
        if self._momentum is not None:
            self._momentum = check_momentum(floats["base_momentum"], floats["max_momentum"])

    def reset(
        self,
        base_lr: float | None = None,
        max_lr: float | None = None,
        step_size: float | None = None,
        *,
        cycle_start: int,
        step_size_down: float | None = None,
    ) -> None:
        """Start a new cycle at update ``cycle_start``, optionally with new bounds.

        Unspecified values are kept. Everything is checked before anything changes; on a
        bound schedule the variables are assigned and the next step uses them.
        """
        bounds = check_bounds(
            self._bounds.base_lr if base_lr is None else base_lr,
            self._bounds.max_lr if max_lr is None else max_lr,
        )
        up = self._geometry.step_size if step_size is None else step_size
        if step_size_down is not None:
            down: float | None = step_size_down
        elif self._geometry.symmetric:
            down = None
        else:
            down = self._geometry.step_size_down
        geometry = check_geometry(up, down)
        start = checks.integer("cycle_start", cycle_start, low=-(2**62), high=2**62)
        self._bounds, self._geometry, self._cycle_start = bounds, geometry, start
        self._store()

    # -- the scale table (policies without a keras.ops twin) ----------------------------

    def _extra_variable_count(self) -> int:
        return int(self.tabulated)

    def _bind_extra(self, optimizer: Any) -> None:
        if self.tabulated:
            with compat.variable_scope(optimizer):
                self._table_variable = optimizer.add_variable(
                    (TABLE_SIZE,), initializer="zeros", dtype="float32", name="clrplug_scale_table"
                )
            self._fill_table(self._table_origin)

    def table_x(self, updates: Any) -> np.ndarray:
        """The x (cycle number or cycle iteration) the scale is read at for update counts."""
        k = np.maximum(np.asarray(updates, dtype=np.float64) - self._cycle_start, 0.0)
        if self._scale.scale_mode == "iterations":
            return k
        return np.floor(k * self._geometry.denominator / self._geometry.period) + 1.0

    def ensure_table(self, first_update: int, last_update: int) -> bool:
        """Make the table cover the updates ``first..last`` (refilled in place if not).

        Returns True if the table was refilled (on JAX, sync the trainer's state before).
        """
        if not self.tabulated:
            return False
        first, last = (int(x) for x in self.table_x([first_update, last_update]))
        if self.table_covers(first, last):
            return False
        if last - first >= TABLE_SIZE:
            raise ClrplugError(
                f"{last - first + 1} values of {self._scale.policy.label} are needed at once, "
                f"more than the scale table's {TABLE_SIZE}; lower steps_per_execution."
            )
        self._fill_table(first)
        return True

    def table_covers(self, first_x: float, last_x: float) -> bool:
        """Whether the table holds the scale at every x from ``first_x`` to ``last_x``."""
        return self._table_origin <= first_x and last_x < self._table_origin + TABLE_SIZE

    def _fill_table(self, origin: int) -> None:
        x = origin + np.arange(TABLE_SIZE, dtype=np.float64)
        values = self._scale(x).astype(np.float32)
        self._table_origin = origin
        if self._table_variable is not None:
            self._table_variable.assign(values)
        self._store()

    # -- evaluation -------------------------------------------------------------------------

    def _values(self, u: Any, *, checked: bool = True) -> tuple[Any, Any]:
        k = np.maximum(u - self._cycle_start, 0)
        return cyclic_values(
            k, self._geometry, self._scale, self._waveform, self._bounds, self._momentum,
            checked=checked,
        )

    def _in_step(self, u: Any, ints: Mapping[str, Any], floats: Mapping[str, Any]) -> tuple[Any, Any]:
        scale = self._scale_twin
        if scale is None:
            if self._table_variable is None:
                raise ClrplugError(
                    f"{self._scale.policy.label} is read from a scale table, which only a bound "
                    "schedule has: use clrplug.CyclicLR."
                )
            table, origin = self._table_variable, ints["table_origin"]

            def scale(x: Any) -> Any:
                return ops.take(table, ops.clip(x - origin, 0, TABLE_SIZE - 1))

        return step.cyclic(
            u, ints, floats, shape=self._shape_twin, scale=scale,
            scale_mode=self._scale.scale_mode, momentum=self._momentum is not None,
        )

    # -- serialisation ------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Plain numbers and registered names: never a function."""
        if self._user_fn:
            fn = self._scale.policy.scale_fn
            raise ClrplugError(
                f"CyclicalSchedule cannot be saved: its scale_fn {getattr(fn, '__name__', fn)!r} is "
                "not a registered policy, and clrplug stores policies by name only (it never "
                "pickles code). Register it, e.g. clrplug.register_policy(clrplug.Policy("
                f"'my_policy', scale_fn, scale_mode={self._scale.scale_mode!r})) or ship it as a "
                "plugin (docs/writing-a-plugin.md), then use mode='my_policy'."
            )
        self._current()
        origin_bounds, origin_geometry = self._origin
        return {
            "base_lr": self._bounds.base_lr,
            "max_lr": self._bounds.max_lr,
            "step_size": self._geometry.step_size,
            "step_size_down": None if self._geometry.symmetric else self._geometry.step_size_down,
            "mode": self._scale.policy.name,
            "policy_params": dict(self._scale.params),
            "waveform": self._waveform.name,
            "cycle_start": self._cycle_start,
            "tabulated": self.tabulated,
            "distribution": self._scale.policy.source.distribution,
            "origin": {
                "base_lr": origin_bounds.base_lr,
                "max_lr": origin_bounds.max_lr,
                "step_size": origin_geometry.step_size,
                "step_size_down": (
                    None if origin_geometry.symmetric else origin_geometry.step_size_down
                ),
            },
            **self._common_config(),
        }

    _CONFIG_TYPES: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "base_lr": (int, float),
        "max_lr": (int, float),
        "step_size": (int, float),
        "step_size_down": (int, float, type(None)),
        "mode": (str,),
        "gamma": (int, float),
        "scale_mode": (str, type(None)),
        "policy_params": (dict, type(None)),
        "waveform": (str,),
        "cycle_start": (int,),
        "tabulated": (bool,),
        "distribution": (str, type(None)),
        "origin": (dict, type(None)),
    }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CyclicalSchedule:
        """Rebuild a schedule from :meth:`get_config`'s output (plain values only)."""
        kwargs = cls._checked_config(config)
        for key, value in (kwargs.get("policy_params") or {}).items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidArgumentError(
                    f"CyclicalSchedule config['policy_params'] must map names to numbers, got "
                    f"{key!r}: {value!r}."
                )
        distribution = kwargs.pop("distribution", None)
        kwargs["_tabulate"] = kwargs.pop("tabulated", False)
        kwargs.update(cls._pop_common(kwargs))
        try:
            return cls(**kwargs)
        except UnknownNameError as exc:
            if not distribution or distribution == "clrplug":
                raise
            raise type(exc)(
                exc.name, exc.available,
                f"The saved schedule's {exc.kind} came from the distribution {distribution!r}: "
                f"`pip install {distribution}` to load it.",
                argument="mode", kind=exc.kind,
            ) from None


class OneCycleSchedule(_EngineSchedule):
    """Smith's 1cycle (arXiv:1803.09820) as a Keras schedule, PyTorch's ``OneCycleLR``.

    The rate warms up from ``max_lr / div_factor`` to ``max_lr`` over ``pct_start`` of
    ``total_steps`` and anneals to ``max_lr / div_factor / final_div_factor`` (with
    ``three_phase``, back to the initial rate first); momentum moves the other way.
    Past ``total_steps`` the final rate is held (PyTorch raises). The arguments and
    defaults are PyTorch's; :func:`clrplug.one_cycle_rates` gives the values.

    Args:
        max_lr: the peak rate.
        total_steps: optimizer updates of the whole cycle.
        pct_start: fraction of the cycle spent warming up, in (0, 1).
        anneal_strategy: ``"cos"`` or ``"linear"``.
        div_factor: ``initial_lr = max_lr / div_factor``.
        final_div_factor: ``min_lr = initial_lr / final_div_factor``.
        three_phase: anneal back to ``initial_lr`` before the final annealing.
        cycle_momentum: cycle the optimizer's momentum inversely (needs :meth:`bind`).
        base_momentum: momentum at the peak rate.
        max_momentum: momentum at the start and the end.
        start: the optimizer update at which the cycle begins.
        accumulation_steps: micro-batches per update (set from the optimizer on bind).
        name: the schedule's name.

    Example:

    ```python
    from clrplug import OneCycleSchedule

    schedule = OneCycleSchedule(max_lr=0.1, total_steps=1000, cycle_momentum=False)
    assert abs(float(schedule(0)) - 0.004) < 1e-9 and abs(float(schedule(299)) - 0.1) < 1e-7
    ```
    """

    _INTS = ("start", "total_steps")
    _FLOATS = tuple(
        f"{field}{i}" for i in range(3) for field in ("end", "lr_from", "lr_to", "m_from", "m_to")
    )

    def __init__(
        self,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        *,
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        start: int = 0,
        accumulation_steps: int = 1,
        name: str = "OneCycleSchedule",
        _hold: _Hold = _Hold(),
        _saved_bound: bool = False,
    ) -> None:
        momentum = (
            check_momentum(base_momentum, max_momentum)
            if checks.flag("cycle_momentum", cycle_momentum) else None
        )
        spec = check_one_cycle(
            max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor,
            three_phase, momentum,
        )
        super().__init__(
            momentum=momentum, accumulation_steps=accumulation_steps, hold=_hold,
            saved_bound=_saved_bound, name=name,
        )
        self._spec = spec
        self._start = checks.integer("start", start, low=-(2**62), high=2**62)

    @property
    def spec(self) -> OneCycle:
        """The validated arguments."""
        return self._spec

    @property
    def start(self) -> int:
        """The optimizer update at which the cycle begins."""
        return self._start

    @property
    def total_steps(self) -> int:
        return self._spec.total_steps

    def restart(self, *, start: int, total_steps: int | None = None) -> None:
        """Begin the cycle at update ``start`` (over ``total_steps`` updates, if given)."""
        spec = self._spec
        if total_steps is not None:
            spec = check_one_cycle(
                spec.max_lr, total_steps, spec.pct_start, spec.anneal_strategy, spec.div_factor,
                spec.final_div_factor, spec.three_phase, spec.momentum,
            )
        self._spec, self._start = spec, checks.integer("start", start, low=-(2**62), high=2**62)
        self._store()

    def _own_fields(self) -> tuple[dict[str, int], dict[str, float]]:
        floats: dict[str, float] = {name: 0.0 for name in self._FLOATS}
        for i, (end, lr0, lr1, m0, m1) in enumerate(self._spec.phases):
            floats.update({f"end{i}": end, f"lr_from{i}": lr0, f"lr_to{i}": lr1,
                           f"m_from{i}": m0, f"m_to{i}": m1})
        return {"start": self._start, "total_steps": self._spec.total_steps}, floats

    def _set_own_fields(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> None:
        self._start = ints["start"]
        if ints["total_steps"] != self._spec.total_steps:
            spec = self._spec
            self._spec = check_one_cycle(
                spec.max_lr, ints["total_steps"], spec.pct_start, spec.anneal_strategy,
                spec.div_factor, spec.final_div_factor, spec.three_phase, spec.momentum,
            )

    def _values(self, u: Any, *, checked: bool = True) -> tuple[Any, Any]:
        rates, momenta = one_cycle_values(np.maximum(np.asarray(u) - self._start, 0), self._spec)
        if not checked:
            return float(rates), (None if momenta is None else float(momenta))
        return rates, momenta

    def _in_step(self, u: Any, ints: Mapping[str, Any], floats: Mapping[str, Any]) -> tuple[Any, Any]:
        return step.one_cycle(
            u, ints, floats, phases=len(self._spec.phases), strategy=self._spec.anneal_strategy,
            momentum=self._momentum is not None,
        )

    def get_config(self) -> dict[str, Any]:
        """Plain numbers only."""
        self._current()
        spec = self._spec
        return {
            "max_lr": spec.max_lr,
            "total_steps": spec.total_steps,
            "pct_start": spec.pct_start,
            "anneal_strategy": spec.anneal_strategy,
            "div_factor": spec.div_factor,
            "final_div_factor": spec.final_div_factor,
            "three_phase": spec.three_phase,
            "start": self._start,
            **self._common_config(),
        }

    _CONFIG_TYPES: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "max_lr": (int, float),
        "total_steps": (int,),
        "pct_start": (int, float),
        "anneal_strategy": (str,),
        "div_factor": (int, float),
        "final_div_factor": (int, float),
        "three_phase": (bool,),
        "start": (int,),
    }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OneCycleSchedule:
        """Rebuild a schedule from :meth:`get_config`'s output (plain values only)."""
        kwargs = cls._checked_config(config)
        kwargs.update(cls._pop_common(kwargs))
        return cls(**kwargs)


class OptimizerRate:
    """The rate a clrplug callback installs on its optimizer: a schedule at the optimizer's step.

    Keras calls it with no argument each step; ``optimizer.learning_rate = 0.01``
    (as ``ReduceLROnPlateau`` and ``LearningRateScheduler`` do) calls :meth:`assign`,
    which holds that plain rate until a clrplug callback's next ``fit`` releases it.
    """

    def __init__(self, schedule: _EngineSchedule) -> None:
        self.schedule = schedule

    def __call__(self) -> Any:
        optimizer = self.schedule.optimizer
        if optimizer is None:
            raise ClrplugError(
                "this clrplug rate was loaded without its optimizer's state (its schedule is not "
                "bound): load the model with its optimizer (keras.models.load_model with "
                "compile=True), or use the CyclicLR / OneCycleLR callback again."
            )
        return self.schedule(compat.counter(optimizer))

    def assign(self, value: Any) -> None:
        """Hold the plain rate ``value`` (``optimizer.learning_rate = value``)."""
        self.schedule.hold(float(np.asarray(ops.convert_to_numpy(value))))

    def get_config(self) -> dict[str, Any]:
        return {"schedule": keras.saving.serialize_keras_object(self.schedule)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OptimizerRate:
        if not isinstance(config, Mapping) or set(config) != {"schedule"}:
            raise InvalidArgumentError(f"OptimizerRate config must be {{'schedule': ...}}, got {config!r}.")
        schedule = keras.saving.deserialize_keras_object(config["schedule"])
        if not isinstance(schedule, _EngineSchedule):
            raise InvalidArgumentError(
                f"OptimizerRate config['schedule'] must be a clrplug schedule, got {type(schedule).__name__}."
            )
        return cls(schedule)


for _cls in (CyclicalSchedule, OneCycleSchedule, OptimizerRate):
    keras.saving.register_keras_serializable(package="clrplug", name=_cls.__name__)(_cls)
compat.install_load_hook()
_ = default_registry  # the registry is read through clrplug.cycle
