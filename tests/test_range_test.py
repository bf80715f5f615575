"""The LR range test: the sweep, the per-batch record, the stop rule, restoring the model,
and the suggestions read from the record.

Expected values come from outside the code under test: ``np.geomspace`` /
``np.linspace`` for the sweep, weight updates of a model whose gradient is known
for the rates actually applied, numpy losses computed from the weights each batch
started from, bit-for-bit comparisons with numpy copies taken before the test, and
the rule functions of :mod:`clrplug.range_test.rules` (tested on their own in
tests/test_rules.py) applied to the record directly.
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings

import keras
import numpy as np
import pytest
from keras import ops

import clrplug
from clrplug.range_test import (
    DEFAULT_LOWER,
    DEFAULT_RULE,
    RangeTestResult,
    Suggestion,
    SweepSchedule,
    sweep_rates,
)
from clrplug.range_test.defaults import DEFAULT_PEAK_FACTOR
from clrplug.range_test.rules import BUILTIN_RULES, AmbiguousCurveWarning, RuleResult

BACKEND = keras.backend.backend()

# -- helpers ---------------------------------------------------------------------------------


def _numpy(variable) -> np.ndarray:
    return np.array(ops.convert_to_numpy(variable), copy=True)


def _state(model) -> dict[str, list[np.ndarray]]:
    """Numpy copies of everything the test must leave untouched."""
    return {
        "weights": [_numpy(v) for v in model.variables],
        "optimizer": [_numpy(v) for v in model.optimizer.variables],
        "metrics": [_numpy(v) for v in model.metrics_variables],
    }


def _assert_same_state(
    before: dict[str, list[np.ndarray]], model, kinds=("weights", "optimizer", "metrics")
) -> None:
    after = _state(model)
    for kind in kinds:
        assert len(before[kind]) == len(after[kind]), kind
        for a, b in zip(before[kind], after[kind], strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape, kind
            assert a.tobytes() == b.tobytes(), f"{kind} changed"


def _classifier(seed: int = 0, optimizer=None, tripwire: bool = False) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers = [
        keras.Input((6,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(3, activation="softmax"),
    ]
    if tripwire:
        layers.insert(1, _Tripwire())
    model = keras.Sequential(layers)
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _linear(tripwire: bool = False) -> keras.Model:
    """loss = mean(w * x) with x = 1: each SGD step moves the weight by exactly -lr."""
    layers = [keras.Input((1,)),
              keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    if tripwire:
        layers.insert(1, _Tripwire())
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=lambda y_true, y_pred: ops.mean(y_pred))
    return model


def _data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (np.argmax(x[:, :3], axis=1)).astype("int32")
    return x, y


class _StepFailure(RuntimeError):
    """Raised by the tripwire inside a PyTorch step."""


def _step_failure() -> type[BaseException]:
    """What an exception raised inside the compiled step comes out as, per backend."""
    if BACKEND == "jax":
        import jax

        return jax.errors.JaxRuntimeError
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.errors.InvalidArgumentError
    return _StepFailure


def _trip(count, limit) -> None:
    if int(count) >= int(limit):
        raise _StepFailure(f"tripwire: step {int(count)}")


class _Tripwire(keras.layers.Layer):
    """An identity layer that fails inside the compiled training step once ``limit`` is reached.

    It counts its training calls in a variable; at run time (not when traced) a call with
    ``count >= limit`` raises: a host callback on JAX, an assertion op on TensorFlow, a
    Python ``raise`` in PyTorch's eager step.
    """

    def build(self, input_shape) -> None:
        self.count = self.add_weight(shape=(), initializer="zeros", dtype="int32",
                                     trainable=False, name="count")
        self.limit = self.add_weight(shape=(), initializer=keras.initializers.Constant(2**30),
                                     dtype="int32", trainable=False, name="limit")

    def arm(self, steps_from_now: int) -> None:
        self.limit.assign(int(_numpy(self.count)) + steps_from_now)

    def disarm(self) -> None:
        self.limit.assign(2**30)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=None):
        if not training:  # only training steps count (and a symbolic build has no values)
            return inputs
        count = self.count + 1
        self.count.assign(count)
        if BACKEND == "jax":
            import jax

            jax.debug.callback(_trip, count, self.limit.value)
        elif BACKEND == "tensorflow":
            import tensorflow as tf

            tf.debugging.assert_less(count, self.limit.value, message="tripwire")
        else:
            _trip(count, self.limit.value)
        return inputs


class _Raise(keras.callbacks.Callback):
    def __init__(self, at: int, error: BaseException) -> None:
        super().__init__()
        self.at, self.error, self.calls = at, error, 0

    def on_train_batch_end(self, batch, logs=None):
        self.calls += 1
        if self.calls == self.at:
            raise self.error


class _WeightsAtBatchBegin(keras.callbacks.Callback):
    """Numpy copies of the weights each batch starts from (a test needs them; users don't)."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[list[np.ndarray]] = []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])

    def on_train_end(self, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])


def _applied_rates(model, **kwargs) -> tuple[np.ndarray, RangeTestResult]:
    """The rates the optimizer applied during a range test of a ``_linear`` model."""
    weights = _WeightsAtBatchBegin()
    result = clrplug.lr_range_test(
        model, np.ones((20, 1), "float32"), np.zeros((20, 1), "float32"), batch_size=1,
        stop_factor=None, verbose=0, shuffle=False, callbacks=[weights], **kwargs,
    )
    kernel = np.array([w[-1].item() for w in weights.weights], dtype=np.float64)
    return -np.diff(kernel), result


def _kernel(model) -> float:
    return float(model.get_weights()[-1].item())


