"""What a clrplug callback puts on its optimizer while its ``fit`` runs, and takes off after.

:class:`OptimizerRate` is the optimizer's learning rate during the fit: the schedule at
the optimizer's counter, or the plain rate ``optimizer.learning_rate = x`` asked for.
:class:`CycleState` rides along as an attribute of the optimizer, so that every
checkpoint Keras writes during the fit (``BackupAndRestore``, ``ModelCheckpoint``,
``save_weights``) holds the schedule's numbers next to the optimizer's own variables,
by name, as int64 and float64 scalars, the same on every backend. Neither adds a
variable to the optimizer; when the fit ends both are gone and the optimizer is plain.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug.engine import compat
from clrplug.engine.base import EngineSchedule
from clrplug.errors import ClrplugError, InvalidArgumentError

__all__ = ["CycleState", "OptimizerRate"]


class OptimizerRate:
    """The rate a clrplug callback installs on its optimizer: a schedule at the optimizer's step.

    Keras calls it with no argument each step; ``optimizer.learning_rate = 0.01``
    (as ``ReduceLROnPlateau`` and ``LearningRateScheduler`` do) calls :meth:`assign`,
    which holds that plain rate until the fit ends.
    """

    def __init__(self, schedule: EngineSchedule) -> None:
        self.schedule = schedule
        # Set by the callback that installed the rate: assign() hands it the rate to hold,
        # so that it can record the change and trace the step again.
        self.on_assign: Callable[[float], None] | None = None

    def __call__(self) -> Any:
        optimizer = self.schedule.optimizer
        if optimizer is None and self.schedule.holding:
            # Loaded without its callback, then given a plain rate: that rate applies.
            return self.schedule.held.rate
        if optimizer is None:
            raise ClrplugError(
                "this clrplug rate was saved during a fit and loaded without the callback that "
                "drove it: train the model with CyclicLR / OneCycleLR again (it continues the "
                "cycle), or set a plain rate first: model.optimizer.learning_rate = 0.001."
            )
        return self.schedule(compat.counter(optimizer))

    def assign(self, value: Any) -> None:
        """Hold the plain rate ``value`` (``optimizer.learning_rate = value``)."""
        rate = float(np.asarray(ops.convert_to_numpy(value)))
        if self.on_assign is not None:
            self.on_assign(rate)
        else:
            self.schedule.hold(rate)

    def route_assign(self, handler: Callable[[OptimizerRate, float], None]) -> None:
        """Let :meth:`assign` call ``handler(self, rate)`` (a bound method: the installing
        callback's) while its object lives; the model keeps no reference to that object."""
        method = weakref.WeakMethod(handler)

        def on_assign(value: float) -> None:
            live = method()
            if live is None:
                self.schedule.hold(value)
            else:
                live(self, value)

        self.on_assign = on_assign

    def get_config(self) -> dict[str, Any]:
        return {"schedule": keras.saving.serialize_keras_object(self.schedule)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OptimizerRate:
        if not isinstance(config, Mapping) or set(config) != {"schedule"}:
            raise InvalidArgumentError(f"OptimizerRate config must be {{'schedule': ...}}, got {config!r}.")
        schedule = keras.saving.deserialize_keras_object(config["schedule"])
        if not isinstance(schedule, EngineSchedule):
            raise InvalidArgumentError(
                f"OptimizerRate config['schedule'] must be a clrplug schedule, got {type(schedule).__name__}."
            )
        return cls(schedule)


keras.saving.register_keras_serializable(package="clrplug", name="OptimizerRate")(OptimizerRate)


class CycleState(keras.metrics.Metric):
    """The schedule's numbers in the optimizer's checkpoints while a callback drives it.

    It rides on the optimizer as an attribute during the fit (:func:`compat.carry_state`);
    Keras saves an optimizer's own variables and, under the attribute's name, this
    object's: one int64 or float64 scalar per field of the schedule (``cycle_start``,
    ``base_lr``, ...), the same on every backend. Loading a checkpoint into an optimizer
    that carries a ``CycleState`` gives the schedule those numbers back (a checkpoint
    without them, such as one saved by plain Keras, changes nothing). It holds no
    variable: the step computes with the numbers as constants.
    """

    def __init__(self, schedule: EngineSchedule) -> None:
        super().__init__(name="clrplug_cycle_state")
        self._schedule = schedule

    @property
    def schedule(self) -> EngineSchedule:
        return self._schedule

    # A keras.metrics.Metric only so that Keras' saving walks it (it is no metric).
    def update_state(self, *args: Any, **kwargs: Any) -> None:
        raise ClrplugError("CycleState carries a schedule's numbers into checkpoints; it is no metric.")

    def result(self) -> Any:
        raise ClrplugError("CycleState carries a schedule's numbers into checkpoints; it is no metric.")

    def reset_state(self) -> None:
        """Nothing to reset."""

    def save_own_variables(self, store: Any) -> None:
        for name, value in self._schedule.state().items():
            store[name] = value

    def load_own_variables(self, store: Any) -> None:
        names = list(store.keys())
        if not names:  # saved without clrplug's numbers: nothing to take
            return
        self._schedule.load_state({name: np.asarray(store[name]) for name in names})
