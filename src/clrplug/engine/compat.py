"""Every Keras internal clrplug touches, in one place, checked on Keras 3.15 and newer.

Nothing else in clrplug reads a private Keras attribute or relies on behaviour Keras
does not document; :data:`PRIVATE` lists each private attribute used here and what for,
and tests/test_keras_compat.py fails, naming it, when a Keras release removes one or
when code outside this module reads one. Nothing is patched: no method of a Keras class
or instance is replaced at import or during a fit. pyproject.toml sets only a lower
bound on Keras: CI installs the newest release, so a Keras change that breaks one of
these uses turns CI red instead of holding users back.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
from keras import ops

#: The private Keras attributes this module uses (Keras 3.15), by owner: the
#: owner's attribute, and why.
PRIVATE: dict[str, dict[str, str]] = {
    "optimizer": {
        "_iterations": "the raw step counter Keras calls a schedule with",
        "_learning_rate": "the rate object (a Variable, a schedule or a callable)",
        "_tracker": "unlocked while the rate Variable is tracked again after a fit",
        "_variables": "where the rate Variable goes back to its index after a fit",
        "_untrack_variable": "the range test removes what it added, as the rate setter does",
        "_distribution_strategy": "TensorFlow: the strategy a variable is created under",
    },
    "callback": {
        "_model": "the model set_model gave, read without Callback.model's JAX state sync",
    },
    "model": {
        "_jax_state": "JAX: one metric's value during fit without a full state sync",
        "_jax_state_synced": "JAX: whether that state is newer than the variables",
    },
}

__all__ = [
    "PRIVATE",
    "STATE_ATTRIBUTE",
    "callback_model",
    "carried_state",
    "carry_state",
    "clear_trace_cache",
    "counter",
    "guard_test_function",
    "guard_train_function",
    "has_rate",
    "inner_optimizer",
    "install_rate",
    "installed_rate",
    "new_rate_variable",
    "rate_variable_index",
    "read_counter",
    "read_metric_variable",
    "rebuild_train_function",
    "restore_rate_variable",
    "restore_trainer_state",
    "save_trainer_state",
    "set_rate_object",
    "set_train_function",
    "set_training_mode",
    "sync_state",
    "torch_eager",
    "training_mode",
    "untrack_variables",
    "variable_scope",
]


def inner_optimizer(optimizer: Any) -> Any:
    """The optimizer that owns the rate and the counter (a LossScaleOptimizer wraps one).

    Public attribute ``inner_optimizer`` of ``keras.optimizers.LossScaleOptimizer``.
    """
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def counter(optimizer: Any) -> Any:
    """The optimizer's raw step counter: ``_iterations`` (Keras 3.0-3.15).

    Keras calls a schedule with it; the public ``iterations`` divides it by
    ``gradient_accumulation_steps`` (micro-batches vs updates).
    """
    return optimizer._iterations


def read_counter(optimizer: Any) -> int:
    """The raw counter's value on the host (on JAX, sync the trainer's state first)."""
    return int(ops.convert_to_numpy(counter(optimizer).value))


def has_rate(optimizer: Any) -> bool:
    """Whether ``optimizer`` has a rate object and a counter (``_learning_rate``, ``_iterations``).

    Every ``keras.optimizers.Optimizer`` of Keras 3.0-3.15 has both.
    """
    return hasattr(optimizer, "_learning_rate") and hasattr(optimizer, "_iterations")


def installed_rate(optimizer: Any) -> Any:
    """The optimizer's rate object: ``_learning_rate`` (a Variable, schedule or callable)."""
    return optimizer._learning_rate


def install_rate(optimizer: Any, rate: Callable[[], Any]) -> None:
    """Make ``rate`` the optimizer's learning rate through Keras' public setter.

    Behaviour relied on (Keras 3.15 ``BaseOptimizer.learning_rate.setter``): a
    callable is stored as is and the previous rate Variable is untracked, so the
    optimizer's variables are what a model compiled with a schedule has; and later
    ``optimizer.learning_rate = 0.01`` calls ``rate.assign(0.01)``.
    """
    optimizer.learning_rate = rate


