"""What every clrplug schedule shares: numbers bound to optimizer variables, holding, evaluation.

:class:`EngineSchedule` is the base of ``CyclicalSchedule``, ``OneCycleSchedule`` and
the range test's sweep: a Keras ``LearningRateSchedule`` whose numbers are constants
until :meth:`~EngineSchedule.bind` puts them in the optimizer's variables.
:class:`OptimizerRate` is the rate the callbacks install on their optimizer. Over 600
lines: binding, holding, the rate window, evaluation on each backend and checked
serialisation are one class's job.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from clrplug import checks
from clrplug.cycle import FLOAT32_MAX, INT32_MAX, Momentum
from clrplug.engine import compat
from clrplug.engine.state import PackedState
from clrplug.errors import ClrplugError, InvalidArgumentError

__all__ = ["NO_HOLD", "WINDOW_STEPS", "EngineSchedule", "Hold", "OptimizerRate"]

_COMMON_INTS = ("accumulation", "hold", "window_origin")
_COMMON_FLOATS = ("held_lr", "held_momentum")

#: Updates of rates (and momenta) a callback writes ahead into the state on TensorFlow
#: (:meth:`EngineSchedule.bind`'s ``window``): 32 KiB of the one variable.
WINDOW_STEPS = 4096


@dataclass(frozen=True)
class Hold:
    """A plain rate (and momentum) in force instead of the schedule's, when ``on``."""

    on: bool = False
    rate: float = 0.0
    momentum: float = 0.0


#: No plain rate held: the schedule drives.
NO_HOLD = Hold()


def _step_value(step: Any) -> int:
    return int(getattr(step, "value", step))


#: Update counts the eager (PyTorch) path evaluates at once, with the vectorised formula.
EAGER_BLOCK = 512


class EngineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """What both schedules share: state, binding to an optimizer, holding, evaluation."""

    _INTS: ClassVar[tuple[str, ...]]
    _FLOATS: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        *,
        momentum: Momentum | None,
        accumulation_steps: int,
        hold: Hold,
        saved_bound: bool,
        name: str,
        window: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(name, str):
            raise InvalidArgumentError(f"name must be a string, got {name!r}.")
        self.name = name
        self._momentum = momentum
        self._accumulation = checks.integer("accumulation_steps", accumulation_steps, low=1, high=INT32_MAX)
        checks.real("held_lr", hold.rate, low=0.0)
        checks.real("held_momentum", hold.momentum, low=0.0, high=1.0)
        self._hold = hold
        self._packed = PackedState((*self._INTS, *_COMMON_INTS), (*self._FLOATS, *_COMMON_FLOATS), "clrplug")
        self._optimizer: Any = None
        self._momentum_view: Any = None  # what the optimizer reads its momentum from
        self._momentum_attribute = ""  # its name on the optimizer ("momentum" or "beta_1")
        # TensorFlow: (graph, momentum) computed with the rate in that graph's step, so the
        # update steps (one per variable) read it instead of computing it again each.
        self._momentum_in_graph: tuple[Any, Any] | None = None
        self._own_momentum: float | None = None
        self._saved_bound = saved_bound
        # The rate window (bind's ``window``): its length in updates (0: none), the update
        # its first entry is for, and whether a callback keeps it filled ahead of the step.
        self._window = checks.integer("window", window, low=0, high=INT32_MAX)
        self._window_origin = 0
        self._window_driven = False
        self._version: Any = None
        # The eager path's values for one block of update counts: (block, rates, momenta).
        self._eager_block: tuple[int, list[float], list[float] | None] | None = None

    # -- the fields the state variables hold ------------------------------------------

    def _fields(self) -> tuple[dict[str, int], dict[str, float]]:
        ints, floats = self._own_fields()
        ints.update(
            accumulation=self._accumulation, hold=int(self._hold.on), window_origin=self._window_origin
        )
        floats.update(held_lr=self._hold.rate, held_momentum=self._hold.momentum)
        return ints, floats

    def _own_fields(self) -> tuple[dict[str, int], dict[str, float]]:
        raise NotImplementedError

    def _decode_own_fields(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> dict[str, Any]:
        """The attributes the fields read back stand for, checked; nothing is assigned yet.

        Raises ``InvalidArgumentError`` (or ``ClrplugError``) for values no schedule writes.
        """
        raise NotImplementedError

    def _store(self, window_words: np.ndarray | None = None) -> None:
        """Write the host's numbers into the variables (once bound), the window's rates
        computed again for the state now (or given, already computed)."""
        self._eager_block = None
        if self._window and self._packed.bound:
            if window_words is None:
                window_words = self._window_words(self._window_origin, self._window)
            self._packed.table = window_words
        self._packed.write(*self._fields())
        self._remember_version()

    def _remember_version(self) -> None:
        if self._packed.bound and keras.backend.backend() == "torch":
            self._version = self._packed.version()

    def state_key(self) -> tuple[Any, ...]:
        """The numbers that define the schedule now, for comparisons."""
        ints, floats = self._fields()
        return tuple(sorted(ints.items())) + tuple(sorted(floats.items()))

    def refresh(self) -> None:
        """Read the numbers back from the variables, e.g. after a checkpoint was loaded.

        On JAX, call it only while the trainer's state is in the variables (outside
        ``fit``, or after ``Callback.model`` was read).
        """
        if not self._packed.bound:
            return
        ints, floats, table = self._packed.read()
        self._check_common(ints, floats)
        try:
            own = self._decode_own_fields(ints, floats)
        except InvalidArgumentError as exc:
            raise self._damaged(str(exc)) from exc
        # Everything checked: now apply it all.
        self._eager_block = None
        self._accumulation = ints["accumulation"]
        self._hold = Hold(bool(ints["hold"]), floats["held_lr"], floats["held_momentum"])
        self._window_origin = ints["window_origin"]
        for attribute, value in own.items():
            setattr(self, attribute, value)
        self._packed.table = table
        self._remember_version()

    def _damaged(self, detail: str) -> ClrplugError:
        """The error for state read back from the variables that no schedule writes."""
        name = getattr(self._optimizer, "name", "the optimizer")
        return ClrplugError(
            f"the cycle state read from {name!r}'s variables is damaged ({detail}); the "
            "checkpoint it was loaded from is not a clrplug checkpoint of this schedule."
        )

    def _check_common(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> None:
        """Refuse a damaged update divisor or hold read back from the variables."""
        expected = int(getattr(self._optimizer, "gradient_accumulation_steps", None) or 1)
        problems = []
        if ints["accumulation"] != expected:
            problems.append(
                f"update divisor {ints['accumulation']}, where the optimizer accumulates "
                f"{expected} gradient(s) per update"
            )
        if ints["hold"] not in (0, 1):
            problems.append(f"hold flag {ints['hold']}, not 0 or 1")
        if not (math.isfinite(floats["held_lr"]) and floats["held_lr"] >= 0):
            problems.append(f"held rate {floats['held_lr']!r}")
        if not 0.0 <= floats["held_momentum"] <= 1.0:
            problems.append(f"held momentum {floats['held_momentum']!r}")
        if problems:
            raise self._damaged("; ".join(problems))

    @property
    def momentum(self) -> Momentum | None:
        """The momentum bounds, when momentum is cycled."""
        return self._momentum

    # -- binding ------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        """Whether the schedule's numbers live in an optimizer's variables."""
        return self._packed.bound

    @property
    def optimizer(self) -> Any:
        """The optimizer the schedule is bound to, or None."""
        return self._optimizer

    @property
    def variable_count(self) -> int:
        """How many variables binding adds to the optimizer."""
        return self._packed.variable_count

    def _prepare_table(self) -> None:
        """Compute the packed state's table before its variable is created (may raise:
        nothing is bound yet). Schedules without a table have nothing to do."""

    def bind(self, optimizer: Any, *, window: int = 0) -> None:
        """Keep the schedule's numbers in ``optimizer``'s variables from now on.

        ``CyclicLR`` and ``OneCycleLR`` call it; call it yourself only to reset or hold a
        schedule you installed by hand, or to cycle momentum with one. It adds
        :attr:`variable_count` variables to the optimizer (saved in its checkpoints),
        so bind the same way before loading a checkpoint saved with a bound schedule.

        ``window`` (the callbacks', on TensorFlow): the state also holds the rates and
        momenta of ``window`` consecutive updates, computed on the host from the float64
        formula, and a step a callback drives reads its values there (a gather) instead
        of computing them (:meth:`ensure_window` keeps the window ahead of the counter).

        Raises:
            ClrplugError: the optimizer is not built yet, is bound to another schedule's
                owner, or cannot cycle momentum when ``cycle_momentum=True``.
        """
        inner = compat.inner_optimizer(optimizer)
        if self._optimizer is inner:
            return
        if self._optimizer is not None:
            raise ClrplugError(
                f"{type(self).__name__} {self.name!r} is already bound to optimizer "
                f"{self._optimizer.name!r}; one schedule drives one optimizer."
            )
        if not getattr(inner, "built", False):
            raise ClrplugError(
                f"optimizer {inner.name!r} is not built yet, so the schedule's variables would "
                "come before its own: build it first, model.optimizer.build("
                "model.trainable_variables) (CyclicLR and OneCycleLR do it for you)."
            )
        attribute = None
        if self._momentum is not None:
            attribute = self.check_momentum_support(inner)
        gradient_accumulation = getattr(inner, "gradient_accumulation_steps", None) or 1
        self._accumulation = int(gradient_accumulation)
        self._eager_block = None
        window = checks.integer("window", window, low=0, high=INT32_MAX) or self._window
        if window and not compat.reads_rates_ahead():
            window = 0  # e.g. a model saved on TensorFlow, loaded on JAX: no window there
        if window:
            # Two words per update (rate, momentum) and a NaN entry at each end, read for
            # any update outside the window: a stale window fails loudly, never holds a rate.
            origin = compat.read_counter(inner) // self._accumulation
            words = self._window_words(origin, window)  # may raise: before any change
            self._window, self._window_origin = window, origin
            self._packed = PackedState(
                self._packed.int_fields, self._packed.float_fields, self._packed.prefix, 2 * (window + 2)
            )
            self._packed.table = words
        else:
            self._window = 0
            self._prepare_table()  # a user's scale function may raise: before any variable
        self._packed.bind(inner, *self._fields())
        if attribute is not None:
            self._own_momentum = float(getattr(inner, attribute))
            self._momentum_attribute = attribute
            self._momentum_view = compat.momentum_view(inner, self._own_momentum, self._momentum_now)
            compat.drive_momentum(inner, self._momentum_view, self._own_momentum)
        self._optimizer = inner
        self._saved_bound = True
        self._remember_version()

    def check_momentum_support(self, optimizer: Any) -> str:
        """The attribute momentum cycling drives on ``optimizer``; refuses what cannot cycle."""
        inner = compat.inner_optimizer(optimizer)
        attribute = compat.momentum_attribute(inner)
        if attribute is None:
            raise InvalidArgumentError(
                f"cycle_momentum=True needs an optimizer with a momentum to cycle: SGD with "
                f"momentum > 0, or Adam, AdamW or Adamax (beta_1); got {type(inner).__name__}."
            )
        if attribute == "momentum" and not float(getattr(inner, attribute)) > 0:
            raise InvalidArgumentError(
                "cycle_momentum=True with SGD needs momentum > 0 (SGD keeps no velocity "
                f"otherwise), got SGD(momentum={getattr(inner, attribute)!r}). Compile with "
                "SGD(momentum=0.9), or pass cycle_momentum=False."
            )
        return attribute

    def _clrplug_bind_for_load(self, optimizer: Any, extra: int) -> None:
        """Called by the load hook: bind if the checkpoint holds exactly our variables."""
        if not self.bound and self._saved_bound and extra == self.variable_count:
            self.bind(optimizer, window=self._window)

    # -- the rate window (TensorFlow, under a callback) --------------------------------------

    @property
    def window(self) -> int:
        """Updates of rates the state holds ahead of the step (0: computed in the step)."""
        return self._window

    def drive_window(self) -> None:
        """A callback keeps the window filled from now on: the step reads its rates there."""
        self._window_driven = bool(self._window)

    def window_covers(self, first_update: int, last_update: int) -> bool:
        """Whether the window holds the values of every update ``first..last``."""
        return self.window_updates_left(first_update) > last_update - first_update

    def window_updates_left(self, update: int) -> int:
        """How many updates from ``update`` on the window holds (0 when not ``update``)."""
        origin, length = self._window_origin, self._window
        return origin + length - update if origin <= update < origin + length else 0

    def ensure_window(self, first_update: int, last_update: int) -> bool:
        """Make the window cover updates ``first..last``, starting it at ``first`` if it
        does not; returns whether it was written again (a no-op without a window)."""
        if not self._window or not self._packed.bound or self.window_covers(first_update, last_update):
            return False
        if last_update - first_update >= self._window:
            raise ClrplugError(
                f"{last_update - first_update + 1} updates are needed at once, more than the "
                f"rate window's {self._window}; lower steps_per_execution."
            )
        words = self._window_words(first_update, self._window)  # may raise: before any change
        self._window_origin = first_update
        self._store(words)
        return True

    def _window_words(self, origin: int, length: int) -> np.ndarray:
        """The float32 words of a window of ``length`` updates from update ``origin``: NaN,
        then (rate, momentum) per update, then NaN; a held rate and momentum everywhere
        while held."""
        u = origin + np.arange(length, dtype=np.int64)
        pairs = np.full((length + 2, 2), np.nan, dtype=np.float32)
        if self._hold.on:  # at every update, also outside the window
            pairs[:] = (self._hold.rate, self._hold.momentum)
        else:
            rates, momenta = self._values(u)
            pairs[1:-1, 0] = rates
            pairs[1:-1, 1] = 0.0 if momenta is None else momenta
        return pairs.ravel()

    def _computes_in_step(self) -> bool:
        """Whether the state alone gives the rate in the step (a policy read from a scale
        table needs that table, which a rate window takes the place of)."""
        return True

    def _reads_window(self) -> bool:
        """Whether the step being traced reads the window: a callback keeps it filled, or
        nothing else can give the rate (then the window as last written applies: a held
        rate, or NaN past its end)."""
        return (
            bool(self._window)
            and self._packed.bound
            and compat.tf_graph() is not None
            and (self._window_driven or not self._computes_in_step())
        )

    def _from_window(self, t: Any, momentum: bool) -> Any:
        """The rate (the momentum, with ``momentum``) at counter ``t``, read from the window."""
        u = t if self._accumulation == 1 else ops.floor_divide(t, self._accumulation)
        rate, moment = self._packed.window_pair(u, "window_origin", self._window)
        if self._momentum is not None:
            self._stash_momentum(moment)
        return moment if momentum else rate

    # -- holding a plain rate ---------------------------------------------------------------

    @property
    def holding(self) -> bool:
        """Whether a plain rate is in force instead of the schedule's."""
        return self._hold.on

    def hold(self, rate: Any, momentum: Any = None) -> None:
        """Apply the plain rate ``rate`` from the next step on, until :meth:`release`.

        ``momentum`` (when momentum is cycled) defaults to the optimizer's own. This is
        what ``optimizer.learning_rate = rate`` does on an optimizer a clrplug callback
        drives, and what the callbacks do when their ``fit`` ends.
        """
        value = checks.real("learning_rate", rate, low=0.0, high=FLOAT32_MAX,
                            hint=" (the step computes in float32)")
        if momentum is None:
            momentum = self._own_momentum if self._own_momentum is not None else 0.0
        self._hold = Hold(True, value, checks.real("momentum", momentum, low=0.0, high=1.0))
        self._store()
        if self._momentum_view is not None and compat.torch_eager():
            # The optimizer reads the held momentum from now on (elsewhere the view
            # computes it from the state just stored).
            compat.drive_momentum(self._optimizer, self._hold.momentum, self._own_momentum or 0.0)

    def release(self) -> None:
        """Let the schedule drive the rate again (the callbacks call it when ``fit`` begins)."""
        if self._hold.on:
            self._hold = dataclasses.replace(self._hold, on=False)
            self._store()

    # -- evaluation ---------------------------------------------------------------------------

    def _values(self, u: Any) -> tuple[Any, Any]:
        """Float64 rate and momentum at update counts ``u`` (an array), ignoring any hold."""
        raise NotImplementedError

    def values_at(self, steps: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Float64 rate and momentum the schedule gives at raw optimizer counts ``steps``.

        The reference values (:mod:`clrplug.formula`) for the current state, hold
        included; what the compiled step applies, before its float32 rounding.
        """
        u = np.floor_divide(np.asarray(steps, dtype=np.int64), self._accumulation)
        rates, momenta = self._values(u)
        if self._hold.on:
            rates = np.full(np.shape(u), self._hold.rate)
            momenta = None if momenta is None else np.full(np.shape(u), self._hold.momentum)
        return np.asarray(rates, dtype=np.float64), (
            None if momenta is None else np.asarray(momenta, dtype=np.float64)
        )

    def _in_step(self, u: Any, ints: Mapping[str, Any], floats: Mapping[str, Any]) -> tuple[Any, Any]:
        raise NotImplementedError

    def __call__(self, step: Any) -> Any:
        if self._momentum is not None and self._optimizer is None:
            raise ClrplugError(
                f"{type(self).__name__} {self.name!r} cycles momentum, so it must be bound to its "
                "optimizer: schedule.bind(optimizer) once the optimizer is built, or use the "
                "CyclicLR / OneCycleLR callback, which does it."
            )
        if compat.torch_eager():
            return self._eager(step)
        return self._compiled(step)

    def _eager(self, step: Any) -> float:
        """PyTorch runs the step eagerly: the float64 reference is cheaper than tensor ops.

        The reference is evaluated for a block of ``EAGER_BLOCK`` update counts at a
        time, vectorised, and looked up in between; any change of state (a reset, a
        hold, a loaded checkpoint) drops the block.
        """
        if self._packed.bound and self._packed.version() != self._version:
            self.refresh()  # a checkpoint or another owner assigned the variables
        if self._hold.on:
            rate, moment = self._hold.rate, self._hold.momentum
        else:
            u = _step_value(step) // self._accumulation
            block, i = divmod(u, EAGER_BLOCK)
            cached = self._eager_block
            if cached is None or cached[0] != block:
                first = block * EAGER_BLOCK
                rates, momenta = self._values(np.arange(first, first + EAGER_BLOCK, dtype=np.int64))
                cached = (block, np.asarray(rates, dtype=np.float64).tolist(),
                          None if momenta is None else np.asarray(momenta, dtype=np.float64).tolist())
                self._eager_block = cached
            rate = cached[1][i]
            moment = 0.0 if cached[2] is None else cached[2][i]
        if self._momentum_view is not None:  # what this step's update reads, set per step
            compat.set_momentum(self._optimizer, self._momentum_attribute, float(moment))
        return float(rate)

    def _compiled(self, step: Any, momentum: bool = False) -> Any:
        """The rate at counter ``step`` (the momentum, with ``momentum``), in the step's ops."""
        t = ops.convert_to_tensor(step)
        if not keras.backend.is_int_dtype(t.dtype):
            t = ops.cast(ops.floor(t), "int32")
        if self._packed.bound:  # a step given on the host (a Python int) as the counter is
            t = ops.cast(t, self._packed.variable.dtype)
        if self._reads_window():
            return self._from_window(t, momentum)
        ints, floats = self._packed.tensors(*self._fields(), keras.backend.standardize_dtype(t.dtype))
        # Without gradient accumulation (fixed per optimizer, so per trace) the update
        # count is the counter: no integer division in the step.
        u = t if self._accumulation == 1 else ops.floor_divide(t, ints["accumulation"])
        rate, moment = self._in_step(u, ints, floats)
        held = ints["hold"] > 0
        if moment is not None:
            moment = ops.cast(ops.where(held, floats["held_momentum"], moment), "float32")
            self._stash_momentum(moment)
        return moment if momentum else ops.where(held, floats["held_lr"], rate)

    def _stash_momentum(self, moment: Any) -> None:
        """Keep the momentum computed with this graph's rate for the update steps to reuse."""
        graph = compat.tf_graph()
        self._momentum_in_graph = None if graph is None else (graph, moment)

    def _momentum_now(self) -> Any:
        """The momentum the optimizer applies at its current count (what its update step
        reads from :func:`compat.momentum_view`): in the compiled step, the same ops as
        the rate's (XLA merges them; in a TensorFlow graph the value computed with this
        step's rate is reused); on the host, evaluated eagerly."""
        stashed = self._momentum_in_graph
        if stashed is not None and stashed[0] is compat.tf_graph():
            return stashed[1]
        return self._compiled(self._optimizer.iterations, momentum=True)

    # -- serialisation --------------------------------------------------------------------------

    def _current(self) -> None:
        """Bring the host's numbers up to date before reporting them."""
        if self._packed.bound:
            try:
                self.refresh()
            except ClrplugError:
                raise  # damaged state: say so rather than report it
            except Exception:
                # JAX mid-fit: the trainer may have purged the variables' values; the
                # host's copy is the current state then.
                pass

    def _common_config(self) -> dict[str, Any]:
        return {
            "cycle_momentum": self._momentum is not None,
            "base_momentum": self._momentum.base_momentum if self._momentum else 0.85,
            "max_momentum": self._momentum.max_momentum if self._momentum else 0.95,
            "accumulation_steps": self._accumulation,
            "hold": self._hold.on,
            "held_lr": self._hold.rate,
            "held_momentum": self._hold.momentum,
            "bound": self._saved_bound,
            "window": self._window,
            "name": self.name,
        }

    _COMMON_TYPES: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "cycle_momentum": (bool,),
        "base_momentum": (int, float),
        "max_momentum": (int, float),
        "accumulation_steps": (int,),
        "hold": (bool,),
        "held_lr": (int, float),
        "held_momentum": (int, float),
        "bound": (bool,),
        "window": (int,),
        "name": (str,),
    }
    _CONFIG_TYPES: ClassVar[Mapping[str, tuple[type, ...]]]

    @classmethod
    def _checked_config(cls, config: Any) -> dict[str, Any]:
        """Only plain values of known keys: loading a file never runs code from it."""
        kind = cls.__name__
        if not isinstance(config, Mapping):
            raise InvalidArgumentError(f"{kind} config must be a dict, got {config!r}.")
        allowed = {**cls._COMMON_TYPES, **cls._CONFIG_TYPES}
        unknown = sorted(set(config) - set(allowed))
        if unknown:
            raise InvalidArgumentError(
                f"{kind} config has unsupported key(s) {unknown}; allowed: {sorted(allowed)}. "
                "Policies are stored by name, never as code."
            )
        for key, value in config.items():
            types = allowed[key]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise InvalidArgumentError(
                    f"{kind} config[{key!r}] must be {' or '.join(t.__name__ for t in types)}, "
                    f"got {type(value).__name__} {value!r}."
                )
        return dict(config)

    @staticmethod
    def _pop_common(kwargs: dict[str, Any]) -> dict[str, Any]:
        hold = Hold(
            kwargs.pop("hold", False),
            float(kwargs.pop("held_lr", 0.0)),
            float(kwargs.pop("held_momentum", 0.0)),
        )
        return {
            "_hold": hold,
            "_saved_bound": kwargs.pop("bound", False),
            "_window": kwargs.pop("window", 0),
        }


class OptimizerRate:
    """The rate a clrplug callback installs on its optimizer: a schedule at the optimizer's step.

    Keras calls it with no argument each step; ``optimizer.learning_rate = 0.01``
    (as ``ReduceLROnPlateau`` and ``LearningRateScheduler`` do) calls :meth:`assign`,
    which holds that plain rate until a clrplug callback's next ``fit`` releases it.
    """

    def __init__(self, schedule: EngineSchedule) -> None:
        self.schedule = schedule
        # Set by the callback that installed the rate: assign() hands it the rate to hold,
        # so that it can sync JAX's state first and record the change.
        self.on_assign: Callable[[float], None] | None = None

    def __call__(self) -> Any:
        optimizer = self.schedule.optimizer
        if optimizer is None:
            raise ClrplugError(
                "this clrplug rate was loaded without its optimizer's state (its schedule is not "
                "bound): load the model with its optimizer (keras.models.load_model with "
                "compile=True), or use the CyclicLR / OneCycleLR callback again."
            )
        return self.schedule(compat.counter(optimizer))

    def assign(self, value: Any) -> None:
        """Hold the plain rate ``value`` (``optimizer.learning_rate = value``)."""
        rate = float(np.asarray(ops.convert_to_numpy(value)))
        if self.on_assign is not None:
            self.on_assign(rate)
        else:
            self.schedule.hold(rate)

    def get_config(self) -> dict[str, Any]:
        return {"schedule": keras.saving.serialize_keras_object(self.schedule)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OptimizerRate:
        if not isinstance(config, Mapping) or set(config) != {"schedule"}:
            raise InvalidArgumentError(f"OptimizerRate config must be {{'schedule': ...}}, got {config!r}.")
        schedule = keras.saving.deserialize_keras_object(config["schedule"])
        if not isinstance(schedule, EngineSchedule):
            raise InvalidArgumentError(
                f"OptimizerRate config['schedule'] must be a clrplug schedule, got {type(schedule).__name__}."
            )
        return cls(schedule)




keras.saving.register_keras_serializable(package="clrplug", name="OptimizerRate")(OptimizerRate)
compat.install_load_hook()