# -- the sweep --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("exp", lambda: np.geomspace(1e-5, 3.0, 50)),
        ("linear", lambda: np.linspace(0.0, 3.0, 50)),
    ],
)
def test_sweep_rates_match_numpy(mode, expected):
    low = 1e-5 if mode == "exp" else 0.0
    rates = sweep_rates(np.arange(50), low, 3.0, 50, mode)
    np.testing.assert_allclose(rates, expected(), rtol=1e-13, atol=0)
    assert rates[0] == low and rates[-1] == pytest.approx(3.0, rel=1e-15)
    # Past the end the sweep holds max_lr.
    assert sweep_rates(80, low, 3.0, 50, mode) == pytest.approx(3.0, rel=1e-15)


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_sweep_schedule_in_graph_matches_host_formula(mode):
    schedule = SweepSchedule(1e-4, 2.0, 40, mode, start=1000)
    steps = np.arange(990, 1050)
    graph = np.array([float(ops.convert_to_numpy(schedule(int(s)))) for s in steps])
    host, momentum = schedule.values_at(steps)
    assert momentum is None
    np.testing.assert_allclose(graph, host, rtol=2e-6)
    np.testing.assert_allclose(host[10:50], sweep_rates(np.arange(40), 1e-4, 2.0, 40, mode),
                               rtol=1e-15)
    assert graph[0] == pytest.approx(1e-4, rel=1e-6)  # before start: min_lr


def test_the_sweep_adds_no_variable_and_the_optimizer_comes_back_as_it_was():
    """During the test the optimizer holds its own variables only (the sweep's numbers are
    constants of the step); afterwards its rate object and variables are the same objects."""
    model = _classifier()
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    before, rate = list(optimizer.variables), optimizer._learning_rate
    seen = []

    class Look(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append([v.path for v in self.model.optimizer.variables])

    x, y = _data(32)
    clrplug.lr_range_test(model, x, y, batch_size=8, steps=6, verbose=0, callbacks=[Look()])
    assert seen and all(paths == [v.path for v in before] for paths in seen)
    assert all(a is b for a, b in zip(optimizer.variables, before, strict=True))
    assert len(optimizer.variables) == len(before) and optimizer._learning_rate is rate


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_lr": 0.0, "max_lr": 1.0, "steps": 5}, r"min_lr must be > 0 for step_mode='exp'"),
        ({"min_lr": 1e-3, "max_lr": 1.0, "steps": 1}, r"steps must be an integer in \[2, "),
        ({"min_lr": 1e-3, "max_lr": 1.0, "steps": 5, "step_mode": "cos"},
         r"step_mode must be one of \['exp', 'linear'\], got 'cos'"),
    ],
)
def test_sweep_schedule_refuses_bad_arguments(kwargs, match):
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=match):
        SweepSchedule(**kwargs)


