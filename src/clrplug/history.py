"""Per-step history for the callbacks: compact columns, and each batch's own logged values.

Keras 3 logs running means over the epoch; :class:`Recorder` keeps them as
logged (one float per value) and recovers each batch's own value when the history
is read (:func:`deaverage`). Rows are written by index, so batch hooks dispatched
out of order on Keras' worker thread still land in place.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import keras
import numpy as np

from clrplug.engine import compat

__all__ = ["Recorder", "StepHistory", "deaverage", "loss_count", "non_mean_names", "samples_per_batch"]


def loss_count(model: Any) -> float | None:
    """Samples Keras' loss tracker has averaged over this epoch (None if there is none).

    Reads the one variable, also mid-epoch on JAX (no full state sync).
    """
    for metric in getattr(model, "metrics", []):
        count = getattr(metric, "count", None)
        if metric.name == "loss" and count is not None:
            return float(compat.read_metric_variable(model, count))
    return None


def samples_per_batch(model: Any, batches_done: int) -> float | None:
    """Samples in each full batch of this epoch, after ``batches_done`` batches (>= 1).

    Keras weights its ``Mean`` trackers by the batch's sample count; all batches but an
    epoch's last are full, so the count after ``n`` batches is ``n`` times the batch.
    """
    count = loss_count(model)
    return None if count is None or batches_done < 1 else count / batches_done


def non_mean_names(model: Any) -> set[str]:
    """Logged metrics that are not sample means (AUC, precision, ...): kept as logged."""
    names: set[str] = set()
    stack = list(getattr(model, "metrics", []))
    while stack:
        metric = stack.pop()
        # Containers (Keras' CompileMetrics) list their metrics; on TensorFlow the list
        # is a tracking wrapper, not a list.
        try:
            children = list(getattr(metric, "metrics", None) or [])
        except TypeError:
            children = []
        if children:
            stack.extend(children)
            continue
        # A Mean whose result() is total / count; RootMeanSquaredError, also a Mean,
        # reports a square root and is not de-averageable.
        if not isinstance(metric, keras.metrics.Mean) or (
            type(metric).result is not keras.metrics.Mean.result
        ):
            names.add(metric.name)
    return names


def deaverage(means: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Each log's own mean from running means ``means`` logged after ``samples`` samples.

    Both arrays cover one epoch, in order; ``samples`` is cumulative and increasing:
    the batches between logs ``j-1`` and ``j`` averaged
    ``(s_j m_j - s_{j-1} m_{j-1}) / (s_j - s_{j-1})``.
    """
    means = np.asarray(means, dtype=np.float64)
    samples = np.asarray(samples, dtype=np.float64)
    before = np.concatenate([[0.0], samples[:-1]])
    previous = np.concatenate([[0.0], means[:-1]])
    with np.errstate(all="ignore"):
        return (samples * means - before * previous) / (samples - before)


#: Batch-log entries the callbacks add themselves (from the formula): not recorded as logged.
_COMPUTED = frozenset({"learning_rate", "momentum"})


def _same_keys_columns(
    rows: np.ndarray, values: Sequence[Mapping[str, Any] | None]
) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """The columns when every row logged the same names, all numbers (Keras' logs): in bulk.

    None when the rows differ in any way (a missing or extra name, a row without logs, a
    value that is not a number); :func:`_logged_columns` handles those.
    """
    first = values[0]
    if not isinstance(first, dict) or not first:
        return None
    keys = [key for key in first if key not in _COMPUTED]
    if not keys:
        return None
    entries: list[Any] = list(values)  # Mappings, or None (then len() raises TypeError)
    try:
        if set(map(len, entries)) != {len(first)}:  # with every key of the first: the same keys
            return None
        table = np.array(list(map(itemgetter(*keys), entries)))
    except (TypeError, KeyError, ValueError):
        return None
    if table.dtype.kind not in "fi" or table.ndim != (1 if len(keys) == 1 else 2):
        return None
    table = table.astype(np.float64, copy=False).reshape(len(values), len(keys))
    return {key: (rows, table[:, j]) for j, key in enumerate(keys)}


