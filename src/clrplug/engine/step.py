"""The rate and momentum inside the compiled step, written with ``keras.ops``.

The same values as :mod:`clrplug.formula` (the float64 reference), computed so
that float32 keeps them within 1e-5 at any step: the position in the cycle with
integer arithmetic on the update count, and every difference that would cancel
(a 1cycle's last phase near its end) in a form that does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from keras import ops

__all__ = ["cyclic", "one_cycle"]

Tensors = Mapping[str, Any]


def _f32(x: Any) -> Any:
    return ops.cast(x, "float32")


def _divmod(a: Any, b: Any) -> tuple[Any, Any]:
    """``(a // b, a % b)`` for integers ``a >= 0`` and ``b > 0``."""
    return ops.floor_divide(a, b), ops.mod(a, b)


def cyclic(
    u: Any,
    ints: Tensors,
    floats: Tensors,
    *,
    shape: Callable[[Any], Any],
    scale: Callable[[Any], Any],
    scale_mode: str,
    momentum: bool,
) -> tuple[Any, Any]:
    """Rate (and momentum) at update count ``u`` of a cyclical schedule.

    With the step sizes as ``up / denominator`` and ``down / denominator``
    iterations, cycle iteration ``k`` is ``m = (k * denominator) mod (up + down)``
    units into cycle ``floor(k * denominator / (up + down)) + 1``; the linear rise is
    ``m / up`` going up and ``(up + down - m) / down`` coming down.
    """
    k = ops.maximum(u - ints["cycle_start"], 0)
    up, down, denominator = ints["up"], ints["down"], ints["denominator"]
    period = ints["period"]  # up + down, stored: one XLA kernel fewer than adding here
    whole, rest = _divmod(k, period)
    scaled = rest * denominator  # < period * denominator < 2**31
    part, m = _divmod(scaled, period)
    cycle = whole * denominator + part + 1
    rising = m <= up
    # One division for both halves (XLA keeps each division a kernel of its own).
    rise = _f32(ops.where(rising, m, period - m)) / _f32(ops.where(rising, up, down))
    height = shape(rise) * _f32(scale(cycle if scale_mode == "cycle" else k))
    rate = floats["base_lr"] + (floats["max_lr"] - floats["base_lr"]) * height
    if not momentum:
        return rate, None
    return rate, floats["max_momentum"] - (floats["max_momentum"] - floats["base_momentum"]) * height


def _remaining_weight(strategy: str, remaining: Any) -> Any:
    """The weight of a phase's start value with ``remaining`` of the phase to go.

    PyTorch's cosine ``(cos(pi * pct) + 1) / 2`` is ``sin(pi / 2 * (1 - pct))**2``,
    which keeps its precision where the rate nears the phase's end value.
    """
    if strategy == "cos":
        return ops.square(ops.sin(remaining * (math.pi / 2.0)))
    return remaining


def one_cycle(
    u: Any, ints: Tensors, floats: Tensors, *, phases: int, strategy: str, momentum: bool
) -> tuple[Any, Any]:
    """Rate (and momentum) at update count ``u`` of a 1cycle; held from its last step on.

    Phase ``i`` ends at step ``end_whole{i} + end_part{i}``; the steps left in it are
    an integer difference plus that fraction, exact wherever precision matters (near
    the phase's end) at any step count, and divided by the phase's ``span{i}``.
    """
    s = ops.minimum(ops.maximum(u - ints["start"], 0), ints["total_steps"] - 1)
    rate = moment = None
    for i in reversed(range(phases)):
        end_whole = ints[f"end_whole{i}"]
        remaining = _f32(end_whole - s) + floats[f"end_part{i}"]
        weight = _remaining_weight(strategy, ops.clip(remaining / floats[f"span{i}"], 0.0, 1.0))
        phase_rate = floats[f"lr_to{i}"] + (floats[f"lr_from{i}"] - floats[f"lr_to{i}"]) * weight
        phase_moment = floats[f"m_to{i}"] + (floats[f"m_from{i}"] - floats[f"m_to{i}"]) * weight
        if rate is None:
            rate, moment = phase_rate, phase_moment
        else:
            inside = s <= end_whole
            rate = ops.where(inside, phase_rate, rate)
            moment = ops.where(inside, phase_moment, moment)
    return rate, (moment if momentum else None)