def untrack_variables(optimizer: Any, variables: list[Any]) -> None:
    """Remove variables a tool added to ``optimizer`` for a while (the range test's sweep).

    ``BaseOptimizer._untrack_variable`` (Keras 3.15), the method Keras' own rate
    setter uses to drop a replaced rate Variable.
    """
    for variable in variables:
        optimizer._untrack_variable(variable)


def set_rate_object(optimizer: Any, rate: Any) -> None:
    """Put back a rate object exactly as it was (``_learning_rate``), tracking untouched.

    Unlike the public setter this neither untracks a Variable nor assigns one: a tool
    that swapped the rate restores the optimizer's own object and variables as they were.
    """
    optimizer._learning_rate = rate


#: What ``fit`` (and ``evaluate``) change on a model besides its variables (Keras 3.15):
#: the compiled step functions (caches, put back as the same objects), ``stop_training``,
#: ``history``, and the JAX trainer's state in flight (``_jax_state``, ``_jax_state_synced``).
_TRAINER_ATTRIBUTES = (
    "train_function",
    "test_function",
    "stop_training",
    "history",
    "_jax_state",
    "_jax_state_synced",
)
_MISSING = object()
_TRAINING_MODE = "training mode"


def training_mode(model: Any) -> bool | None:
    """A PyTorch-backed model's training mode (``torch.nn.Module.training``); else None."""
    if keras.backend.backend() != "torch":
        return None
    return getattr(model, "training", None)


def set_training_mode(model: Any, mode: bool | None) -> None:
    """Put back a mode :func:`training_mode` read (Keras' ``evaluate`` leaves eval mode on)."""
    if mode is not None:
        model.train(mode)


def save_trainer_state(model: Any) -> dict[str, Any]:
    """The model attributes ``fit`` changes (see ``_TRAINER_ATTRIBUTES``), to put back later.

    Also the training mode (:func:`training_mode`).
    """
    saved = {name: vars(model).get(name, _MISSING) for name in _TRAINER_ATTRIBUTES}
    saved[_TRAINING_MODE] = training_mode(model)
    return saved


def restore_trainer_state(model: Any, saved: dict[str, Any]) -> None:
    """Put back what :func:`save_trainer_state` saved, each attribute as the same object.

    Set with ``object.__setattr__``: Keras' layer ``__setattr__`` would track the values.
    """
    for name, value in saved.items():
        if name == _TRAINING_MODE:
            set_training_mode(model, value)
        elif value is _MISSING:
            vars(model).pop(name, None)
        else:
            object.__setattr__(model, name, value)


def torch_eager() -> bool:
    """True when the step runs eagerly in PyTorch (not under ``torch.compile``)."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    return not torch.compiler.is_compiling()


@contextlib.contextmanager
def variable_scope(optimizer: Any) -> Iterator[None]:
    """Where to create optimizer variables: under the optimizer's tf.distribute strategy.

    Keras' TensorFlow optimizer keeps the strategy it was built in as
    ``_distribution_strategy``; variables created outside it are not mirrored.
    """
    strategy = getattr(optimizer, "_distribution_strategy", None)
    if keras.backend.backend() == "tensorflow" and strategy is not None:
        with strategy.scope():
            yield
    else:
        yield


def callback_model(callback: Any) -> Any:
    """The model Keras gave ``callback`` (``set_model``), or None, as it is: the public
    ``Callback.model`` property first syncs the JAX trainer's whole state into the
    variables (Keras 3.15), a cost per call that reading a rate or a count does not need."""
    return getattr(callback, "_model", None)


def sync_state(model: Any) -> None:
    """On JAX, bring the trainer's state back into the variables (public ``jax_state_sync``).

    During ``fit`` the JAX trainer keeps the state outside the variables; reading or
    assigning an optimizer variable in between steps needs this first. The fit loop
    then reads the variables again before the next step.
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def read_metric_variable(model: Any, variable: Any) -> Any:
    """A metric variable's current value, without syncing the whole JAX trainer state.

    During ``fit`` on JAX the current metric values are in ``model._jax_state``
    (Keras 3.15 JAX trainer, the state dict its ``jax_state_sync`` reads): one array is
    read there instead of assigning every variable back. Elsewhere, the variable.
    """
    state = getattr(model, "_jax_state", None)
    if state and not getattr(model, "_jax_state_synced", True):
        values = state.get("metrics_variables")
        if values:
            for ref, value in zip(model.metrics_variables, values, strict=False):
                if ref is variable:
                    return ops.convert_to_numpy(value)
    # ``Variable.numpy()``, not ``convert_to_numpy(variable.value)``: under a
    # tf.distribute strategy the value is a SyncOnReadVariable, which numpy cannot read
    # directly; ``numpy()`` reads it aggregated over the replicas.
    return variable.numpy()


