"""Named suggestion rules: read the LR range test's curves, suggest the learning rate.

Each rule is a pure function ``rule(curve) -> RuleResult | None`` of a
:class:`RangeCurve` (the per-step record of the sweep): fastai's ``valley``,
``steep``, ``minimum`` and ``slide``, re-implemented from their definitions, and
clrplug's own ``accuracy_rise`` (the seed's start-of-rise and elbow). The range
test builds the curve from its record and resolves rules by name through the
registry, which lists :data:`BUILTIN_RULES` like any plugin's rules. NumPy only.

Shared robustness, applied by every rule before it looks at the curve:

- cut at ``diverged_at`` and at the first non-finite loss;
- the loss rules also drop fastai's first 10 % and last 5 steps;
- smoothing: a running median (a spike shorter than half its window vanishes, a
  monotone stretch is unchanged), then a moving average centred on each point, both
  over about a tenth of the points, kept only where the window fits in the curve;
- a rule returns None when fewer than 8 points are left, or when the smoothed curve
  does not move by more than :data:`SIGNIFICANCE` (8) times its noise (the scatter
  of the raw values around it, from their median absolute deviation, over the
  square root of the window).

Where fastai reads its rules off the *causal* moving average of the loss (factor
0.98), these read the centred average: the causal one lags the loss by up to
``0.98 / 0.02 = 49`` steps, a third of a 150-step sweep, and always towards larger
rates, the side on which training diverges. The loss rules also only look at the
curve up to its lowest point: whatever comes after it is the diverging side.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from clrplug.errors import InvalidArgumentError

__all__ = [
    "BUILTIN_RULES",
    "MIN_POINTS",
    "SIGNIFICANCE",
    "RangeCurve",
    "RuleResult",
    "accuracy_rise",
    "minimum",
    "slide",
    "steep",
    "valley",
]

#: Fewest usable points (after cutting and trimming) a rule reads anything from.
MIN_POINTS = 8

#: A curve counts as moving when its smoothed values move by more than this many times
#: their noise. Pure noise of about ten independent smoothed values spans 3 to 4 noise
#: units (the seed's factor 3 fires on about one flat noisy curve of 100 steps in
#: three); 8 leaves real curves, whose descent is tens of noise units, well clear.
SIGNIFICANCE = 8.0

# fastai's trimming of the loss curve before its rules: the first tenth of the sweep
# (the network has barely moved, the loss is noisy), and the last 5 steps.
_TRIM_START_FRACTION = 10
_TRIM_END = 5
_MEDIAN_MAX_WIDTH = 51
_MEDIAN_BLOCK = 4096


# -- the curve ------------------------------------------------------------------------------


def _as_vector(name: str, values: object) -> np.ndarray:
    array = np.array(values, dtype=np.float64, copy=True)
    if array.ndim != 1:
        raise InvalidArgumentError(
            f"{name} must be one-dimensional (one value per step), got shape {array.shape}."
        )
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class RangeCurve:
    """What a rule sees: the range test's per-step record.

    Args:
        lr: the learning rate of each step, increasing (float64).
        loss: each step's training loss; NaN or inf after divergence are allowed.
        metrics: other per-step columns, e.g. ``"accuracy"`` and ``"val_accuracy"``
            (NaN where not measured), each as long as ``lr``.
        diverged_at: index of the first step past divergence when the test stopped
            early (the step that tripped the stop rule); it and everything after
            it are ignored.

    Raises:
        InvalidArgumentError: arrays that are not one-dimensional or not as long as
            ``lr``, a non-finite, negative or decreasing ``lr``, or a negative
            ``diverged_at``.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, minimum

    lr = np.geomspace(1e-5, 1.0, 200)
    loss = 2.0 - np.tanh(np.log10(lr) + 3.0) + np.exp(4 * (np.log10(lr) + 0.5))
    curve = RangeCurve(lr, loss)
    result = minimum(curve)
    assert result is not None and lr[0] <= result.max_lr <= lr[-1]
    assert result.reason.startswith("minimum:")
    ```
    """

    lr: np.ndarray
    loss: np.ndarray
    metrics: Mapping[str, np.ndarray] = field(default_factory=dict)
    diverged_at: int | None = None

    def __post_init__(self) -> None:
        lr = _as_vector("lr", self.lr)
        loss = _as_vector("loss", self.loss)
        if len(loss) != len(lr):
            raise InvalidArgumentError(
                f"loss has {len(loss)} values, lr has {len(lr)}: one of each per step."
            )
        if not np.all(np.isfinite(lr)) or np.any(lr < 0):
            raise InvalidArgumentError(f"lr must hold finite rates >= 0, got {lr!r}.")
        if np.any(np.diff(lr) < 0):
            raise InvalidArgumentError(
                f"lr must not decrease (the range test sweeps upwards), got {lr!r}."
            )
        metrics: dict[str, np.ndarray] = {}
        for key, values in dict(self.metrics).items():
            column = _as_vector(f"metrics[{key!r}]", values)
            if len(column) != len(lr):
                raise InvalidArgumentError(
                    f"metrics[{key!r}] has {len(column)} values, lr has {len(lr)}: "
                    "one per step (NaN where not measured)."
                )
            metrics[str(key)] = column
        diverged = self.diverged_at
        if diverged is not None:
            if isinstance(diverged, bool) or not isinstance(diverged, (int, np.integer)):
                raise InvalidArgumentError(
                    f"diverged_at must be None or a step index, got {diverged!r}."
                )
            if diverged < 0:
                raise InvalidArgumentError(f"diverged_at must be >= 0, got {diverged!r}.")
            diverged = int(diverged)
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "metrics", MappingProxyType(metrics))
        object.__setattr__(self, "diverged_at", diverged)

    def __len__(self) -> int:
        return len(self.lr)

    @property
    def valid_length(self) -> int:
        """Steps before ``diverged_at`` and before the first non-finite loss."""
        end = len(self.lr) if self.diverged_at is None else min(self.diverged_at, len(self.lr))
        bad = np.flatnonzero(~np.isfinite(self.loss[:end]))
        return int(bad[0]) if len(bad) else end

    def valid(self) -> RangeCurve:
        """The curve cut before divergence: its first :attr:`valid_length` steps."""
        end = self.valid_length
        return RangeCurve(
            self.lr[:end], self.loss[:end], {k: v[:end] for k, v in self.metrics.items()}
        )

    def accuracy_key(self) -> str | None:
        """The accuracy column :func:`accuracy_rise` reads, or None to read the loss.

        A validation accuracy (``val_*acc*``) when it has at least :data:`MIN_POINTS`
        finite values before divergence, else a training accuracy (``*acc*``), else None.
        """
        end = self.valid_length
        for validation in (True, False):
            for key, values in self.metrics.items():
                rest = key[4:] if key.startswith("val_") else key
                if key.startswith("val_") != validation or "acc" not in rest:
                    continue
                if rest.startswith("val_"):
                    continue
                if np.count_nonzero(np.isfinite(values[:end])) >= MIN_POINTS:
                    return key
        return None

    def smoothed_loss(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lr, loss)``: the smoothed loss curve the loss rules read.

        Cut before divergence, trimmed of the first 10 % and last 5 steps, through a
        running median and a moving average centred on each point, both over about a
        tenth of the points, where the window fits. Empty arrays when fewer than
        :data:`MIN_POINTS` steps remain.
        """
        view = _loss_view(self, require_descent=False)
        if view is None:
            return np.empty(0), np.empty(0)
        inner = slice(view.h, view.m - view.h)
        return view.lr[inner].copy(), view.s[inner].copy()


@dataclass(frozen=True)
class RuleResult:
    """What a rule suggests.

    Args:
        max_lr: the suggested upper bound (for a one-cycle schedule, its ``max_lr``).
        base_lr: the rule's own lower bound when it has one (``accuracy_rise``),
            else None (take a fraction of ``max_lr``).
        reason: one line saying what the rule found, starting with its name.
        index: index into ``curve.lr`` of the step the suggestion marks (for plots):
            the swept rate nearest to ``max_lr``.

    Raises:
        InvalidArgumentError: a rate that is not a finite number ``>= 0``, a
            ``base_lr`` above ``max_lr``, a ``reason`` that is not one line, or a
            negative ``index``.
    """

    max_lr: float
    base_lr: float | None
    reason: str
    index: int

    def __post_init__(self) -> None:
        for name in ("max_lr", "base_lr"):
            value = getattr(self, name)
            if value is None and name == "base_lr":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise InvalidArgumentError(f"RuleResult.{name} must be a number, got {value!r}.")
            if not math.isfinite(float(value)) or float(value) < 0:
                raise InvalidArgumentError(
                    f"RuleResult.{name} must be a finite rate >= 0, got {value!r}."
                )
            object.__setattr__(self, name, float(value))
        if self.base_lr is not None and self.base_lr > self.max_lr:
            raise InvalidArgumentError(
                f"RuleResult.base_lr ({self.base_lr!r}) must not exceed max_lr ({self.max_lr!r})."
            )
        if not isinstance(self.reason, str) or "\n" in self.reason or "\r" in self.reason:
            raise InvalidArgumentError(f"RuleResult.reason must be one line, got {self.reason!r}.")
        if isinstance(self.index, bool) or not isinstance(self.index, (int, np.integer)):
            raise InvalidArgumentError(f"RuleResult.index must be an integer, got {self.index!r}.")
        if self.index < 0:
            raise InvalidArgumentError(f"RuleResult.index must be >= 0, got {self.index!r}.")
        object.__setattr__(self, "index", int(self.index))


# -- shared preparation ---------------------------------------------------------------------


def _running_median(values: np.ndarray, width: int) -> np.ndarray:
    """Median over ``width`` (odd) points centred on each; near the ends, over those there are.

    A spike shorter than half the window disappears; a monotone stretch is unchanged.
    """
    half = width // 2
    out = np.empty(len(values))
    padded = np.concatenate([np.full(half, np.nan), values, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    for lo in range(0, len(values), _MEDIAN_BLOCK):  # bounded memory on long sweeps
        out[lo : lo + _MEDIAN_BLOCK] = np.nanmedian(windows[lo : lo + _MEDIAN_BLOCK], axis=1)
    return out


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """The rules' smoothing: running median, then centred mean, both over ``width`` points.

    NaN within ``width // 2`` of either end. The median is capped at
    ``_MEDIAN_MAX_WIDTH`` points: an event that lasts longer is part of the curve.
    """
    return _centred_mean(_running_median(values, min(width, _MEDIAN_MAX_WIDTH)), width)


def _centred_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Mean over ``width`` (odd) points centred on each, NaN where the window does not fit.

    No padding: an edge value repeated to fill the window would weigh half of it, and a
    noisy first point would then set the level the rules measure from.
    """
    half = width // 2
    out = np.full(len(values), np.nan)
    if len(values) >= width:
        sums = np.cumsum(np.concatenate([[0.0], values]))
        out[half : len(values) - half] = (sums[width:] - sums[:-width]) / width
    return out


def _smoothing_width(points: int) -> int:
    """About a tenth of the points, odd, at least 3 (the seed's accuracy smoothing)."""
    return max(3, points // 10) | 1


def _noise(raw: np.ndarray, smooth: np.ndarray, width: int) -> float:
    """Noise of the smoothed values: the raw values' scatter around them over sqrt(width).

    The scatter is the median absolute deviation scaled to a standard deviation (so
    spikes do not inflate it), corrected for the point's own share of its average.
    """
    residual = raw - smooth
    residual = residual[np.isfinite(residual)]
    if not len(residual):
        return 0.0
    sigma = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    sigma /= math.sqrt(1.0 - 1.0 / width)
    # An upper bound rather than the estimate: from a dozen residuals the median
    # absolute deviation is often half the true scatter, and a short flat curve would
    # then pass for a descent.
    sigma *= 1.0 + 2.0 / math.sqrt(len(residual))
    return sigma / math.sqrt(width)


def _significant(move: float, noise: float, level: float) -> bool:
    return bool(move > SIGNIFICANCE * noise and move > 1e-9 * max(abs(level), 1e-300))


@dataclass(frozen=True, eq=False)
class _LossView:
    """The trimmed, smoothed loss the loss rules read (positions relative to ``offset``)."""

    offset: int  # index in curve.lr of position 0
    lr: np.ndarray
    raw: np.ndarray
    s: np.ndarray  # smoothed; NaN within h of either end
    h: int  # half the smoothing width
    m: int  # number of points
    noise: float
    bottom: int  # position of the lowest smoothed loss (first one)


def _loss_view(curve: RangeCurve, require_descent: bool = True) -> _LossView | None:
    # Cut first, then trim: the result does not depend on what followed the divergence.
    end = curve.valid_length
    start = end // _TRIM_START_FRACTION
    # A linear sweep starts at 0, where log(lr) does not exist.
    start = max(start, int(np.searchsorted(curve.lr, 0.0, side="right")))
    stop = end - _TRIM_END
    m = stop - start
    if m < MIN_POINTS:
        return None
    lr = curve.lr[start:stop]
    raw = curve.loss[start:stop]
    width = _smoothing_width(m)
    h = width // 2
    s = _smooth(raw, width)
    inner = slice(h, m - h)
    bottom = h + int(np.argmin(s[inner]))
    noise = _noise(raw[inner], s[inner], width)
    drop = float(np.max(s[h : bottom + 1]) - s[bottom])
    if require_descent and not _significant(drop, noise, float(np.max(np.abs(s[inner])))):
        return None
    return _LossView(start, lr, raw, s, h, m, noise, bottom)


def _slope_per_step(view: _LossView) -> np.ndarray:
    """Slope of the smoothed loss over its own smoothing window, per step (NaN near the ends).

    A central difference across the window: on the average of ``2h + 1`` points, the
    one-step difference would be mostly noise.
    """
    s, h = view.s, view.h
    out = np.full(view.m, np.nan)
    m = view.m
    if m > 4 * h:
        out[2 * h : m - 2 * h] = (s[3 * h : m - h] - s[h : m - 3 * h]) / (2 * h)
    return out


def _index_near(curve: RangeCurve, rate: float) -> int:
    """Index of the swept rate nearest to ``rate`` on the logarithmic axis."""
    positive = np.flatnonzero(curve.lr > 0)
    distance = np.abs(np.log(curve.lr[positive]) - math.log(rate))
    return int(positive[int(np.argmin(distance))])


def _within_sweep(curve: RangeCurve, rate: float) -> float:
    positive = curve.lr[curve.lr > 0]
    return float(np.clip(rate, positive[0], positive[-1]))


def _fmt(rate: float) -> str:
    return f"{rate:.2e}"


def _longest_descent_lengths(values: np.ndarray) -> np.ndarray:
    """For each point, the length of the longest strictly decreasing subsequence ending there.

    Patience sorting, O(n log n): ``tails[k]`` is the highest last value of a decreasing
    subsequence of length ``k + 1`` seen so far, stored negated so that ``bisect`` works
    on an increasing list.
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


# -- the rules ------------------------------------------------------------------------------


def valley(curve: RangeCurve) -> RuleResult | None:
    """fastai's default: halfway along the longest descent of the loss.

    On the smoothed loss up to its lowest point, find the longest strictly
    decreasing subsequence (as fastai does, here in O(n log n)); with ``L`` its
    number of points and ``end`` its last point, the descent is taken to be the
    ``L`` steps ending at ``end``, and the suggestion is ``start + int(L/3) +
    int(L/3/2)``: the middle of the descent's middle third.

    Against noise, the subsequence is taken on the smoothed loss tilted upwards by
    one noise unit per smoothing window: a point only follows another if the loss
    fell faster than that, so the wiggles of a noisy plateau do not join the
    descent and stretch it to lower rates (on a noiseless curve the tilt is nil and
    this is fastai's rule).

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
    from clrplug.range_test.rules import RangeCurve, valley

    lr = np.geomspace(1e-6, 10.0, 300)
    u = np.log10(lr)
    loss = 2.5 - 2.0 * np.clip((u + 4.0) / 3.0, 0, 1) + np.exp(3 * (u - 0.5))
    result = valley(RangeCurve(lr, loss))
    assert 10**-2.7 < result.max_lr < 10**-2.3  # halfway down the descent 1e-4..1e-1
    ```
    """
    view = _loss_view(curve)
    if view is None:
        return None
    first = view.h
    descent = view.s[first : view.bottom + 1]
    # Tilted up by one noise unit per smoothing window: "descending" means falling by
    # more than the noise, so the wiggles of a noisy plateau do not join the descent.
    tilt = view.noise / (2 * view.h + 1) * np.arange(len(descent))
    lengths = _longest_descent_lengths(descent + tilt)
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
            f"valley: longest descent {_fmt(view.lr[start])}..{_fmt(view.lr[end])} "
            f"({length} steps), middle of its middle third -> {_fmt(rate)}"
        ),
        index=index,
    )


def steep(curve: RangeCurve) -> RuleResult | None:
    """fastai's ``steep``: where the loss falls fastest against log(lr).

    The slope d(loss)/d(log lr) of the smoothed loss is measured across its own
    smoothing window, and its most negative value is taken, up to the lowest loss.

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
    from clrplug.range_test.rules import RangeCurve, steep

    lr = np.geomspace(1e-6, 10.0, 300)
    loss = 2.5 - np.tanh(np.log10(lr) + 2.5)  # steepest at 10**-2.5
    assert abs(np.log10(steep(RangeCurve(lr, loss)).max_lr) + 2.5) < 0.1
    ```
    """
    view = _loss_view(curve)
    if view is None:
        return None
    slope = _slope_per_step(view)
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
        reason=f"steep: loss falls fastest ({per_decade:.3g} per decade) at {_fmt(rate)}",
        index=index,
    )


def minimum(curve: RangeCurve) -> RuleResult | None:
    """fastai's ``minimum``: a tenth of the rate at the lowest loss.

    The lowest point of the smoothed loss (the first, if several are equal), its
    rate divided by 10. When that falls below the sweep, the sweep's lowest
    positive rate is suggested instead.

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
    from clrplug.range_test.rules import RangeCurve, minimum

    lr = np.geomspace(1e-6, 10.0, 300)
    loss = (np.log10(lr) + 1.0) ** 2 + 1.0  # lowest at 1e-1
    assert abs(np.log10(minimum(RangeCurve(lr, loss)).max_lr) + 2.0) < 0.1
    ```
    """
    view = _loss_view(curve)
    if view is None:
        return None
    lowest = float(view.lr[view.bottom])
    rate = _within_sweep(curve, lowest / 10.0)
    index = _index_near(curve, rate)
    return RuleResult(
        max_lr=rate,
        base_lr=None,
        reason=(
            f"minimum: lowest loss {view.s[view.bottom]:.4g} at {_fmt(lowest)}, "
            f"a tenth of it -> {_fmt(rate)}"
        ),
        index=index,
    )


def slide(
    curve: RangeCurve, lr_diff: int = 15, thresh: float = 0.005, adjust_value: float = 1.0
) -> RuleResult | None:
    """fastai's interval slide rule: the last stretch over which the loss falls steadily.

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
    from clrplug.range_test.rules import RangeCurve, slide

    lr = np.geomspace(1e-6, 10.0, 300)
    u = np.log10(lr)
    loss = 2.5 - 2.0 * np.clip((u + 4.0) / 3.0, 0, 1) + np.exp(3 * (u - 0.5))
    assert 1e-4 < slide(RangeCurve(lr, loss)).max_lr < 1e-1  # in the straight descent
    ```
    """
    if isinstance(lr_diff, bool) or not isinstance(lr_diff, (int, np.integer)) or lr_diff < 1:
        raise InvalidArgumentError(f"lr_diff must be an integer >= 1 (steps), got {lr_diff!r}.")
    if not isinstance(thresh, (int, float, np.number)) or not thresh >= 0:
        raise InvalidArgumentError(f"thresh must be a number >= 0 (loss per step), got {thresh!r}.")
    if not isinstance(adjust_value, (int, float, np.number)) or not 0 < adjust_value < math.inf:
        raise InvalidArgumentError(
            f"adjust_value must be a finite number > 0, got {adjust_value!r}."
        )
    view = _loss_view(curve)
    if view is None:
        return None
    slope = _slope_per_step(view)
    low, right = 2 * view.h, min(view.bottom, view.m - 1 - 2 * view.h)
    for r in range(right, low + lr_diff - 1, -1):
        left = r - lr_diff
        if abs(slope[r] - slope[left]) <= thresh:
            found = float(view.lr[left])
            rate = _within_sweep(curve, found * adjust_value)
            if not math.isfinite(rate):
                return None
            return RuleResult(
                max_lr=rate,
                base_lr=None,
                reason=(
                    f"slide: slope steady over {lr_diff} steps from {_fmt(found)} "
                    f"(ends differ by {abs(slope[r] - slope[left]):.2g} <= {thresh:g} per step)"
                    f" -> {_fmt(rate)}"
                ),
                index=_index_near(curve, rate),
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
    width = _smoothing_width(n)
    h = width // 2
    smooth = _smooth(score, width)[h : n - h]
    noise = _noise(score[h : n - h], smooth, width)
    peak = int(np.argmax(smooth))
    rise = float(smooth[peak] - smooth[0])
    if not _significant(rise, noise, float(np.max(np.abs(smooth)))):
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
            f"accuracy_rise: {column} rises by {rise:.3g}, 10 % of it at {_fmt(base)}, "
            f"90 % at {_fmt(top)}"
        ),
        index=int(rows[elbow]),
    )


#: name -> (rule, one-line description), in a stable order.
BUILTIN_RULES: Mapping[str, tuple[Callable[[RangeCurve], RuleResult | None], str]] = (
    MappingProxyType(
        {
            "valley": (valley, "Middle of the longest descent of the loss (fastai's default)."),
            "steep": (steep, "Where the loss falls fastest against log(lr) (fastai)."),
            "minimum": (minimum, "A tenth of the rate at the lowest loss (fastai)."),
            "slide": (slide, "Left end of the last window of steady loss slope (fastai)."),
            "accuracy_rise": (
                accuracy_rise,
                "base_lr at 10 % and max_lr at 90 % of the accuracy's rise (the seed's rule).",
            ),
        }
    )
)