# -- the rates applied ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_rates_applied_by_the_optimizer_are_the_sweep(mode):
    model = _linear()
    model.fit(np.ones((3, 1)), np.zeros((3, 1)), batch_size=1, verbose=0)  # iterations = 3
    low = 1e-3 if mode == "exp" else 0.0
    applied, result = _applied_rates(model, min_lr=low, max_lr=0.5, steps=12, step_mode=mode)
    expected = np.geomspace(low, 0.5, 12) if mode == "exp" else np.linspace(low, 0.5, 12)
    np.testing.assert_allclose(applied, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.lr, expected, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(result.iterations, np.arange(4, 16))  # started at 3
    assert result.stop_reason == "completed" and result.steps == 12
    # Afterwards training runs at the compiled rate again, from the restored weights.
    assert _kernel(model) == -1.5
    model.fit(np.ones((1, 1)), np.zeros((1, 1)), batch_size=1, verbose=0)
    assert _kernel(model) == -2.0


def test_cached_traces_never_give_a_step_the_wrong_rates():
    # JAX reuses a cached trace whenever the variable structure matches. Here: the model's
    # own step is compiled and referenced; a first test traces the sweep; a second test
    # (other mode, other range, same structure) reuses that trace, which must read its
    # own numbers; then fit reuses the original step, which must read the original rate.
    model = _linear()
    model.fit(np.ones((2, 1)), np.zeros((2, 1)), batch_size=1, verbose=0)
    kept = model.train_function
    variables = list(model.optimizer.variables)
    applied, _ = _applied_rates(model, min_lr=1e-3, max_lr=0.5, steps=10, step_mode="exp")
    np.testing.assert_allclose(applied, np.geomspace(1e-3, 0.5, 10), rtol=1e-5, atol=1e-7)
    applied, _ = _applied_rates(model, min_lr=0.0, max_lr=0.25, steps=8, step_mode="linear")
    np.testing.assert_allclose(applied, np.linspace(0.0, 0.25, 8), rtol=1e-5, atol=1e-7)
    assert model.train_function is kept
    assert all(a is b for a, b in zip(model.optimizer.variables, variables, strict=True))
    assert len(model.optimizer.variables) == len(variables)
    assert _kernel(model) == -1.0
    model.fit(np.ones((1, 1)), np.zeros((1, 1)), batch_size=1, verbose=0)
    assert _kernel(model) == -1.5


def test_training_after_a_failed_step_runs_at_the_original_rate():
    # The exception (kept alive here, as Jupyter keeps the last one) holds the frames of
    # the failed step; a later fit must still apply the model's own rate.
    model = _linear(tripwire=True)
    ones, zeros = np.ones((1, 1), "float32"), np.zeros((1, 1), "float32")
    model.fit(ones, zeros, batch_size=1, verbose=0)
    tripwire = model.layers[0]
    tripwire.arm(3)  # the third step of the test fails inside the step
    with pytest.raises(_step_failure()) as raised:
        clrplug.lr_range_test(model, np.ones((8, 1), "float32"), np.zeros((8, 1), "float32"),
                              min_lr=1e-3, max_lr=1e-2, steps=6, batch_size=1, verbose=0)
    assert _kernel(model) == -0.5
    tripwire.disarm()
    model.fit(ones, zeros, batch_size=1, verbose=0)
    assert _kernel(model) == -1.0
    del raised


def test_no_cache_is_ever_cleared(monkeypatch):
    if BACKEND != "jax":
        pytest.skip("jax.clear_caches exists on JAX only")
    import jax

    def refuse() -> None:
        raise AssertionError("the range test cleared JAX's caches")

    monkeypatch.setattr(jax, "clear_caches", refuse)
    model = _linear(tripwire=True)
    model.fit(np.ones((1, 1)), np.zeros((1, 1)), batch_size=1, verbose=0)
    applied, _ = _applied_rates(model, min_lr=1e-3, max_lr=0.1, steps=5)
    np.testing.assert_allclose(applied, np.geomspace(1e-3, 0.1, 5), rtol=1e-5, atol=1e-7)
    model.layers[0].arm(2)
    with pytest.raises(jax.errors.JaxRuntimeError):
        _applied_rates(model, min_lr=1e-3, max_lr=0.1, steps=5)
    model.layers[0].disarm()
    applied, _ = _applied_rates(model, min_lr=1e-2, max_lr=1.0, steps=4)
    np.testing.assert_allclose(applied, np.geomspace(1e-2, 1.0, 4), rtol=1e-5, atol=1e-7)
    model.fit(np.ones((1, 1)), np.zeros((1, 1)), batch_size=1, verbose=0)
    assert _kernel(model) == -1.0


# -- the per-batch record ---------------------------------------------------------------------


def test_loss_and_metrics_are_per_batch_not_running_means():
    # 70 samples in batches of 32: 32, 32, 6 -- the short last batch weighs less in Keras' mean.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(70, 3)).astype("float32")
    y = rng.normal(size=(70, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse",
                  metrics=["mae", keras.metrics.RootMeanSquaredError(name="rmse")])
    weights = _WeightsAtBatchBegin()
    result = clrplug.lr_range_test(
        model, x, y, min_lr=1e-3, max_lr=0.1, epochs=3, batch_size=32, shuffle=False,
        stop_factor=None, verbose=0, callbacks=[weights],
    )
    assert len(result.loss) == 9 and result.steps_per_epoch == 3
    batches = [slice(0, 32), slice(32, 64), slice(64, 70)] * 3
    expected_mse, expected_mae = [], []
    for (kernel, bias), rows in zip(weights.weights[:9], batches, strict=True):
        error = x[rows].astype(np.float64) @ kernel + bias - y[rows]
        expected_mse.append(np.mean(error**2))
        expected_mae.append(np.mean(np.abs(error)))
    np.testing.assert_allclose(result.loss, expected_mse, rtol=2e-5)
    np.testing.assert_allclose(result.metrics["mae"], expected_mae, rtol=2e-5)
    # RMSE is not a mean of per-sample values (it is the root of one), so it is kept as
    # Keras logs it: over the epoch so far, samples weighted.
    sizes = np.array([32, 32, 6] * 3, dtype=np.float64)
    running = []
    for epoch in range(3):
        rows = slice(3 * epoch, 3 * epoch + 3)
        mse, n = np.array(expected_mse[rows]), sizes[rows]
        running.extend(np.sqrt(np.cumsum(n * mse) / np.cumsum(n)))
    np.testing.assert_allclose(result.metrics["rmse"], running, rtol=2e-5)
    # The smoothed loss is fastai's bias-corrected moving average of those values.
    average, smoothed = 0.0, []
    for i, loss in enumerate(result.loss, start=1):
        average = 0.98 * average + 0.02 * loss
        smoothed.append(average / (1 - 0.98**i))
    np.testing.assert_allclose(result.smoothed_loss, smoothed, rtol=1e-12)


def test_steps_per_execution_gives_one_row_per_execution():
    if BACKEND == "torch":
        pytest.skip("Keras allows steps_per_execution > 1 only on JAX and TensorFlow")
    x = np.random.default_rng(0).normal(size=(70, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=2)
    result = clrplug.lr_range_test(model, x, x.sum(1, keepdims=True), min_lr=1e-3, max_lr=0.1,
                                   epochs=2, batch_size=16, stop_factor=None, verbose=0)
    # 5 batches per epoch, run 2 + 2 + 1: the short execution counts its one step.
    np.testing.assert_array_equal(result.iterations, [2, 4, 5, 7, 9, 10])
    np.testing.assert_allclose(result.lr, sweep_rates(result.iterations - 1, 1e-3, 0.1, 10))
    assert np.all(np.isfinite(result.loss))


def test_validation_is_recorded_without_disturbing_the_training_record():
    x, y = _data(128)
    runs = {}
    for validate in (False, True):
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
        keras.utils.set_random_seed(3)
        model.set_weights([np.full((6, 3), 0.1, "float32"), np.zeros(3, "float32")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        runs[validate] = clrplug.lr_range_test(
            model, x, y, min_lr=1e-3, max_lr=1.0, steps=8, batch_size=32, shuffle=False,
            validation_data=(x[:40], y[:40]) if validate else None, validation_every=3,
            verbose=0,
        )
    plain, validated = runs[False], runs[True]
    np.testing.assert_allclose(validated.loss, plain.loss, rtol=1e-6)
    np.testing.assert_allclose(validated.metrics["accuracy"], plain.metrics["accuracy"],
                               rtol=1e-6)
    evaluated = np.flatnonzero(np.isfinite(validated.metrics["val_loss"]))
    np.testing.assert_array_equal(evaluated, [2, 5, 7])  # every 3 steps, and the last
    assert "val_accuracy" in validated.metrics and "val_loss" not in plain.metrics


# -- the stop rule ------------------------------------------------------------------------------


def test_stops_when_the_smoothed_loss_exceeds_stop_factor_times_its_best():
    x, y = _data(256)
    model = _classifier(optimizer=keras.optimizers.SGD(0.01))
    result = clrplug.lr_range_test(
        model, x, y, min_lr=1e-2, max_lr=1e6, steps=60, batch_size=16, stop_factor=2.0,
        smoothing=0.5, verbose=0,
    )
    assert result.stop_reason in ("diverged", "nan")
    assert len(result.lr) < 60
    smoothed = result.smoothed_loss
    last = len(smoothed) - 1
    if result.stop_reason == "diverged":
        best_before = np.minimum.accumulate(smoothed)
        assert smoothed[last] > 2.0 * best_before[last - 1]
        assert np.all(smoothed[1:last] <= 2.0 * best_before[: last - 1])
    else:
        assert not np.isfinite(result.loss[last]) and np.all(np.isfinite(result.loss[:last]))
    assert result.valid_steps == last
    assert result.curve().diverged_at == last


# -- restoring the model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_model():
    """A model with non-trivial state: trained weights, BN statistics, Adam moments.

    Shared by the tests below, which each check that the range test gave it back intact.
    """
    x, y = _data(96)
    model = _classifier(tripwire=True)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model, x, y


def test_restores_weights_optimizer_and_iterations_bit_for_bit(trained_model):
    model, x, y = trained_model
    before = _state(model)
    learning_rate = model.optimizer._learning_rate
    optimizer_variables = list(model.optimizer.variables)
    train_function = model.train_function
    result = clrplug.lr_range_test(model, x, y, min_lr=1e-4, max_lr=1.0, steps=7,
                                   batch_size=32, verbose=0)
    assert len(result.lr) == 7
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 3
    _assert_same_state(before, model)
    assert model.optimizer._learning_rate is learning_rate
    assert all(a is b for a, b in zip(model.optimizer.variables, optimizer_variables, strict=True))
    assert model.train_function is train_function


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["exception", "KeyboardInterrupt"]
)
def test_restores_the_model_when_interrupted(trained_model, error):
    model, x, y = trained_model
    before = _state(model)
    learning_rate = model.optimizer._learning_rate
    variables = list(model.optimizer.variables)
    train_function = model.train_function
    with pytest.raises(type(error)):
        clrplug.lr_range_test(model, x, y, min_lr=1e-4, max_lr=1.0, steps=9, batch_size=32,
                              verbose=0, callbacks=[_Raise(5, error)])
    _assert_same_state(before, model)
    assert model.optimizer._learning_rate is learning_rate
    assert all(a is b for a, b in zip(model.optimizer.variables, variables, strict=True))
    assert model.train_function is train_function
    assert not model.stop_training


def test_restores_the_model_when_a_training_step_fails(trained_model):
    # The tripwire raises inside the compiled step of the test's fourth batch (on JAX
    # after the model's state was handed to, and donated to, the compiled function).
    model, x, y = trained_model
    tripwire = model.layers[0]
    tripwire.arm(4)
    before = _state(model)
    variables = list(model.optimizer.variables)
    train_function = model.train_function
    try:
        with pytest.raises(_step_failure()):
            clrplug.lr_range_test(model, x, y, min_lr=1e-4, max_lr=1.0, steps=6,
                                  batch_size=16, verbose=0)
        _assert_same_state(before, model)
        assert all(a is b for a, b in zip(model.optimizer.variables, variables, strict=True))
        assert model.train_function is train_function
    finally:
        tripwire.disarm()


def test_unbuilt_optimizer_comes_back_in_its_initial_state():
    x, y = _data(64)
    model = _classifier()
    weights = [_numpy(v) for v in model.variables]
    clrplug.lr_range_test(model, x, y, min_lr=1e-3, max_lr=0.1, steps=4, batch_size=16,
                          verbose=0)
    for a, b in zip(weights, model.variables, strict=True):
        assert a.tobytes() == _numpy(b).tobytes()
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 0
    # Adam's moments were created by the test and are back at their initial zeros.
    slots = [v for v in model.optimizer.variables if "momentum" in v.path or "velocity" in v.path]
    assert slots and all(not _numpy(v).any() for v in slots)
    assert not any("clrplug_sweep" in v.path for v in model.optimizer.variables)


# -- data sources ---------------------------------------------------------------------------------


def test_generator_needs_steps_and_runs_with_them():
    x, y = _data(64)

    def batches():
        while True:
            for i in range(0, 64, 16):
                yield x[i : i + 16], y[i : i + 16]

    model = _classifier()
    with pytest.raises(clrplug.errors.InvalidArgumentError, match="steps=None and epochs=None"):
        clrplug.lr_range_test(model, batches(), verbose=0)
    with pytest.raises(clrplug.errors.InvalidArgumentError, match="epochs=2"):
        clrplug.lr_range_test(model, batches(), epochs=2, verbose=0)
    result = clrplug.lr_range_test(model, batches(), min_lr=1e-3, max_lr=0.1, steps=6,
                                   shuffle=False, verbose=0)
    assert len(result.lr) == 6 and result.steps_per_epoch is None


def test_pydataset():
    x, y = _data(64)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return x[index * 16 : (index + 1) * 16], y[index * 16 : (index + 1) * 16]

    model = _classifier()
    result = clrplug.lr_range_test(model, Batches(), min_lr=1e-3, max_lr=0.1, epochs=2,
                                   verbose=0)
    assert len(result.lr) == 8 and result.steps_per_epoch == 4


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="tf.data is checked on the TensorFlow run (importing TF elsewhere is slow)")
def test_tf_data():
    import tensorflow as tf

    x, y = _data(64)
    model = _classifier()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(20)  # 20, 20, 20, 4
    result = clrplug.lr_range_test(model, dataset, min_lr=1e-3, max_lr=0.1, epochs=1,
                                   shuffle=False, verbose=0)
    assert len(result.lr) == 4 and result.steps_per_epoch == 4
    repeated = clrplug.lr_range_test(model, dataset, min_lr=1e-3, max_lr=0.1, shuffle=False,
                                     verbose=0)  # the default 200 steps: the data repeats
    assert len(repeated.lr) == 200 and repeated.steps_per_epoch == 4


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_lr": 0.0}, r"min_lr must be > 0 for step_mode='exp'.*got 0\.0"),
        ({"min_lr": -1.0, "step_mode": "linear"}, r"min_lr must be >= 0, got -1\.0"),
        ({"min_lr": 0.1, "max_lr": 0.1}, r"max_lr \(0\.1\) must be > min_lr \(0\.1\)"),
        ({"max_lr": float("nan")}, r"max_lr must be a finite number, got nan"),
        ({"step_mode": "cosine"}, r"step_mode must be one of \['exp', 'linear'\], got 'cosine'"),
        ({"steps": 1}, r"steps must be None or an integer >= 2, got 1"),
        ({"steps": 2.5}, r"steps must be None or an integer >= 2, got 2\.5"),
        ({"epochs": 0}, r"epochs must be None or an integer >= 1, got 0"),
        ({"steps": 5, "epochs": 1}, r"give steps \(5\) or epochs \(1\), not both"),
        ({"stop_factor": 1.0}, r"stop_factor must be a number > 1.*got 1\.0"),
        ({"smoothing": 1.0}, r"smoothing must be a number in \[0, 1\).*got 1\.0"),
        ({"validation_every": 0}, r"validation_every must be None or an integer >= 1, got 0"),
        ({"callbacks": [clrplug.CyclicLR()]}, r"callbacks: CyclicLR sets the learning rate"),
        ({"callbacks": [clrplug.OneCycleLR(0.1)]},
         r"callbacks: OneCycleLR sets the learning rate"),
        ({"validation_data": (1, 2, 3, 4)}, r"validation_data must be \(x_val, y_val\)"),
    ],
)
def test_bad_arguments_are_refused_before_the_model_is_touched(kwargs, match):
    x, y = _data(32)
    model = _classifier()
    before = _state(model)
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=match):
        clrplug.lr_range_test(model, x, y, verbose=0, **kwargs)
    _assert_same_state(before, model)
    assert not model.optimizer.built


