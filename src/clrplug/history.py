"""Compact per-step training history: numeric columns that grow by doubling.

One float64 (or int64) per value, so a million-step run costs a few MB per
column instead of the hundreds a list of Python floats would. Rows are written
by index, so batch callbacks dispatched out of order (Keras' asynchronous
callback dispatch) still land in the right place.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np

__all__ = ["StepHistory"]


class StepHistory:
    """Columns of per-step values indexed by row; missing values are NaN."""

    def __init__(self, capacity: int = 1024) -> None:
        self._lock = threading.Lock()
        self._capacity = capacity
        self._rows = 0
        self._iterations = np.zeros(capacity, dtype=np.int64)
        self._columns: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self._rows

    def _grow(self, needed: int) -> None:
        if needed <= self._capacity:
            return
        capacity = self._capacity
        while capacity < needed:
            capacity *= 2
        self._iterations = np.concatenate(
            [self._iterations, np.zeros(capacity - self._capacity, dtype=np.int64)]
        )
        for key, column in self._columns.items():
            pad = np.full(capacity - self._capacity, np.nan)
            self._columns[key] = np.concatenate([column, pad])
        self._capacity = capacity

    def write(
        self, first_row: int, first_iteration: int, count: int, values: Mapping[str, float]
    ) -> None:
        """Record ``count`` steps from ``first_row``; ``values`` belong to the last of them."""
        if count <= 0:
            return
        last = first_row + count - 1
        with self._lock:
            if last >= self._capacity:
                self._grow(last + 1)
            if count == 1:  # the usual case: one row per batch
                self._iterations[last] = first_iteration
            else:
                self._iterations[first_row : last + 1] = np.arange(
                    first_iteration, first_iteration + count
                )
            for key, value in values.items():
                if not isinstance(value, (int, float, np.number)):
                    continue  # a non-numeric log entry: not recorded
                column = self._columns.get(key)
                if column is None:
                    column = self._columns[key] = np.full(self._capacity, np.nan)
                column[last] = value
            if last >= self._rows:
                self._rows = last + 1

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

    def snapshot(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Copies of the iteration column and the value columns, of equal length."""
        with self._lock:
            rows = self._rows
            return self._iterations[:rows].copy(), {
                key: column[:rows].copy() for key, column in self._columns.items()
            }

    def iterations(self) -> np.ndarray:
        return self._iterations[: self._rows]

    def columns(self) -> dict[str, np.ndarray]:
        return {key: column[: self._rows] for key, column in self._columns.items()}