def _logged_columns(
    rows: np.ndarray, values: Sequence[Mapping[str, Any] | None]
) -> dict[str, tuple[np.ndarray, list[Any]]]:
    """The columns of rows logging different names: each name's numbers and their rows."""
    logged = [(row, entry) for row, entry in zip(rows.tolist(), values, strict=True) if entry]
    columns: dict[str, tuple[np.ndarray, list[Any]]] = {}
    for key in dict.fromkeys(key for _, entry in logged for key in entry):
        if key in _COMPUTED:
            continue
        kept = [
            (row, value)
            for row, entry in logged
            if isinstance(value := entry.get(key), (int, float, np.number)) and not isinstance(value, bool)
        ]
        if kept:
            columns[key] = (np.array([row for row, _ in kept], dtype=np.int64), [value for _, value in kept])
    return columns


class StepHistory:
    """Columns of per-row values indexed by row; missing values are NaN.

    Each row has the optimizer's count after its step (``iterations``) and its batch's
    index within its epoch; one float64 per logged value.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._lock = threading.Lock()
        self._capacity = capacity
        self._rows = 0
        self._iterations = np.zeros(capacity, dtype=np.int64)
        self._batches = np.zeros(capacity, dtype=np.int64)
        self._columns: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self._rows

    def _grow(self, needed: int) -> None:
        capacity = self._capacity
        while capacity < needed:
            capacity *= 2
        pad = capacity - self._capacity
        self._iterations = np.concatenate([self._iterations, np.zeros(pad, dtype=np.int64)])
        self._batches = np.concatenate([self._batches, np.zeros(pad, dtype=np.int64)])
        for key, column in self._columns.items():
            self._columns[key] = np.concatenate([column, np.full(pad, np.nan)])
        self._capacity = capacity

    def write(self, row: int, iteration: int, batch: int) -> None:
        """Record row ``row`` with no logged values: the count after its step, its batch."""
        with self._lock:
            if row >= self._capacity:
                self._grow(row + 1)
            self._iterations[row] = iteration
            self._batches[row] = batch
            self._rows = max(self._rows, row + 1)

    def write_many(
        self,
        rows: Any,
        iterations: Any,
        batches: Any,
        values: Sequence[Mapping[str, Any] | None],
    ) -> None:
        """:meth:`write` for many rows at once (later rows win on repeated indices)."""
        index = np.asarray(rows, dtype=np.int64)
        if not len(index):
            return
        columns: Mapping[str, tuple[np.ndarray, Any]] | None = _same_keys_columns(index, values)
        if columns is None:
            columns = _logged_columns(index, values)
        with self._lock:
            needed = int(index.max()) + 1
            if needed > self._capacity:
                self._grow(needed)
            self._iterations[index] = iterations
            self._batches[index] = batches
            for key, (at, logged_values) in columns.items():
                column = self._columns.get(key)
                if column is None:
                    column = self._columns[key] = np.full(self._capacity, np.nan)
                column[at] = logged_values
            self._rows = max(self._rows, needed)

    def truncate(self, rows: int) -> None:
        """Keep ``rows`` rows; values logged on dropped rows move to the new last row.

        With ``steps_per_execution`` Keras reports a partial last execution as if it
        were full, so rows can be written past the steps that actually ran.
        """
        with self._lock:
            if rows >= self._rows:
                return
            if rows > 0:
                for column in self._columns.values():
                    logged = np.flatnonzero(~np.isnan(column[rows - 1 : self._rows]))
                    if len(logged):
                        column[rows - 1] = column[rows - 1 + logged[-1]]
            self._rows = max(0, rows)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Copies of the iterations, batch indices and value columns, of equal length."""
        with self._lock:
            rows = self._rows
            return (
                self._iterations[:rows].copy(),
                self._batches[:rows].copy(),
                {key: column[:rows].copy() for key, column in self._columns.items()},
            )


