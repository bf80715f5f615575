"""clrplug's own suggestion rules: fastai's four read on a smoothed, cut curve, and the seed's.

``robust_valley``, ``robust_steep``, ``robust_minimum`` and ``robust_slide`` follow the
definitions of fastai's rules of those names (:mod:`.fastai_rules` gives fastai's
exact answers) with these differences, applied by each before it looks at the curve:

- cut at ``diverged_at`` and at the first non-finite loss;
- the first 10 % and last 5 steps dropped, as ``lr_find`` does;
- smoothing: a running median (a spike shorter than half its window vanishes, a
  monotone stretch is unchanged), then a moving average centred on each point, both
  over about a tenth of the points, kept only where the window fits in the curve,
  instead of fastai's causal moving average, which lags the loss by up to
  ``0.98 / 0.02 = 49`` steps towards larger rates, the side on which training
  diverges;
- only the curve up to its lowest point is read: what follows is the diverging side;
- None, instead of a number, when fewer than 8 points are left or when the smoothed
  curve does not move by more than :data:`SIGNIFICANCE` (8) times its noise.

``accuracy_rise`` is the seed's start-of-rise and elbow. NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

from clrplug.range_test.curve import (
    MIN_POINTS,
    RangeCurve,
    RuleResult,
    format_rate,
    index_near,
    is_significant,
    loss_view,
    noise_level,
    slope_per_log_lr,
    slope_per_step,
    smooth_values,
    smoothing_width,
    within_sweep,
)
from clrplug.range_test.fastai_rules import check_slide_arguments, longest_descent_lengths

__all__ = ["accuracy_rise", "robust_minimum", "robust_slide", "robust_steep", "robust_valley"]


def robust_valley(curve: RangeCurve) -> RuleResult | None:
    """clrplug's smoothed ``valley``: halfway along the longest descent of the loss.

    fastai's ``valley`` (:func:`clrplug.range_test.fastai_rules.valley`) read on
    clrplug's centred smoothing rather than the causal moving average, and with
    these differences. On the smoothed loss up to its lowest point, find the longest
    strictly decreasing subsequence (as fastai does, here in O(n log n)); with ``L`` its
    number of points and ``end`` its last point, the descent is taken to be the
    ``L`` steps ending at ``end`` (``start = end - L + 1``, one step later than
    fastai's ``end - L``), and the suggestion is ``start + int(L/3) + int(L/3/2)``:
    the middle of the descent's middle third. The descent cannot start within the
    first ``h`` points (half the smoothing window), where the centred average is
    not defined.

    Against noise, the subsequence is taken on the smoothed loss tilted upwards by
    one noise unit per smoothing window: a point only follows another if the loss
    fell faster than that, so the wiggles of a noisy plateau do not join the
    descent and stretch it to lower rates. The noise is measured against the
    smoothed curve, so even a noiseless curve gets a small tilt where the smoothing
    bends it.

    Cautious choices: counting the descent back from its end by its number of
    points (fastai's reading) means that points skipped as noise shorten it rather
    than stretching it back to an early spike; among equally long descents the
    first one is taken; and nothing past the lowest loss is read. Plateau points
    that still join the descent move the suggestion to lower rates; only the
    tilt's cutting off of a descent's first, barely falling steps moves it up (by a
    fraction of the smoothing window, when the descent starts very gently).

    Args:
        curve: the range test's record.

    Returns:
        ``max_lr`` at that point, or None when the curve shows no descent (see the
        module docstring).

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, robust_valley

    lr = np.geomspace(1e-6, 10.0, 300)
    u = np.log10(lr)
    loss = 2.5 - 2.0 * np.clip((u + 4.0) / 3.0, 0, 1) + np.exp(3 * (u - 0.5))
    result = robust_valley(RangeCurve(lr, loss))
    assert 10**-2.7 < result.max_lr < 10**-2.3  # halfway down the descent 1e-4..1e-1
    ```
    """
    view = loss_view(curve)
    if view is None:
        return None
    first = view.h
    descent = view.s[first : view.bottom + 1]
    # Tilted up by one noise unit per smoothing window: "descending" means falling by
    # more than the noise, so the wiggles of a noisy plateau do not join the descent.
    tilt = view.noise / (2 * view.h + 1) * np.arange(len(descent))
    lengths = longest_descent_lengths(descent + tilt)
    length = int(np.max(lengths))
    end = first + int(np.argmax(lengths))
    if length < 3:
        return None
    start = end - length + 1
    third = length / 3
    position = min(end, start + int(third) + int(third / 2))
    index = view.offset + position
    rate = float(curve.lr[index])
    return RuleResult(
        max_lr=rate,
        base_lr=None,
        reason=(
            f"robust_valley: longest descent {format_rate(view.lr[start])}..{format_rate(view.lr[end])} "
            f"({length} steps), middle of its middle third -> {format_rate(rate)}"
        ),
        index=index,
    )


def robust_steep(curve: RangeCurve) -> RuleResult | None:
    """clrplug's smoothed ``steep``: where the loss falls fastest against log(lr).

    The slope d(loss)/d(log lr) of the smoothed loss is measured across its own
    smoothing window (fastai's ``steep`` takes it between neighbouring steps of the
    causal moving average), and its most negative value is taken, up to the lowest
    loss.

    Cautious choices: the search ends at the lowest loss (a second drop after the
    loss has risen again belongs to the diverging side), and at least ``5 + 2h``
    steps before the cut, ``h`` being half the smoothing window: where the loss
    falls fastest right before a blow-up the slope is read before the blow-up's
    influence.

    Args:
        curve: the range test's record.

    Returns:
        ``max_lr`` at the steepest point, or None when the loss never falls beyond
        its noise.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, robust_steep

    lr = np.geomspace(1e-6, 10.0, 300)
    loss = 2.5 - np.tanh(np.log10(lr) + 2.5)  # steepest at 10**-2.5
    assert abs(np.log10(robust_steep(RangeCurve(lr, loss)).max_lr) + 2.5) < 0.1
    ```
    """
    view = loss_view(curve)
    if view is None:
        return None
    slope = slope_per_log_lr(view)
    low, high = 2 * view.h, min(view.bottom, view.m - 1 - 2 * view.h)
    if high < low:
        return None
    position = low + int(np.argmin(slope[low : high + 1]))
    if not slope[position] < 0:
        return None
    index = view.offset + position
    rate = float(curve.lr[index])
    h = view.h
    decades = math.log10(view.lr[position + h] / view.lr[position - h])
    drop = float(view.s[position + h] - view.s[position - h])
    per_decade = drop / decades if decades > 0 else -math.inf
    return RuleResult(
        max_lr=rate,
        base_lr=None,
        reason=(
            f"robust_steep: loss falls fastest ({per_decade:.3g} per decade) "
            f"at {format_rate(rate)}"
        ),
        index=index,
    )


def robust_minimum(curve: RangeCurve) -> RuleResult | None:
    """clrplug's smoothed ``minimum``: a tenth of the rate at the lowest loss.

    The lowest point of the centred smoothed loss (the first, if several are equal),
    its rate divided by 10. When that falls below the sweep, the sweep's lowest
    positive rate is suggested instead (fastai's ``minimum`` returns it as it is).

    Cautious choices: the running median removes single-step dips, so an outlier
    cannot be the minimum; the trimming and the cut keep it at least ``5 + h``
    steps before the first diverged step.

    Args:
        curve: the range test's record.

    Returns:
        ``max_lr`` a tenth of the way to the minimum, or None when the loss never
        falls beyond its noise.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, robust_minimum

    lr = np.geomspace(1e-6, 10.0, 300)
    loss = (np.log10(lr) + 1.0) ** 2 + 1.0  # lowest at 1e-1
    assert abs(np.log10(robust_minimum(RangeCurve(lr, loss)).max_lr) + 2.0) < 0.1
    ```
    """
    view = loss_view(curve)
    if view is None:
        return None
    lowest = float(view.lr[view.bottom])
    rate = within_sweep(curve, lowest / 10.0)
    index = index_near(curve, rate)
    return RuleResult(
        max_lr=rate,
        base_lr=None,
        reason=(
            f"robust_minimum: lowest loss {view.s[view.bottom]:.4g} at {format_rate(lowest)}, "
            f"a tenth of it -> {format_rate(rate)}"
        ),
        index=index,
    )


def robust_slide(
    curve: RangeCurve, lr_diff: int = 15, thresh: float = 0.005, adjust_value: float = 1.0
) -> RuleResult | None:
    """clrplug's smoothed ``slide``: the last stretch over which the loss falls steadily.

    A window of ``lr_diff`` steps slides left, one step at a time, until the
    per-step slope of the smoothed loss (measured across its smoothing window) at
    its two ends differs by at most ``thresh``; the suggestion is the rate at the
    window's left end, times ``adjust_value``. As in fastai, ``thresh`` is in loss
    units per step, so it depends on the loss's scale and on the sweep's steps per
    decade (fastai's default sweep: 100 steps over 8 decades).

    Cautious choices: the window starts with its right end at the lowest loss, not
    at the end of the curve, so a steady rise before the blow-up cannot stop it on
    the diverging side; the rate is that of the window's left end when it stops
    (fastai takes the left end of the window before, one step further right). When
    no window qualifies, there is no suggestion (fastai falls back to the lowest
    rate swept).

    Args:
        curve: the range test's record.
        lr_diff: the window's length in steps.
        thresh: the largest difference of the two ends' slopes, in loss per step.
        adjust_value: factor applied to the rate found (the result stays in the sweep).

    Returns:
        ``max_lr`` at the left end of the first steady window, or None.

    Raises:
        InvalidArgumentError: ``lr_diff``, ``thresh`` or ``adjust_value`` out of range.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, robust_slide

    lr = np.geomspace(1e-6, 10.0, 300)
    u = np.log10(lr)
    loss = 2.5 - 2.0 * np.clip((u + 4.0) / 3.0, 0, 1) + np.exp(3 * (u - 0.5))
    assert 1e-4 < robust_slide(RangeCurve(lr, loss)).max_lr < 1e-1  # in the straight descent
    ```
    """
    check_slide_arguments(lr_diff, thresh, adjust_value)
    view = loss_view(curve)
    if view is None:
        return None
    slope = slope_per_step(view)
    low, right = 2 * view.h, min(view.bottom, view.m - 1 - 2 * view.h)
    for r in range(right, low + lr_diff - 1, -1):
        left = r - lr_diff
        if abs(slope[r] - slope[left]) <= thresh:
            found = float(view.lr[left])
            rate = within_sweep(curve, found * adjust_value)
            if not math.isfinite(rate):
                return None
            return RuleResult(
                max_lr=rate,
                base_lr=None,
                reason=(
                    f"robust_slide: slope steady over {lr_diff} steps from {format_rate(found)} "
                    f"(ends differ by {abs(slope[r] - slope[left]):.2g} <= {thresh:g} per step)"
                    f" -> {format_rate(rate)}"
                ),
                index=index_near(curve, rate),
            )
    return None


def accuracy_rise(curve: RangeCurve) -> RuleResult | None:
    """clrplug's rule, after the seed: ``base_lr`` where accuracy starts to rise, ``max_lr``
    at its elbow.

    The curve is validation accuracy when it was measured, else training accuracy,
    else the loss read upside down (:meth:`RangeCurve.accuracy_key`), cut before
    divergence, its unmeasured (NaN) rows dropped, through a running median and a
    moving average centred on each point, both over a tenth of the points.
    The *rise* goes from the first smoothed value to the highest; ``base_lr`` is
    the first rate at which 10 % of the rise is reached, ``max_lr`` the first at
    which 90 % is.

    Differences from the seed's reading in ``RangeTestResult.suggest``, which give
    the same bounds on a clean curve: the running median first (an accuracy dip or
    a loss spike at the start no longer sets the level the rise is measured from);
    the average kept only where its window fits (an edge value repeated to fill
    the window weighed half of it); and the rise must exceed
    :data:`SIGNIFICANCE` (8) times the noise rather than 3 (with 3, about one flat
    noisy curve of 100 steps in three got a suggestion).

    Args:
        curve: the range test's record.

    Returns:
        Both bounds, or None when the curve does not rise beyond its noise.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, accuracy_rise

    lr = np.geomspace(1e-5, 10.0, 301)
    accuracy = 0.1 + 0.8 / (1 + np.exp(-(np.log10(lr) + 2.0) / 0.25))
    result = accuracy_rise(RangeCurve(lr, 2.3 - 2 * accuracy, {"accuracy": accuracy}))
    # The sigmoid reaches 10 % and 90 % of its rise at 10**(-2 -+ 0.25 ln 9).
    assert 2.2e-3 < result.base_lr < 3.4e-3 and 2.9e-2 < result.max_lr < 4.4e-2
    ```
    """
    key = curve.accuracy_key()
    end = curve.valid_length
    values = curve.loss[:end] if key is None else curve.metrics[key][:end]
    lr = curve.lr[:end]
    keep = np.isfinite(values)
    values, lr, rows = values[keep], lr[keep], np.flatnonzero(keep)
    n = len(values)
    if n < MIN_POINTS:
        return None
    score = values if key is not None else -values
    width = smoothing_width(n)
    h = width // 2
    smooth = smooth_values(score, width)[h : n - h]
    noise = noise_level(score[h : n - h], smooth, width)
    peak = int(np.argmax(smooth))
    rise = float(smooth[peak] - smooth[0])
    if not is_significant(rise, noise, float(np.max(np.abs(smooth)))):
        return None
    risen = smooth[: peak + 1] - smooth[0]
    first = h + int(np.argmax(risen >= 0.1 * rise))
    elbow = h + int(np.argmax(risen >= 0.9 * rise))
    base, top = float(lr[first]), float(lr[elbow])
    column = key or "-loss"
    return RuleResult(
        max_lr=top,
        base_lr=base,
        reason=(
            f"accuracy_rise: {column} rises by {rise:.3g}, 10 % of it at {format_rate(base)}, "
            f"90 % at {format_rate(top)}"
        ),
        index=int(rows[elbow]),
    )