def test_uncompiled_or_unbuilt_model_is_refused():
    x, y = _data(32)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(clrplug.errors.InvalidArgumentError, match="model must be compiled"):
        clrplug.lr_range_test(model, x, y)
    lazy = keras.Sequential([keras.layers.Dense(3)])
    lazy.compile(optimizer="sgd", loss="mse")
    with pytest.raises(clrplug.errors.InvalidArgumentError, match="is not built"):
        clrplug.lr_range_test(lazy, x, y)
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=r"model must be a keras\.Model"):
        clrplug.lr_range_test("model", x, y)


# -- suggestions on synthetic records --------------------------------------------------------------


def _synthetic(accuracy: np.ndarray | None, loss: np.ndarray, lr: np.ndarray, **kw):
    metrics = {} if accuracy is None else {"accuracy": accuracy}
    settings = dict(min_lr=float(lr[0]), max_lr=float(lr[-1]), steps=len(lr), step_mode="exp",
                    steps_per_epoch=25, stop_reason="completed", stop_factor=4.0,
                    smoothing=0.98)
    settings.update(kw)
    return RangeTestResult(
        lr=lr, iterations=np.arange(1, len(lr) + 1), loss=loss,
        smoothed_loss=loss, metrics=metrics, **settings,
    )


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _learning_curve(n: int = 300, seed: int = 0, noise: float = 0.02):
    """A sweep 1e-6..10: the loss falls 1e-4..1e-1 and blows up after 1; accuracy mirrors it."""
    lr = np.geomspace(1e-6, 10.0, n)
    u = np.log10(lr)
    rng = np.random.default_rng(seed)
    loss = 2.5 - 2.0 * np.clip((u + 4.0) / 3.0, 0, 1) + np.exp(3 * (u - 0.5))
    loss = loss + noise * rng.normal(size=n)
    accuracy = 0.1 + 0.8 * _sigmoid((u + 2.5) / 0.3) + noise * rng.normal(size=n)
    return lr, loss, accuracy


