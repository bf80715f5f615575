"""``CyclicLR``: the seed's callback, as the front end of a schedule computed in the step.

It never sets the rate from Python per batch: for each ``fit`` it installs a
:class:`~clrplug.CyclicalSchedule` as the optimizer's rate, computed in the compiled
step, and leaves a plain optimizer when the fit ends. It keeps the seed's host-side API (its attributes, ``_reset``,
``history``) on top of :class:`~clrplug.schedule_callback.ScheduleCallback`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from clrplug.engine.base import EngineSchedule
from clrplug.schedule import TABLE_SIZE, CyclicalSchedule
from clrplug.schedule_callback import ScheduleCallback

__all__ = ["CyclicLR", "ScheduleCallback"]


class CyclicLR(ScheduleCallback):
    """Cyclical learning rate callback (Smith, arXiv:1506.01186).

    The rate cycles between ``base_lr`` and ``max_lr`` with half-period
    ``step_size`` training iterations, its amplitude scaled by a policy:

    ```
    cycle = floor(1 + iterations / (2 * step_size))
    x = abs(iterations / step_size - 2 * cycle + 1)
    lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale_fn(cycle or iterations)
    ```

    ``iterations`` counts training steps since the cycle started (the first step
    trained with this callback) or was last reset. The rate is computed inside the
    compiled step, exact at any step, at no cost per step. Between the fits it is
    passed to, the optimizer keeps the rate the cycle had reached as a plain rate
    (``optimizer.learning_rate = x`` and ``ReduceLROnPlateau`` work then).

    Args:
        base_lr: initial learning rate, the lower boundary of the cycle. Overrides the
            optimizer's learning rate. Default 0.001.
        max_lr: upper boundary of the cycle; the amplitude is ``max_lr - base_lr``.
            Default 0.006.
        step_size: training iterations per half cycle; Smith suggests 2-8 times the
            iterations in an epoch. Default 2000.
        mode: a registered policy name: ``"triangular"``, ``"triangular2"``,
            ``"exp_range"`` or any plugin's (``clrplug policies`` lists them). Ignored
            when ``scale_fn`` is given. Default ``"triangular"``.
        gamma: the ``exp_range`` constant, ``gamma**(cycle iterations)``, in (0, 1].
        scale_fn: a custom scaling function ``f(x)`` with ``0 <= f(x) <= 1`` for
            ``x >= 0`` (numpy; the seed's lambdas work as written). Overrides ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``: what ``scale_fn`` is evaluated on.
            Defaults to ``"cycle"`` for ``scale_fn``; with ``mode`` the policy decides.
        policy_params: values for the policy's own parameters, e.g. ``{"rate": 2e-4}``.
        step_size_down: iterations of the falling half (PyTorch's); None: symmetric.
        waveform: the shape within a cycle: ``"triangular"`` (the seed's), ``"cosine"``,
            ``"welch"`` or a plugin's.
        cycle_momentum: cycle the optimizer's momentum inversely to the rate (SGD with
            momentum > 0, Adam, AdamW, Adamax), as PyTorch's CyclicLR does. Off by
            default, unlike PyTorch, to keep the seed's behaviour.
        base_momentum: momentum at the peak rate. Default 0.8.
        max_momentum: momentum at ``base_lr``. Default 0.9.
        history_every: keep one row of ``history`` per this many steps (the last of each
            block, its logged values the block's mean); 1 keeps every step, as the seed.

    Example:

    ```python
    import numpy as np, keras
    from clrplug import CyclicLR

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    clr = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=8, mode="triangular2")
    model.fit(np.zeros((64, 4)), np.zeros((64, 1)), batch_size=8, epochs=2,
              callbacks=[clr], verbose=0)
    assert len(clr.history["lr"]) == 16 and clr.history["iterations"][-1] == 16
    ```
    """

    def __init__(
        self,
        base_lr: float = 0.001,
        max_lr: float = 0.006,
        step_size: float = 2000.0,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[..., Any] | None = None,
        scale_mode: str | None = None,
        policy_params: Mapping[str, float] | None = None,
        *,
        step_size_down: float | None = None,
        waveform: str = "triangular",
        cycle_momentum: bool = False,
        base_momentum: float = 0.8,
        max_momentum: float = 0.9,
        history_every: int = 1,
    ) -> None:
        self._definition: dict[str, Any] = {  # everything but the bounds and step sizes
            "mode": mode, "gamma": gamma, "scale_fn": scale_fn, "scale_mode": scale_mode,
            "policy_params": policy_params, "waveform": waveform,
            "cycle_momentum": cycle_momentum, "base_momentum": base_momentum,
            "max_momentum": max_momentum,
        }
        schedule = CyclicalSchedule(
            base_lr, max_lr, step_size, step_size_down=step_size_down, _tabulate=True,
            **self._definition,
        )
        super().__init__(schedule, history_every)

    # -- the seed's attributes -------------------------------------------------------

    @property
    def base_lr(self) -> float:
        return self.schedule.bounds.base_lr

    @property
    def max_lr(self) -> float:
        return self.schedule.bounds.max_lr

    @property
    def step_size(self) -> float:
        return self.schedule.geometry.step_size

    @property
    def step_size_down(self) -> float:
        return self.schedule.geometry.step_size_down

    @property
    def mode(self) -> str:
        return self.schedule.scale.policy.name

    @property
    def gamma(self) -> float:
        """The ``gamma`` in force (1.0 for a policy without one)."""
        return float(self.schedule.scale.params.get("gamma", 1.0))

    @property
    def scale_fn(self) -> Callable[..., Any]:
        return self.schedule.scale.policy.scale_fn

    @property
    def scale_mode(self) -> str:
        return self.schedule.scale.scale_mode

    @property
    def policy_params(self) -> dict[str, float]:
        return dict(self.schedule.scale.params)

    @property
    def waveform(self) -> str:
        return self.schedule.waveform.name

    @property
    def cycle_momentum(self) -> bool:
        return self.schedule.momentum is not None

    @property
    def trn_iterations(self) -> int:
        """Training steps recorded by this callback (never reset)."""
        return self._recorder.trained

    @property
    def clr_iterations(self) -> int:
        """Cycle iterations: steps since the cycle started or was last reset."""
        if self._optimizer is None:
            return 0
        return max(0, self._update_now() - self.schedule.cycle_start)

    # -- ScheduleCallback hooks ------------------------------------------------------------

    def _new_schedule(self) -> CyclicalSchedule:
        old = self.schedule
        bounds, geometry = old.origin
        schedule = CyclicalSchedule(
            old.bounds.base_lr, old.bounds.max_lr, old.geometry.step_size,
            step_size_down=None if old.geometry.symmetric else old.geometry.step_size_down,
            cycle_start=old.cycle_start, _tabulate=True,
            origin={"base_lr": bounds.base_lr, "max_lr": bounds.max_lr, "step_size": geometry.step_size,
                    **({} if geometry.symmetric else {"step_size_down": geometry.step_size_down})},
            **self._definition,
        )
        return schedule

    def _continues(self, found: EngineSchedule) -> bool:
        mine = self.schedule
        assert isinstance(found, CyclicalSchedule)
        return (
            found.scale.policy.name == mine.scale.policy.name
            and found.scale.scale_mode == mine.scale.scale_mode
            and dict(found.scale.params) == dict(mine.scale.params)
            and found.waveform.name == mine.waveform.name
            and found.momentum == mine.momentum
            and found.origin == mine.origin
        )

    def _start(self, update: int, reached: int | None, previous: EngineSchedule) -> None:
        assert isinstance(previous, CyclicalSchedule)
        k = 0 if reached is None else max(0, reached - previous.cycle_start)
        bounds, geometry = previous.bounds, previous.geometry
        self.schedule.reset(
            bounds.base_lr, bounds.max_lr, geometry.step_size,
            step_size_down=geometry.step_size_down, cycle_start=update - k,
        )

    def _plan(self, first_update: int, steps: int | None) -> None:
        if self.schedule.tabulated:
            # The epoch's start; a long epoch is covered as it goes (_batch_work).
            self._refill(first_update, min(steps or self._steps_per_execution, TABLE_SIZE // 2))

    def _refill(self, first: int, ahead: int) -> None:
        """Keep the scale table covering the updates ``first .. first + ahead``."""
        self.schedule.ensure_table(first, first + max(ahead, self._steps_per_execution))

    def _covered(self, update: int) -> int | None:
        if self.schedule.tabulated:
            return self.schedule.table_updates_left(update)
        return super()._covered(update)

    def _extend(self, update: int) -> None:
        if self.schedule.tabulated:
            self._refill(update, TABLE_SIZE // 2)

    # -- resets ------------------------------------------------------------------------------

    def _reset(
        self,
        new_base_lr: float | None = None,
        new_max_lr: float | None = None,
        new_step_size: float | None = None,
    ) -> None:
        """Start a new cycle now, optionally with new bounds (the seed's ``_reset``).

        Unspecified values keep their current value, so ``_reset()`` restarts the
        current cycle. The cycle iteration count returns to zero, which also restarts a
        policy's amplitude scaling. It takes effect at the very next training step,
        also when called from another callback in the middle of an epoch: the numbers
        are constants of the compiled step, which is traced again with the new ones.
        Call it on the training thread: from any hook of an ordinary callback, not from
        the batch hooks of one marked ``async_safe``.
        """
        if self._optimizer is None:
            # Not attached yet: the new cycle starts with the first step trained.
            self.schedule.reset(
                new_base_lr, new_max_lr, new_step_size, cycle_start=self.schedule.cycle_start
            )
            return
        update = self._update_now()
        self.schedule.reset(new_base_lr, new_max_lr, new_step_size, cycle_start=update)
        self._record_segment()
        if self.schedule.tabulated:
            self._refill(update, TABLE_SIZE // 2)
        self._retrace()
        self._next_check = 0  # what the table covers changed: look again before the next batch

    def reset(
        self,
        new_base_lr: float | None = None,
        new_max_lr: float | None = None,
        new_step_size: float | None = None,
    ) -> None:
        """Public alias of :meth:`_reset`."""
        self._reset(new_base_lr, new_max_lr, new_step_size)