def restore_rate_variable(optimizer: Any, variable: Any, index: int, value: float) -> None:
    """Make ``variable`` the optimizer's rate again, holding ``value``, at position ``index``
    of ``optimizer.variables`` (where Keras created it: a plain optimizer's checkpoints
    list it there).

    The inverse of :func:`install_rate`'s untracking. ``BaseOptimizer._learning_rate``,
    ``_tracker`` (its lock) and ``_variables`` (the tracker's store of variables), Keras
    3.15: setting the attribute tracks the variable at the end of the store, so it
    is moved back to its index.
    """
    variable.assign(value)
    tracker = optimizer._tracker
    locked = tracker.locked
    tracker.unlock()
    try:
        optimizer._learning_rate = variable  # Keras' __setattr__ tracks it (appends it)
    finally:
        if locked:
            tracker.lock()
    store = optimizer._variables
    position = next(i for i, v in enumerate(store) if v is variable)
    if position != index:
        store.insert(min(index, len(store) - 1), store.pop(position))


def new_rate_variable(optimizer: Any) -> Any:
    """A rate Variable as ``BaseOptimizer.__init__`` creates one for a float rate (Keras
    3.15: float32 ``learning_rate`` in the optimizer's name scope, ``only_first_replica``),
    untracked; for an optimizer loaded with a rate object instead of a Variable."""
    with variable_scope(optimizer), keras.name_scope(optimizer.name, caller=optimizer):
        return keras.Variable(
            0.0, name="learning_rate", dtype=keras.backend.floatx(), trainable=False,
            aggregation="only_first_replica",
        )


def rate_variable_index(optimizer: Any) -> int:
    """Where a plain optimizer keeps its rate Variable: right after its counter."""
    for i, variable in enumerate(optimizer.variables):
        if variable is counter(optimizer):
            return i + 1
    return 0


def rebuild_train_function(model: Any) -> None:
    """Make the model trace its train step again at its next step (public
    ``make_train_function(force=True)``): the schedule's numbers are constants of a traced
    step. ``fit`` reads ``model.train_function`` before every step (Keras 3.15
    trainers), so this also takes effect in the middle of a fit."""
    model.make_train_function(force=True)
    clear_trace_cache(model.train_function)


def _ends_the_data(exc: BaseException) -> bool:
    """Whether ``exc`` is how a step says the data ran out (``fit`` catches it and goes on):
    ``StopIteration``, or TensorFlow's ``OutOfRangeError``."""
    return isinstance(exc, (StopIteration, StopAsyncIteration)) or type(exc).__name__ == "OutOfRangeError"


class _GuardedStep:
    """A model's train function that calls ``on_error`` when a step raises (and re-raises).

    Everything else is the wrapped function's (TensorBoard reads a ``tf.function``'s
    graph through its attributes).
    """

    def __init__(self, function: Callable[..., Any], on_error: Callable[[], None],
                 after: Callable[[], None] | None) -> None:
        self.__wrapped__ = function
        self._on_error = on_error
        self._after = after

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.__wrapped__(*args, **kwargs)
        except BaseException as exc:
            if not _ends_the_data(exc):
                try:
                    self._on_error()
                except Exception as cleanup:  # never hide the step's own error
                    warnings.warn(f"clrplug could not clean up after the failed step: {cleanup!r}",
                                  RuntimeWarning, stacklevel=2)
            raise
        finally:
            if self._after is not None:
                self._after()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__wrapped__, name)