def test_every_rule_runs_by_name_and_side_by_side():
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    found = result.suggestions()
    assert set(BUILTIN_RULES) <= set(found)
    curve = result.curve()  # with the record's moving average and planned steps
    for name, (rule_fn, _) in BUILTIN_RULES.items():
        expected = rule_fn(curve)  # the rule itself, on the same record
        suggestion = found[name]
        assert isinstance(suggestion, Suggestion) and expected is not None, name
        assert suggestion == result.suggest(name)
        assert (suggestion.rule, suggestion.max_lr, suggestion.reason, suggestion.index) == (
            name, expected.max_lr, expected.reason, expected.index
        )
        own = expected.base_lr
        assert suggestion.base_lr == (own if own is not None else expected.max_lr / DEFAULT_LOWER)
        assert lr[0] <= suggestion.base_lr <= suggestion.max_lr <= lr[-1]
        assert suggestion.reason.startswith(f"{name}:")
    # The rule gives its own base_lr only for accuracy_rise.
    assert found["accuracy_rise"].base_lr != found["accuracy_rise"].max_lr / DEFAULT_LOWER


def _one_descent():
    """200 steps 1e-5..10, the loss given as already smoothed: flat at 3 to step 60, falling
    by 2/90 a step to 1 at step 150, rising by 0.1 a step after."""
    lr = np.geomspace(1e-5, 10.0, 200)
    i = np.arange(200)
    loss = np.where(i <= 60, 3.0, np.where(i <= 150, 3.0 - (i - 60) * (2.0 / 90.0),
                                           1.0 + (i - 150) * 0.1))
    return lr, loss


def _rate(step: int, steps: int = 200, low: float = -5.0, decades: float = 6.0) -> float:
    """The exponential sweep's rate at ``step``, worked out apart from the code."""
    return 10.0 ** (low + decades * step / (steps - 1))


