"""The range test's sweep: the learning rate rising once from ``min_lr`` to ``max_lr``.

:func:`sweep_rates` is the float64 reference; :class:`SweepSchedule` is the same
sweep as an engine schedule, computed in the compiled step with its numbers as
constants; the range test installs it as the optimizer's rate for the test and has the
step traced for it (and traced again afterwards for the model's own rate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug import checks
from clrplug.cycle import INT32_MAX
from clrplug.engine.base import NO_HOLD, EngineSchedule
from clrplug.errors import InvalidArgumentError

__all__ = ["STEP_MODES", "SweepSchedule", "sweep_rates"]

#: How the learning rate rises from ``min_lr`` to ``max_lr``.
STEP_MODES = ("exp", "linear")


def sweep_rates(
    step: Any, min_lr: float, max_lr: float, steps: int, step_mode: str = "exp"
) -> np.ndarray:
    """The range test's learning rate at sweep step ``step`` (0-based), in float64.

    ``exp``: ``min_lr * (max_lr / min_lr) ** (step / (steps - 1))``, a straight line
    in log-lr (fastai's and torch-lr-finder's sweep). ``linear``:
    ``min_lr + (max_lr - min_lr) * step / (steps - 1)`` (the seed's recipe: the
    triangular policy with ``step_size`` equal to the test's length minus one). Steps
    before 0 hold ``min_lr``, steps past the end ``max_lr``.
    """
    k = np.clip(np.asarray(step, dtype=np.float64), 0.0, steps - 1)
    fraction = k / (steps - 1)
    if step_mode == "exp":
        return min_lr * (max_lr / min_lr) ** fraction
    return min_lr + (max_lr - min_lr) * fraction


def check_sweep(min_lr: Any, max_lr: Any, step_mode: Any) -> tuple[float, float]:
    """``(min_lr, max_lr)`` as floats, checked for ``step_mode``; the error names the bad one."""
    checks.one_of("step_mode", step_mode, STEP_MODES)
    low = checks.real("min_lr", min_lr)
    high = checks.real("max_lr", max_lr)
    if step_mode == "exp" and low <= 0:
        raise InvalidArgumentError(
            f"min_lr must be > 0 for step_mode='exp' (the sweep is geometric), got {min_lr!r}; "
            "use step_mode='linear' to start at 0."
        )
    if low < 0:
        raise InvalidArgumentError(f"min_lr must be >= 0, got {min_lr!r}.")
    if high <= low:
        raise InvalidArgumentError(
            f"max_lr ({max_lr!r}) must be > min_lr ({min_lr!r}): the test sweeps upwards."
        )
    return low, high


class SweepSchedule(EngineSchedule):
    """The range test's rising learning rate, evaluated inside the compiled step.

    At optimizer update ``u`` the rate is :func:`sweep_rates` at ``k = u - start``,
    clipped to ``[0, steps - 1]``; in the step, ``min_lr * exp(k * log_step)``
    (``exp``) or ``min_lr + k * linear_step`` (``linear``), with ``log_step =
    log(max_lr / min_lr) / (steps - 1)`` and ``linear_step = (max_lr - min_lr) /
    (steps - 1)`` computed in float64 on the host, constants of the traced step.

    Args:
        min_lr: the first rate (``> 0`` for ``"exp"``).
        max_lr: the last rate, reached at step ``steps - 1`` and held after it.
        steps: optimizer updates the sweep lasts (``>= 2``).
        step_mode: ``"exp"`` or ``"linear"``.
        start: the optimizer update of the sweep's first step.
        name: the schedule's name.

    Example:

    ```python
    import numpy as np
    from clrplug.range_test import SweepSchedule

    sweep = SweepSchedule(1e-4, 1.0, 5, start=10)
    rates, _ = sweep.values_at(np.arange(10, 15))
    np.testing.assert_allclose(rates, np.geomspace(1e-4, 1.0, 5))
    assert abs(float(sweep(12)) - 1e-2) < 1e-8
    ```
    """

    _INTS = ("start", "steps", "exp")
    _FLOATS = ("min_lr", "max_lr", "log_step", "linear_step")
    def __init__(
        self,
        min_lr: float,
        max_lr: float,
        steps: int,
        step_mode: str = "exp",
        start: int = 0,
        *,
        name: str = "SweepSchedule",
    ) -> None:
        low, high = check_sweep(min_lr, max_lr, step_mode)
        super().__init__(momentum=None, accumulation_steps=1, hold=NO_HOLD, name=name)
        self.min_lr, self.max_lr = low, high
        self.steps = checks.integer("steps", steps, low=2, high=INT32_MAX)
        self.step_mode = step_mode
        self.start = checks.integer("start", start, low=-INT32_MAX, high=INT32_MAX)

    # -- state -------------------------------------------------------------------------

    def _own_fields(self) -> tuple[dict[str, int], dict[str, float]]:
        exp = self.step_mode == "exp"
        return (
            {"start": self.start, "steps": self.steps, "exp": int(exp)},
            {
                "min_lr": self.min_lr,
                "max_lr": self.max_lr,
                "log_step": math.log(self.max_lr / self.min_lr) / (self.steps - 1) if exp else 0.0,
                "linear_step": (self.max_lr - self.min_lr) / (self.steps - 1),
            },
        )

    def _decode_own_fields(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> dict[str, Any]:
        return {
            "start": ints["start"],
            "steps": checks.integer("steps", ints["steps"], low=2, high=INT32_MAX),
            "step_mode": "exp" if ints["exp"] else "linear",
            "min_lr": checks.real("min_lr", floats["min_lr"], low=0.0),
            "max_lr": checks.real("max_lr", floats["max_lr"], low=0.0),
        }

    # -- evaluation --------------------------------------------------------------------

    def _values(self, u: Any) -> tuple[Any, Any]:
        k = np.asarray(u, dtype=np.float64) - self.start
        return sweep_rates(k, self.min_lr, self.max_lr, self.steps, self.step_mode), None

    def _in_step(self, u: Any, ints: Mapping[str, Any], floats: Mapping[str, Any]) -> tuple[Any, Any]:
        k = ops.minimum(ops.maximum(u - ints["start"], 0), ints["steps"] - 1)
        k = ops.cast(k, "float32")
        geometric = floats["min_lr"] * ops.exp(k * floats["log_step"])
        linear = floats["min_lr"] + k * floats["linear_step"]
        return ops.where(ints["exp"] > 0, geometric, linear), None

    # -- serialisation -----------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Plain numbers (a checkpoint written during a test holds the sweep)."""
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "steps": self.steps,
            "step_mode": self.step_mode,
            "start": self.start,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SweepSchedule:
        if not isinstance(config, Mapping):
            raise InvalidArgumentError(f"SweepSchedule config must be a dict, got {config!r}.")
        return cls(**config)


keras.saving.register_keras_serializable(package="clrplug", name="SweepSchedule")(SweepSchedule)
