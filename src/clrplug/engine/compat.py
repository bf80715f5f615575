"""Every Keras internal clrplug touches, in one place, each checked against Keras 3.15.

Nothing else in clrplug reads a private Keras attribute or relies on behaviour
Keras does not document. pyproject.toml sets only a lower bound on Keras: CI installs
the newest release, so a Keras change that breaks one of these uses turns CI red
(the engine's tests exercise each of them) instead of holding users back.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
from keras import ops

from clrplug.errors import ClrplugError

__all__ = [
    "counter",
    "counter_dtype",
    "drive_momentum",
    "has_rate",
    "inner_optimizer",
    "install_load_hook",
    "install_rate",
    "installed_rate",
    "momentum_attribute",
    "momentum_view",
    "read_counter",
    "read_metric_variable",
    "reads_rates_ahead",
    "restore_trainer_state",
    "save_trainer_state",
    "set_momentum",
    "set_rate_object",
    "set_training_mode",
    "sync_state",
    "tf_graph",
    "torch_eager",
    "training_mode",
    "untrack_variables",
    "variable_scope",
    "variable_version",
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


def counter_dtype(optimizer: Any) -> str:
    """int32 on JAX and PyTorch, int64 on TensorFlow (Keras' ``dtype="int"``)."""
    return keras.backend.standardize_dtype(counter(optimizer).dtype)


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

    Behaviour relied on (Keras 3.13-3.15 ``BaseOptimizer.learning_rate.setter``): a
    callable is stored as is and the previous rate Variable is untracked, so the
    optimizer's variables are what a model compiled with a schedule has; and later
    ``optimizer.learning_rate = 0.01`` calls ``rate.assign(0.01)``.
    """
    optimizer.learning_rate = rate


def untrack_variables(optimizer: Any, variables: list[Any]) -> None:
    """Remove variables a tool added to ``optimizer`` for a while (the range test's sweep).

    ``BaseOptimizer._untrack_variable`` (Keras 3.13-3.15), the method Keras' own rate
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


def tf_graph() -> Any:
    """The TensorFlow graph being built now (a ``tf.function`` trace), else None.

    TensorFlow on CPU runs that graph op by op, without XLA's common-subexpression
    merging, so a value computed twice in it costs twice.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf.compat.v1.get_default_graph() if tf.inside_function() else None


def reads_rates_ahead() -> bool:
    """Whether a callback's step should read rates written ahead rather than compute them.

    TensorFlow: Keras runs its graph without XLA on CPU (``jit_compile="auto"``), one
    operation at a time at about a microsecond each, where the exact integer formula is
    some thirty operations and a read from the window a handful (benchmarks/graph_cost.py).
    """
    return keras.backend.backend() == "tensorflow"


def torch_eager() -> bool:
    """True when the step runs eagerly in PyTorch (not under ``torch.compile``)."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    return not torch.compiler.is_compiling()


def variable_version(variable: Any) -> tuple[int, int]:
    """A token that changes whenever a PyTorch-backed Keras variable is assigned.

    Keras' torch ``Variable.assign`` copies into its tensor in place, which bumps the
    tensor's ``_version`` (torch's autograd counter); a replaced tensor has a new id.
    """
    tensor = variable.value
    return id(tensor), int(tensor._version)


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


#: The attribute each supported optimizer reads its momentum from.
_MOMENTUM_ATTRIBUTES = {
    "SGD": "momentum",
    "Adam": "beta_1",
    "AdamW": "beta_1",
    "Adamax": "beta_1",
}


def momentum_attribute(optimizer: Any) -> str | None:
    """``"momentum"`` for SGD, ``"beta_1"`` for Adam, AdamW and Adamax; else None.

    The backend subclasses (``keras.src.backend.*.optimizers``) share these names.
    """
    for cls in type(optimizer).__mro__:
        if cls.__module__.startswith("keras.") and cls.__name__ in _MOMENTUM_ATTRIBUTES:
            return _MOMENTUM_ATTRIBUTES[cls.__name__]
    return None


class _MomentumView(keras.Variable):
    """The momentum the update step reads, computed from the schedule's state when read.

    Not an optimizer variable: nothing is stored, saved or carried through the step (the
    JAX trainer carries every optimizer variable through each step and re-tracks them on
    the model, about 1-2 us a step each on a small model). Reading :attr:`value` inside the
    compiled step evaluates the momentum there, from the optimizer's counter and the
    schedule's state variable, next to the rate (XLA merges the two); on the host it
    gives the current momentum.

    Keras 3.15 ``SGD.update_step`` branches on ``if self.momentum != 0`` in Python; a
    Variable would make that a traced boolean. A cycled momentum keeps SGD's velocity
    branch (it was built with momentum > 0), so the comparison with 0 is answered on the
    host. The update steps read it through ``ops.cast`` and arithmetic, which go through
    :attr:`value` on every backend (JAX ``convert_to_tensor``, TensorFlow ``__tf_tensor__``).
    """

    _clrplug_read: Callable[[], Any]

    @property
    def value(self) -> Any:
        return self._clrplug_read()

    def assign(self, value: Any) -> Any:
        raise ClrplugError(
            "this momentum is cycled by a clrplug schedule and cannot be assigned; hold a "
            "plain one with schedule.hold(rate, momentum), or pass cycle_momentum=False."
        )

    def __eq__(self, other: Any) -> Any:
        if isinstance(other, (int, float)) and other == 0:
            return False
        return super().__eq__(other)

    def __ne__(self, other: Any) -> Any:
        if isinstance(other, (int, float)) and other == 0:
            return True
        return super().__ne__(other)


def momentum_view(optimizer: Any, initial: float, read: Callable[[], Any]) -> Any:
    """A float32 scalar the update step reads as its momentum; ``read()`` computes it.

    Created in the optimizer's name scope (and tf.distribute strategy) as its own
    variables are, but not tracked by it: the optimizer's variables, and so its
    checkpoints, are unchanged by it.
    """
    with variable_scope(optimizer), keras.name_scope(optimizer.name, caller=optimizer):
        view = _MomentumView(
            initializer=keras.initializers.Constant(initial), shape=(), dtype="float32",
            trainable=False, name="clrplug_momentum",
        )
    view._clrplug_read = read
    return view


def drive_momentum(optimizer: Any, value: Any, original: float) -> None:
    """Let the optimizer read its momentum from ``value`` (a float or a Variable).

    The update steps read ``self.momentum`` / ``self.beta_1`` each step (Keras
    3.15 ``SGD.update_step``, ``Adam.update_step``, the torch backend's
    ``_parallel_update_step``). ``get_config`` must still report the optimizer's
    own float, so the instance's ``get_config`` reports ``original``.
    """
    attribute = momentum_attribute(optimizer)
    assert attribute is not None
    object.__setattr__(optimizer, attribute, value)
    if "get_config" not in vars(optimizer):
        own = type(optimizer).get_config

        @functools.wraps(own)
        def get_config() -> dict[str, Any]:
            config = own(optimizer)
            config[attribute] = optimizer._clrplug_own_momentum
            return config

        object.__setattr__(optimizer, "get_config", get_config)
    object.__setattr__(optimizer, "_clrplug_own_momentum", float(original))


def set_momentum(optimizer: Any, attribute: str, value: float) -> None:
    """Set the momentum the next update step reads, once :func:`drive_momentum` has run
    (PyTorch's eager step, every step: only the attribute, no checks)."""
    object.__setattr__(optimizer, attribute, value)


def _shapes_differ(optimizer: Any, store: Any) -> bool:
    """Warn and return True when ``store`` has as many variables as ``optimizer`` but not theirs.

    Keras loads optimizer variables by position once the counts agree; a checkpoint saved
    without clrplug (a plain rate variable where the state variable is) can have the same
    count, and would fail on a shape mismatch. It is skipped as Keras skips a count mismatch.
    """
    variables = list(optimizer.variables)
    if len(store.keys()) != len(variables):
        return False
    for i, variable in enumerate(variables):
        saved = tuple(getattr(store[str(i)], "shape", ()))
        if saved != tuple(variable.shape):
            warnings.warn(
                f"Skipping variable loading for optimizer '{optimizer.name}': the saved "
                f"optimizer's variable {i} has shape {saved}, this one's ({variable.path}) "
                f"{tuple(variable.shape)}; the checkpoint was not saved with this clrplug "
                "schedule bound.",
                stacklevel=3,
            )
            return True
    return False


def install_load_hook() -> None:
    """Let a ``.keras`` file saved with a bound clrplug schedule load its optimizer state.

    A bound schedule keeps its state in optimizer variables that Keras' deserialised
    optimizer does not create, so ``Optimizer.load_own_variables`` (Keras 3.15) would
    skip the whole optimizer for a count mismatch. Before it runs, a schedule that was
    saved bound (``_clrplug_bind_for_load``) creates its variables when the store has
    exactly that many more. Installed once, on ``keras.optimizers.Optimizer``.
    """
    cls = keras.optimizers.Optimizer
    if getattr(cls.load_own_variables, "_clrplug_hook", False):
        return
    keras_load = cls.load_own_variables

    @functools.wraps(keras_load)
    def load_own_variables(self: Any, store: Any) -> None:
        inner = inner_optimizer(self)
        rate = getattr(inner, "_learning_rate", None)
        bind = getattr(getattr(rate, "schedule", rate), "_clrplug_bind_for_load", None)
        if bind is not None:
            bind(inner, len(store.keys()) - len(self.variables))
            if _shapes_differ(self, store):
                return
        keras_load(self, store)

    load_own_variables._clrplug_hook = True  # type: ignore[attr-defined]
    cls.load_own_variables = load_own_variables