def test_the_default_workflow_is_robust_slide_times_three():
    # Chosen by leave-one-task-out (benchmarks/generalise.py, docs/benchmarks-convergence.md).
    assert (DEFAULT_RULE, DEFAULT_PEAK_FACTOR, DEFAULT_LOWER) == ("robust_slide", 3.0, 4.0)
    lr, loss = _one_descent()
    result = _synthetic(None, loss, lr)
    # robust_slide stops on the straight part of the descent: a window that has left the
    # lowest loss (step 150) by a full window (15 steps), and not before the fall starts.
    found = result.suggest()
    assert found.rule == "robust_slide" and 61 <= found.index <= 150 - 15
    assert found.max_lr == pytest.approx(_rate(found.index), rel=1e-12)
    # The default workflow peaks at three times that, and cycles from a quarter of the peak.
    peak = 3 * _rate(found.index)
    assert result.suggested_max_lr == pytest.approx(peak, rel=1e-12)
    assert result.suggested_base_lr == pytest.approx(peak / 4, rel=1e-12)
    assert result.one_cycle(total_steps=100).max_lr == pytest.approx(peak, rel=1e-12)
    clr = result.cyclic_lr(step_size=10)
    assert (clr.base_lr, clr.max_lr) == pytest.approx((peak / 4, peak), rel=1e-12)
    text = repr(result)
    assert "rule='robust_slide', peak_factor=3" in text
    assert f"suggested_max_lr={peak:.3g}" in text
    assert "stop_reason='completed'" in text and "steps=200/200" in text


def test_a_named_rule_is_taken_as_it_reads_unless_given_a_factor():
    lr, loss = _one_descent()
    result = _synthetic(None, loss, lr)
    # By hand, fastai's valley on the record lr_find keeps (steps 20 to 194): the longest
    # strictly decreasing run is one flat point and steps 61-150 (91 points), first
    # complete at step 150, so it starts at 150 - 91 = 59; two thirds down is
    # 59 + int(91 / 3) + int(91 / 3 / 2) = 59 + 30 + 15 = step 104.
    found = result.suggest("valley")
    assert found.index == 104 and found.max_lr == pytest.approx(_rate(104), rel=1e-12)
    assert result.one_cycle(rule="valley", total_steps=100).max_lr == found.max_lr
    assert result.one_cycle(rule="valley", total_steps=100, peak_factor=2.0).max_lr == (
        pytest.approx(2 * _rate(104), rel=1e-12))
    clr = result.cyclic_lr(step_size=10, rule="valley")
    assert (clr.base_lr, clr.max_lr) == pytest.approx((_rate(104) / 4, _rate(104)), rel=1e-12)
    clr = result.cyclic_lr(step_size=10, rule="valley", peak_factor=2.0)
    assert (clr.base_lr, clr.max_lr) == pytest.approx((2 * _rate(104) / 4, 2 * _rate(104)),
                                                      rel=1e-12)
    with pytest.raises(clrplug.errors.InvalidArgumentError, match="peak_factor"):
        result.cyclic_lr(step_size=10, peak_factor=0.0)


def test_the_default_drives_the_properties_and_the_repr():
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    default = result.suggest()
    assert default == result.suggest(DEFAULT_RULE) and default.rule == DEFAULT_RULE
    assert result.suggested_max_lr == default.max_lr * DEFAULT_PEAK_FACTOR
    assert result.suggested_base_lr == default.base_lr * DEFAULT_PEAK_FACTOR
    assert result.suggested_base_lr == pytest.approx(result.suggested_max_lr / DEFAULT_LOWER)
    text = repr(result)
    assert f"rule={DEFAULT_RULE!r}" in text and f"{result.suggested_max_lr:.3g}" in text
    assert "stop_reason='completed'" in text and "steps=300/300" in text


def test_base_div_sets_the_lower_bound_of_rules_without_one():
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    top = result.suggest("steep").max_lr
    assert result.suggest("steep", base_div=3.0).base_lr == top / 3.0
    assert result.suggestions(base_div=10.0)["minimum"].base_lr == (
        result.suggest("minimum").max_lr / 10.0
    )
    own = result.suggest("accuracy_rise")
    assert result.suggest("accuracy_rise", base_div=3.0) == own  # its own lower bound
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=r"base_div must be a finite number >= 1"):
        result.suggest("steep", base_div=0.5)


def test_an_unknown_rule_name_is_refused_with_the_names_there_are():
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    with pytest.raises(clrplug.errors.UnknownNameError, match=r"^rule: unknown rule 'valey'") as raised:
        result.suggest("valey")
    assert "Did you mean 'valley'?" in str(raised.value)
    assert set(BUILTIN_RULES) <= set(raised.value.available)
    with pytest.raises(clrplug.errors.UnknownNameError, match=r"rule: unknown rule"):
        result.cyclic_lr(step_size=10, rule="nope")
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=r"rule must be a registered rule's"):
        result.suggest(42)


def test_a_rule_record_is_accepted_as_it_is():
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)

    def tenth_of_the_sweep(curve):
        index = len(curve.lr) // 10
        return RuleResult(float(curve.lr[index]), None, "tenth: a tenth of the way", index)

    rule = clrplug.SuggestionRule("tenth", tenth_of_the_sweep, "A tenth of the way.")
    found = result.suggest(rule)
    assert found == Suggestion("tenth", lr[30] / DEFAULT_LOWER, lr[30], "tenth: a tenth of the way",
                               30)
    assert "tenth" not in result.suggestions()  # not registered


PLUGIN_RULE = '''
from clrplug import SuggestionRule
from clrplug.range_test.rules import RuleResult


def halfway(curve):
    index = curve.valid_length // 2
    return RuleResult(float(curve.lr[index]), float(curve.lr[index // 2]), "halfway: mid", index)


def broken(curve):
    raise ZeroDivisionError("plugin bug")


HALFWAY = SuggestionRule("halfway", halfway, "Halfway along the sweep.")
BROKEN = SuggestionRule("broken", broken, "Always fails.")
'''


