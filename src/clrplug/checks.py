"""Argument checks shared by every public entry point: one home for each rule.

Each check returns the value in its canonical type or raises
:class:`~clrplug.errors.InvalidArgumentError` with a message that names the
argument, the value received and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from clrplug.errors import InvalidArgumentError

__all__ = ["flag", "integer", "one_of", "real"]


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range
        return math.inf if value > 0 else -math.inf


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is None and high is None:
        return "a finite number"
    if high is None:
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"a finite number {'<' if high_open else '<='} {high:g}"
    return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """``value`` as a finite float within the given bounds (``hint`` follows the rule).

    Example:

    ```python
    from clrplug.checks import real
    assert real("gamma", 1) == 1.0
    try:
        real("gamma", 1.5, low=0.0, high=1.0, low_open=True)
    except ValueError as error:
        assert str(error) == "gamma must be a number in (0, 1], got 1.5."
    ```
    """
    allowed = _interval(low, high, low_open, high_open) + hint
    if not _is_real(value):
        raise InvalidArgumentError(
            f"{name} must be {allowed}, got {type(value).__name__} {value!r}."
        )
    number = _as_float(value)
    if (
        not math.isfinite(number)
        or (low is not None and (number < low or (low_open and number == low)))
        or (high is not None and (number > high or (high_open and number == high)))
    ):
        raise InvalidArgumentError(f"{name} must be {allowed}, got {value!r}.")
    return number


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int within ``[low, high]`` (bools and floats are refused)."""
    if low is not None and high is not None:
        allowed = f"an integer in [{low}, {high}]"
    elif low is not None:
        allowed = f"an integer >= {low}"
    elif high is not None:
        allowed = f"an integer <= {high}"
    else:
        allowed = "an integer"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(
            f"{name} must be {allowed}, got {type(value).__name__} {value!r}."
        )
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidArgumentError(f"{name} must be {allowed}, got {value!r}.")
    return int(value)


def one_of(name: str, value: Any, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options`` (compared as given)."""
    choices = list(options)
    if not isinstance(value, str) or value not in choices:
        raise InvalidArgumentError(f"{name} must be one of {choices}, got {value!r}.")
    return value


def flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool (numpy's too); else an error naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{name} must be True or False, got {value!r}.")
    return bool(value)
