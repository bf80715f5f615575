"""``ScheduleCallback``: a callback that drives its optimizer's rate with a clrplug schedule.

The host's side of every clrplug callback: installing the schedule's rate when ``fit``
starts and giving the optimizer back its plain rate when it ends, continuing the cycle
across fits, re-compiles and models, tracing the step again when the schedule's
numbers change, the epoch and batch logs, and ``history`` (rows from
:mod:`clrplug.history`, rates from the formula). ``CyclicLR`` and ``OneCycleLR`` say
how to make and start a schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from clrplug import checks
from clrplug.applied import AppliedRates
from clrplug.engine import compat
from clrplug.engine.base import EngineSchedule
from clrplug.engine.install import Installation, StepCache
from clrplug.engine.rate import OptimizerRate
from clrplug.errors import ClrplugError
from clrplug.history import Recorder, samples_per_batch

__all__ = ["ScheduleCallback"]


class ScheduleCallback(keras.callbacks.Callback):
    """A callback that drives its optimizer's rate with a clrplug schedule during ``fit``.

    Subclasses say how to make a schedule (:meth:`_new_schedule`), whether a schedule
    found on the optimizer continues theirs (:meth:`_continues`), and how to start it.
    Counts are kept in one numbering across optimizers (the callback's own, as the
    seed's counters were): the optimizer's raw count plus an offset per optimizer.
    """

    # Batch-end work writes rows by index and never touches the model, so Keras may
    # dispatch it off the training thread.
    async_safe = True

    def __init__(self, schedule: EngineSchedule, history_every: int) -> None:
        super().__init__()
        self.schedule = schedule
        self._recorder = Recorder(checks.integer("history_every", history_every, low=1))
        self._optimizer: Any = None
        self._installation: Installation | None = None  # what the current fit installed
        self._offset = 0  # callback count = optimizer's raw count + offset
        self._applied = AppliedRates()  # the rate applied at each of the callback's counts
        self._epoch_start = 0  # the optimizer's raw count when the epoch began
        self._steps_per_execution = 1
        self._accumulation = 1
        self._may_skip = False  # a LossScaleOptimizer may skip updates
        self._counted = 0  # batches of this epoch whose real count is recorded
        self._next_check = 0  # batch at which on_train_batch_begin has work to do
        self._epoch_count = 0  # the callback count when the epoch began
        self._first_epoch = True  # the next epoch begin is a fit's first
        self._fitting = False  # between a fit's on_train_begin and its end
        self._steps: StepCache | None = None  # the last fit's step, to use again

    # -- subclass hooks ---------------------------------------------------------------

    def _new_schedule(self) -> EngineSchedule:
        """A fresh unbound schedule with this callback's definition and current state."""
        raise NotImplementedError

    def _continues(self, found: EngineSchedule) -> bool:
        """Whether ``found`` (on the optimizer, e.g. from a loaded model) continues ours."""
        raise NotImplementedError

    def _start(self, update: int, reached: int | None, previous: EngineSchedule) -> None:
        """Start the schedule at update ``update``. Moving from another optimizer,
        ``reached`` is the update count reached there and ``previous`` the schedule that
        drove it: continue its state and position (else ``previous`` is the schedule)."""
        raise NotImplementedError

    def _plan(self, first_update: int, steps: int | None) -> None:
        """Prepare the schedule for the coming updates (tables, totals)."""

    def _batch_work(self, batch: int) -> int:
        """Keep what the step reads ahead (a scale table) ahead of it; returns the next
        batch at which there is work: when 64 executions are left."""
        if self._may_skip:  # the counter, read before each batch there, is the truth
            update = compat.read_counter(self._optimizer) // self._accumulation
        else:
            update = (self._epoch_start + batch) // self._accumulation
        left = self._covered(update)
        if left is None:
            return 2**62
        ahead = 64 * self._steps_per_execution
        if left <= ahead:
            self._extend(update)
            left = self._covered(update) or 0
        return batch + max(self._steps_per_execution, (left - ahead) * self._accumulation)

    def _covered(self, update: int) -> int | None:
        """Updates from ``update`` on that what the step reads ahead still holds (None:
        the step reads nothing ahead)."""
        return None

    def _extend(self, update: int) -> None:
        """Compute what the step reads ahead again, from update ``update`` on."""

    def _interrupted(self) -> None:
        """A step raised (an error, ``KeyboardInterrupt``): no hook will run, so make the
        optimizer plain now, the rate what the schedule gives the step that failed."""
        if self._installation is not None:
            compat.sync_state(self._installation.model)  # on JAX, before the variables change
        if self._fitting:
            self.detach()
        else:
            self._leave_as_found()

    def _retrace(self) -> None:
        """Have the model trace its step again if the schedule's numbers changed since it
        was traced (they are constants of the step). A no-op when not attached."""
        installation = self._installation
        if self.attached and installation is not None and installation.traced_version != self.schedule.version:
            installation.retrace(self.schedule, self._interrupted)

    def _note_change(self) -> None:
        """The schedule's numbers may have changed by other hands (a loaded checkpoint,
        a direct call on the schedule): record it, and trace the step again."""
        if self.attached and self._traced() != self.schedule.version:
            self._record_segment()
            self._retrace()

    # -- installing ---------------------------------------------------------------------

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        # Install now, before any on_train_begin: BackupAndRestore loads its checkpoint
        # there and must find the model as it was when the checkpoint was saved.
        if getattr(model, "optimizer", None) is not None:
            self.attach(model)

    def attach(self, model: Any) -> None:
        """Install the schedule's rate on ``model``'s optimizer now (``fit`` does it for you).

        Call it yourself before ``model.load_weights(...)`` of a checkpoint saved during
        a run with this callback, into a freshly compiled model, so that model and
        optimizer are as they were when saved (the rate Variable set aside, the cycle's
        numbers carried). Everything is checked before anything changes. The optimizer
        is plain again when the next ``fit`` ends, or after :meth:`detach`.

        Raises:
            ClrplugError: the model is not compiled or not built, its optimizer has no
                learning rate, already has a schedule that is not clrplug's, or cannot
                cycle momentum when asked to.
        """
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ClrplugError(
                f"{type(self).__name__} needs a compiled model: call model.compile(optimizer=...) first."
            )
        inner = compat.inner_optimizer(optimizer)
        if self.attached and inner is self._optimizer and self._installation is not None \
                and model is self._installation.model:
            return
        if not compat.has_rate(inner):
            raise ClrplugError(
                f"{type(self).__name__}: optimizer {type(inner).__name__} has no learning rate to "
                "set (no `learning_rate` passed to keras.optimizers.Optimizer.__init__)."
            )
        self.detach()  # from another model or optimizer: that one is plain again
        previous = self.schedule
        schedule, adopted = self._schedule_for(inner)
        if schedule.momentum is not None:
            schedule.check_momentum_support(inner)
        if not inner.built:
            if not model.built:
                raise ClrplugError(
                    f"model {model.name!r} is not built, so its optimizer cannot be: give it a "
                    "keras.Input, call model.build(input_shape), or train it once."
                )
            inner.build(model.trainable_variables)
        accumulation = int(getattr(inner, "gradient_accumulation_steps", None) or 1)
        raw = compat.read_counter(inner)
        reached: int | None = None
        offset = self._offset
        if self._optimizer is not None and inner is not self._optimizer:
            # Moving to another optimizer: continue the callback's counts and cycle there.
            old = compat.read_counter(self._optimizer)
            offset += old - raw
            reached = old // self._accumulation
        schedule.bind(inner)
        current = compat.installed_rate(inner)
        rate = (
            current
            if isinstance(current, OptimizerRate) and current.schedule is schedule
            else OptimizerRate(schedule)
        )
        installation = Installation(model, inner, rate)
        self.schedule, self._optimizer, self._installation = schedule, inner, installation
        self._offset = offset
        self._accumulation = accumulation
        self._steps_per_execution = int(getattr(model, "steps_per_execution", 1) or 1)
        # A LossScaleOptimizer skips updates whose gradients are not finite: then the
        # counter is read before each batch (one state sync per batch on JAX).
        self._may_skip = optimizer is not inner
        if reached is not None or (not adopted and not self._applied):
            # A schedule found on an optimizer this callback drove before continues the
            # callback's cycle, not that optimizer's old position.
            self._start(raw // accumulation, reached, previous)
        installation.apply(schedule, self._interrupted, self._steps)
        rate.route_assign(self._plain_rate_set)
        self._record_segment()

    def _traced(self) -> int:
        """The schedule's version the fit's step was traced with (-1: none)."""
        return -1 if self._installation is None else self._installation.traced_version

    @property
    def _rate(self) -> OptimizerRate | None:
        """The rate installed for the current fit, or None."""
        return None if self._installation is None else self._installation.rate

    @property
    def attached(self) -> bool:
        """Whether the callback's rate is installed on an optimizer now."""
        return self._installation is not None and self._installation.active

    def detach(self, rate: float | None = None) -> None:
        """Make model and optimizer plain again: the optimizer's own rate Variable back,
        holding ``rate`` (default: what the schedule gives the next step), a plain
        momentum (what the schedule gives the next step), and no clrplug metric on the
        model. A no-op when not attached; ``fit`` calls it when it ends. The next ``fit``
        with this callback continues the cycle."""
        if not self.attached:
            return
        count = compat.read_counter(self._optimizer)
        next_rate, moment = self._values_for(count + self._offset)
        self._make_plain(next_rate if rate is None else rate, moment)

    def _make_plain(self, rate: float, moment: float | None) -> None:
        """Detach, the optimizer's rate Variable holding ``rate`` and its momentum
        ``moment`` (None: what it had before the callback drove it)."""
        installation = self._installation
        assert installation is not None
        self._fitting = False
        self._steps = installation.undo(rate)
        self.schedule.unbind(moment)
        self._installation = None

    def _schedule_for(self, inner: Any) -> tuple[EngineSchedule, bool]:
        """The schedule to bind to ``inner`` and whether it was adopted from the optimizer.

        A clrplug rate that a callback installed (also one loaded with the model) is
        continued when it has this callback's definition, else replaced by a new cycle.
        Any other schedule, a clrplug schedule the model was compiled with included
        unless it continues this callback's, is refused: two things would set the rate.
        """
        current = compat.installed_rate(inner)
        if current is self._rate or (isinstance(current, OptimizerRate) and current.schedule is self.schedule):
            return self.schedule, False
        found = current.schedule if isinstance(current, OptimizerRate) else current
        continues = (
            isinstance(found, EngineSchedule)
            and type(found) is type(self.schedule)
            and self._continues(found)
        )
        if continues:
            return found, True
        if not isinstance(current, OptimizerRate) and (
            isinstance(current, keras.optimizers.schedules.LearningRateSchedule)
            or (callable(current) and not isinstance(current, keras.Variable))
        ):
            raise ClrplugError(
                f"{type(self).__name__}: optimizer {type(inner).__name__} already has a learning-rate "
                f"schedule ({type(current).__name__}), and {type(self).__name__} sets the rate itself. "
                "Compile with a float learning_rate (base_lr overrides it), or use the schedule "
                "as the optimizer's learning_rate without the callback."
            )
        if self.schedule.bound:  # ours drives another optimizer: continue with a copy here
            return self._new_schedule(), False
        return self.schedule, False

    def _count(self) -> int:
        """The callback's count now (the optimizer's raw count plus its offset)."""
        return compat.read_counter(self._optimizer) + self._offset

    def _record_segment(self, first: int | None = None) -> None:
        """The schedule's current state is in force from now on (replacing later records)."""
        self._applied.record(self._count() if first is None else first, self.schedule, self._offset)

    def _give_back_rate(self) -> None:
        """A fit refused before it drove anything: the optimizer is plain, as it was."""
        installation = self._installation
        if self.attached and installation is not None and installation.plain is not None:
            self._make_plain(installation.plain[2], None)
        else:
            self.detach()

    def _plain_rate_set(self, installed: OptimizerRate, rate: float) -> None:
        """``optimizer.learning_rate = rate``: hold it from the next step on, and record it.

        On JAX mid-fit the trainer's state is synced first (a no-op when the code that
        set the rate reached the optimizer through ``Callback.model``), so the hold is
        not overwritten and the count it starts at is current.
        """
        if installed is not self._rate:  # an optimizer this callback no longer drives
            installed.schedule.hold(rate)
            return
        if compat.callback_model(self) is not None:
            compat.sync_state(compat.callback_model(self))
        self.schedule.hold(rate)
        self._record_segment()
        self._retrace()

    # -- hooks ----------------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.attach(self.model)
        self._first_epoch, self._fitting = True, True

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._first_epoch:
            # Once a fit: a checkpoint may have been loaded since the rate was installed
            # (BackupAndRestore, in its on_train_begin), then drive the rate: a plain rate
            # restored with a checkpoint is released. A plain rate set later in this fit
            # (optimizer.learning_rate = x) is kept.
            self._first_epoch = False
            if self.schedule.holding:
                self.schedule.release()
            self._note_change()
        self._epoch_start = compat.read_counter(self._optimizer)
        self._epoch_count = self._epoch_start + self._offset
        self._recorder.epoch_begin(self._epoch_count, self._steps_per_execution, skipping=self._may_skip)
        self._counted = 0
        self._applied.forget_ahead()
        self._plan(self._epoch_start // self._accumulation, (self.params or {}).get("steps"))
        self._next_check = 1

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        # Runs every batch: two integer comparisons unless there is work to do.
        if batch < self._next_check and self._traced() == self.schedule.version:
            return
        self._note_change()  # the numbers changed by other hands in the middle of an epoch
        if self._recorder.needs_batch_samples(batch):
            # Samples per batch, to de-average the logs (once an epoch: one sync on JAX).
            self._recorder.set_batch_samples(samples_per_batch(compat.callback_model(self), batch))
        if self._may_skip:
            self._count_updates(batch)
        work = self._batch_work(batch)
        self._retrace()  # a scale table computed again
        self._next_check = batch + 1 if self._may_skip else work

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        # Per step: one queue append, one lookup, a dict store or two (on Keras' worker thread).
        self._recorder.queue((batch, logs))
        # For later callbacks (TensorBoard): the step's rate, from the formula, no device access.
        if isinstance(logs, dict):
            count = self._epoch_count + batch
            rate, moment = self._applied.ahead(count) or self._values_for(count, chunk=True)
            logs["learning_rate"] = rate
            if moment is not None:
                logs["momentum"] = moment

    def _values_for(self, count: int, chunk: bool = False) -> tuple[float, float | None]:
        """Rate and momentum of the step that starts at callback count ``count``.

        With ``chunk``, the values of this epoch's steps from ``count`` on are computed in
        bulk and kept for the coming batch ends.
        """
        size = 0
        if chunk and self._applied.ahead(count) is None:
            batch = count - self._epoch_count
            steps = (self.params or {}).get("steps")  # the epoch's batches, when known
            # Up to the count after the epoch's last step: the epoch's and the fit's end
            # report the rates at those counts.
            size = min(AppliedRates.CHUNK, steps + 1 - batch) if steps and steps > batch else 256
        return self._applied.one(count, self.schedule.momentum is not None, size)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        model = self.model  # free here: Keras has just synced state for the epoch's end
        count = compat.read_counter(self._optimizer)
        seen = self._recorder.epoch_seen
        if self._may_skip:
            self._count_updates(seen)
            steps = (self.params or {}).get("steps")
            ran = min(seen, steps) if steps else seen
        else:
            ran = count - self._epoch_start
        self._recorder.epoch_end(ran, model)
        if logs is not None and ran > 0:
            last = self._recorder.last_before() if self._may_skip else count - 1 + self._offset
            rate, moment = self._values_for(last)
            logs["learning_rate"] = rate
            if moment is not None:
                logs["momentum"] = moment

    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._installation is not None:  # a step that raises (Ctrl-C): a plain optimizer
            self._installation.guard_validation(self._interrupted)

    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._installation is not None:
            self._installation.unguard_validation()
        self._leave_as_found()

    def on_predict_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._leave_as_found()

    def _leave_as_found(self) -> None:
        """evaluate()/predict() outside a fit (set_model installed the rate): undo it."""
        if not self._fitting and self._installation is not None:
            self._make_plain(self._installation.found_rate(), None)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self.detach()  # as the seed's callback left it: plain, at the next step's rate

    def _count_updates(self, batch: int) -> None:
        """Record the real count after the steps before ``batch`` (LossScaleOptimizer)."""
        if batch <= self._counted:
            return
        compat.sync_state(self.model)
        count = self._count()
        self._recorder.set_counts(self._counted, batch, count)
        self._counted = batch

    def _update_now(self) -> int:
        """The optimizer's update count now (on JAX, after syncing the trainer's state)."""
        if compat.callback_model(self) is not None:
            compat.sync_state(compat.callback_model(self))
        return compat.read_counter(self._optimizer) // self._accumulation

    # -- history -----------------------------------------------------------------------------

    @property
    def history(self) -> dict[str, np.ndarray]:
        """Per step: ``lr``, ``iterations``, ``momentum`` (when cycled), losses and metrics.

        ``lr`` is the rate applied at the step, ``iterations`` the update count after it
        (the callback's own count: it never resets, also across re-compiles), and every
        logged loss and metric is the step's own value: Keras 3 logs running means over
        the epoch, which are undone here (metrics that are not plain means, such as AUC,
        are kept as logged). With ``steps_per_execution=N`` Keras logs once per N steps
        and the steps in between hold NaN; with ``history_every=N`` one row stands for
        the last of N steps, its logged values their mean.
        """
        iterations, before, values = self._recorder.columns(compat.callback_model(self))
        cycled = self.schedule.momentum is not None
        rates, momenta = self._applied.at(before, cycled) if len(iterations) else (np.zeros(0), None)
        result: dict[str, np.ndarray] = {"lr": rates, "iterations": iterations // self._accumulation}
        if self.schedule.momentum is not None:
            result["momentum"] = momenta if momenta is not None else np.zeros(0)
        result.update(values)
        return result
