"""``lr_range_test``: check the arguments, run the sweep with ``fit``, give the model back.

Smith (arXiv:1506.01186, section 3.3) picks the cycle's bounds by training
briefly while the learning rate rises from a very small to a very large value.
This module checks every argument before anything changes, installs a
:class:`~clrplug.range_test.sweep.SweepSchedule` as the optimizer's rate for the
duration of the test, records each step, and restores the model bit for bit,
also when the test raises or is interrupted.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from clrplug import checks
from clrplug.callback import ScheduleCallback
from clrplug.engine import compat
from clrplug.errors import InvalidArgumentError
from clrplug.range_test.data import is_iterator, steps_per_epoch
from clrplug.range_test.recorder import Recorder
from clrplug.range_test.result import (
    DEFAULT_MAX_LR,
    DEFAULT_MIN_LR,
    DEFAULT_STEPS,
    RangeTestResult,
)
from clrplug.range_test.snapshot import Snapshot
from clrplug.range_test.sweep import SweepSchedule, check_sweep

__all__ = ["lr_range_test"]

# Callbacks that set the learning rate themselves would fight the sweep.
_LR_SETTERS = (
    ScheduleCallback,
    keras.callbacks.LearningRateScheduler,
    keras.callbacks.ReduceLROnPlateau,
)


# -- argument checks ------------------------------------------------------------------------


def _positive_int(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidArgumentError(f"{name} must be None or an integer >= {minimum}, got {value!r}.")
    return int(value)


def _stop_rule(stop_factor: Any, smoothing: Any) -> tuple[float | None, float]:
    if stop_factor is not None and (
        isinstance(stop_factor, bool)
        or not isinstance(stop_factor, (int, float, np.number))
        or not float(stop_factor) > 1
    ):
        raise InvalidArgumentError(
            f"stop_factor must be a number > 1 (or None or math.inf to never stop early), "
            f"got {stop_factor!r}."
        )
    beta = checks.real("smoothing", smoothing, low=0.0, high=1.0, high_open=True,
                       hint=" (0: no smoothing)")
    factor = None if stop_factor is None or math.isinf(stop_factor) else float(stop_factor)
    return factor, beta


def _check_model(model: Any) -> None:
    if not isinstance(model, keras.Model):
        raise InvalidArgumentError(
            f"model must be a keras.Model, got {type(model).__name__} {model!r}."
        )
    if getattr(model, "optimizer", None) is None:
        raise InvalidArgumentError(
            "model must be compiled: call model.compile(optimizer=..., loss=..., "
            "metrics=['accuracy']) before the range test."
        )
    if not model.built or not model.variables:
        raise InvalidArgumentError(
            f"model {model.name!r} is not built, so its weights cannot be saved and restored: "
            "give it a keras.Input, or call model.build(input_shape) first."
        )
    _refuse_multi_worker(model)
    inner = compat.inner_optimizer(model.optimizer)
    if not compat.has_rate(inner):
        raise InvalidArgumentError(
            f"model.optimizer ({type(inner).__name__}) has no learning rate the test can sweep; "
            "use a keras.optimizers.Optimizer."
        )


def _refuse_multi_worker(model: Any) -> None:
    """Keras 3's fit fails under ``MultiWorkerMirroredStrategy`` with several workers
    (keras-team/keras#20585): say so, and what to do, before anything changes."""
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf  # the backend: imported already

    strategy = getattr(model, "distribute_strategy", None)  # the TensorFlow trainer's
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    workers = sum(len(spec.get(job, ())) for job in ("chief", "worker"))
    if workers > 1:
        raise InvalidArgumentError(
            f"the range test does not run under MultiWorkerMirroredStrategy with {workers} "
            "workers: Keras 3's fit fails there (keras-team/keras#20585). Run the range "
            "test in one process, on one worker without the strategy, and give its "
            "suggestion (result.suggested_max_lr) to every worker's schedule."
        )


def _validation_args(
    validation_data: Any, fit_kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    batch = fit_kwargs.pop("validation_batch_size", None)
    steps = fit_kwargs.pop("validation_steps", None)
    if validation_data is None:
        return None
    if is_iterator(validation_data):
        raise InvalidArgumentError(
            f"validation_data is evaluated many times during the test, so it cannot be a "
            f"one-shot iterator ({type(validation_data).__name__}); give arrays (x_val, y_val), "
            "a tf.data.Dataset or a keras.utils.PyDataset."
        )
    kwargs: dict[str, Any] = {"batch_size": batch, "steps": steps}
    if isinstance(validation_data, (tuple, list)):
        if len(validation_data) not in (2, 3):
            raise InvalidArgumentError(
                f"validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight), "
                f"got a {type(validation_data).__name__} of length {len(validation_data)}."
            )
        if len(validation_data) == 3:
            kwargs["sample_weight"] = validation_data[2]
        return tuple(validation_data[:2]), kwargs
    return (validation_data,), kwargs


def _check_callbacks(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = callbacks.callbacks
    callbacks = list(callbacks)
    for callback in callbacks:
        if isinstance(callback, _LR_SETTERS):
            raise InvalidArgumentError(
                f"callbacks: {type(callback).__name__} sets the learning rate, which the range "
                "test sweeps itself; leave it out of the test."
            )
    return callbacks


def _plan(
    x: Any, steps: int | None, epochs: int | None, per_epoch: int | None,
    fit_kwargs: dict[str, Any],
) -> tuple[int, int]:
    """``(sweep steps, fit epochs)``; sets ``steps_per_epoch`` for data of unknown length."""
    if steps is not None:
        if per_epoch is None:
            fit_kwargs["steps_per_epoch"] = steps
            return steps, 1
        return steps, math.ceil(steps / per_epoch)
    if per_epoch is None:
        raise InvalidArgumentError(
            f"steps={steps!r} and epochs={epochs!r}, and the number of steps in an epoch of x "
            f"(a {type(x).__name__}) is unknown: pass steps=N (optimizer steps to sweep over), "
            "or epochs=N together with steps_per_epoch=M."
        )
    if epochs is None:  # the benchmarked sweep's length, the data repeated as needed
        return DEFAULT_STEPS, math.ceil(DEFAULT_STEPS / per_epoch)
    fit_epochs = epochs
    plan = fit_epochs * per_epoch
    if plan < 2:
        raise InvalidArgumentError(
            f"epochs={fit_epochs!r} of this data is {plan} optimizer step(s); the sweep "
            "needs at least 2: pass steps=N or a smaller batch_size."
        )
    return plan, fit_epochs


# -- the entry point ------------------------------------------------------------------------


def lr_range_test(
    model: Any,
    x: Any = None,
    y: Any = None,
    *,
    min_lr: float = DEFAULT_MIN_LR,
    max_lr: float = DEFAULT_MAX_LR,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    step_mode: str = "exp",
    validation_data: Any = None,
    stop_factor: float | None = 4.0,
    smoothing: float = 0.98,
    validation_every: int | None = None,
    **fit_kwargs: Any,
) -> RangeTestResult:
    """Run the LR range test on a compiled model and restore the model afterwards.

    The learning rate rises from ``min_lr`` to ``max_lr`` over ``steps`` optimizer
    steps while the model trains on ``x``/``y`` as ``model.fit`` would. Each step's
    rate, loss and metrics are recorded; the test stops early once the smoothed loss
    exceeds ``stop_factor`` times its best or becomes NaN (fastai's rule). The
    model's weights, optimizer variables (iteration count included), metric state,
    learning rate and train function are then restored exactly, also if the test
    raises or is interrupted.

    Args:
        model: a compiled, built ``keras.Model``.
        x: training data, anything ``fit`` accepts: arrays, a ``tf.data.Dataset``,
            a ``keras.utils.PyDataset``, a generator.
        y: targets, for array ``x`` (None for datasets and generators).
        min_lr: the first learning rate (``> 0`` for ``"exp"``, ``>= 0`` for ``"linear"``).
        max_lr: the last learning rate (``> min_lr``).
        steps: optimizer steps the sweep lasts (``>= 2``); the data is repeated for as
            many epochs as needed. Default: 200, which with the default range is the
            sweep the suggestion rules were chosen with (33 steps per decade).
        epochs: alternatively, the sweep lasts this many epochs of the data (its
            length must be known, or give ``steps_per_epoch``). For a generator of
            unknown length one of ``steps`` and ``epochs`` is required.
        batch_size: as in ``fit`` (arrays only).
        step_mode: ``"exp"``: geometric, evenly spaced in log-lr, as fastai and
            torch-lr-finder sweep; ``"linear"``: the seed's recipe (the triangular
            policy over the range, with ``step_size`` the test's length).
        validation_data: ``(x_val, y_val)``, a dataset or a PyDataset, evaluated every
            ``validation_every`` steps into ``val_*`` columns (the running means of
            the training epoch are left untouched); ``accuracy_rise`` then reads the
            validation accuracy, which is less noisy than one batch's.
        stop_factor: stop when the smoothed loss exceeds this multiple of its best
            (while that best is positive); None or ``math.inf`` never stops early. A
            NaN or infinite loss always stops the test.
        smoothing: factor of the bias-corrected exponential moving average of the
            loss the stop rule watches (fastai's 0.98); 0 watches the raw loss.
        validation_every: steps between evaluations of ``validation_data``; default
            about 50 evaluations over the sweep.
        **fit_kwargs: passed to ``fit``: ``verbose`` (1 shows Keras' progress bar),
            ``callbacks``, ``shuffle``, ``sample_weight``, ``class_weight``,
            ``steps_per_epoch``, ``validation_steps``, ``validation_batch_size``, ...

    Returns:
        A :class:`~clrplug.range_test.RangeTestResult`.

    Raises:
        InvalidArgumentError: a bad argument, or a model under a multi-worker TensorFlow
            strategy (Keras' fit fails there; docs/distributed.md); raised before the
            model is touched.

    Example:

    ```python
    import numpy as np, keras
    import clrplug

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]

    result = clrplug.lr_range_test(model, x, y, min_lr=1e-4, max_lr=10.0, steps=40,
                                   batch_size=32, verbose=0)
    assert len(result.lr) <= 40 and result.lr[0] == 1e-4
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))
    ```
    """
    low, high = check_sweep(min_lr, max_lr, step_mode)
    factor, beta = _stop_rule(stop_factor, smoothing)
    steps = _positive_int("steps", steps, 2)
    epochs = _positive_int("epochs", epochs, 1)
    every = _positive_int("validation_every", validation_every, 1)
    if steps is not None and epochs is not None:
        raise InvalidArgumentError(
            f"give steps ({steps!r}) or epochs ({epochs!r}), not both: the sweep lasts "
            "either a number of optimizer steps or a number of epochs."
        )
    batch_size = _positive_int("batch_size", batch_size, 1)
    _check_model(model)
    if x is None:
        raise InvalidArgumentError("x is None: the range test needs training data, as fit does.")
    callbacks = _check_callbacks(fit_kwargs.pop("callbacks", None))
    validation = _validation_args(validation_data, fit_kwargs)
    per_epoch = steps_per_epoch(x, batch_size, fit_kwargs)
    plan, fit_epochs = _plan(x, steps, epochs, per_epoch, fit_kwargs)
    initial_epoch = int(fit_kwargs.get("initial_epoch", 0) or 0)
    if batch_size is not None:
        fit_kwargs["batch_size"] = batch_size

    # Nothing has been changed so far. Build the optimizer's slots first (fit would),
    # so the snapshot holds every variable the test touches.
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    snapshot = Snapshot(model)
    optimizer = snapshot.optimizer
    # With gradient accumulation the rate changes once per update, not per batch.
    accumulation = int(getattr(optimizer, "gradient_accumulation_steps", None) or 1)
    sweep = SweepSchedule(
        low, high, max(2, plan // accumulation), step_mode,
        start=compat.read_counter(optimizer) // accumulation,
    )
    try:
        # The sweep's numbers are constants of the step: trace it anew with the sweep as
        # the rate (the optimizer's variables stay as they are; the snapshot puts back
        # its rate object and the model's own train function).
        compat.set_rate_object(optimizer, sweep)
        compat.rebuild_train_function(model)
        recorder = Recorder(
            sweep=sweep,
            optimizer=optimizer,
            plan=plan,
            stop_factor=factor,
            smoothing=beta,
            validation=validation,
            validation_every=every or max(1, plan // 50),
        )
        model.fit(
            # The recorder first: it has recorded a step before any other callback can raise.
            x, y, epochs=fit_epochs + initial_epoch, callbacks=[recorder, *callbacks], **fit_kwargs
        )
        return recorder.result(
            min_lr=low,
            max_lr=high,
            steps=plan,
            step_mode=step_mode,
            steps_per_epoch=per_epoch,
            stop_factor=factor,
            smoothing=beta,
        )
    finally:
        snapshot.restore()

