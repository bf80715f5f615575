"""fastai's suggestion rules, transcribed: ``valley``, ``steep``, ``minimum`` and ``slide``.

Each returns what fastai 2.8's function of that name (``fastai.callback.schedule``)
returns when ``Learner.lr_find`` applies it to the same record: the recorder's
smoothed loss (fastai's ``AvgSmoothLoss``, :attr:`RangeCurve.smooth_loss`), the
record trimmed to ``[num_it // 10 : -5]`` and cut at its first non-finite value
(:func:`fastai_record`). The step each rule picks is the step fastai's function picks
on the record in float64; the rates are the record's own. ``lr_find`` converts the record
to float32 tensors first: where that rounding turns a strict descent into a tie (noiseless
synthetic curves), its ``valley`` can end a step or few later (tests/test_fastai_rules.py).

Where fastai's function would raise (too few steps left after the trimming), these
return None. Parity is tested against fastai's own outputs, stored by
``tests/data/make_fastai_suggestions.py`` in ``tests/data/fastai_suggestions.json``.
clrplug's smoothed variants of these rules (:mod:`.robust_rules`) are registered as
``robust_valley``, ``robust_steep``, ``robust_minimum`` and ``robust_slide``. NumPy only.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from clrplug.errors import InvalidArgumentError
from clrplug.range_test.curve import RangeCurve, RuleResult, format_rate

__all__ = [
    "FASTAI_SKIP_END",
    "FastaiRecord",
    "fastai_record",
    "longest_descent_lengths",
    "minimum",
    "slide",
    "steep",
    "valley",
]

#: ``lr_find`` drops the last 5 steps of the record (and its first ``num_it // 10``).
FASTAI_SKIP_END = 5


@dataclass(frozen=True, eq=False)
class FastaiRecord:
    """The arrays ``lr_find`` hands its rules: ``lr[i]``, ``loss[i]`` is step ``offset + i``."""

    offset: int
    lr: np.ndarray
    loss: np.ndarray


def fastai_record(curve: RangeCurve) -> FastaiRecord:
    """The record as ``lr_find`` passes it to the rules.

    fastai's recorder holds every step up to the one that tripped its stop rule; so
    is the record here read up to and including ``curve.diverged_at``. Then
    ``lr_find``'s own steps: the smoothed losses and rates sliced to
    ``[num_it // 10 : -5]`` (``num_it`` is :attr:`RangeCurve.planned_steps`), cut at
    the first non-finite loss (fastai cuts at the first NaN; its moving average
    turns an infinite loss into NaN, and stays NaN after one).
    """
    smooth, planned = curve.smooth_loss, curve.planned_steps
    assert smooth is not None and planned is not None  # set by RangeCurve.__post_init__
    end = len(curve) if curve.diverged_at is None else min(curve.diverged_at + 1, len(curve))
    start = planned // 10
    stop = max(start, end - FASTAI_SKIP_END)
    lr = curve.lr[start:stop]
    loss = smooth[start:stop]
    bad = np.flatnonzero(~np.isfinite(loss))
    if len(bad):
        lr, loss = lr[: bad[0]], loss[: bad[0]]
    return FastaiRecord(start, lr, loss)


def longest_descent_lengths(values: np.ndarray) -> np.ndarray:
    """For each point, the length of the longest strictly decreasing subsequence ending there.

    fastai's ``lds`` in ``valley``, computed by patience sorting in O(n log n) instead
    of its O(n**2) double loop: ``tails[k]`` is the highest last value of a decreasing
    subsequence of length ``k + 1`` seen so far, stored negated so that ``bisect``
    works on an increasing list.
    """
    tails: list[float] = []
    lengths = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        key = -float(value)
        k = bisect.bisect_left(tails, key)
        if k == len(tails):
            tails.append(key)
        else:
            tails[k] = key
        lengths[i] = k + 1
    return lengths


def _result(record: FastaiRecord, position: int, rate: float, reason: str) -> RuleResult:
    return RuleResult(max_lr=rate, base_lr=None, reason=reason, index=record.offset + position)


def valley(curve: RangeCurve) -> RuleResult | None:
    """fastai's ``valley`` (its default): two thirds down its longest valley, by fastai's count.

    ``lds[i]`` is the length ``L`` of the longest strictly decreasing subsequence of
    the smoothed losses ending at step ``i``; ``max_end`` the first step where it is
    longest and ``max_start = max_end - L`` (one step before that subsequence could
    start); the suggestion is the rate at ``max_start + int(L/3) + int(L/3/2)``.
    fastai's quirks are kept: with no descent at all (``L == 1``) it is the first
    step; with ``L == 2`` ending at the second step, the index is -1, which Python
    reads as the *last* step.

    Args:
        curve: the range test's record.

    Returns:
        ``max_lr`` at that step, or None when ``lr_find``'s trimming leaves no step.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, valley

    lr = np.geomspace(1e-7, 10.0, 100)
    loss = np.r_[np.linspace(3.0, 1.0, 60), np.linspace(1.1, 5.0, 40)]
    # smooth_loss given as the loss itself: lr_find keeps steps 10..94, the descent is
    # steps 10..59 (L = 50), max_start = 59 - 50 = 9, and 9 + 16 + 8 = step 33.
    result = valley(RangeCurve(lr, loss, smooth_loss=loss))
    assert result.index == 33 and result.max_lr == lr[33]
    ```
    """
    record = fastai_record(curve)
    n = len(record.loss)
    if n == 0:
        return None
    lengths = longest_descent_lengths(record.loss)
    longest = int(np.max(lengths))
    if longest == 1:
        max_start = max_end = 0
    else:
        max_end = int(np.argmax(lengths))
        max_start = max_end - longest
    sections = (max_end - max_start) / 3
    position = (max_start + int(sections) + int(sections / 2)) % n
    rate = float(record.lr[position])
    reason = (
        f"valley: longest descent of {longest} steps ending at {format_rate(record.lr[max_end])}"
        f", fastai's point on it -> {format_rate(rate)}"
    )
    return _result(record, position, rate, reason)


def steep(curve: RangeCurve) -> RuleResult | None:
    """fastai's ``steep``: the left step of the steepest fall of the loss against log(lr).

    The slope between each pair of neighbouring steps is ``(loss[i+1] - loss[i]) /
    (log(lr[i+1]) - log(lr[i]))``; the suggestion is ``lr[i]`` at the most negative
    one (the first, if several are equal).

    Args:
        curve: the range test's record.

    Returns:
        ``max_lr`` at that step, or None when fewer than 2 steps are left.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, steep

    lr = np.linspace(0.0, 1.0, 101)
    loss = 2.0 - np.tanh(6 * (lr - 0.3))
    # Per step the fall is steepest at 0.30; per log(lr), where -lr * dloss/dlr peaks
    # (tanh(6 (lr - 0.3)) = 1 / (12 lr), lr = 0.342), at the pair 0.34..0.35.
    result = steep(RangeCurve(lr, loss, smooth_loss=loss))
    assert result.max_lr == lr[34]
    ```
    """
    record = fastai_record(curve)
    if len(record.loss) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.diff(record.loss) / np.diff(np.log(record.lr))
    position = int(np.argmin(slopes))
    rate = float(record.lr[position])
    reason = (
        f"steep: loss falls fastest ({slopes[position]:.3g} per unit of ln lr) "
        f"at {format_rate(rate)}"
    )
    return _result(record, position, rate, reason)


def minimum(curve: RangeCurve) -> RuleResult | None:
    """fastai's ``minimum``: a tenth of the rate at the lowest smoothed loss.

    The first step of the lowest loss; its rate divided by 10, whether or not that is
    within the sweep (the result's ``index`` is the lowest step).

    Args:
        curve: the range test's record.

    Returns:
        ``max_lr``, or None when no step is left.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, minimum

    lr = np.geomspace(1e-6, 10.0, 300)
    loss = (np.log10(lr) + 1.0) ** 2 + 1.0  # lowest at 1e-1
    result = minimum(RangeCurve(lr, loss, smooth_loss=loss))
    assert abs(np.log10(result.max_lr) + 2.0) < 0.02
    ```
    """
    record = fastai_record(curve)
    if len(record.loss) == 0:
        return None
    position = int(np.argmin(record.loss))
    lowest = float(record.lr[position])
    reason = (
        f"minimum: lowest smoothed loss {record.loss[position]:.4g} at {format_rate(lowest)}, "
        f"a tenth of it -> {format_rate(lowest / 10)}"
    )
    return _result(record, position, lowest / 10.0, reason)


def slide(
    curve: RangeCurve, lr_diff: int = 15, thresh: float = 0.005, adjust_value: float = 1.0
) -> RuleResult | None:
    """fastai's interval slide rule.

    ``g = numpy.gradient(loss)`` (per step). A window from ``l = -1 - lr_diff`` to
    ``r = -1`` slides left one step at a time while ``|g[r] - g[l]| > thresh`` and
    ``l`` is within the record; the suggestion is ``lr[l]`` as it was *before* the
    last move (so one step right of where the window stopped, or ``lr[-1 - lr_diff]``
    when it never moved, or the first rate when no window qualified), times
    ``adjust_value``. ``thresh`` is in loss per step, so it depends on the loss's
    scale and the sweep's steps per decade (fastai's default: 100 steps over 8
    decades).

    Args:
        curve: the range test's record.
        lr_diff: the window's length in steps.
        thresh: the largest difference of the two ends' slopes, in loss per step.
        adjust_value: factor applied to the rate found.

    Returns:
        ``max_lr``, or None when ``lr_find`` would leave ``lr_diff`` steps or fewer
        (fastai raises an IndexError there).

    Raises:
        InvalidArgumentError: ``lr_diff``, ``thresh`` or ``adjust_value`` out of range.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, slide

    lr = np.geomspace(1e-7, 10.0, 100)
    loss = np.r_[np.full(40, 2.0), np.linspace(2.0, 0.5, 60)]  # steady from step 40 on
    result = slide(RangeCurve(lr, loss, smooth_loss=loss))
    assert result.index == 94 - 15  # the first window (79..94) already qualifies
    ```
    """
    check_slide_arguments(lr_diff, thresh, adjust_value)
    record = fastai_record(curve)
    n = len(record.loss)
    if n <= lr_diff or n < 2:
        return None
    grad = np.gradient(record.loss)
    r, left = -1, -1 - lr_diff
    chosen = left
    while left >= -n and abs(grad[r] - grad[left]) > thresh:
        chosen = left
        r -= 1
        left -= 1
    position = chosen % n
    found = float(record.lr[position])
    rate = found * float(adjust_value)
    if not math.isfinite(rate):
        return None
    first = record.offset + n
    stopped = "no steady window" if left < -n else f"steps {first + left}..{first + r} steady"
    reason = f"slide: {stopped}, rate {format_rate(found)} -> {format_rate(rate)}"
    return _result(record, position, rate, reason)


def check_slide_arguments(lr_diff: object, thresh: object, adjust_value: object) -> None:
    """Refuse ``slide``'s parameters out of range, naming the argument and the value."""
    if isinstance(lr_diff, bool) or not isinstance(lr_diff, (int, np.integer)) or lr_diff < 1:
        raise InvalidArgumentError(f"lr_diff must be an integer >= 1 (steps), got {lr_diff!r}.")
    if not isinstance(thresh, (int, float, np.number)) or not thresh >= 0:
        raise InvalidArgumentError(f"thresh must be a number >= 0 (loss per step), got {thresh!r}.")
    if not isinstance(adjust_value, (int, float, np.number)) or not 0 < adjust_value < math.inf:
        raise InvalidArgumentError(
            f"adjust_value must be a finite number > 0, got {adjust_value!r}."
        )
