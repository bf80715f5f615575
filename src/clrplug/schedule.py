"""``CyclicalSchedule``: the cyclical rate applied inside the compiled train step.

Keras optimizers call their ``LearningRateSchedule`` with the optimizer's own
iteration counter inside the compiled step (as ``CosineDecay`` runs), so the
rate is exact at every step, with ``steps_per_execution`` too, and resumes with
the counter restored from a checkpoint.

Design: **a table of rates, indexed by the integer step.** The schedule does not
re-implement the formula with backend ops. It evaluates
:func:`clrplug.formula.rates` (the one source of truth, float64, vectorised, any
numpy policy) on the host for a window of iterations, stores the result as a
float32 table, and the compiled step does one subtraction, one clip and one
gather. So:

- the rate is the float64 formula rounded to float32 at any iteration (the index
  is integer arithmetic: no drift at 10^8 steps), on every backend;
- plugin authors write numpy; nothing of theirs runs per step;
- the per-step cost is three scalar operations (on PyTorch, which runs the step
  eagerly, a Python lookup returning a float).

The table is a constant of the traced train function. When a run needs
iterations outside the window, :meth:`ensure_window` computes a new one and bumps
:attr:`version`; :class:`clrplug.CyclicLR` then rebuilds the train function once.
Windows start at the cycle's start and grow fourfold (up to ``MAX_WINDOW``
entries, then slide), so repeated ``fit()`` calls rarely need a new trace.
Resets (:meth:`reset`) change the bounds and the iteration the new cycle starts
at (``cycle_start``) and likewise bump :attr:`version`. Saving stores plain
numbers and the policy's registered name, never code.

Used on its own (``SGD(learning_rate=CyclicalSchedule(...))``) the first window
covers ``horizon`` steps (default ``2**20``); beyond it the last tabulated rate is
held (PyTorch computes the exact rate instead). Pass ``horizon=`` for longer
runs, or use :class:`clrplug.CyclicLR`, which slides the window as training goes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug.errors import ClrplugError, InvalidArgumentError, UnknownPolicyError
from clrplug.formula import Cycle, Scale, check_cycle, rates, resolve_scale
from clrplug.registry import default_registry

__all__ = ["DEFAULT_HORIZON", "MAX_WINDOW", "CyclicalSchedule"]

#: Training steps a stand-alone schedule's first table covers.
DEFAULT_HORIZON = 2**20
#: Largest table (entries, float32) the schedule keeps at once: 16 MB.
MAX_WINDOW = 2**22
# Smallest table CyclicLR builds (256 kB): most runs never need a second one.
_MIN_WINDOW = 2**16


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass(frozen=True)
class _Window:
    start: int  # first cycle iteration in the table
    rates: np.ndarray  # float32 learning rates for cycle iterations start, start + 1, ...

    @property
    def stop(self) -> int:
        return self.start + len(self.rates)


#: Largest stand-alone table (entries): 512 MB of float32. CyclicLR slides a smaller one.
MAX_HORIZON = 2**27
_INT64_MAX = 2**63 - 1


def _int_arg(name: str, value: Any, minimum: int, maximum: int = _INT64_MAX) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not minimum <= value <= maximum
    ):
        raise InvalidArgumentError(
            f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}."
        )
    return int(value)


@keras.saving.register_keras_serializable(package="clrplug", name="CyclicalSchedule")
class CyclicalSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Cyclical learning rate (Smith, arXiv:1506.01186) as a Keras schedule.

    At optimizer step ``t`` the rate is :func:`clrplug.learning_rates` at cycle
    iteration ``t - cycle_start``:

    ```
    cycle = floor(1 + k / (2 * step_size))
    x = abs(k / step_size - 2 * cycle + 1)
    lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale_fn(cycle or k)
    ```

    Most users want :class:`clrplug.CyclicLR`, which installs this schedule and
    adds history and resets. Use the schedule directly to compile it into a model.

    Args:
        base_lr: lower boundary of the cycle. Default 0.001.
        max_lr: upper boundary of the cycle. Default 0.006.
        step_size: training iterations per half cycle. Default 2000.
        mode: name of a registered policy (``clrplug policies`` lists them).
        gamma: the ``exp_range`` constant, in (0, 1].
        scale_fn: a scale function ``f(x) -> [0, 1]`` used instead of ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``, for ``scale_fn``.
        policy_params: values for the policy's own parameters.
        cycle_start: the optimizer iteration at which the current cycle began.
        horizon: training steps the first table covers (stand-alone use, see above).
        accumulation_steps: the optimizer's ``gradient_accumulation_steps``. Keras calls
            schedules with the micro-batch count; an iteration here is one optimizer
            update, i.e. ``accumulation_steps`` micro-batches. ``CyclicLR`` sets it.
        origin: the bounds the schedule was first created with, before any reset
            (kept in saved configs so a ``CyclicLR`` with the same arguments resumes it).
        name: the schedule's name.

    Example:

    ```python
    import keras
    from clrplug import CyclicalSchedule

    schedule = CyclicalSchedule(base_lr=0.001, max_lr=0.006, step_size=2000, mode="triangular2")
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    assert abs(float(schedule(2000)) - 0.006) < 1e-9
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
        cycle_start: int = 0,
        horizon: int = DEFAULT_HORIZON,
        accumulation_steps: int = 1,
        origin: Mapping[str, float] | None = None,
        name: str = "CyclicalSchedule",
    ) -> None:
        super().__init__()
        cycle = check_cycle(base_lr, max_lr, step_size)
        if origin is None:
            self._origin = cycle
        elif isinstance(origin, Mapping) and set(origin) == {"base_lr", "max_lr", "step_size"}:
            self._origin = check_cycle(origin["base_lr"], origin["max_lr"], origin["step_size"])
        else:
            raise InvalidArgumentError(
                f"origin must be a dict with keys base_lr, max_lr, step_size, got {origin!r}."
            )
        scale = resolve_scale(mode, gamma, scale_fn, scale_mode, policy_params)
        self._cycle_start = _int_arg("cycle_start", cycle_start, 0)
        self._horizon = _int_arg("horizon", horizon, 1, MAX_HORIZON)
        self._accumulation = _int_arg("accumulation_steps", accumulation_steps, 1, 2**31 - 1)
        if not isinstance(name, str):
            raise InvalidArgumentError(f"name must be a string, got {name!r}.")
        self.name = name
        self._scale = scale
        # A function given directly that is not a registered policy cannot be saved by name.
        self._custom_fn = (
            scale_fn is not None
            and default_registry().find_by_scale_fn(scale_fn) is not scale.policy
        )
        self._cycle = cycle
        self._built: _Window | None = None  # computed on first use
        #: Increases whenever a value baked into a traced train function changes.
        self.version = 0

    # -- read-only views ------------------------------------------------------------

    @property
    def cycle(self) -> Cycle:
        """The current ``base_lr``, ``max_lr`` and ``step_size``."""
        return self._cycle

    @property
    def scale(self) -> Scale:
        """The resolved policy and its parameter values."""
        return self._scale

    @property
    def origin(self) -> Cycle:
        """The bounds the schedule was created with, before any :meth:`reset`."""
        return self._origin

    @property
    def cycle_start(self) -> int:
        """Optimizer iteration at which the current cycle began."""
        return self._cycle_start

    # -- host-side formula -------------------------------------------------------------

    def rates_at(self, iterations: Any) -> np.ndarray:
        """The float64 rate at absolute optimizer iterations (via :func:`clrplug.learning_rates`)."""
        t = np.asarray(iterations, dtype=np.float64)
        return rates(np.maximum(t - self._cycle_start, 0.0), self._cycle, self._scale)

    # -- the table ----------------------------------------------------------------------

    @property
    def accumulation_steps(self) -> int:
        """Micro-batches per optimizer update (``gradient_accumulation_steps``)."""
        return self._accumulation

    def set_accumulation_steps(self, steps: int) -> None:
        """Follow an optimizer's ``gradient_accumulation_steps`` (None or 0 meaning 1)."""
        steps = _int_arg("accumulation_steps", steps or 1, 1)
        if steps != self._accumulation:
            self._accumulation = steps
            self._changed()

    @property
    def horizon(self) -> int:
        """Steps the first table of a stand-alone schedule covers."""
        return self._horizon

    @property
    def _window(self) -> _Window:
        if self._built is None:
            self._built = self._build_window(0, self._horizon)
        return self._built

    def _build_window(self, start: int, size: int) -> _Window:
        k = np.arange(start, start + size, dtype=np.float64)
        return _Window(start, rates(k, self._cycle, self._scale).astype(np.float32))

    def ensure_window(self, first_iteration: int, last_iteration: int) -> bool:
        """Make the table cover absolute iterations ``[first, last]`` (as far as it can).

        Returns True if the table changed, i.e. a traced train function holding the
        old one must be rebuilt. Tables start at the cycle's start with at least
        ``2**16`` entries and grow fourfold, so a run needs a handful of rebuilds until
        it reaches ``MAX_WINDOW`` entries; past that the window slides.
        """
        lo = max(0, int(first_iteration) - self._cycle_start)
        hi = max(lo, int(last_iteration) - self._cycle_start)
        window = self._built
        if window is not None and window.start <= lo and hi < window.stop:
            return False
        if hi < MAX_WINDOW:
            size = max(_MIN_WINDOW, _next_pow2(hi + 1))
            if window is not None and window.start == 0:
                size = max(size, 4 * len(window.rates))
            self._built = self._build_window(0, min(size, MAX_WINDOW))
        else:
            self._built = self._build_window(lo, MAX_WINDOW)
        self._changed()
        return True

    def covered_until(self) -> int:
        """The last absolute iteration whose rate is in the current table."""
        return self._cycle_start + self._window.stop - 1

    def _changed(self) -> None:
        self.version += 1

    # -- resets ------------------------------------------------------------------------

    def reset(
        self,
        base_lr: float | None = None,
        max_lr: float | None = None,
        step_size: float | None = None,
        *,
        cycle_start: int,
    ) -> None:
        """Start a new cycle at optimizer iteration ``cycle_start``, optionally with new bounds.

        Unspecified values are kept. All values are checked before anything changes.
        """
        cycle = check_cycle(
            self._cycle.base_lr if base_lr is None else base_lr,
            self._cycle.max_lr if max_lr is None else max_lr,
            self._cycle.step_size if step_size is None else step_size,
        )
        start = _int_arg("cycle_start", cycle_start, 0)
        previous = (self._cycle, self._cycle_start)
        self._cycle, self._cycle_start = cycle, start
        try:
            window = None if self._built is None else self._build_window(0, len(self._built.rates))
        except Exception:
            self._cycle, self._cycle_start = previous
            raise
        self._built = window
        self._changed()

    # -- the compiled part -------------------------------------------------------------

    def __call__(self, step: Any) -> Any:
        window = self._window
        if keras.backend.backend() == "torch" and not _torch_compiling():
            # PyTorch runs the step eagerly: a Python lookup is cheaper than any tensor op.
            update = int(step) // self._accumulation
            k = update - self._cycle_start
            if window.start <= k < window.stop:
                return float(window.rates[k - window.start])
            return float(self.rates_at([update])[0])
        step = ops.convert_to_tensor(step)
        if not keras.backend.is_int_dtype(step.dtype):
            step = ops.cast(ops.floor(step), "int32")
        if self._accumulation > 1:
            step = ops.floor_divide(step, self._accumulation)
        position = ops.clip(step - (self._cycle_start + window.start), 0, len(window.rates) - 1)
        return ops.take(ops.convert_to_tensor(window.rates), position)

    # -- serialisation -------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Plain numbers and the policy's registered name: never a function."""
        if self._custom_fn:
            fn = self._scale.policy.scale_fn
            raise ClrplugError(
                f"CyclicalSchedule cannot be saved: its scale_fn "
                f"{getattr(fn, '__name__', fn)!r} is not a registered policy, and clrplug "
                "stores policies by name only (it never pickles code). Register it, e.g. "
                "clrplug.register_policy(clrplug.Policy('my_policy', scale_fn, scale_mode="
                f"{self._scale.scale_mode!r})) or ship it as a plugin (docs/writing-a-plugin.md), "
                "then use mode='my_policy'."
            )
        return {
            "base_lr": self._cycle.base_lr,
            "max_lr": self._cycle.max_lr,
            "step_size": self._cycle.step_size,
            "mode": self._scale.policy.name,
            "policy_params": dict(self._scale.params),
            "cycle_start": self._cycle_start,
            "horizon": self._horizon,
            "accumulation_steps": self._accumulation,
            "distribution": self._scale.policy.source.distribution,
            "origin": {
                "base_lr": self._origin.base_lr,
                "max_lr": self._origin.max_lr,
                "step_size": self._origin.step_size,
            },
            "name": self.name,
        }

    _CONFIG_TYPES: Mapping[str, tuple[type, ...]] = {
        "base_lr": (int, float),
        "max_lr": (int, float),
        "step_size": (int, float),
        "mode": (str,),
        "gamma": (int, float),
        "scale_mode": (str, type(None)),
        "policy_params": (dict, type(None)),
        "cycle_start": (int,),
        "horizon": (int,),
        "accumulation_steps": (int,),
        "distribution": (str, type(None)),
        "origin": (dict, type(None)),
        "name": (str,),
    }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CyclicalSchedule:
        """Rebuild a schedule from :meth:`get_config`'s output.

        Only plain values are accepted: a config that carries code (a function, a
        serialised object, a ``scale_fn``) is refused, so loading a file never runs code
        from it.
        """
        if not isinstance(config, Mapping):
            raise InvalidArgumentError(f"CyclicalSchedule config must be a dict, got {config!r}.")
        unknown = sorted(set(config) - set(cls._CONFIG_TYPES))
        if unknown:
            raise InvalidArgumentError(
                f"CyclicalSchedule config has unsupported key(s) {unknown}; allowed: "
                f"{sorted(cls._CONFIG_TYPES)}. Policies are stored by name, never as code."
            )
        for key, value in config.items():
            allowed = cls._CONFIG_TYPES[key]
            if isinstance(value, bool) or not isinstance(value, allowed):
                raise InvalidArgumentError(
                    f"CyclicalSchedule config[{key!r}] must be "
                    f"{' or '.join(t.__name__ for t in allowed)}, got {type(value).__name__} "
                    f"{value!r}."
                )
        params = config.get("policy_params") or {}
        for key, value in params.items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidArgumentError(
                    f"CyclicalSchedule config['policy_params'] must map names to numbers, got "
                    f"{key!r}: {value!r}."
                )
        kwargs = dict(config)
        distribution = kwargs.pop("distribution", None)
        try:
            return cls(**kwargs)
        except UnknownPolicyError as exc:
            if not distribution or distribution == "clrplug":
                raise
            raise UnknownPolicyError(
                exc.name,
                exc.available,
                f"The saved schedule's policy came from the distribution {distribution!r}: "
                f"`pip install {distribution}` to load it.",
                argument="mode",
            ) from None


def _torch_compiling() -> bool:
    import torch

    return bool(torch.compiler.is_compiling())
