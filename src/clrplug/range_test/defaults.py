"""The range test's defaults: the rule and bounds used when none are named, and the sweep.

Chosen by ``benchmarks/convergence.py`` (docs/benchmarks-convergence.md gives the
table and the command that makes it); :mod:`.result` and :mod:`.plot` read them.
"""

from __future__ import annotations

import math

__all__ = [
    "BENCHMARKED_STEPS_PER_DECADE",
    "DEFAULT_LOWER",
    "DEFAULT_MAX_LR",
    "DEFAULT_MIN_LR",
    "DEFAULT_PEAK_FACTOR",
    "DEFAULT_RULE",
    "DEFAULT_STEPS",
]

#: The rule :attr:`RangeTestResult.suggested_max_lr`, :meth:`~RangeTestResult.cyclic_lr`
#: and :meth:`~RangeTestResult.one_cycle` use when none is named: clrplug's smoothed
#: slide rule (called ``slide`` before fastai's own rules took their names). Chosen on
#: the three tasks of the first ``benchmarks/convergence.py``; see
#: docs/benchmarks-convergence.md for how it fares on tasks it was not chosen on.
DEFAULT_RULE = "robust_slide"

#: :meth:`~RangeTestResult.one_cycle` with the default rule peaks at its ``max_lr`` times
#: this (chosen with the rule; a rule you name peaks at its own ``max_lr``).
DEFAULT_PEAK_FACTOR = 1.0

#: The lower bound when the rule gives none: ``base_lr = max_lr / DEFAULT_LOWER`` (Smith
#: takes a third to a quarter of the upper bound); the default of ``base_div``. In the
#: same benchmark ``max_lr / 4`` did as well as or better than ``max_lr / 10`` and than
#: ``accuracy_rise``'s own lower bound in its worst case for every rule.
DEFAULT_LOWER = 4.0

#: The sweep of that benchmark, and ``lr_range_test``'s defaults: 200 steps from 1e-5 to 10.
DEFAULT_MIN_LR, DEFAULT_MAX_LR, DEFAULT_STEPS = 1e-5, 10.0, 200

#: Its resolution (33 steps per decade): ``slide`` counts its window and threshold in
#: steps, so a much coarser sweep can leave it no window.
BENCHMARKED_STEPS_PER_DECADE = (DEFAULT_STEPS - 1) / math.log10(DEFAULT_MAX_LR / DEFAULT_MIN_LR)
