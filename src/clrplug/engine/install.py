"""What a callback changes on a model and its optimizer for one fit, and how it undoes it.

:class:`Installation` puts a clrplug rate on an optimizer (Keras' public rate setter sets
the rate Variable aside), lets the optimizer's checkpoints carry the schedule's numbers
(:class:`~clrplug.engine.rate.CycleState`), and gives the model a guarded train function
for the fit; :meth:`Installation.undo` puts the rate Variable back at its index, holding a
plain rate, and the model's own train function. What the callback does with the cycle is
the callback's; this is only the Keras side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from clrplug.engine import compat
from clrplug.engine.base import EngineSchedule
from clrplug.engine.rate import CycleState, OptimizerRate

__all__ = ["Installation", "StepCache"]

#: After a fit: (model, schedule version, its guarded train function, the model's own train
#: function put back), to use the fit's step again on the same model without a new trace.
StepCache = tuple[Any, int, Any, Any]


class Installation:
    """One fit's rate on ``optimizer`` (the one ``model`` trains with)."""

    def __init__(self, model: Any, optimizer: Any, rate: OptimizerRate) -> None:
        self.model, self.optimizer, self.rate = model, optimizer, rate
        current = compat.installed_rate(optimizer)
        # The optimizer's own rate Variable, its index and value: given back by undo().
        self.plain: tuple[Any, int, float] | None = None
        if isinstance(current, keras.Variable):
            index = next(i for i, v in enumerate(optimizer.variables) if v is current)
            self.plain = (current, index, float(np.asarray(keras.ops.convert_to_numpy(current))))
        self.own_function = getattr(model, "train_function", None)
        self.traced_version = -1  # the schedule's version the fit's step was traced with
        self._unguard_test: Callable[[], None] | None = None  # during the fit's validation

    @property
    def active(self) -> bool:
        """Whether the rate is the optimizer's rate now."""
        return compat.installed_rate(self.optimizer) is self.rate

    def apply(self, schedule: EngineSchedule, on_error: Callable[[], None],
              cached: StepCache | None) -> None:
        """Install the rate and the checkpointed numbers, and the fit's train function:
        ``cached``'s when it was made on this model for these numbers and nothing rebuilt
        the model's own function since (no new trace), else a new one."""
        compat.install_rate(self.optimizer, self.rate)  # sets the rate Variable aside
        compat.carry_state(self.optimizer, CycleState(schedule))
        own = self.own_function
        if (cached is not None and cached[0] is self.model and cached[1] == schedule.version
                and cached[3] is own and own is not None):
            compat.set_train_function(self.model, cached[2])
            self.traced_version = schedule.version
        else:
            self.retrace(schedule, on_error)

    def retrace(self, schedule: EngineSchedule, on_error: Callable[[], None]) -> None:
        """A new train function for the schedule's numbers now, guarded: a step that raises
        calls ``on_error`` before the exception leaves ``fit``; with momentum cycled, the
        momentum a traced step set on the optimizer is settled after each call."""
        after = schedule.settle if schedule.momentum is not None else None
        compat.guard_train_function(self.model, on_error, after)
        self.traced_version = schedule.version

    def found_rate(self) -> float:
        """The rate to leave the optimizer with as it was found: its plain rate; or, over a
        clrplug rate loaded with the model, the schedule's rate at the optimizer's step."""
        if self.plain is not None:
            return self.plain[2]
        return float(np.asarray(keras.ops.convert_to_numpy(self.rate())))

    def guard_validation(self, on_error: Callable[[], None]) -> None:
        """The evaluation now beginning (a fit's validation): a step that raises calls
        ``on_error`` before the exception leaves ``fit``, as a training step does."""
        self.unguard_validation()
        self._unguard_test = compat.guard_test_function(self.model, on_error)

    def unguard_validation(self) -> None:
        """The model's own test function back (the evaluation ended, or a step raised)."""
        unguard, self._unguard_test = self._unguard_test, None
        if unguard is not None:
            unguard()

    def undo(self, rate: float) -> StepCache:
        """The optimizer's rate Variable back at its index, holding ``rate``; no numbers
        carried; the model's own train function back (built, untraced, if it had none).
        Returns what lets the next fit on this model use this fit's step again."""
        optimizer, model = self.optimizer, self.model
        self.unguard_validation()
        plain = self.plain
        if plain is None:  # installed over a rate loaded with the model (saved mid-fit)
            plain = (compat.new_rate_variable(optimizer), compat.rate_variable_index(optimizer), rate)
        compat.restore_rate_variable(optimizer, plain[0], plain[1], rate)
        compat.carry_state(optimizer, None)
        self.rate.on_assign = None
        guarded, own = model.train_function, self.own_function
        if own is None:
            compat.rebuild_train_function(model)
            own = model.train_function
        else:
            compat.set_train_function(model, own)
        return (model, self.traced_version, guarded, own)
