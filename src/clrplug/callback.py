"""``CyclicLR``: the seed's callback, as a front end to the in-graph schedule.

The callback does not set the learning rate from Python every batch (on JAX
that forces a full state sync per step, and with ``steps_per_execution=N`` it
would apply one rate to N steps). Instead it installs a
:class:`~clrplug.CyclicalSchedule` on the optimizer, which computes the rate
inside the compiled step from the optimizer's iteration counter, and keeps to
itself the parts that belong on the host: resets, ``history`` and the
``learning_rate`` entry of the epoch logs.

It touches the model (and so syncs state on JAX) only when installing, once at
each epoch start to read the iteration counter, and when a reset or a new table
window requires rebuilding the train function. Per batch it does integer
bookkeeping and stores the logged values in compact arrays; the per-step rates
in ``history`` are recomputed from the formula, not read from the device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug.batch_logs import deaverage, loss_count, non_mean_names
from clrplug.checkpoint import attach_cycle_state
from clrplug.errors import ClrplugError
from clrplug.formula import Cycle, rates
from clrplug.history import StepHistory
from clrplug.schedule import CyclicalSchedule

__all__ = ["CyclicLR"]


@dataclass(frozen=True)
class _Segment:
    """Cycle settings in force from optimizer iteration ``first`` on."""

    first: int
    cycle: Cycle
    cycle_start: int


@dataclass
class _Epoch:
    """Where an epoch's rows are, and the samples Keras averaged its logs over."""

    first_row: int
    start: int = 0  # the optimizer's batch count when the epoch began
    rows: int | None = None  # set when the epoch ends
    samples: float | None = None  # the loss tracker's count at the end
    batch_samples: float | None = None  # samples per batch, read at its second batch


def inner_optimizer(optimizer: Any) -> Any:
    """The optimizer that owns the learning rate (a LossScaleOptimizer wraps one)."""
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def _read_steps(optimizer: Any) -> int:
    """Batches the optimizer has processed: updates times gradient_accumulation_steps."""
    counter = getattr(optimizer, "_iterations", None)  # raw count, before accumulation
    return int(ops.convert_to_numpy(counter if counter is not None else optimizer.iterations))