@dataclass
class _Epoch:
    """Where an epoch's rows are, and the samples Keras averaged its logs over."""

    first_row: int
    start: int  # the optimizer's count when the epoch began
    rows: int | None = None  # set when the epoch ends
    samples: float | None = None  # the loss tracker's count at the end
    batch_samples: float | None = None  # samples per full batch
    # (batch, logs) of the batch ends not yet written to rows
    pending: deque[tuple[int, Mapping[str, Any] | None]] = field(default_factory=deque)


class Recorder:
    """The rows of a callback's history: what Keras logged at each recorded step.

    Args:
        every: record one step in ``every`` (the last of each block); the logged values
            of a row are then the mean over its block.
    """

    def __init__(self, every: int = 1) -> None:
        self.every = every
        self.rows = StepHistory()
        self._epochs: list[_Epoch] = []
        self._non_mean: set[str] | None = None
        self._trained = 0  # steps recorded (the seed's trn_iterations)
        self._epoch_seen = 0  # the current epoch's steps whose batch end was drained
        self._drain_lock = threading.Lock()
        self._steps_per_execution = 1
        self._skipping = False
        # With skipped updates: each row's real count, written on the training thread only
        # (batch ends may run on Keras' worker thread and must not race with it).
        self._real = np.zeros(0, dtype=np.int64)
        #: A batch end's whole per-step work: ``queue((batch, logs))`` appends to the current
        #: epoch's queue (one C call, safe on any thread); rows are written in bulk when the
        #: queue is drained. Before any epoch it discards.
        discard: deque[tuple[int, Mapping[str, Any] | None]] = deque(maxlen=0)
        self.queue: Callable[[tuple[int, Mapping[str, Any] | None]], None] = discard.append

    @property
    def epoch_seen(self) -> int:
        """Steps of the current epoch reported so far."""
        self._drain()
        return self._epoch_seen

    @property
    def trained(self) -> int:
        """Training steps seen by the callback, never reset (the seed's ``trn_iterations``)."""
        return self._trained + self.epoch_seen

    def epoch_begin(self, start: int, steps_per_execution: int, *, skipping: bool = False) -> None:
        """An epoch begins at count ``start``; ``skipping``: updates may be skipped (counts
        are then set by :meth:`set_counts`)."""
        self._drain()  # an epoch cut short by an exception never reached epoch_end
        self._skipping = skipping
        epoch = _Epoch(len(self.rows), start)
        self._epochs.append(epoch)
        self.queue = epoch.pending.append
        self._epoch_seen = 0
        self._steps_per_execution = steps_per_execution

    def needs_batch_samples(self, batch: int) -> bool:
        return batch > 0 and bool(self._epochs) and self._epochs[-1].batch_samples is None

    def set_batch_samples(self, value: float | None) -> None:
        self._epochs[-1].batch_samples = value or 0.0

    def _drain(self) -> None:
        """Write the current epoch's queued rows (Keras logs once per execution: its steps
        share the logs).

        Batch ends may arrive out of order (Keras' worker threads): a row takes the
        latest step of its block of ``every`` among them, whatever the order.
        """
        with self._drain_lock:
            if not self._epochs:
                return
            epoch = self._epochs[-1]
            pending = epoch.pending
            queued = [pending.popleft() for _ in range(len(pending))]
            if not queued:
                return
            batch_list, logs_list = zip(*queued, strict=True)
            batches = np.array(batch_list, dtype=np.int64)
            self._epoch_seen = max(self._epoch_seen, int(batches.max()) + 1)
            if self.every == 1 and self._steps_per_execution == 1:
                # One row per step: nothing to choose between.
                self.rows.write_many(epoch.first_row + batches, epoch.start + batches + 1, batches, logs_list)
                return
            latest: dict[int, tuple[int, Mapping[str, Any] | None]] = {}
            for batch, logs in queued:
                first = (batch // self._steps_per_execution) * self._steps_per_execution
                for b in range(first, batch + 1):
                    if (b + 1) % self.every and b != batch:
                        continue  # a row holds the last recorded step of its block of `every`
                    row = epoch.first_row + b // self.every
                    if row not in latest or latest[row][0] < b:
                        latest[row] = (b, logs if b == batch else None)
            rows = list(latest)
            steps = np.array([latest[row][0] for row in rows], dtype=np.int64)
            self.rows.write_many(rows, epoch.start + steps + 1, steps, [latest[row][1] for row in rows])

    def epoch_end(self, ran: int, model: Any) -> None:
        """Close the epoch: ``ran`` steps really ran (a partial execution is reported full)."""
        if not self._epochs:
            return
        self._drain()
        epoch = self._epochs[-1]
        rows = -(-ran // self.every)
        self.rows.truncate(epoch.first_row + rows)
        row = epoch.first_row + rows - 1
        if ran and epoch.first_row <= row < len(self.rows):  # the epoch's last step that ran
            self.rows.write(row, epoch.start + ran, ran - 1)
        epoch.rows = len(self.rows) - epoch.first_row
        epoch.samples = loss_count(model)
        if self._non_mean is None:
            self._non_mean = non_mean_names(model)
        self._trained += ran
        self._epoch_seen = 0

    def set_counts(self, first_batch: int, stop_batch: int, count: int) -> None:
        """The real count is ``count`` after batch ``stop_batch - 1`` of this epoch.

        Within the batches ``first_batch..stop_batch-1`` the skipped updates are taken to
        be the first ones (Keras reports nothing finer).
        """
        epoch = self._epochs[-1]
        before = epoch.start if first_batch == 0 else int(self._real[self._row(epoch, first_batch - 1)])
        for b in range(first_batch, stop_batch):
            row = self._row(epoch, b)
            if row >= len(self._real):
                self._real = np.concatenate([self._real, np.zeros(max(row + 1, 2 * len(self._real)) - len(self._real), dtype=np.int64)])
            self._real[row] = max(before, count - (stop_batch - 1 - b))

    def _row(self, epoch: _Epoch, batch: int) -> int:
        return epoch.first_row + batch // self.every

    def last_before(self) -> int:
        """The count before the last recorded step's update."""
        _, before, _ = self._counts()
        return int(before[-1]) if len(before) else self._epochs[-1].start

    def _counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._drain()
        iterations, batches, _ = self.rows.snapshot()
        if not self._skipping:
            return iterations, iterations - 1, batches
        iterations = self._real[: len(iterations)].copy()
        before = np.concatenate([[0], iterations[:-1]]).astype(np.int64)
        for epoch in self._epochs:
            if epoch.first_row < len(before):
                before[epoch.first_row] = epoch.start
        return iterations, before, batches

    def columns(self, model: Any = None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``(iterations, before, values)``: each row's count after and before its step, and
        each value column de-averaged per row."""
        iterations, before, batches = self._counts()
        _, _, logged = self.rows.snapshot()
        if self._non_mean is None and model is not None:
            self._non_mean = non_mean_names(model)
        values = {
            key: column if key in (self._non_mean or set()) else self._per_row(column, batches)
            for key, column in logged.items()
        }
        return iterations, before, values

    def _per_row(self, logged: np.ndarray, batches: np.ndarray) -> np.ndarray:
        """Each row's own value (its block's mean) from Keras' running means."""
        values = logged.copy()
        for epoch in self._epochs:
            stop = len(values) if epoch.rows is None else epoch.first_row + epoch.rows
            rows = epoch.first_row + np.flatnonzero(~np.isnan(values[epoch.first_row : stop]))
            if not len(rows):
                continue
            per_batch = epoch.batch_samples or (
                epoch.samples / (batches[rows[-1]] + 1) if epoch.samples else 1.0
            )
            samples = (batches[rows] + 1) * per_batch
            if epoch.samples and epoch.rows is not None:  # exact for a shorter last batch
                samples[-1] = epoch.samples
            values[rows] = deaverage(logged[rows], samples)
        return values