def test_a_third_party_rule_from_an_installed_distribution(fake_dist, fresh_registry):
    fake_dist(
        "clrplug-halfway",
        modules={"clrplug_halfway": PLUGIN_RULE},
        entry_points={"clrplug.policies": {"halfway": "clrplug_halfway:HALFWAY",
                                           "broken": "clrplug_halfway:BROKEN"}},
    )
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    expected = Suggestion("halfway", float(lr[75]), float(lr[150]), "halfway: mid", 150)
    assert result.suggest(rule="halfway") == expected
    with pytest.warns(UserWarning, match=r"rule 'broken' \(from clrplug-halfway 1\.0\) raised "
                                         r"ZeroDivisionError: plugin bug"):
        found = result.suggestions()
    assert found["halfway"] == expected and found["broken"] is None
    assert set(BUILTIN_RULES) <= set(found)
    with pytest.raises(clrplug.errors.ClrplugError, match=r"rule 'broken'.*raised ZeroDivisionError"):
        result.suggest("broken")
    clr = result.cyclic_lr(step_size=10, rule="halfway")
    assert (clr.base_lr, clr.max_lr) == (expected.base_lr, expected.max_lr)
    assert "halfway" in [r.name for r in fresh_registry.records("rule")]


def test_a_rule_name_two_distributions_register_is_left_out(fake_dist, fresh_registry):
    for dist in ("clrplug-halfway", "clrplug-halfway-too"):
        module = dist.replace("-", "_")
        fake_dist(dist, modules={module: PLUGIN_RULE},
                  entry_points={"clrplug.policies": {"halfway": f"{module}:HALFWAY"}})
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    with pytest.raises(clrplug.errors.NameConflictError, match=r"rule 'halfway'"):
        result.suggest("halfway")
    with pytest.warns(UserWarning, match=r"rule 'halfway' is registered by more than one"):
        found = result.suggestions()
    assert found["halfway"] is None and found["valley"] is not None


def test_a_rule_returning_garbage_is_named():
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    bad = clrplug.SuggestionRule("bad", lambda curve: (1e-3, 1e-2))
    with pytest.raises(clrplug.errors.ClrplugError, match=r"rule 'bad'.*returned tuple"):
        result.suggest(bad)
    far = clrplug.SuggestionRule("far", lambda curve: RuleResult(1e-3, None, "far: x", 10**6))
    with pytest.raises(clrplug.errors.ClrplugError, match=r"index=1000000, past the record's 300"):
        result.suggest(far)


def test_nan_tails_are_cut_before_any_rule_reads_them():
    lr, loss, accuracy = _learning_curve()
    cut = 240  # the loss became NaN here, and the test stopped one step later
    tail_loss, tail_accuracy = loss[: cut + 1].copy(), accuracy[: cut + 1].copy()
    tail_loss[cut], tail_accuracy[cut] = np.nan, np.nan
    stopped = _synthetic(tail_accuracy, tail_loss, lr[: cut + 1], stop_reason="nan", steps=300)
    clean = _synthetic(accuracy[:cut], loss[:cut], lr[:cut])
    assert stopped.valid_steps == cut and stopped.curve().diverged_at == cut
    found = stopped.suggestions()
    assert found == clean.suggestions()
    for name, suggestion in found.items():
        assert suggestion is not None, name
        assert math.isfinite(suggestion.base_lr) and math.isfinite(suggestion.max_lr)
        assert lr[0] <= suggestion.base_lr <= suggestion.max_lr <= lr[cut - 1]
    # NaN scattered in a tail that the stop rule did not catch: cut at the first one.
    scattered = loss.copy()
    scattered[250::7] = np.nan
    suggestions = _synthetic(accuracy, scattered, lr).suggestions()
    assert suggestions == _synthetic(accuracy[:250], loss[:250], lr[:250]).suggestions()
    # Only NaN: no rule finds anything.
    empty = _synthetic(np.full(50, np.nan), np.full(50, np.nan), np.geomspace(1e-5, 1.0, 50),
                       stop_reason="nan")
    assert set(empty.suggestions().values()) == {None}


def test_no_range_gives_no_suggestion_and_no_callback():
    lr = np.geomspace(1e-5, 1e-3, 100)
    flat = 0.1 + 0.01 * np.random.default_rng(0).normal(size=100)
    result = _synthetic(flat, np.full(100, 2.3), lr)
    assert result.suggested_base_lr is None and result.suggested_max_lr is None
    # clrplug's rules find nothing; fastai's always answer (as fastai does), with a caveat.
    found = result.suggestions()
    fastai = {"valley", "steep", "minimum", "slide"}
    assert {found[name] for name in set(BUILTIN_RULES) - fastai} == {None}
    for name in fastai:
        assert found[name].caveat.startswith("no clear descent"), name
    # By hand: no descent at all, so fastai's valley is the first step lr_find keeps (10).
    assert found["valley"].max_lr == pytest.approx(_rate(10, 100, -5.0, 2.0), rel=1e-12)
    message = f"found no learning-rate range with rule {DEFAULT_RULE!r}"
    with pytest.raises(clrplug.errors.ClrplugError, match=message):
        result.cyclic_lr(step_size=10)
    with pytest.raises(clrplug.errors.ClrplugError, match=message):
        result.one_cycle(total_steps=100)
    with pytest.raises(clrplug.errors.ClrplugError, match="with rule 'robust_steep'"):
        result.cyclic_lr(step_size=10, rule="robust_steep")
    # fastai's steep answers, as fastai does; the callback comes with the one-line caveat.
    with pytest.warns(AmbiguousCurveWarning, match="no clear descent.*widen min_lr"):
        result.cyclic_lr(step_size=10, rule="steep")
    assert "suggested_max_lr=None" in repr(result)