def set_train_function(model: Any, function: Any) -> None:
    """Put a train function back on the model (one this module built or found there),
    without Keras' attribute tracking."""
    object.__setattr__(model, "train_function", function)


def guard_train_function(model: Any, on_error: Callable[[], None],
                         after: Callable[[], None] | None = None) -> None:
    """Build the model's train function now and let ``on_error`` run when a step raises.

    ``fit`` calls ``make_train_function()`` after the callbacks' ``set_model`` and keeps
    a function that is already there (Keras 3.15), and calls ``model.train_function``
    for every step: an exception or ``KeyboardInterrupt`` in a step, where a fit spends
    its time, reaches ``on_error`` on its way out (no callback hook runs then).
    ``after`` runs after every call (a traced step may have left tensors on the host).
    """
    rebuild_train_function(model)
    object.__setattr__(model, "train_function", _GuardedStep(model.train_function, on_error, after))


def guard_test_function(model: Any, on_error: Callable[[], None]) -> Callable[[], None]:
    """Let ``on_error`` run when a step of the evaluation now beginning raises; returns
    what puts the model's own test function back.

    ``evaluate`` (also ``fit``'s validation) builds ``model.test_function`` before the
    callbacks' ``on_test_begin`` and calls it for every step (Keras 3.15): a Ctrl-C in a
    long validation reaches ``on_error`` on its way out of ``fit``.
    """
    function = getattr(model, "test_function", None)
    if isinstance(function, _GuardedStep):  # left by an evaluation that did not end
        function = function.__wrapped__
    if function is None:
        return lambda: None
    guarded = _GuardedStep(function, on_error, None)
    object.__setattr__(model, "test_function", guarded)

    def unguard() -> None:
        if getattr(model, "test_function", None) is guarded:
            object.__setattr__(model, "test_function", function)

    return unguard


#: The optimizer attribute that carries a callback's ``CycleState`` during its fit.
STATE_ATTRIBUTE = "clrplug_cycle_state"


def carry_state(optimizer: Any, state: Any) -> None:
    """Let ``optimizer``'s checkpoints hold ``state`` (None: no more): an attribute of it.

    Behaviour relied on (Keras 3.15 ``saving_lib._save_state`` / ``_load_state`` and
    ``_walk_saveable``): saving walks every attribute of the optimizer that a plain
    ``Optimizer`` does not have, and saves and loads each ``KerasSaveable`` found there
    (``state`` is a ``keras.metrics.Metric``) through its ``save_own_variables`` /
    ``load_own_variables``, under the attribute's name; loading into an optimizer
    without the attribute ignores that group.
    """
    if state is None:
        vars(optimizer).pop(STATE_ATTRIBUTE, None)
    else:
        object.__setattr__(optimizer, STATE_ATTRIBUTE, state)


def carried_state(optimizer: Any) -> Any:
    """What :func:`carry_state` put on ``optimizer``, or None."""
    return vars(optimizer).get(STATE_ATTRIBUTE)


def clear_trace_cache(function: Any) -> None:
    """Make JAX trace ``function`` (a model's train function) again at its next call.

    Keras 3.15's JAX trainer builds the train function as a closure over
    ``jax.jit(model.train_step, ...)``; jitted functions of the same bound method share
    one trace cache while any of them lives, so a rebuilt train function would reuse a
    trace made with other constants. ``clear_cache()`` of the closure's jitted
    function empties that shared cache. A no-op elsewhere (a new ``tf.function``
    traces anew; PyTorch runs eagerly).
    """
    if keras.backend.backend() != "jax":
        return
    function = getattr(function, "__wrapped__", function)
    for cell in getattr(function, "__closure__", None) or ():
        value = cell.cell_contents
        if callable(getattr(value, "clear_cache", None)):
            value.clear_cache()
