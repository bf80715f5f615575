"""What a range test recorded, and the learning rates its suggestion rules read from it.

:class:`RangeTestResult` holds the per-step record; :meth:`RangeTestResult.suggest`
resolves a rule by name through the registry (built-in and plugin rules alike),
runs it on the record's :class:`~clrplug.range_test.rules.RangeCurve` and returns a
:class:`Suggestion`. NumPy only: Keras is imported only by the methods that build
a callback (:meth:`~RangeTestResult.cyclic_lr`, :meth:`~RangeTestResult.one_cycle`).
The defaults the benchmark chose are in :mod:`.defaults`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from clrplug import checks
from clrplug.errors import ClrplugError, InvalidArgumentError
from clrplug.range_test.curve import RangeCurve, RuleResult, smooth_values, smoothing_width
from clrplug.range_test.defaults import (
    BENCHMARKED_STEPS_PER_DECADE,
    DEFAULT_LOWER,
    DEFAULT_MAX_LR,
    DEFAULT_MIN_LR,
    DEFAULT_PEAK_FACTOR,
    DEFAULT_RULE,
    DEFAULT_STEPS,
)
from clrplug.range_test.rules import AmbiguousCurveWarning, ambiguity
from clrplug.range_test.suggestion import Suggestion, rule_record
from clrplug.records import SuggestionRule
from clrplug.registry import default_registry

if TYPE_CHECKING:
    from clrplug.callback import CyclicLR
    from clrplug.one_cycle import OneCycleLR

__all__ = [
    "DEFAULT_LOWER",
    "DEFAULT_MAX_LR",
    "DEFAULT_MIN_LR",
    "DEFAULT_RULE",
    "DEFAULT_STEPS",
    "RangeTestResult",
    "Suggestion",
]

@dataclass(frozen=True, eq=False)
class RangeTestResult:
    """What :func:`~clrplug.lr_range_test` recorded, and the bounds its rules suggest.

    Each array has one entry per optimizer step of the test (one per
    ``steps_per_execution`` group when that is above 1).

    Attributes:
        lr: the learning rate of the step (float64 from :func:`sweep_rates`; the optimizer
            applies it rounded to float32).
        iterations: the optimizer's iteration count after the step.
        loss: the step's own training loss (de-averaged from Keras' running mean).
        smoothed_loss: ``loss`` through fastai's bias-corrected moving average with
            factor ``smoothing``: what the stop rule watched.
        metrics: every other logged value per step, de-averaged like the loss
            (``accuracy``, ...), and ``val_*`` results where validation ran (NaN
            between evaluations).
        min_lr: the sweep's first rate.
        max_lr: the sweep's last rate.
        steps: optimizer steps the sweep was planned to last.
        step_mode: ``"exp"`` or ``"linear"``.
        steps_per_epoch: optimizer steps in one epoch of the data, when known.
        stop_reason: ``"completed"`` (the whole sweep ran), ``"diverged"`` (the
            smoothed loss exceeded ``stop_factor`` times its best) or ``"nan"``.
        stop_factor: the stop rule's multiple of the best smoothed loss (None: off).
        smoothing: the moving average's factor.

    The suggestions come from named rules (docs/range-test.md lists them):
    :meth:`suggest` runs one, :meth:`suggestions` all of them side by side, and
    :attr:`suggested_base_lr`, :attr:`suggested_max_lr`, :meth:`cyclic_lr` and
    :meth:`one_cycle` use :data:`DEFAULT_RULE` with its bounds times
    :data:`~clrplug.range_test.defaults.DEFAULT_PEAK_FACTOR` (the default workflow,
    chosen together by leave-one-task-out). A rule that gives only ``max_lr`` gets
    ``base_lr = max_lr / base_div`` (:data:`DEFAULT_LOWER`).
    """

    lr: np.ndarray
    iterations: np.ndarray
    loss: np.ndarray
    smoothed_loss: np.ndarray
    metrics: Mapping[str, np.ndarray]
    min_lr: float
    max_lr: float
    steps: int
    step_mode: str
    steps_per_epoch: int | None
    stop_reason: str
    stop_factor: float | None
    smoothing: float
    # Suggestions by (rule, base_div), and the curve (immutable) under "curve".
    _cache: dict[Any, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __repr__(self) -> str:
        def fmt(value: float | None) -> str:
            return "None" if value is None else f"{value:.3g}"

        return (
            f"RangeTestResult(steps={len(self.lr)}/{self.steps}, step_mode={self.step_mode!r}, "
            f"lr={self.min_lr:.3g}..{self.max_lr:.3g}, stop_reason={self.stop_reason!r}, "
            f"rule={DEFAULT_RULE!r}, peak_factor={DEFAULT_PEAK_FACTOR:g}, "
            f"suggested_base_lr={fmt(self.suggested_base_lr)}, "
            f"suggested_max_lr={fmt(self.suggested_max_lr)})"
        )

    # -- the record ------------------------------------------------------------------

    @property
    def history(self) -> dict[str, np.ndarray]:
        """``lr``, ``iterations``, ``loss`` and the metrics: the shape of ``CyclicLR.history``."""
        out = {"lr": self.lr.copy(), "iterations": self.iterations.copy(), "loss": self.loss.copy()}
        out.update({key: value.copy() for key, value in self.metrics.items()})
        return out

    @property
    def valid_steps(self) -> int:
        """Steps before the one that stopped the test (all of them if it completed)."""
        if self.stop_reason == "completed":
            return len(self.lr)
        return max(0, len(self.lr) - 1)

    def curve(self) -> RangeCurve:
        """The record as the rules read it; ``diverged_at`` is set when the test stopped early."""
        curve = self._cache.get("curve")
        if not isinstance(curve, RangeCurve):
            curve = RangeCurve(
                self.lr,
                self.loss,
                dict(self.metrics),
                diverged_at=None if self.stop_reason == "completed" else self.valid_steps,
                smooth_loss=self.smoothed_loss,
                planned_steps=self.steps,
            )
            self._cache["curve"] = curve
        return curve

    def smoothed(self, key: str = "loss") -> tuple[np.ndarray, np.ndarray]:
        """``(lr, values)``: column ``key`` as the rules see it, for plots.

        Cut before divergence, NaN rows dropped, through the rules' running median and
        centred moving average over about a tenth of the points, where the window fits.
        The loss is also trimmed as the loss rules trim it (the first 10 % and the last
        5 steps).
        """
        curve = self.curve()
        if key == "loss":
            return curve.smoothed_loss()
        if key not in self.metrics:
            raise InvalidArgumentError(
                f"key={key!r} was not recorded; choose one of {['loss', *self.metrics]}."
            )
        end = curve.valid_length
        values = np.asarray(self.metrics[key][:end], dtype=np.float64)
        keep = np.isfinite(values)
        values, lrs = values[keep], np.asarray(self.lr[:end], dtype=np.float64)[keep]
        width = smoothing_width(len(values))
        smooth = smooth_values(values, width)
        inside = np.isfinite(smooth)
        return lrs[inside], smooth[inside]

    # -- suggestions -------------------------------------------------------------------

    def suggest(
        self,
        rule: str | SuggestionRule | None = None,
        *,
        base_div: float = DEFAULT_LOWER,
        _warn: bool = True,
    ) -> Suggestion | None:
        """The bounds rule ``rule`` reads from the record, or None when it finds no range.

        Args:
            rule: a registered rule's name (fastai's ``valley``, ``steep``, ``minimum``,
                ``slide``; clrplug's ``robust_valley``, ``robust_steep``,
                ``robust_minimum``, ``robust_slide``, ``accuracy_rise``; or a plugin's:
                ``clrplug policies`` lists them), or a :class:`~clrplug.SuggestionRule`.
                Default :data:`DEFAULT_RULE`.
            base_div: ``base_lr = max_lr / base_div`` when the rule gives no lower bound
                of its own (``accuracy_rise`` does). Default :data:`DEFAULT_LOWER`.

        Warns:
            AmbiguousCurveWarning: once per result and rule, when the curve does not
                support a confident suggestion (:meth:`ambiguity`; the line names what
                to try); the suggestion's ``caveat`` holds the same line.

        Raises:
            UnknownNameError: no rule is registered under that name.
            ClrplugError: the rule raised or returned something that is not a
                ``RuleResult`` (the message names the rule and where it came from).
        """
        record = rule_record(DEFAULT_RULE if rule is None else rule)
        divisor = checks.real("base_div", base_div, low=1.0)
        key = (record, divisor)
        try:
            hash(key)
        except TypeError:  # a rule_fn that cannot be hashed: not cached
            return self._run(record, divisor)
        if key not in self._cache:
            self._cache[key] = self._run(record, divisor)
        found: Suggestion | None = self._cache[key]
        warned: set[Any] = self._cache.setdefault("warned", set())
        if found is not None and found.caveat is not None and _warn and key not in warned:
            warned.add(key)
            warnings.warn(
                f"clrplug: the range test's rule {record.name!r} suggests max_lr="
                f"{found.max_lr:.3g}, but {found.caveat}",
                AmbiguousCurveWarning, stacklevel=2,
            )
        return found

    def _run(self, record: SuggestionRule, base_div: float) -> Suggestion | None:
        curve = self.curve()
        try:
            found = record.rule_fn(curve)
        except Exception as exc:
            raise ClrplugError(
                f"{record.label} raised {type(exc).__name__}: {exc}"
            ) from exc
        if found is None:
            return None
        if not isinstance(found, RuleResult):
            raise ClrplugError(
                f"{record.label} returned {type(found).__name__} {found!r}; a rule returns a "
                "clrplug.range_test.rules.RuleResult or None."
            )
        if found.index >= len(curve):
            raise ClrplugError(
                f"{record.label} returned index={found.index}, past the record's "
                f"{len(curve)} steps."
            )
        base = found.base_lr if found.base_lr is not None else found.max_lr / base_div
        return Suggestion(
            record.name, base, found.max_lr, found.reason, found.index, self.ambiguity()
        )

    def ambiguity(self) -> str | None:
        """One line saying why no suggestion from this record should be trusted, or None.

        See :func:`clrplug.range_test.rules.ambiguity`: the loss diverged right after the
        start, shows no clear descent, or the rules disagree by more than about an
        order of magnitude. The line names what to try.
        """
        if "ambiguity" not in self._cache:
            self._cache["ambiguity"] = ambiguity(self.curve())
        caveat: str | None = self._cache["ambiguity"]
        return caveat

    def suggestions(self, *, base_div: float = DEFAULT_LOWER) -> dict[str, Suggestion | None]:
        """Every registered rule's suggestion, by name (None where a rule finds no range).

        A plugin's rule that fails, or a name two sources register, is reported with a
        warning and given as None; a built-in rule that fails raises.
        """
        out: dict[str, Suggestion | None] = {}
        records = default_registry().records("rule")
        names = [record.name for record in records]
        for record in records:
            if names.count(record.name) > 1:
                if record.name not in out:
                    warnings.warn(
                        f"clrplug: rule {record.name!r} is registered by more than one source "
                        "(result.suggest() names them); it is left out.",
                        UserWarning, stacklevel=2,
                    )
                out[record.name] = None
                continue
            try:
                out[record.name] = self.suggest(record, base_div=base_div, _warn=False)
            except ClrplugError as exc:
                if record.source.kind == "builtin":
                    raise
                warnings.warn(f"clrplug: {exc}", UserWarning, stacklevel=2)
                out[record.name] = None
        return out

    @property
    def suggested_base_lr(self) -> float | None:
        """The default workflow's lower bound: :attr:`suggested_max_lr` / :data:`DEFAULT_LOWER`.

        :data:`DEFAULT_RULE`'s ``base_lr`` times ``DEFAULT_PEAK_FACTOR``: what
        :meth:`cyclic_lr` cycles from by default. None if the rule found no range.
        """
        found = self.suggest()
        return None if found is None else found.base_lr * DEFAULT_PEAK_FACTOR

    @property
    def suggested_max_lr(self) -> float | None:
        """The default workflow's peak: :data:`DEFAULT_RULE`'s ``max_lr`` times ``DEFAULT_PEAK_FACTOR``.

        What :meth:`one_cycle` peaks at and :meth:`cyclic_lr` cycles to by default
        (``result.suggest().max_lr`` is the rule's own reading). None if the rule found
        no range.
        """
        found = self.suggest()
        return None if found is None else found.max_lr * DEFAULT_PEAK_FACTOR

    def _require(self, rule: str | SuggestionRule | None, base_div: float) -> Suggestion:
        found = self.suggest(rule, base_div=base_div)
        if found is None:
            name = rule_record(DEFAULT_RULE if rule is None else rule).name
            raise ClrplugError(
                f"the range test found no learning-rate range with rule {name!r}: its curve "
                f"shows no usable descent or rise between {self.min_lr:g} and "
                f"{self.max_lr:g} ({self.stop_reason}, {len(self.lr)} steps"
                f"{self._resolution_note()}). Try another rule (result.suggestions() shows "
                "them all), widen min_lr..max_lr or run more steps, or choose the bounds by "
                "hand from result.plot()."
            )
        return found

    @staticmethod
    def _peak_factor(rule: str | SuggestionRule | None, peak_factor: float | None) -> float:
        if peak_factor is None:
            return DEFAULT_PEAK_FACTOR if rule is None else 1.0
        return checks.real("peak_factor", peak_factor, low=0.0, low_open=True)

    def _resolution_note(self) -> str:
        """A hint when an exponential sweep was coarser than the rules were chosen at."""
        if self.step_mode != "exp" or not 0 < self.min_lr < self.max_lr:
            return ""
        per_decade = (self.steps - 1) / math.log10(self.max_lr / self.min_lr)
        if per_decade >= BENCHMARKED_STEPS_PER_DECADE * 0.8:
            return ""
        return (
            f"; {per_decade:.0f} steps per decade, where the rules were benchmarked at "
            f"{BENCHMARKED_STEPS_PER_DECADE:.0f} (slide's window and threshold are per step)"
        )

    # -- tools built on the result -----------------------------------------------------

    def plot(self, path: Any = None, ax: Any = None, **kwargs: Any) -> Any:
        """Loss (and accuracy) against the learning rate, every rule's suggestion marked.

        See :func:`clrplug.range_test.plot.plot_range_test`; needs ``clrplug[plot]``.
        Returns the matplotlib ``Figure``; writes it to ``path`` if given.
        """
        # Imported here: the range test works without matplotlib.
        from clrplug.range_test.plot import plot_range_test

        return plot_range_test(self, path=path, ax=ax, **kwargs)

    def cyclic_lr(
        self,
        step_size: float | None = None,
        mode: str = "triangular",
        *,
        rule: str | SuggestionRule | None = None,
        base_div: float = DEFAULT_LOWER,
        peak_factor: float | None = None,
        **kwargs: Any,
    ) -> CyclicLR:
        """A :class:`~clrplug.CyclicLR` between a rule's suggested bounds, times ``peak_factor``.

        Args:
            step_size: training iterations per half cycle. Default: 4 epochs' worth
                (Smith suggests 2 to 8 times the iterations in an epoch); required
                when the epoch length is unknown.
            mode: the policy, e.g. ``"triangular2"``.
            rule: the rule (see :meth:`suggest`); default :data:`DEFAULT_RULE`.
            base_div: ``base_lr = max_lr / base_div`` unless the rule gives its own.
            peak_factor: both bounds are the rule's times this. Default: with the
                default rule, :data:`~clrplug.range_test.defaults.DEFAULT_PEAK_FACTOR`
                (so the cycle runs from :attr:`suggested_base_lr` to
                :attr:`suggested_max_lr`); with a rule you name, 1.
            **kwargs: any other :class:`~clrplug.CyclicLR` argument (``gamma``, ...).

        Raises:
            ClrplugError: the rule found no range.
            InvalidArgumentError: ``step_size`` is None and the epoch length unknown.
        """
        found = self._require(rule, base_div)
        factor = self._peak_factor(rule, peak_factor)
        if step_size is None:
            if not self.steps_per_epoch:
                raise InvalidArgumentError(
                    "step_size=None: the epoch length of the range test's data is unknown, "
                    "so give step_size (training iterations per half cycle; Smith suggests "
                    "2-8 times the iterations in an epoch)."
                )
            step_size = 4 * self.steps_per_epoch
        from clrplug.callback import CyclicLR

        return CyclicLR(
            base_lr=found.base_lr * factor, max_lr=found.max_lr * factor, step_size=step_size,
            mode=mode, **kwargs,
        )

    def one_cycle(
        self,
        *,
        rule: str | SuggestionRule | None = None,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        peak_factor: float | None = None,
        **kwargs: Any,
    ) -> OneCycleLR:
        """A :class:`~clrplug.OneCycleLR` peaking at ``peak_factor`` times a rule's ``max_lr``.

        Args:
            rule: the rule (see :meth:`suggest`); default :data:`DEFAULT_RULE`.
            peak_factor: the peak is the rule's ``max_lr`` times this. Default: with the
                default rule, :data:`~clrplug.range_test.defaults.DEFAULT_PEAK_FACTOR`
                (chosen with it by leave-one-task-out); with a rule you name, 1.
            total_steps: the cycle's length; or ``epochs`` and ``steps_per_epoch``; or
                none of them, and the first ``fit`` decides.
            epochs: epochs of the cycle.
            steps_per_epoch: updates per epoch.
            **kwargs: any other :class:`~clrplug.OneCycleLR` argument (``pct_start``, ...).

        Raises:
            ClrplugError: the rule found no range.
        """
        found = self._require(rule, DEFAULT_LOWER)
        factor = self._peak_factor(rule, peak_factor)
        from clrplug.one_cycle import OneCycleLR

        return OneCycleLR(
            found.max_lr * factor, total_steps=total_steps, epochs=epochs,
            steps_per_epoch=steps_per_epoch, **kwargs,
        )