def test_the_default_sweep_is_the_one_the_rules_were_chosen_with():
    x, y = _data(32)
    result = clrplug.lr_range_test(_classifier(), x, y, batch_size=8, stop_factor=None,
                                   verbose=0)
    assert len(result.lr) == result.steps == 200  # 50 epochs of 4 batches
    np.testing.assert_allclose(result.lr, np.geomspace(1e-5, 10.0, 200), rtol=1e-9)


def test_a_coarse_sweep_is_named_when_no_range_is_found():
    flat = np.full(30, 2.3)
    coarse = _synthetic(None, flat, np.geomspace(1e-7, 10.0, 30))  # 30 steps, 8 decades
    with pytest.raises(clrplug.errors.ClrplugError,
                       match=r"30 steps; 4 steps per decade, where the rules were benchmarked at 33"):
        coarse.one_cycle(total_steps=100)
    fine = _synthetic(None, np.full(200, 2.3), np.geomspace(1e-5, 10.0, 200))
    with pytest.raises(clrplug.errors.ClrplugError, match=r"200 steps\)\. Try another rule"):
        fine.one_cycle(total_steps=100)


def test_cyclic_lr_is_configured_from_the_rule():
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    clr = result.cyclic_lr(step_size=100, mode="triangular2")
    assert isinstance(clr, clrplug.CyclicLR)
    assert (clr.base_lr, clr.max_lr) == (result.suggested_base_lr, result.suggested_max_lr)
    assert clr.step_size == 100 and clr.mode == "triangular2"
    assert result.cyclic_lr().step_size == 4 * 25  # Smith: 2-8 epochs per half cycle
    rise = result.suggest("accuracy_rise")
    clr = result.cyclic_lr(step_size=10, rule="accuracy_rise", mode="exp_range",
                           gamma=0.5)
    assert (clr.base_lr, clr.max_lr) == (rise.base_lr, rise.max_lr)
    clr = result.cyclic_lr(step_size=10, rule="steep", base_div=3.0)
    assert clr.base_lr == result.suggest("steep").max_lr / 3.0
    with pytest.raises(clrplug.errors.InvalidArgumentError, match="step_size=None"):
        _synthetic(accuracy, loss, lr, steps_per_epoch=None).cyclic_lr()


def test_one_cycle_is_configured_from_the_rule():
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    one_cycle = result.one_cycle()
    assert isinstance(one_cycle, clrplug.OneCycleLR)
    assert one_cycle.max_lr == result.suggested_max_lr and one_cycle.total_steps is None
    one_cycle = result.one_cycle(rule="minimum", epochs=3, steps_per_epoch=10, pct_start=0.25)
    assert one_cycle.max_lr == result.suggest("minimum").max_lr
    assert one_cycle.total_steps == 30 and one_cycle.schedule.spec.pct_start == 0.25
    assert result.one_cycle(total_steps=50).total_steps == 50


def test_smoothed_gives_what_the_rules_read():
    lr, loss, accuracy = _learning_curve()
    result = _synthetic(accuracy, loss, lr)
    x, y = result.smoothed()
    expected_x, expected_y = result.curve().smoothed_loss()
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, expected_y)
    x, y = result.smoothed("accuracy")
    assert len(x) == len(y) and np.all(np.isfinite(y)) and len(x) > 250
    assert abs(float(np.interp(-2.5, np.log10(x), y)) - 0.5) < 0.02  # the sigmoid's middle
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=r"key='val_accuracy' was not recorded"):
        result.smoothed("val_accuracy")


# -- a real run ------------------------------------------------------------------------------------


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    return x[300:], y[300:], x[:300], y[:300]


def _digits_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.optimizer.build(model.trainable_variables)
    return model


@pytest.fixture(scope="module")
def digits_run():
    """A real range test: an MLP on scikit-learn's digits, 150 steps from 1e-4 to 10."""
    x_train, y_train, x_val, y_val = _digits()
    model = _digits_model()
    before = _state(model)
    result = clrplug.lr_range_test(model, x_train, y_train, min_lr=1e-4, max_lr=10.0,
                                   steps=150, batch_size=32, verbose=0)
    return model, before, result, (x_train, y_train, x_val, y_val)


def test_a_real_run_suggests_rates_inside_the_sweep(digits_run):
    model, before, result, _ = digits_run
    _assert_same_state(before, model, ("weights", "optimizer"))  # metrics: built by the test
    assert result.steps_per_epoch == 47 and 20 < len(result.lr) <= 150
    highest = result.lr[result.valid_steps - 1]
    found = result.suggestions()
    for name in ("valley", "steep", "minimum"):
        suggestion = found[name]
        assert suggestion is not None, (name, result)
        assert suggestion.base_lr < suggestion.max_lr, name
        assert 1e-4 <= suggestion.max_lr <= highest, name
        assert 0 <= suggestion.index < result.valid_steps, name


def test_a_real_run_gives_a_one_cycle_that_trains(digits_run):
    model, _, result, (x_train, y_train, x_val, y_val) = digits_run
    # The default rule's 1cycle trains the restored model well in three epochs.
    one_cycle = result.one_cycle()
    model.fit(x_train, y_train, batch_size=32, epochs=3, callbacks=[one_cycle], verbose=0)
    assert one_cycle.total_steps == 3 * 47
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert accuracy > 0.8, (accuracy, result)


def test_suggestion_warnings_are_not_raised_for_builtin_rules():
    lr, loss, accuracy = _learning_curve()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _synthetic(accuracy, loss, lr).suggestions()


@pytest.mark.parametrize("name", ["lr_range_test", "SweepSchedule"])
def test_docstring_examples_run(name):
    import clrplug.range_test as package

    blocks = re.findall(r"```python\n(.*?)```", getattr(package, name).__doc__, re.S)
    assert blocks
    for block in blocks:
        exec(compile(textwrap.dedent(block), f"<{name} docstring>", "exec"), {})
