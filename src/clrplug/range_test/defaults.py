"""The range test's defaults: the rule and bounds used when none are named, and the sweep.

The rule and its peak factor were chosen by leave-one-task-out in
``benchmarks/generalise.py``, the lower bound and the sweep by ``benchmarks/convergence.py``
(docs/benchmarks-convergence.md gives the tables and the commands that make them);
:mod:`.result` and :mod:`.plot` read them.
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
#: and :meth:`~RangeTestResult.one_cycle` read when none is named: clrplug's smoothed
#: slide rule (:func:`~clrplug.range_test.robust_rules.robust_slide`), with its bounds
#: times :data:`DEFAULT_PEAK_FACTOR`. The pair was chosen by leave-one-task-out in
#: ``benchmarks/generalise.py`` (six tasks: dense, convolutional, recurrent, attention,
#: two tabular; SGD momentum and Adam; 6 seeds; JAX): for each task, the (rule, factor)
#: chosen on the other five, by the number of tasks within 0.5 points of a five-rate
#: grid's best, then the smallest worst shortfall, then robustness to a peak off by 2x,
#: then the smaller factor. ``robust_slide`` x3 was chosen by 5 of the 6 folds (fastai's
#: ``minimum`` x1 by the sixth); trained for real on the held-out task it came within 0.5
#: points of the grid's best on all five of its folds (-0.1 to +1.1 points) at 0.27-0.33
#: of the grid's compute, range test included. On the ladder of 1cycle runs it is within
#: 0.5 points on 6 of 6 tasks (so are fastai's ``minimum`` x1 and ``valley`` x3), where
#: ``robust_slide`` x1, the default before, was on 4 of 6 (-1.5 on the CNN, -3.4 on
#: tabular Adam: its peak about 3x too low). It also keeps a clrplug property fastai's
#: rules lack: on a curve that does not fall beyond its noise it finds no range, and
#: ``one_cycle()`` says so instead of training from a guess. docs/benchmarks-convergence.md
#: has the tables and the command.
DEFAULT_RULE = "robust_slide"

#: :attr:`~RangeTestResult.suggested_max_lr`, and so the peak of
#: :meth:`~RangeTestResult.one_cycle` and the top of :meth:`~RangeTestResult.cyclic_lr`,
#: is :data:`DEFAULT_RULE`'s ``max_lr`` times this (the lower bound too); a rule you name
#: is taken at factor 1 unless you pass ``peak_factor``. Chosen with the rule (above):
#: ``robust_slide`` marks where the loss still falls steadily, and a 1cycle peak belongs
#: a few times higher (1cycle visits its peak once and anneals). ``cyclic_lr()``'s bounds,
#: ``peak / DEFAULT_LOWER`` to ``peak``, were measured only on the held-out runs: CLR
#: ``triangular``, 4 cycles, within 0.5 points on 5 of the 5 folds that chose this pair.
DEFAULT_PEAK_FACTOR = 3.0

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
