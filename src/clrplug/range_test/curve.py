"""The LR range test's record as the suggestion rules read it: the curve and its smoothing.

:class:`RangeCurve` holds the per-step rates, losses and metrics of a sweep;
:class:`RuleResult` is what a rule answers. The helpers below cut a curve at
divergence, trim it, smooth it (a running median, then a centred mean, over about a
tenth of the points) and measure its noise, the same way for every rule. NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

import numpy as np

from clrplug.errors import InvalidArgumentError

__all__ = [
    "FASTAI_SMOOTHING", "MIN_POINTS", "SIGNIFICANCE", "LossView", "RangeCurve", "RuleResult",
    "ema", "format_rate", "index_near", "is_significant", "loss_view", "noise_level",
    "slope_per_log_lr", "slope_per_step", "smooth_values", "smoothing_width", "within_sweep",
]

#: fastai's ``AvgSmoothLoss`` factor, the recorder's default ``smoothing``.
FASTAI_SMOOTHING = 0.98

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
            early (the step that tripped the stop rule); clrplug's own rules ignore
            it and everything after it, fastai's keep it (fastai's recorder holds
            the step that stopped the test, and ``lr_find`` trims the last 5 steps).
        smooth_loss: the recorder's moving average of the loss (fastai's
            ``AvgSmoothLoss``), which fastai's rules read; default: :func:`ema` of
            ``loss`` with fastai's factor 0.98.
        planned_steps: the steps the sweep was planned to last (fastai's ``num_it``:
            ``lr_find`` drops the first ``num_it // 10`` steps); default ``len(lr)``.

    Raises:
        InvalidArgumentError: arrays that are not one-dimensional or not as long as
            ``lr``, a non-finite, negative or decreasing ``lr``, a negative
            ``diverged_at``, or ``planned_steps`` not a positive integer.

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
    smooth_loss: np.ndarray | None = None
    planned_steps: int | None = None

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
        if self.smooth_loss is None:
            smooth = ema(loss, FASTAI_SMOOTHING)
            smooth.flags.writeable = False
        else:
            smooth = _as_vector("smooth_loss", self.smooth_loss)
            if len(smooth) != len(lr):
                raise InvalidArgumentError(
                    f"smooth_loss has {len(smooth)} values, lr has {len(lr)}: one per step."
                )
        planned = self.planned_steps
        if planned is None:
            planned = len(lr)
        elif isinstance(planned, bool) or not isinstance(planned, (int, np.integer)) or planned < 1:
            raise InvalidArgumentError(
                f"planned_steps must be None or an integer >= 1, got {planned!r}."
            )
        object.__setattr__(self, "smooth_loss", smooth)
        object.__setattr__(self, "planned_steps", int(planned))
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
        end, smooth = self.valid_length, self.smooth_loss
        assert smooth is not None  # set by __post_init__
        return RangeCurve(
            self.lr[:end], self.loss[:end], {k: v[:end] for k, v in self.metrics.items()},
            smooth_loss=smooth[:end], planned_steps=self.planned_steps,
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
        view = loss_view(self, require_descent=False)
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


def smooth_values(values: np.ndarray, width: int) -> np.ndarray:
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


def smoothing_width(points: int) -> int:
    """About a tenth of the points, odd, at least 3 (the seed's accuracy smoothing)."""
    return max(3, points // 10) | 1


def noise_level(raw: np.ndarray, smooth: np.ndarray, width: int) -> float:
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


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Bias-corrected exponential moving average (fastai's smoothed loss); NaN passes through.

    ``average -= (average - value) * (1 - smoothing)`` rounded once, as
    ``torch.lerp`` computes it (a fused multiply-add), then divided by
    ``1 - smoothing**seen``: fastai's ``AvgSmoothLoss`` to the last bit (its ``valley``
    compares losses strictly; on a flat stretch rounding decides). A non-finite
    value is passed through and not averaged.
    """
    out = np.full(len(values), np.nan)
    average, seen, weight = 0.0, 0, 1.0 - smoothing
    for i, value in enumerate(values):
        if not np.isfinite(value):
            out[i] = value
            continue
        seen += 1
        average = _fused_multiply_add(-(average - float(value)), weight, average)
        out[i] = average / (1.0 - smoothing**seen)
    return out


def _fused_multiply_add(a: float, b: float, c: float) -> float:
    """``a * b + c`` rounded once (``math.fma`` from Python 3.13; exact fractions before)."""
    fma = getattr(math, "fma", None)
    if fma is not None:
        return float(fma(a, b, c))
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def is_significant(move: float, noise: float, level: float) -> bool:
    """Whether ``move`` exceeds :data:`SIGNIFICANCE` noise units (and rounding at ``level``)."""
    return bool(move > SIGNIFICANCE * noise and move > 1e-9 * max(abs(level), 1e-300))


@dataclass(frozen=True, eq=False)
class LossView:
    """The trimmed, smoothed loss the loss rules read (positions relative to ``offset``)."""

    offset: int  # index in curve.lr of position 0
    lr: np.ndarray
    raw: np.ndarray
    s: np.ndarray  # smoothed; NaN within h of either end
    h: int  # half the smoothing width
    m: int  # number of points
    noise: float
    bottom: int  # position of the lowest smoothed loss (first one)


def loss_view(curve: RangeCurve, require_descent: bool = True) -> LossView | None:
    """The curve cut before divergence, trimmed like fastai's, smoothed, its noise measured.

    None when fewer than :data:`MIN_POINTS` remain, or (``require_descent``) when the
    smoothed loss does not fall by more than :data:`SIGNIFICANCE` noise units.
    """
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
    width = smoothing_width(m)
    h = width // 2
    s = smooth_values(raw, width)
    inner = slice(h, m - h)
    bottom = h + int(np.argmin(s[inner]))
    noise = noise_level(raw[inner], s[inner], width)
    drop = float(np.max(s[h : bottom + 1]) - s[bottom])
    if require_descent and not is_significant(drop, noise, float(np.max(np.abs(s[inner])))):
        return None
    return LossView(start, lr, raw, s, h, m, noise, bottom)


def slope_per_step(view: LossView) -> np.ndarray:
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


def slope_per_log_lr(view: LossView) -> np.ndarray:
    """Like :func:`slope_per_step`, per unit of ``log(lr)``: the same on any sweep's spacing."""
    s, h, m = view.s, view.h, view.m
    out = np.full(m, np.nan)
    if m > 4 * h:
        with np.errstate(divide="ignore"):
            log_lr = np.log(view.lr)
        run = log_lr[3 * h : m - h] - log_lr[h : m - 3 * h]
        out[2 * h : m - 2 * h] = (s[3 * h : m - h] - s[h : m - 3 * h]) / run
    return out


def index_near(curve: RangeCurve, rate: float) -> int:
    """Index of the swept rate nearest to ``rate`` on the logarithmic axis."""
    positive = np.flatnonzero(curve.lr > 0)
    distance = np.abs(np.log(curve.lr[positive]) - math.log(rate))
    return int(positive[int(np.argmin(distance))])


def within_sweep(curve: RangeCurve, rate: float) -> float:
    """``rate`` clipped to the sweep's positive rates."""
    positive = curve.lr[curve.lr > 0]
    return float(np.clip(rate, positive[0], positive[-1]))


def format_rate(rate: float) -> str:
    """A rate as the rules' reasons write it (``1.23e-03``)."""
    return f"{rate:.2e}"


