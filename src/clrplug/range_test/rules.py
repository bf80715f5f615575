"""The range test's named suggestion rules, and the check that says when they cannot tell.

Each rule is a pure function ``rule(curve) -> RuleResult | None`` of a
:class:`RangeCurve` (the per-step record of the sweep). :data:`BUILTIN_RULES` lists
them for the registry, which resolves them by name like any plugin's rules:

- fastai's ``valley``, ``steep``, ``minimum`` and ``slide``
  (:mod:`.fastai_rules`): the same step as fastai 2.8's functions of those names
  on the same record, as ``lr_find`` applies them;
- clrplug's ``robust_valley``, ``robust_steep``, ``robust_minimum`` and
  ``robust_slide`` (:mod:`.robust_rules`): the same definitions read on a curve cut
  before divergence and smoothed without lag, and None instead of a number when
  the loss does not fall beyond its noise;
- ``accuracy_rise``: the seed's start-of-rise and elbow of the accuracy.

:func:`ambiguity` reads the curve once more and returns one line, naming what to
try, when no rule's number should be trusted: the loss diverged right after the
start, it shows no clear descent, or the rules disagree by more than
:data:`DISAGREEMENT` (about an order of magnitude). NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from clrplug.range_test.curve import (
    MIN_POINTS,
    SIGNIFICANCE,
    RangeCurve,
    RuleResult,
    format_rate,
    loss_view,
)
from clrplug.range_test.fastai_rules import minimum, slide, steep, valley
from clrplug.range_test.robust_rules import (
    accuracy_rise,
    robust_minimum,
    robust_slide,
    robust_steep,
    robust_valley,
)

__all__ = [
    "BUILTIN_RULES",
    "DISAGREEMENT",
    "EARLY_DIVERGENCE",
    "MIN_POINTS",
    "SIGNIFICANCE",
    "AmbiguousCurveWarning",
    "RangeCurve",
    "RuleResult",
    "accuracy_rise",
    "ambiguity",
    "minimum",
    "robust_minimum",
    "robust_slide",
    "robust_steep",
    "robust_valley",
    "slide",
    "steep",
    "valley",
]

#: The rules "disagree" when the highest and lowest ``max_lr`` of ``robust_valley``,
#: ``robust_minimum`` and ``robust_slide`` are more than this factor apart (1.25
#: decades). On a descent of one to two and a half decades they agree within about a
#: decade: ``robust_minimum`` is a decade below the lowest loss, ``robust_valley``
#: halfway down the descent. ``steep`` is left out: on a descent that is straight in
#: log(lr) any point of it is the steepest.
DISAGREEMENT = 10**1.25

#: The loss "diverged right after the start" when the test stopped within this
#: fraction of its planned steps.
EARLY_DIVERGENCE = 0.25


class AmbiguousCurveWarning(UserWarning):
    """The range test's curve does not support a confident suggestion (see :func:`ambiguity`)."""


def ambiguity(curve: RangeCurve) -> str | None:
    """One line saying why no suggestion from ``curve`` should be trusted, and what to try.

    None for a curve with a clear descent on which the smoothed loss rules agree
    within :data:`DISAGREEMENT`. Otherwise, the first of:

    - the loss diverged within the first :data:`EARLY_DIVERGENCE` of the planned steps
      (the sweep started too high);
    - the smoothed loss does not fall by more than :data:`SIGNIFICANCE` times its noise
      before it rises (no clear descent);
    - the rules disagree: the highest and lowest ``max_lr`` of ``robust_valley``,
      ``robust_minimum`` and ``robust_slide`` are more than :data:`DISAGREEMENT` apart.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test.rules import RangeCurve, ambiguity

    lr = np.geomspace(1e-5, 10.0, 200)
    flat = 2.3 + 0.01 * np.random.default_rng(0).standard_normal(200)
    assert ambiguity(RangeCurve(lr, flat)).startswith("no clear descent")
    ```
    """
    valid, planned = curve.valid_length, curve.planned_steps or len(curve)
    if valid < len(curve) and valid < EARLY_DIVERGENCE * planned:
        at = format_rate(float(curve.lr[min(valid, len(curve) - 1)]))
        lower = format_rate(float(curve.lr[0]) / 100) if curve.lr[0] > 0 else "a lower rate"
        return (
            f"diverged right after the start (step {valid} of {planned}, lr {at}): "
            f"rerun the range test from a lower min_lr (e.g. {lower})."
        )
    if loss_view(curve) is None:
        return (
            f"no clear descent of the loss between {format_rate(float(curve.lr[0]))} and "
            f"{format_rate(float(curve.lr[-1]))}: widen min_lr..max_lr, run more steps or "
            "use larger batches (less noise), or choose the bounds by hand from result.plot()."
        )
    found = {
        name: rule(curve)
        for name, rule in (
            ("robust_valley", robust_valley),
            ("robust_minimum", robust_minimum),
            ("robust_slide", robust_slide),
        )
    }
    rates = {name: r.max_lr for name, r in found.items() if r is not None and r.max_lr > 0}
    if len(rates) >= 2:
        low, high = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)
        factor = rates[high] / rates[low]
        if factor > DISAGREEMENT:
            return (
                f"the rules disagree by {factor:.0f}x ({low} {format_rate(rates[low])}, "
                f"{high} {format_rate(rates[high])}): try short runs at a few rates between "
                "them, or rerun the range test with more steps or larger batches."
            )
    return None


#: name -> (rule, one-line description), in a stable order.
BUILTIN_RULES: Mapping[str, tuple[Callable[[RangeCurve], RuleResult | None], str]] = (
    MappingProxyType(
        {
            "valley": (valley, "fastai's valley (its default), same step as fastai 2.8's."),
            "steep": (steep, "fastai's steep: steepest fall per log(lr), as fastai 2.8."),
            "minimum": (minimum, "fastai's minimum: lowest smoothed loss's rate / 10."),
            "slide": (slide, "fastai's interval slide rule, as fastai 2.8."),
            "robust_valley": (
                robust_valley,
                "clrplug: valley on a centred smoothing, cut before divergence; None if flat.",
            ),
            "robust_steep": (
                robust_steep,
                "clrplug: steepest fall per log(lr) on a centred smoothing; None if flat.",
            ),
            "robust_minimum": (
                robust_minimum,
                "clrplug: lowest centred-smoothed loss's rate / 10, kept in the sweep.",
            ),
            "robust_slide": (
                robust_slide,
                "clrplug: slide from the lowest loss on a centred smoothing; None if none.",
            ),
            "accuracy_rise": (
                accuracy_rise,
                "clrplug: base_lr at 10 % and max_lr at 90 % of the accuracy's rise (seed).",
            ),
        }
    )
)
