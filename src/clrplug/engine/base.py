"""What every clrplug schedule shares: its numbers, a held plain rate, and evaluation.

:class:`EngineSchedule` is the base of ``CyclicalSchedule``, ``OneCycleSchedule`` and
the range test's sweep: a Keras ``LearningRateSchedule`` whose rate is a function of
the optimizer's counter, computed in the compiled step with the schedule's numbers as
constants, as Keras' own schedules are. A change of those numbers (a reset, a held
rate, a loaded checkpoint) bumps :attr:`~EngineSchedule.version`; a callback driving the
schedule then has the model trace its step again.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from clrplug import checks
from clrplug.cycle import FLOAT32_MAX, INT32_MAX, Momentum
from clrplug.engine import compat
from clrplug.engine.config import NO_HOLD, Hold, ScheduleConfig
from clrplug.engine.momentum import apply_momentum, momentum_attribute, release_momentum
from clrplug.errors import ClrplugError, InvalidArgumentError

__all__ = ["EAGER_BLOCK", "NO_HOLD", "EngineSchedule", "Hold"]


#: Update counts the eager (PyTorch) path evaluates at once, with the vectorised formula.
EAGER_BLOCK = 512


def _step_value(step: Any) -> int:
    return int(getattr(step, "value", step))


class EngineSchedule(ScheduleConfig, keras.optimizers.schedules.LearningRateSchedule):
    """What every clrplug schedule shares: its numbers, holding, evaluation, config."""

    _INTS: ClassVar[tuple[str, ...]]
    _FLOATS: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        *,
        momentum: Momentum | None,
        accumulation_steps: int,
        hold: Hold,
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
        self._version = 0
        self._optimizer: Any = None
        self._momentum_attribute = ""  # "momentum" (SGD) or "beta_1" (Adam), once bound
        self._own_momentum: float | None = None  # the optimizer's momentum before binding
        self._momentum_traced = False  # a traced step set the optimizer's momentum attribute
        # The eager path's values for one block of update counts: (block, rates, momenta).
        self._eager_block: tuple[int, list[float], list[float] | None] | None = None

    # -- the numbers --------------------------------------------------------------------

    def _fields(self) -> tuple[dict[str, int], dict[str, float]]:
        ints, floats = self._own_fields()
        ints.update(accumulation=self._accumulation, hold=int(self._hold.on))
        floats.update(held_lr=self._hold.rate, held_momentum=self._hold.momentum)
        return ints, floats

    def _own_fields(self) -> tuple[dict[str, int], dict[str, float]]:
        raise NotImplementedError

    def _decode_own_fields(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> dict[str, Any]:
        """The attributes the fields read back stand for, checked; nothing is assigned yet.

        Raises ``InvalidArgumentError`` (or ``ClrplugError``) for values no schedule writes.
        """
        raise NotImplementedError

    @property
    def version(self) -> int:
        """A count that changes whenever the schedule's numbers do (a trace is stale then)."""
        return self._version

    def _changed(self) -> None:
        """The numbers changed: drop what was computed from the old ones (a step traced
        before computes with them until traced again)."""
        self._version += 1
        self._eager_block = None

    def state_key(self) -> tuple[Any, ...]:
        """The numbers that define the schedule now, for comparisons."""
        ints, floats = self._fields()
        return tuple(sorted(ints.items())) + tuple(sorted(floats.items()))

    def state(self) -> dict[str, np.ndarray]:
        """The numbers as named arrays, int64 and float64 on every backend (checkpoints)."""
        ints, floats = self._fields()
        named = {name: np.asarray(value, dtype=np.int64) for name, value in ints.items()}
        named.update({name: np.asarray(value, dtype=np.float64) for name, value in floats.items()})
        return named

    def load_state(self, arrays: Mapping[str, Any]) -> None:
        """Take the numbers :meth:`state` gave (read back from a checkpoint).

        Everything is checked before anything changes.

        Raises:
            ClrplugError: the arrays are not the state of a schedule of this kind.
        """
        ints_now, floats_now = self._fields()
        missing = sorted((set(ints_now) | set(floats_now)) - set(arrays))
        if missing:
            raise self._damaged(f"missing field(s) {', '.join(missing)}")
        try:
            ints = {name: int(np.asarray(arrays[name])) for name in ints_now}
            floats = {name: float(np.asarray(arrays[name])) for name in floats_now}
        except (TypeError, ValueError) as exc:
            raise self._damaged(f"a field is not a number ({exc})") from exc
        self._check_common(ints, floats)
        try:
            own = self._decode_own_fields(ints, floats)
        except InvalidArgumentError as exc:
            raise self._damaged(str(exc)) from exc
        if (ints, floats) == (ints_now, floats_now):
            return
        # Everything checked: now apply it all.
        self._accumulation = ints["accumulation"]
        self._hold = Hold(bool(ints["hold"]), floats["held_lr"], floats["held_momentum"])
        for attribute, value in own.items():
            setattr(self, attribute, value)
        self._changed()

    def _damaged(self, detail: str) -> ClrplugError:
        """The error for state read back from a checkpoint that no schedule writes."""
        name = getattr(self._optimizer, "name", "the optimizer")
        return ClrplugError(
            f"the cycle state read back for {name!r} is damaged ({detail}); the checkpoint it "
            "was loaded from is not a clrplug checkpoint of this schedule."
        )

    def _check_common(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> None:
        """Refuse a damaged update divisor or hold read back from a checkpoint."""
        expected = self._accumulation
        if self._optimizer is not None:
            expected = int(getattr(self._optimizer, "gradient_accumulation_steps", None) or 1)
        problems = []
        if ints["accumulation"] != expected:
            problems.append(
                f"update divisor {ints['accumulation']}, where the optimizer accumulates "
                f"{expected} gradient(s) per update"
            )
        if ints["hold"] not in (0, 1):
            problems.append(f"hold flag {ints['hold']}, not 0 or 1")
        if not (math.isfinite(floats["held_lr"]) and floats["held_lr"] >= 0):
            problems.append(f"held rate {floats['held_lr']!r}")
        if not 0.0 <= floats["held_momentum"] <= 1.0:
            problems.append(f"held momentum {floats['held_momentum']!r}")
        if problems:
            raise self._damaged("; ".join(problems))

    @property
    def momentum(self) -> Momentum | None:
        """The momentum bounds, when momentum is cycled."""
        return self._momentum

    @property
    def accumulation_steps(self) -> int:
        """Micro-batches per optimizer update (the counter counts micro-batches)."""
        return self._accumulation

    # -- binding to an optimizer ---------------------------------------------------------

    @property
    def bound(self) -> bool:
        """Whether the schedule is bound to an optimizer (:meth:`bind`)."""
        return self._optimizer is not None

    @property
    def optimizer(self) -> Any:
        """The optimizer the schedule is bound to, or None."""
        return self._optimizer

    def bind(self, optimizer: Any) -> None:
        """Follow ``optimizer``: its gradient accumulation, and its momentum when cycled.

        ``CyclicLR`` and ``OneCycleLR`` call it when ``fit`` starts and :meth:`unbind` when
        it ends. Call it yourself only to cycle momentum with a schedule you installed by
        hand: the optimizer then reads its momentum from the schedule in each step.
        Binding adds no variable to the optimizer.

        Raises:
            ClrplugError: the schedule is bound to another optimizer, or ``optimizer``
                cannot cycle momentum when ``cycle_momentum=True``.
        """
        inner = compat.inner_optimizer(optimizer)
        if self._optimizer is inner:
            return
        if self._optimizer is not None:
            raise ClrplugError(
                f"{type(self).__name__} {self.name!r} is already bound to optimizer "
                f"{self._optimizer.name!r}; one schedule drives one optimizer."
            )
        attribute = self.check_momentum_support(inner) if self._momentum is not None else None
        accumulation = int(getattr(inner, "gradient_accumulation_steps", None) or 1)
        if accumulation != self._accumulation:
            self._accumulation = accumulation
            self._changed()
        self._optimizer = inner
        if attribute is not None:
            self._own_momentum = float(getattr(inner, attribute))
            self._momentum_attribute = attribute


    def unbind(self, momentum: float | None = None) -> None:
        """Give the optimizer back its own plain momentum (``momentum``, or what it had).

        A no-op when unbound.
        """
        inner = self._optimizer
        if inner is None:
            return
        if self._momentum_attribute:
            value = self._own_momentum if momentum is None else momentum
            release_momentum(inner, self._momentum_attribute, float(value or 0.0))
        self._optimizer = None
        self._momentum_attribute = ""
        self._own_momentum = None
        self._momentum_traced = False

    def check_momentum_support(self, optimizer: Any) -> str:
        """The attribute momentum cycling drives on ``optimizer``; refuses what cannot cycle."""
        inner = compat.inner_optimizer(optimizer)
        attribute = momentum_attribute(inner)
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

    # -- holding a plain rate ---------------------------------------------------------------

    @property
    def holding(self) -> bool:
        """Whether a plain rate is in force instead of the schedule's."""
        return self._hold.on

    @property
    def held(self) -> Hold:
        """The plain rate and momentum held (``on`` False: none)."""
        return self._hold

    def hold(self, rate: Any, momentum: Any = None) -> None:
        """Apply the plain rate ``rate`` instead of the schedule's, until :meth:`release`.

        ``momentum`` (when momentum is cycled) defaults to the optimizer's own. This is
        what ``optimizer.learning_rate = rate`` does during a fit a clrplug callback
        drives; a step traced before takes it once traced again (the callbacks do that).
        """
        value = checks.real("learning_rate", rate, low=0.0, high=FLOAT32_MAX,
                            hint=" (the step computes in float32)")
        if momentum is None:
            momentum = self._own_momentum if self._own_momentum is not None else 0.0
        hold = Hold(True, value, checks.real("momentum", momentum, low=0.0, high=1.0))
        if hold != self._hold:
            self._hold = hold
            self._changed()

    def release(self) -> None:
        """Let the schedule drive the rate again."""
        if self._hold.on:
            self._hold = dataclasses.replace(self._hold, on=False)
            self._changed()

    # -- evaluation ---------------------------------------------------------------------------

    def _values(self, u: Any) -> tuple[Any, Any]:
        """Float64 rate and momentum at update counts ``u`` (an array), ignoring any hold."""
        raise NotImplementedError

    def values_at(self, steps: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Float64 rate and momentum the schedule gives at raw optimizer counts ``steps``.

        The reference values (:mod:`clrplug.formula`) for the current numbers, hold
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
                "optimizer: schedule.bind(optimizer), or use the CyclicLR / OneCycleLR callback, "
                "which does it."
            )
        if compat.torch_eager():
            return self._eager(step)
        return self._compiled(step)

    def _eager(self, step: Any) -> float:
        """PyTorch runs the step eagerly: the float64 reference is cheaper than tensor ops.

        The reference is evaluated for a block of ``EAGER_BLOCK`` update counts at a
        time, vectorised, and looked up in between; a change of numbers drops the block.
        """
        if self._hold.on:
            rate, moment = self._hold.rate, self._hold.momentum
        else:
            u = _step_value(step) // self._accumulation
            block, i = divmod(u, EAGER_BLOCK)
            cached = self._eager_block
            if cached is None or cached[0] != block:
                first = block * EAGER_BLOCK
                rates, momenta = self._values(np.arange(first, first + EAGER_BLOCK, dtype=np.int64))
                cached = (block, np.asarray(rates, dtype=np.float64).tolist(),
                          None if momenta is None else np.asarray(momenta, dtype=np.float64).tolist())
                self._eager_block = cached
            rate = cached[1][i]
            moment = 0.0 if cached[2] is None else cached[2][i]
        if self._momentum_attribute:  # what this step's update reads, set per step
            apply_momentum(self._optimizer, self._momentum_attribute, float(moment), 0.0)
            self._momentum_traced = True  # settled to the optimizer's own after the call
        return float(rate)

    def _compiled(self, step: Any) -> Any:
        """The rate at counter ``step`` in the step's ops; when momentum is cycled and the
        schedule bound, the optimizer's momentum attribute is set to the momentum there.

        The numbers enter as constants (of the counter's integer dtype, and float32).
        """
        t = ops.convert_to_tensor(step)
        if not keras.backend.is_int_dtype(t.dtype):
            t = ops.cast(ops.floor(t), "int32")
        int_dtype = keras.backend.standardize_dtype(t.dtype)
        ints, floats = self._fields()
        ints_in_step = {name: ops.convert_to_tensor(np.asarray(v, dtype=int_dtype)) for name, v in ints.items()}
        floats_in_step = {name: ops.convert_to_tensor(np.float32(v)) for name, v in floats.items()}
        if self._hold.on:  # a plain rate held: nothing to compute
            moment = floats_in_step["held_momentum"] if self._momentum is not None else None
            rate = floats_in_step["held_lr"]
        else:
            # Without gradient accumulation the update count is the counter: no division.
            u = t if self._accumulation == 1 else ops.floor_divide(t, ints_in_step["accumulation"])
            rate, moment = self._in_step(u, ints_in_step, floats_in_step)
        if moment is not None and self._momentum_attribute:
            # The update steps of this trace read it from the optimizer's attribute.
            apply_momentum(self._optimizer, self._momentum_attribute, ops.cast(moment, "float32"),
                           self._own_momentum or 0.0)
            self._momentum_traced = True
        return rate

    def settle(self) -> None:
        """After a traced call: the optimizer's momentum attribute a plain float again, its
        own (what ``get_config`` reports during a fit). Cheap when nothing was traced."""
        if self._momentum_traced:
            self._momentum_traced = False
            if self._momentum_attribute:
                release_momentum(self._optimizer, self._momentum_attribute, self._own_momentum or 0.0)
