"""``OneCycleSchedule``: Smith's 1cycle as a Keras schedule, PyTorch's ``OneCycleLR``.

Computed in the compiled step from the optimizer's counter like ``CyclicalSchedule``;
``OneCycleLR`` installs it for a fit and adds history and logs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import keras
import numpy as np

from clrplug import checks
from clrplug.cycle import INT32_MAX, OneCycle, check_momentum, check_one_cycle
from clrplug.engine import rate as _rate  # noqa: F401  (registers OptimizerRate with Keras)
from clrplug.engine import step
from clrplug.engine.base import NO_HOLD, EngineSchedule, Hold
from clrplug.formula import one_cycle_values

__all__ = ["OneCycleSchedule"]


class OneCycleSchedule(EngineSchedule):
    """Smith's 1cycle (arXiv:1803.09820) as a Keras schedule, PyTorch's ``OneCycleLR``.

    The rate warms up from ``max_lr / div_factor`` to ``max_lr`` over ``pct_start`` of
    ``total_steps`` and anneals to ``max_lr / div_factor / final_div_factor`` (with
    ``three_phase``, back to the initial rate first); momentum moves the other way.
    Past ``total_steps`` the final rate is held (PyTorch raises). The arguments and
    defaults are PyTorch's; :func:`clrplug.one_cycle_rates` gives the values.

    Args:
        max_lr: the peak rate.
        total_steps: optimizer updates of the whole cycle.
        pct_start: fraction of the cycle spent warming up, in (0, 1).
        anneal_strategy: ``"cos"`` or ``"linear"``.
        div_factor: ``initial_lr = max_lr / div_factor``.
        final_div_factor: ``min_lr = initial_lr / final_div_factor``.
        three_phase: anneal back to ``initial_lr`` before the final annealing.
        cycle_momentum: cycle the optimizer's momentum inversely (needs :meth:`bind`).
        base_momentum: momentum at the peak rate.
        max_momentum: momentum at the start and the end.
        start: the optimizer update at which the cycle begins.
        accumulation_steps: micro-batches per update (set from the optimizer on bind).
        name: the schedule's name.

    Example:

    ```python
    from clrplug import OneCycleSchedule

    schedule = OneCycleSchedule(max_lr=0.1, total_steps=1000, cycle_momentum=False)
    assert abs(float(schedule(0)) - 0.004) < 1e-9 and abs(float(schedule(299)) - 0.1) < 1e-7
    ```
    """

    # A phase ends at step end_whole + end_part (PyTorch's ends are fractional); the
    # whole part is an integer so that the step's position is exact at any count.
    _INTS = ("start", "total_steps", "end_whole0", "end_whole1", "end_whole2")
    _FLOATS = tuple(
        f"{field}{i}"
        for i in range(3)
        for field in ("end_part", "span", "lr_from", "lr_to", "m_from", "m_to")
    )

    def __init__(
        self,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        *,
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        start: int = 0,
        accumulation_steps: int = 1,
        name: str = "OneCycleSchedule",
        _hold: Hold = NO_HOLD,
    ) -> None:
        momentum = (
            check_momentum(base_momentum, max_momentum)
            if checks.flag("cycle_momentum", cycle_momentum) else None
        )
        spec = check_one_cycle(
            max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor,
            three_phase, momentum,
        )
        super().__init__(momentum=momentum, accumulation_steps=accumulation_steps, hold=_hold, name=name)
        self._spec = spec
        self._start = checks.integer("start", start, low=-INT32_MAX, high=INT32_MAX)

    @property
    def spec(self) -> OneCycle:
        """The validated arguments."""
        return self._spec

    @property
    def start(self) -> int:
        """The optimizer update at which the cycle begins."""
        return self._start

    @property
    def total_steps(self) -> int:
        return self._spec.total_steps

    def restart(self, *, start: int, total_steps: int | None = None) -> None:
        """Begin the cycle at update ``start`` (over ``total_steps`` updates, if given)."""
        spec = self._spec
        if total_steps is not None:
            spec = check_one_cycle(
                spec.max_lr, total_steps, spec.pct_start, spec.anneal_strategy, spec.div_factor,
                spec.final_div_factor, spec.three_phase, spec.momentum,
            )
        start = checks.integer("start", start, low=-INT32_MAX, high=INT32_MAX)
        if (spec, start) != (self._spec, self._start):
            self._spec, self._start = spec, start
            self._changed()

    def _own_fields(self) -> tuple[dict[str, int], dict[str, float]]:
        return self._fields_of(self._spec, self._start)

    @classmethod
    def _fields_of(cls, spec: OneCycle, start: int) -> tuple[dict[str, int], dict[str, float]]:
        ints: dict[str, int] = {name: 0 for name in cls._INTS}
        floats: dict[str, float] = {name: 0.0 for name in cls._FLOATS}
        begin = 0.0
        for i, (end, lr0, lr1, m0, m1) in enumerate(spec.phases):
            whole = math.floor(end)
            ints[f"end_whole{i}"] = whole
            floats.update({f"end_part{i}": end - whole, f"span{i}": end - begin,
                           f"lr_from{i}": lr0, f"lr_to{i}": lr1, f"m_from{i}": m0, f"m_to{i}": m1})
            begin = end
        ints.update(start=start, total_steps=spec.total_steps)
        return ints, floats

    def _decode_own_fields(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> dict[str, Any]:
        spec = self._spec
        if ints["total_steps"] != spec.total_steps:
            spec = check_one_cycle(
                spec.max_lr, ints["total_steps"], spec.pct_start, spec.anneal_strategy,
                spec.div_factor, spec.final_div_factor, spec.three_phase, spec.momentum,
            )
        # Only start and total_steps may change; every phase field follows from them.
        want_ints, want_floats = self._fields_of(spec, ints["start"])
        wrong = [name for name in self._INTS if ints[name] != want_ints[name]] + [
            name for name in self._FLOATS
            if not math.isclose(floats[name], want_floats[name], rel_tol=1e-12, abs_tol=1e-300)
        ]
        if wrong:
            raise self._damaged(
                f"phase field(s) {', '.join(wrong)} do not match max_lr={spec.max_lr:g} and "
                f"total_steps={spec.total_steps}"
            )
        return {"_spec": spec, "_start": ints["start"]}

    def _values(self, u: Any) -> tuple[Any, Any]:
        return one_cycle_values(np.maximum(np.asarray(u) - self._start, 0), self._spec)

    def _in_step(self, u: Any, ints: Mapping[str, Any], floats: Mapping[str, Any]) -> tuple[Any, Any]:
        return step.one_cycle(
            u, ints, floats, phases=len(self._spec.phases), strategy=self._spec.anneal_strategy,
            momentum=self._momentum is not None,
        )

    def get_config(self) -> dict[str, Any]:
        """Plain numbers only."""
        spec = self._spec
        return {
            "max_lr": spec.max_lr,
            "total_steps": spec.total_steps,
            "pct_start": spec.pct_start,
            "anneal_strategy": spec.anneal_strategy,
            "div_factor": spec.div_factor,
            "final_div_factor": spec.final_div_factor,
            "three_phase": spec.three_phase,
            "start": self._start,
            **self._common_config(),
        }

    _CONFIG_TYPES: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "max_lr": (int, float),
        "total_steps": (int,),
        "pct_start": (int, float),
        "anneal_strategy": (str,),
        "div_factor": (int, float),
        "final_div_factor": (int, float),
        "three_phase": (bool,),
        "start": (int,),
    }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OneCycleSchedule:
        """Rebuild a schedule from :meth:`get_config`'s output (plain values only)."""
        kwargs = cls._checked_config(config)
        kwargs.update(cls._pop_common(kwargs))
        return cls(**kwargs)



keras.saving.register_keras_serializable(package="clrplug", name="OneCycleSchedule")(OneCycleSchedule)
