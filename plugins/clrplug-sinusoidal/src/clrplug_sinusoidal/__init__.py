"""Sinusoidal amplitude policies for clrplug, registered through the pluggy hook.

``sinusoidal`` is the seed's sinusoidal cycle policy: the amplitude of cycle ``c``
is scaled by ``0.5 * (1 + sin(c * pi / 2))``, i.e. 1, 0.5, 0, 0.5, 1, ... .
``sine_period`` generalises it with a ``period`` in cycles (4 gives ``sinusoidal``).

Both are found by clrplug through this distribution's ``clrplug`` entry point,
which names this module; clrplug calls :func:`clrplug_register_policies` once per
process, the first time a policy name is looked up. Each gives a ``keras.ops`` twin
so it runs inside the compiled step: the cycle number is reduced modulo the period
in integers first, which keeps float32 exact at any cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

import clrplug

__version__ = "0.1.0"
__all__ = ["POLICIES", "clrplug_register_policies", "sine_period", "sinusoidal"]


def _turn(period: float) -> tuple[int, int]:
    """``period`` as ``numerator / denominator`` cycles (a whole number of turns repeats)."""
    if period == 0:
        raise ValueError("period must be a non-zero number of cycles, got 0.")
    exact = Fraction(period).limit_denominator(4096)
    if float(exact) != period:
        raise ValueError(
            f"period must be a whole number of cycles or a ratio such as 15/2, got {period!r}."
        )
    return abs(exact.numerator), exact.denominator


def sine_period(x: np.ndarray, period: float = 4.0) -> np.ndarray:
    """``0.5 * (1 + sin(2 * pi * x / period))`` on the cycle number ``x``.

    ``period`` is the number of cycles of one full sine wave (not 0; a whole number or
    a ratio such as 15/2). The phase is reduced in whole cycles first, so the value is
    exact at any cycle, and computed as ``sin(pi * m)**2`` with ``m`` in [0, 1/2], free
    of the cancellation near the wave's zeros.
    """
    turns, denominator = _turn(period)
    if period < 0:
        x = -x
    quarter = np.mod(4 * np.mod(np.mod(x, turns) * denominator, turns) + turns, 4 * turns)
    return np.square(np.sin(np.pi * np.minimum(quarter, 4 * turns - quarter) / (4 * turns)))


def sinusoidal(x: np.ndarray) -> np.ndarray:
    """The seed's ``0.5 * (1 + sin(x * pi / 2))`` on the cycle number ``x``."""
    return sine_period(x, 4.0)


def _sine_ops(x: Any, period: float = 4.0) -> Any:
    """The keras.ops twin of :func:`sine_period`, in integers until the last step."""
    from keras import ops  # imported by the engine only, never when the plugin loads

    turns, denominator = _turn(period)
    if period < 0:
        x = -x
    quarter = ops.mod(4 * ops.mod(ops.mod(x, turns) * denominator, turns) + turns, 4 * turns)
    half = ops.cast(ops.minimum(quarter, 4 * turns - quarter), "float32")
    return ops.square(ops.sin(half * (math.pi / (4 * turns))))


def _sinusoidal_ops(x: Any) -> Any:
    return _sine_ops(x, 4.0)


POLICIES = (
    clrplug.Policy(
        "sinusoidal",
        sinusoidal,
        "cycle",
        description="Triangular cycle whose amplitude follows 0.5*(1+sin(cycle*pi/2)).",
        ops_fn=_sinusoidal_ops,
    ),
    clrplug.Policy(
        "sine_period",
        sine_period,
        "cycle",
        params={"period": 4.0},
        description="Triangular cycle scaled by 0.5*(1+sin(2*pi*cycle/period)).",
        ops_fn=_sine_ops,
    ),
)


@clrplug.hookimpl
def clrplug_register_policies(register: Callable[[clrplug.Policy], None]) -> None:
    """Register ``sinusoidal`` and ``sine_period``."""
    for policy in POLICIES:
        register(policy)
