"""The range test's recording callback: each step's own logs, the stop rule, validation.

Keras 3 logs the running mean of the loss over the epoch at each batch; the
recorder recovers each batch's value (:func:`clrplug.history.deaverage`), watches
fastai's stop rule on the smoothed loss, evaluates the validation data every few
steps, and stops ``fit`` when the sweep is done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug.engine import compat
from clrplug.history import deaverage, loss_count, non_mean_names
from clrplug.range_test.curve import ema
from clrplug.range_test.result import RangeTestResult
from clrplug.range_test.sweep import SweepSchedule

__all__ = ["Recorder", "ema"]


class Recorder(keras.callbacks.Callback):
    """Per-step record, de-averaging, stop rule and validation for the range test.

    De-averaging: Keras updates its ``Mean`` loss tracker with each batch's loss
    weighted by the batch's number of samples, and logs ``total / count`` after each
    batch; the tracker is reset when an epoch starts. With ``C_i`` samples seen after
    batch ``i`` and ``m_i`` the logged mean, batch ``i``'s loss is
    ``(C_i m_i - C_{i-1} m_{i-1}) / (C_i - C_{i-1})``. Only an epoch's last batch may
    be smaller: its true ``C`` is read from the tracker's ``count`` when the epoch
    ends (and the full batch size once, after the epoch's first batch), so that batch
    is exact too. Metrics that are sample means are de-averaged the same way. The
    model is touched (on JAX, a state sync) only at those two points per epoch, and
    when validating.
    """

    def __init__(
        self,
        *,
        sweep: SweepSchedule,
        optimizer: Any,
        plan: int,
        stop_factor: float | None,
        smoothing: float,
        validation: tuple[tuple[Any, ...], dict[str, Any]] | None,
        validation_every: int,
    ) -> None:
        super().__init__()
        self._sweep = sweep
        self._optimizer = optimizer
        self._start = compat.read_counter(optimizer)  # the raw count before the first step
        self._plan = plan
        self._stop_factor = stop_factor
        self._smoothing = smoothing
        self._validation = validation
        self._validation_every = validation_every
        self.iterations: list[int] = []
        self.means: list[dict[str, float]] = []  # as logged (running means)
        self.values: list[dict[str, float]] = []  # per batch
        self.validation: dict[int, dict[str, float]] = {}
        self._batch_index: list[int] = []
        self._done = 0
        self._epoch_done = 0
        self._epoch_row = 0
        self._batch_samples: float | None = None
        self._pending = False
        self._average, self._seen, self._best = 0.0, 0, math.inf
        self._non_mean: set[str] = set()
        self.stop_reason = "completed"

    # -- bookkeeping ---------------------------------------------------------------

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch_done = self._done
        self._epoch_row = len(self.iterations)
        self._batch_samples = None

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        means: dict[str, float] = {}
        for key, value in (logs or {}).items():
            try:
                means[key] = float(value)
            except (TypeError, ValueError):
                continue
        row = len(self.iterations)
        if row == 0:
            # Compile metrics are built by the first step (on TensorFlow, when it is traced).
            self._non_mean = non_mean_names(compat.callback_model(self))
        if row == self._epoch_row:
            # Full batch size, for the epoch's possibly smaller last batch (JAX: one sync).
            count = loss_count(self.model)
            self._batch_samples = None if count is None else count / (batch + 1)
        self._done = self._epoch_done + batch + 1
        self.iterations.append(self._start + self._done)
        self.means.append(means)
        self._batch_index.append(batch)
        self.values.append(self._deaverage(row, None))
        last_of_epoch = (self.params or {}).get("steps")
        if last_of_epoch is not None and batch >= last_of_epoch - 1:
            self._pending = True  # exact once the epoch's sample count is known
        else:
            self._observe(row)
        if self._validation is not None and self.stop_reason == "completed" and (
            (row + 1) % self._validation_every == 0 or self._done >= self._plan
        ):
            self.validation[row] = self._validate()
        if self._done >= self._plan:
            compat.callback_model(self).stop_training = True

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        row = len(self.iterations) - 1
        if row < self._epoch_row:
            return
        # With steps_per_execution > 1 Keras reports a partial last execution as full;
        # the optimizer's counter (synced by now on JAX) says how many steps really ran.
        done = compat.read_counter(self._optimizer) - self._start
        if 0 < done != self._done:
            self._done = done
            self.iterations[row] = self._start + done
        if self._batch_samples is not None:
            count = loss_count(self.model)
            if count is not None:
                self.values[row] = self._deaverage(row, count)
        if self._pending:
            self._pending = False
            self._observe(row)

    def _deaverage(self, row: int, count: float | None) -> dict[str, float]:
        """Row ``row``'s own values from the running means (``count``: samples so far)."""
        unit = self._batch_samples or 1.0
        batches = self._batch_index[row] + 1
        seen = count if count is not None else batches * unit
        if row > self._epoch_row:
            before, previous = (self._batch_index[row - 1] + 1) * unit, self.means[row - 1]
        else:
            before, previous = 0.0, {}
        out = {}
        for key, mean in self.means[row].items():
            if key in self._non_mean or seen <= before:
                out[key] = mean
            else:
                pair = deaverage(np.array([previous.get(key, 0.0), mean]), np.array([before, seen]))
                out[key] = float(pair[-1])
        return out

    def _observe(self, row: int) -> None:
        """fastai's stop rule on the bias-corrected moving average of the loss."""
        if self.stop_reason != "completed" or "loss" not in self.values[row]:
            return
        loss = self.values[row]["loss"]
        if not math.isfinite(loss):
            self._stop("nan")
            return
        self._seen += 1
        self._average = self._smoothing * self._average + (1.0 - self._smoothing) * loss
        smoothed = self._average / (1.0 - self._smoothing**self._seen)
        # A ratio to the best only means something for a positive loss.
        if self._stop_factor is not None and self._seen > 1 and 0 < self._best < math.inf and (
            smoothed > self._stop_factor * self._best
        ):
            self._stop("diverged")
        self._best = min(self._best, smoothed)

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        compat.callback_model(self).stop_training = True

    def _validate(self) -> dict[str, float]:
        """Evaluate on the validation data without disturbing the epoch's running means."""
        model = self.model  # on JAX this syncs the training state into the variables
        saved = [np.array(ops.convert_to_numpy(v)) for v in model.metrics_variables]
        training = compat.training_mode(model)
        assert self._validation is not None
        args, kwargs = self._validation
        try:
            results = model.evaluate(*args, verbose=0, return_dict=True, **kwargs)
        finally:
            for variable, value in zip(model.metrics_variables, saved, strict=True):
                variable.assign(value)
            compat.set_training_mode(model, training)
        return {f"val_{key}": float(value) for key, value in results.items()}

    # -- output ---------------------------------------------------------------------

    def result(self, **settings: Any) -> RangeTestResult:
        rows = len(self.iterations)
        iterations = np.asarray(self.iterations, dtype=np.int64)
        keys: list[str] = []
        for values in [*self.values, *self.validation.values()]:
            keys.extend(key for key in values if key not in keys)
        columns = {key: np.full(rows, np.nan) for key in keys}
        for row, values in enumerate(self.values):
            for key, value in values.items():
                columns[key][row] = value
        for row, values in self.validation.items():
            for key, value in values.items():
                columns[key][row] = value
        loss = columns.pop("loss", np.full(rows, np.nan))
        rates, _ = self._sweep.values_at(iterations - 1)
        return RangeTestResult(
            lr=rates,
            iterations=iterations,
            loss=loss,
            smoothed_loss=ema(loss, self._smoothing),
            metrics=columns,
            stop_reason=self.stop_reason,
            **settings,
        )
