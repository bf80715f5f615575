"""``CyclicalSchedule``: the cyclical rate as a Keras schedule, computed in the compiled step.

Its numbers are constants of the traced step, as in Keras' own schedules; ``CyclicLR``
traces the step again when a reset or a held rate changes them. Saving stores plain
numbers and registered names, never code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
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
    Scale,
    check_bounds,
    check_geometry,
    check_momentum,
    resolve_scale,
    resolve_waveform,
)
from clrplug.engine import rate as _rate  # noqa: F401  (registers OptimizerRate with Keras)
from clrplug.engine import step, twins
from clrplug.engine.base import NO_HOLD, EngineSchedule, Hold
from clrplug.errors import (
    ClrplugError,
    InvalidArgumentError,
    PolicyEvaluationError,
    UnknownNameError,
)
from clrplug.formula import cyclic_values
from clrplug.records import USER, Waveform

__all__ = ["TABLE_SIZE", "CyclicalSchedule"]

#: Entries of the scale table a policy without a keras.ops twin is read from (256 KiB).
TABLE_SIZE = 2**16


class CyclicalSchedule(EngineSchedule):
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

    _INTS = ("cycle_start", "up", "down", "period", "denominator", "table_origin")
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
        _hold: Hold = NO_HOLD,
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
        super().__init__(momentum=momentum, accumulation_steps=accumulation_steps, hold=_hold, name=name)
        self._bounds = bounds
        self._geometry = geometry
        self._scale = scale
        self._waveform = shape
        self._cycle_start = checks.integer("cycle_start", cycle_start, low=-INT32_MAX, high=INT32_MAX)
        self._origin = self._check_origin(origin, bounds, geometry)
        # The first x the table holds: cycles count from 1, cycle iterations from 0.
        self._table_origin = 1 if scale.scale_mode == "cycle" else 0
        # A policy without a twin: its values at TABLE_SIZE consecutive x, a constant of
        # the traced step (a user's function may raise here: nothing is changed yet).
        self._table = self._table_values(self._table_origin) if self.tabulated else None
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
        """Whether the scale is read from a table of its values (the policy has no ops twin)."""
        return self._scale_twin is None

    # -- state ----------------------------------------------------------------------------

    def _own_fields(self) -> tuple[dict[str, int], dict[str, float]]:
        momentum = self._momentum or Momentum(0.0, 0.0)
        return (
            {
                "cycle_start": self._cycle_start,
                "up": self._geometry.up,
                "down": self._geometry.down,
                "period": self._geometry.period,
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

    def _decode_own_fields(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> dict[str, Any]:
        den = ints["denominator"]
        if den < 1 or ints["up"] < 1 or ints["down"] < 1:
            raise self._damaged(f"step sizes {ints['up']}/{den}, {ints['down']}/{den}")
        if ints["period"] != ints["up"] + ints["down"]:
            raise self._damaged(f"cycle length {ints['period']}, not {ints['up']} + {ints['down']}")
        own: dict[str, Any] = {
            "_cycle_start": ints["cycle_start"],
            "_table_origin": ints["table_origin"],
            "_geometry": check_geometry(ints["up"] / den, ints["down"] / den),
            "_bounds": check_bounds(floats["base_lr"], floats["max_lr"]),
        }
        if self._momentum is not None:
            own["_momentum"] = check_momentum(floats["base_momentum"], floats["max_momentum"])
        if self.tabulated and ints["table_origin"] != self._table_origin:
            own["_table"] = self._table_values(ints["table_origin"])
        return own

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

        Unspecified values are kept. Everything is checked before anything changes; a
        step traced before computes the old numbers until traced again (``CyclicLR``'s
        ``_reset`` does that).
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
        start = checks.integer("cycle_start", cycle_start, low=-INT32_MAX, high=INT32_MAX)
        if (bounds, geometry, start) != (self._bounds, self._geometry, self._cycle_start):
            self._bounds, self._geometry, self._cycle_start = bounds, geometry, start
            self._changed()

    # -- the scale table (policies without a keras.ops twin) ----------------------------

    def table_x(self, updates: Any) -> np.ndarray:
        """The x (cycle number or cycle iteration) the scale is read at for update counts."""
        k = np.maximum(np.asarray(updates, dtype=np.float64) - self._cycle_start, 0.0)
        if self._scale.scale_mode == "iterations":
            return k
        return np.floor(k * self._geometry.denominator / self._geometry.period) + 1.0

    def ensure_table(self, first_update: int, last_update: int) -> bool:
        """Make the table cover the updates ``first..last`` (refilled in place if not).

        Returns True if the table was refilled (a traced step must be traced again).
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

    def table_updates_left(self, update: int) -> int:
        """How many updates from ``update`` on read their scale from the table as it is
        (0 when ``update``'s is not in it), in exact integer arithmetic."""
        waiting = max(self._cycle_start - update, 0)  # updates before the cycle starts: k is 0
        k = max(update - self._cycle_start, 0)
        end = self._table_origin + TABLE_SIZE  # the first x past the table
        if self._scale.scale_mode == "iterations":
            x = k  # one more per update
            return waiting + end - x if self._table_origin <= x < end else 0
        denominator, period = self._geometry.denominator, self._geometry.period
        x = k * denominator // period + 1
        if not self._table_origin <= x < end:
            return 0
        # The first k whose x is ``end``, minus k.
        return waiting + -(-(end - 1) * period // denominator) - k

    def table_covers(self, first_x: float, last_x: float) -> bool:
        """Whether the table holds the scale at every x from ``first_x`` to ``last_x``."""
        return self._table_origin <= first_x and last_x < self._table_origin + TABLE_SIZE

    def _table_values(self, origin: int) -> np.ndarray:
        x = origin + np.arange(TABLE_SIZE, dtype=np.float64)
        return np.asarray(self._scale(x)).astype(np.float32)

    def _fill_table(self, origin: int) -> None:
        values = self._table_values(origin)
        self._table_origin, self._table = origin, values
        self._changed()

    # -- evaluation -------------------------------------------------------------------------

    def _values(self, u: Any) -> tuple[Any, Any]:
        k = np.maximum(u - self._cycle_start, 0)
        return cyclic_values(k, self._geometry, self._scale, self._waveform, self._bounds, self._momentum)

    def _in_step(self, u: Any, ints: Mapping[str, Any], floats: Mapping[str, Any]) -> tuple[Any, Any]:
        scale = self._scale_twin
        if scale is None:
            table, origin = ops.convert_to_tensor(self._table), ints["table_origin"]

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



keras.saving.register_keras_serializable(package="clrplug", name="CyclicalSchedule")(CyclicalSchedule)
