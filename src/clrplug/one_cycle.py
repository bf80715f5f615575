"""``OneCycleLR``: Smith's 1cycle as a callback, PyTorch's ``OneCycleLR`` for Keras.

A front end of :class:`~clrplug.OneCycleSchedule` like ``CyclicLR`` is of the
cyclical schedule: bound to the optimizer, computed in the compiled step, with
history, epoch logs, resume and a plain rate between fits. ``total_steps`` may be
left to ``fit``'s ``epochs`` and steps per epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from clrplug import checks
from clrplug.engine import compat
from clrplug.engine.base import EngineSchedule
from clrplug.errors import InvalidArgumentError
from clrplug.one_cycle_schedule import OneCycleSchedule
from clrplug.schedule_callback import ScheduleCallback

__all__ = ["OneCycleLR"]

# A placeholder length while total_steps waits for fit's epochs and steps.
_PENDING = 2**30


class OneCycleLR(ScheduleCallback):
    """Smith's 1cycle policy (arXiv:1803.09820): warm up to ``max_lr``, then anneal far below.

    The same arguments and defaults as PyTorch's ``torch.optim.lr_scheduler.OneCycleLR``
    and the same rates and momenta at every step (:func:`clrplug.one_cycle_rates`),
    computed inside the compiled step. Past ``total_steps`` the final rate is held and
    a warning says so once (PyTorch raises).

    Args:
        max_lr: the peak learning rate.
        total_steps: optimizer updates of the cycle; or give ``epochs`` and
            ``steps_per_epoch``; or leave all three out and the first ``fit`` decides
            (its ``epochs`` times its steps per epoch).
        epochs: epochs of the cycle (with ``steps_per_epoch``, or ``fit``'s).
        steps_per_epoch: batches per epoch, as ``fit`` counts them (default: ``fit``'s); with
            ``gradient_accumulation_steps=n`` the cycle has ``1/n`` as many updates.
        pct_start: fraction of the cycle spent warming up. Default 0.3.
        anneal_strategy: ``"cos"`` or ``"linear"``. Default ``"cos"``.
        div_factor: ``initial_lr = max_lr / div_factor``. Default 25.
        final_div_factor: ``min_lr = initial_lr / final_div_factor``. Default 1e4.
        three_phase: anneal back to ``initial_lr`` before the final annealing.
        cycle_momentum: cycle the momentum inversely (SGD with momentum > 0, Adam,
            AdamW, Adamax). Default True, as PyTorch.
        base_momentum: momentum at the peak rate. Default 0.85.
        max_momentum: momentum at the start and the end. Default 0.95.
        history_every: keep one row of ``history`` per this many steps.

    Example:

    ```python
    import numpy as np, keras
    from clrplug import OneCycleLR

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
    one_cycle = OneCycleLR(max_lr=0.05)
    model.fit(np.zeros((64, 4)), np.zeros((64, 1)), batch_size=8, epochs=3,
              callbacks=[one_cycle], verbose=0)
    assert one_cycle.total_steps == 24 and len(one_cycle.history["momentum"]) == 24
    ```
    """

    def __init__(
        self,
        max_lr: float,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        *,
        history_every: int = 1,
    ) -> None:
        if total_steps is not None:
            if epochs is not None or steps_per_epoch is not None:
                raise InvalidArgumentError(
                    f"give total_steps ({total_steps!r}) or epochs and steps_per_epoch "
                    f"({epochs!r}, {steps_per_epoch!r}), not both."
                )
            total: int | None = checks.integer("total_steps", total_steps, low=2)
        else:
            if epochs is not None:
                checks.integer("epochs", epochs, low=1)
            if steps_per_epoch is not None:
                checks.integer("steps_per_epoch", steps_per_epoch, low=1)
            total = epochs * steps_per_epoch if epochs and steps_per_epoch else None
        self._epochs, self._steps_per_epoch = epochs, steps_per_epoch
        self._arguments: dict[str, Any] = {
            "max_lr": max_lr, "pct_start": pct_start, "anneal_strategy": anneal_strategy,
            "div_factor": div_factor, "final_div_factor": final_div_factor,
            "three_phase": three_phase, "cycle_momentum": cycle_momentum,
            "base_momentum": base_momentum, "max_momentum": max_momentum,
        }
        # Validates everything now; a pending total is checked when fit supplies it.
        schedule = OneCycleSchedule(total_steps=total or _PENDING, **self._arguments)
        super().__init__(schedule, history_every)
        self._total_known = total is not None
        # epochs x steps_per_epoch counts batches: with gradient accumulation the cycle's
        # updates are fewer, known once the optimizer is (at fit's start).
        self._from_batches = total_steps is None and total is not None
        self._warned = False

    @property
    def max_lr(self) -> float:
        return self.schedule.spec.max_lr

    @property
    def total_steps(self) -> int | None:
        """The cycle's length in updates (None until ``fit`` tells it, when not given)."""
        return self.schedule.total_steps if self._total_known else None

    # -- ScheduleCallback hooks ----------------------------------------------------------

    def _new_schedule(self) -> OneCycleSchedule:
        old = self.schedule
        return OneCycleSchedule(total_steps=old.total_steps, start=old.start, **self._arguments)

    def _continues(self, found: EngineSchedule) -> bool:
        mine = self.schedule
        assert isinstance(found, OneCycleSchedule) and isinstance(mine, OneCycleSchedule)
        spec, other = mine.spec, found.spec
        return (
            other.max_lr == spec.max_lr
            and other.pct_start == spec.pct_start
            and other.anneal_strategy == spec.anneal_strategy
            and other.div_factor == spec.div_factor
            and other.final_div_factor == spec.final_div_factor
            and other.three_phase == spec.three_phase
            and other.momentum == spec.momentum
            and (not self._total_known or other.total_steps == spec.total_steps)
        )

    def _start(self, update: int, reached: int | None, previous: EngineSchedule) -> None:
        assert isinstance(previous, OneCycleSchedule)
        done = 0 if reached is None else max(0, reached - previous.start)
        self.schedule.restart(start=update - done, total_steps=previous.total_steps)

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._total_known and not self._from_batches:
            super().on_train_begin(logs)
            return
        params = self.params or {}
        epochs = self._epochs or params.get("epochs")
        steps = self._steps_per_epoch or params.get("steps")
        if not epochs or not steps:
            # Before the schedule drives: the optimizer keeps applying its own rate.
            self._give_back_rate()
            raise InvalidArgumentError(
                "OneCycleLR needs total_steps, or epochs and steps_per_epoch: this fit does "
                f"not say how many steps an epoch has (epochs={epochs!r}, steps={steps!r}); "
                "pass total_steps=... or steps_per_epoch=...."
            )
        super().on_train_begin(logs)
        updates = (epochs * steps) // self._accumulation
        if not self._total_known or updates != self.schedule.total_steps:
            try:  # checks the cycle against pct_start and three_phase
                self.schedule.restart(start=self.schedule.start, total_steps=updates)
            except InvalidArgumentError:
                self._give_back_rate()
                raise
            self._record_segment()
        self._total_known = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        done = compat.read_counter(self._optimizer) // self._accumulation - self.schedule.start
        if done > self.schedule.total_steps and not self._warned:
            self._warned = True
            warnings.warn(
                f"OneCycleLR: training went past total_steps={self.schedule.total_steps} "
                f"({done} updates so far); the final rate {self.schedule.spec.min_lr:g} is held.",
                UserWarning,
                stacklevel=2,
            )