class CyclicLR(keras.callbacks.Callback):
    """Cyclical learning rate callback (Smith, arXiv:1506.01186).

    The rate cycles between ``base_lr`` and ``max_lr`` with half-period
    ``step_size`` training iterations, its amplitude scaled by a policy:

    ```
    cycle = floor(1 + iterations / (2 * step_size))
    x = abs(iterations / step_size - 2 * cycle + 1)
    lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale_fn(cycle or iterations)
    ```

    ``iterations`` counts training steps since the cycle started (the first step
    trained with this callback) or was last reset.

    Args:
        base_lr: initial learning rate, the lower boundary of the cycle. Overrides the
            optimizer's learning rate. Default 0.001.
        max_lr: upper boundary of the cycle; the amplitude is ``max_lr - base_lr``.
            Default 0.006.
        step_size: training iterations per half cycle; Smith suggests 2-8 times the
            iterations in an epoch. Default 2000.
        mode: a registered policy name: ``"triangular"``, ``"triangular2"``,
            ``"exp_range"`` or any plugin's (``clrplug policies`` lists them). Ignored
            when ``scale_fn`` is given. Default ``"triangular"``.
        gamma: the ``exp_range`` constant, ``gamma**(cycle iterations)``, in (0, 1].
            Default 1.
        scale_fn: a custom scaling function ``f(x)`` with ``0 <= f(x) <= 1`` for
            ``x >= 0``, a numpy function (the seed's lambdas work as written). Overrides
            ``mode``. Default None.
        scale_mode: ``"cycle"`` or ``"iterations"``: what ``scale_fn`` is evaluated on.
            Defaults to ``"cycle"`` for ``scale_fn``; with ``mode`` the policy decides
            and a contradicting value is refused.
        policy_params: values for the policy's own parameters, e.g. ``{"rate": 2e-4}``.

    Example:

    ```python
    import numpy as np, keras
    from clrplug import CyclicLR

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    clr = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=8, mode="triangular2")
    model.fit(np.zeros((64, 4)), np.zeros((64, 1)), batch_size=8, epochs=2,
              callbacks=[clr], verbose=0)
    assert len(clr.history["lr"]) == 16 and clr.history["iterations"][-1] == 16
    ```

    Attributes:
        history: per training step, ``lr`` (the rate applied at that step),
            ``iterations`` (the optimizer's step count after it, which never resets)
            and every loss and metric Keras logs, as numpy arrays. Keras 3 logs running
            means over the epoch; ``history`` holds each batch's own value, as the seed's
            did (metrics that are not plain means, such as AUC, are kept as logged). With
            ``steps_per_execution=N`` Keras logs once per N steps; the steps in
            between hold NaN. With ``gradient_accumulation_steps=N`` an iteration is
            one optimizer update (N batches): there is still one row per batch,
            ``iterations`` counts updates and ``lr`` is the rate of the update the
            batch contributes to.
        schedule: the :class:`~clrplug.CyclicalSchedule` installed on the optimizer.
    """

    # Batch-end work is order-independent (rows are written by index) and never touches
    # the model, so Keras may dispatch it off the training thread.
    async_safe = True

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
    ) -> None:
        super().__init__()
        self.schedule = CyclicalSchedule(
            base_lr, max_lr, step_size, mode, gamma, scale_fn, scale_mode, policy_params
        )
        self.mode = self.schedule.scale.policy.name
        self.gamma = gamma
        self.scale_fn = scale_fn
        self.scale_mode = self.schedule.scale.scale_mode
        self._optimizer: Any = None  # the optimizer the schedule is installed on
        self._segments: list[_Segment] = []
        self._steps = StepHistory()
        self._epoch_iteration = 0  # batches the optimizer had processed at the epoch's start
        self._accumulation = 1  # the optimizer's gradient_accumulation_steps
        self._epoch_row = 0  # history row of the current epoch's first step
        self._steps_per_execution = 1
        self._traced_version = -1  # schedule.version the model's train function holds
        self._covered_batches = 0  # batches (optimizer steps) the current table covers
        self._may_skip = False  # the optimizer may skip updates (LossScaleOptimizer)
        self._counts = StepHistory()  # with _may_skip: each row's real count after its step
        self._counted_batch = 0
        self._epochs: list[_Epoch] = []
        self._non_mean: set[str] | None = None  # logged metrics that are not plain means

    # -- the seed's attributes -------------------------------------------------------

    @property
    def base_lr(self) -> float:
        return self.schedule.cycle.base_lr

    @property
    def max_lr(self) -> float:
        return self.schedule.cycle.max_lr

    @property
    def step_size(self) -> float:
        return self.schedule.cycle.step_size

    @property
    def trn_iterations(self) -> int:
        """Training steps recorded by this callback (never reset)."""
        return len(self._steps)

    @property
    def clr_iterations(self) -> int:
        """Cycle iterations: steps since the cycle started or was last reset."""
        done = self._steps.iterations()
        last = int(done[-1]) // self._accumulation if len(done) else self.schedule.cycle_start
        return max(0, last - self.schedule.cycle_start)

    # -- installing the schedule --------------------------------------------------------

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        # Install now, before any on_train_begin: BackupAndRestore loads its checkpoint
        # there and must see the optimizer variables the run was saved with.
        if getattr(model, "optimizer", None) is not None:
            self.attach(model)

    def attach(self, model: Any) -> None:
        """Install the schedule on ``model``'s optimizer now (``fit`` does it for you).

        Call it yourself before ``model.load_weights(...)`` of a checkpoint saved
        during a ``CyclicLR`` run into a freshly compiled model, so the optimizer has
        the same variables as when it was saved.

        Raises:
            ClrplugError: the model is not compiled, its optimizer has no learning rate,
                or it already has a learning-rate schedule that is not clrplug's.
        """
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ClrplugError(
                "CyclicLR needs a compiled model: call model.compile(optimizer=...) first."
            )
        inner = inner_optimizer(optimizer)
        if inner is self._optimizer and getattr(inner, "_learning_rate", None) is self.schedule:
            return
        if not hasattr(inner, "_learning_rate") or not hasattr(inner, "iterations"):
            raise ClrplugError(
                f"CyclicLR: optimizer {type(inner).__name__} has no learning rate to set "
                "(no `learning_rate` passed to keras.optimizers.Optimizer.__init__); CyclicLR "
                "works with optimizers that take one."
            )
        current = inner._learning_rate
        self._accumulation = int(getattr(inner, "gradient_accumulation_steps", None) or 1)
        iteration = _read_steps(inner) // self._accumulation
        if isinstance(current, CyclicalSchedule) and self._resumes(current):
            self._adopt(current)
        elif isinstance(current, keras.optimizers.schedules.LearningRateSchedule) or (
            callable(current) and not isinstance(current, keras.Variable)
        ):
            raise ClrplugError(
                f"CyclicLR: optimizer {type(inner).__name__} already has a learning-rate "
                f"schedule ({type(current).__name__}), and CyclicLR sets the rate itself. "
                "Compile with a float learning_rate (base_lr overrides it), or use "
                "clrplug.CyclicalSchedule as the optimizer's learning_rate without CyclicLR."
            )
        elif not self._segments or self._optimizer is not inner:
            # The seed's clr_iterations starts at 0 with the first step trained with it.
            self.schedule.reset(cycle_start=iteration)
            self._add_segment(iteration)
        self.schedule.set_accumulation_steps(self._accumulation)
        inner.learning_rate = self.schedule
        self._optimizer = inner
        self._steps_per_execution = int(getattr(model, "steps_per_execution", 1) or 1)
        # A LossScaleOptimizer skips updates whose gradients are not finite, so batches
        # and updates differ: then the counter is read before each batch (on the training
        # thread; one state sync per batch on JAX) to tell history which steps updated.
        self._may_skip = optimizer is not inner
        attach_cycle_state(model, self._cycle_state, self._restore_cycle_state)
        self._retrace(model)

    def _retrace(self, model: Any) -> None:
        """Rebuild the train function if it holds an outdated copy of the schedule."""
        if self.schedule.version != self._traced_version:
            if keras.backend.backend() == "jax":
                # jax.jit keys its trace cache on the train step's Python function, not on
                # the schedule's table it closes over: while any reference to the previous
                # train function lives, a new one would silently reuse the old trace.
                import jax

                jax.clear_caches()
            model.make_train_function(force=True)
            self._traced_version = self.schedule.version

    def _add_segment(self, first: int) -> None:
        # Settings from `first` on replace any recorded for later iterations.
        self._segments = [s for s in self._segments if s.first < first]
        self._segments.append(_Segment(first, self.schedule.cycle, self.schedule.cycle_start))

    def _cycle_state(self) -> tuple[int, Cycle]:
        return self.schedule.cycle_start, self.schedule.cycle

    def _restore_cycle_state(self, cycle_start: int, cycle: Cycle) -> None:
        """Called when weights are loaded from a checkpoint saved during a CyclicLR run."""
        if (cycle_start, cycle) == self._cycle_state():
            return
        self.schedule.reset(cycle.base_lr, cycle.max_lr, cycle.step_size, cycle_start=cycle_start)
        self._add_segment(cycle_start)

    def _resumes(self, saved: CyclicalSchedule) -> bool:
        """A saved schedule continues if this callback was built with the same arguments."""
        mine = self.schedule
        return (
            saved is not mine
            and saved.scale.policy.name == mine.scale.policy.name
            and saved.scale.scale_mode == mine.scale.scale_mode
            and dict(saved.scale.params) == dict(mine.scale.params)
            and saved.origin == mine.origin
        )

    def _adopt(self, saved: CyclicalSchedule) -> None:
        self.schedule.reset(
            saved.cycle.base_lr, saved.cycle.max_lr, saved.cycle.step_size,
            cycle_start=saved.cycle_start,
        )
        self._add_segment(saved.cycle_start)

    # -- resets -----------------------------------------------------------------------

    def _reset(
        self,
        new_base_lr: float | None = None,
        new_max_lr: float | None = None,
        new_step_size: float | None = None,
    ) -> None:
        """Start a new cycle now, optionally with new bounds (the seed's ``_reset``).

        Unspecified values keep their current value, so ``_reset()`` restarts the
        current cycle. The cycle iteration count returns to zero, which also restarts
        a policy's amplitude scaling. It takes effect at the very next training step,
        also when called from another callback in the middle of an epoch. Call it on
        the training thread: from any hook of an ordinary callback, not from the batch
        hooks of a callback marked ``async_safe`` (Keras may run those elsewhere).
        """
        if getattr(self, "_model", None) is None or self._optimizer is None:
            # Not training yet: the new cycle starts with the first step trained.
            self.schedule.reset(new_base_lr, new_max_lr, new_step_size, cycle_start=0)
            self._segments.clear()
            return
        model = self.model  # on JAX this syncs state, so the counter read is current
        iteration = _read_steps(self._optimizer) // self._accumulation
        self.schedule.reset(new_base_lr, new_max_lr, new_step_size, cycle_start=iteration)
        self._add_segment(iteration)
        self._retrace(model)

    def reset(
        self,
        new_base_lr: float | None = None,
        new_max_lr: float | None = None,
        new_step_size: float | None = None,
    ) -> None:
        """Public alias of :meth:`_reset`."""
        self._reset(new_base_lr, new_max_lr, new_step_size)

    # -- training hooks -----------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.attach(self.model)

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch_iteration = _read_steps(self._optimizer)
        self._epoch_row = len(self._steps)
        self._epochs.append(_Epoch(self._epoch_row, self._epoch_iteration))
        self._counted_batch = 0  # LossScaleOptimizer: rows before it have their real count
        steps = (self.params or {}).get("steps")
        epochs = (self.params or {}).get("epochs") or (epoch + 1)
        planned = max(1, steps * (epochs - epoch)) if steps else self._steps_per_execution
        n = self._accumulation
        self.schedule.ensure_window(
            self._epoch_iteration // n, (self._epoch_iteration + planned - 1) // n
        )
        # Also catches a cycle restored from a checkpoint (BackupAndRestore) since the trace.
        self._retrace(self.model)

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        # Runs every batch: two integer comparisons unless something is to be done.
        if self._may_skip and batch > 0:
            self._count_updates(batch)
        if batch > 0 and self._epochs and self._epochs[-1].batch_samples is None:
            # Samples per batch, to de-average the logs: read once an epoch (one state
            # sync on JAX), since each fit() may use another batch size.
            count = loss_count(self.model)
            self._epochs[-1].batch_samples = count / batch if count else 0.0
        n = self._accumulation
        last = self._epoch_iteration + batch + self._steps_per_execution - 1
        if last < self._covered_batches:
            return
        if last // n > self.schedule.covered_until():
            # A long epoch ran past the table: slide it (rare).
            first = self._epoch_iteration + batch
            steps = (self.params or {}).get("steps") or 0
            self.schedule.ensure_window(
                first // n, max(last, self._epoch_iteration + steps - 1) // n
            )
            self._retrace(self.model)
        self._covered_batches = (self.schedule.covered_until() + 1) * n

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        first = (batch // self._steps_per_execution) * self._steps_per_execution
        values = logs or {}  # Keras has converted them to Python numbers already
        self._steps.write(
            self._epoch_row + first,
            self._epoch_iteration + first + 1,
            batch - first + 1,
            values,
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # The steps that really ran (a partial last execution is reported as full).
        if self._may_skip:  # updates may be fewer than batches: count batches instead
            steps = (self.params or {}).get("steps")
            if steps:
                self._steps.truncate(self._epoch_row + steps)
            self._count_updates(len(self._steps) - self._epoch_row)
        else:
            ran = _read_steps(self._optimizer) - self._epoch_iteration
            self._steps.truncate(self._epoch_row + ran)
        if self._epochs:
            model = self.model  # free here: Keras has just synced state for the epoch's end
            self._epochs[-1].rows = len(self._steps) - self._epochs[-1].first_row
            self._epochs[-1].samples = loss_count(model)
            if self._non_mean is None:
                self._non_mean = non_mean_names(model)
        if logs is not None and len(self._steps) > self._epoch_row:
            last = len(self._steps) - 1
            if self._may_skip:
                before = self._counts_before(last)
            else:
                before = int(self._steps.iterations()[last]) - 1
            logs["learning_rate"] = float(self._rates(np.array([before // self._accumulation]))[0])

    def _count_updates(self, batch: int) -> None:
        """Record the optimizer's real count for the rows before ``batch`` (LossScaleOptimizer).

        Runs on the training thread. Within one execution of ``steps_per_execution``
        steps, skipped updates are taken to be its first steps (Keras reports no finer).
        """
        if batch <= self._counted_batch:
            return
        self.model  # noqa: B018 - on JAX this syncs the state, so the counter is current
        after = _read_steps(self._optimizer)
        before = self._counts_before(self._epoch_row + self._counted_batch)
        rows = batch - self._counted_batch
        counts = np.maximum(before, after - np.arange(rows - 1, -1, -1))
        for i, count in enumerate(counts):
            self._counts.write(self._epoch_row + self._counted_batch + i, int(count), 1, {})
        self._counted_batch = batch

    def _counts_before(self, row: int) -> int:
        """The optimizer's count before row ``row``'s step (LossScaleOptimizer mode)."""
        if row == self._epoch_row or row == 0:
            return self._epoch_iteration
        return int(self._counts.iterations()[row - 1])

    # -- history ------------------------------------------------------------------------

    def _rates(self, steps: np.ndarray) -> np.ndarray:
        """Rates applied at optimizer steps ``steps`` (iteration before the update)."""
        out = np.empty(len(steps), dtype=np.float64)
        firsts = np.array([segment.first for segment in self._segments], dtype=np.int64)
        index = np.maximum(np.searchsorted(firsts, steps, side="right") - 1, 0)
        for i, segment in enumerate(self._segments):
            mask = index == i
            if mask.any():
                k = np.maximum(steps[mask] - segment.cycle_start, 0)
                out[mask] = rates(k, segment.cycle, self.schedule.scale)
        return out

    def plot_history(self, *args: Any, **kwargs: Any) -> Any:
        """Plot ``history``: see :func:`clrplug.plotting.plot_history` (needs ``clrplug[plot]``)."""
        # Imported here: plotting is a tool built on the callback, not a dependency of it.
        from clrplug.plotting import plot_history

        return plot_history(self.history, *args, **kwargs)

    @property
    def history(self) -> dict[str, np.ndarray]:
        """Per-step ``lr``, ``iterations`` and logged losses and metrics (numpy arrays)."""
        batches, columns = self._steps.snapshot()  # batches processed after each row's step
        before = batches - 1  # the count each row's step started from
        if self._may_skip:
            # The real counts (a skipped update leaves the count unchanged): a row's step
            # started where the previous row's ended, or where its epoch began.
            counted = self._counts.iterations()[: len(batches)]
            batches[: len(counted)] = counted
            before = np.concatenate([[0], batches[:-1]])
            for epoch in self._epochs:
                if epoch.first_row < len(before):
                    before[epoch.first_row] = epoch.start
        n = self._accumulation
        result: dict[str, np.ndarray] = {
            "lr": self._rates(before // n) if len(batches) else np.zeros(0),
            "iterations": batches // n,
        }
        if self._non_mean is None and getattr(self, "_model", None) is not None:
            self._non_mean = non_mean_names(self._model)
        for key, logged in columns.items():
            if key in (self._non_mean or set()):
                result[key] = logged.copy()
            else:
                result[key] = self._per_batch(logged)
        return result

    def _per_batch(self, logged: np.ndarray) -> np.ndarray:
        """Each row's own value from Keras' running means (see clrplug.batch_logs)."""
        values = logged.copy()
        for epoch in self._epochs:
            stop = len(values) if epoch.rows is None else epoch.first_row + epoch.rows
            rows = epoch.first_row + np.flatnonzero(~np.isnan(values[epoch.first_row : stop]))
            if not len(rows):
                continue
            per_batch = epoch.batch_samples or (
                epoch.samples / epoch.rows if epoch.samples and epoch.rows else 1.0
            )
            samples = (rows - epoch.first_row + 1) * per_batch
            if epoch.samples:  # exact for a shorter last batch
                samples[-1] = epoch.samples
            values[rows] = deaverage(logged[rows], samples)
        return values
