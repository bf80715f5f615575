"""What rate (and momentum) a callback's optimizer applied at each step, from the formula.

A callback counts its steps in one numbering across fits and optimizers. Whenever the
schedule's numbers change (a start, a reset, a held rate) a new *segment* begins: from
that count on, the schedule as it then was (a copy), and the offset between the callback's
count and that optimizer's. ``history``, the batch and epoch logs and the rate left on
the optimizer after a fit are read here, computed on the host from the float64 formula
(``EngineSchedule.values_at``): never read from the device.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from clrplug.engine.base import EngineSchedule

__all__ = ["AppliedRates"]


class AppliedRates:
    """The schedule's state per segment of counts, and the values of the coming steps."""

    #: Coming steps computed at once for the batch logs.
    CHUNK = 4096

    def __init__(self) -> None:
        # (first callback count, the schedule's state from then on, that optimizer's offset)
        self._segments: list[tuple[int, EngineSchedule, int]] = []
        # The values of a run of coming steps: (first count, rates, momenta).
        self._ahead: tuple[int, list[float], list[float] | None] = (0, [], None)

    def __bool__(self) -> bool:
        return bool(self._segments)

    def record(self, first: int, schedule: EngineSchedule, offset: int) -> None:
        """``schedule``'s current state applies from count ``first`` on (later records go)."""
        self._segments = [s for s in self._segments if s[0] < first]
        self._segments.append((first, copy.copy(schedule), offset))
        self.forget_ahead()

    def forget_ahead(self) -> None:
        """Compute the coming steps' values again when next asked."""
        self._ahead = (0, [], None)

    def at(self, before: Any, cycled: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Rate and momentum (``cycled``) applied at counts ``before`` (each step's start)."""
        before = np.asarray(before, dtype=np.int64)
        rates = np.zeros(len(before))
        momenta = np.zeros(len(before)) if cycled else None
        firsts = np.array([first for first, _, _ in self._segments], dtype=np.int64)
        index = np.maximum(np.searchsorted(firsts, before, side="right") - 1, 0)
        for i, (_, state, offset) in enumerate(self._segments):
            mask = index == i
            if mask.any():
                r, m = state.values_at(before[mask] - offset)
                rates[mask] = r
                if momenta is not None and m is not None:
                    momenta[mask] = m
        return rates, momenta

    def ahead(self, count: int) -> tuple[float, float | None] | None:
        """The values of the step at ``count`` if computed ahead, else None."""
        first, rates, momenta = self._ahead
        i = count - first
        if 0 <= i < len(rates):
            return rates[i], (None if momenta is None else momenta[i])
        return None

    def one(self, count: int, cycled: bool, size: int = 0) -> tuple[float, float | None]:
        """Rate and momentum of the step at ``count``; with ``size``, those of the ``size``
        steps from ``count`` on are computed at once and kept (:meth:`ahead`)."""
        known = self.ahead(count)
        if known is not None:
            return known
        values, moments = self.at(count + np.arange(max(size, 1)), cycled)
        if size:
            self._ahead = (count, values.tolist(), None if moments is None else moments.tolist())
        return float(values[0]), (None if moments is None else float(moments[0]))
