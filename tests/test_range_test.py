"""The LR range test: the sweep, the per-batch record, the stop rule, restoring the model.

Expected values come from outside the code under test: ``np.geomspace`` /
``np.linspace`` for the sweep, weight updates of a model whose gradient is known
for the rates actually applied, numpy losses computed from the weights each batch
started from, and bit-for-bit comparisons with numpy copies taken before the test.
"""

from __future__ import annotations

import math
import weakref

import keras
import numpy as np
import pytest
from keras import ops

import clrplug
from clrplug.range_test import RangeTestResult, SweepSchedule, sweep_rates

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


def _assert_same_state(before: dict[str, list[np.ndarray]], model) -> None:
    after = _state(model)
    for kind in ("weights", "optimizer", "metrics"):
        assert len(before[kind]) == len(after[kind]), kind
        for a, b in zip(before[kind], after[kind], strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape, kind
            assert a.tobytes() == b.tobytes(), f"{kind} changed"


def _classifier(seed: int = 0, optimizer=None) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (np.argmax(x[:, :3], axis=1)).astype("int32")
    return x, y


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
    np.testing.assert_allclose(graph, schedule.rates_at(steps), rtol=2e-6)
    assert graph[0] == pytest.approx(1e-4, rel=1e-6)  # before start: min_lr


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_rates_applied_by_the_optimizer_are_the_sweep(mode):
    # loss = mean(w * x) with x = 1: each SGD step moves the weight by exactly -lr.
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=lambda y_true, y_pred: ops.mean(y_pred))
    model.fit(np.ones((3, 1)), np.zeros((3, 1)), batch_size=1, verbose=0)  # iterations = 3
    weights = _WeightsAtBatchBegin()
    low = 1e-3 if mode == "exp" else 0.0
    result = clrplug.lr_range_test(
        model, np.ones((20, 1), "float32"), np.zeros((20, 1), "float32"), min_lr=low,
        max_lr=0.5, steps=12, batch_size=1, step_mode=mode, stop_factor=None, verbose=0,
        shuffle=False, callbacks=[weights],
    )
    kernel = np.array([w[0].item() for w in weights.weights], dtype=np.float64)
    applied = -np.diff(kernel)
    expected = np.geomspace(low, 0.5, 12) if mode == "exp" else np.linspace(low, 0.5, 12)
    np.testing.assert_allclose(applied, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.lr, expected, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(result.iterations, np.arange(4, 16))  # started at 3
    assert result.stop_reason == "completed" and result.steps == 12
    # Afterwards training runs at the compiled rate again, from the restored weights.
    assert float(model.get_weights()[0].item()) == -1.5
    model.fit(np.ones((1, 1)), np.zeros((1, 1)), batch_size=1, verbose=0)
    assert float(model.get_weights()[0].item()) == -2.0


def test_training_after_a_failed_test_runs_at_the_original_rate():
    # The exception (kept alive here, as Jupyter keeps the last one) holds the frames of
    # the failed step; a later fit must still compile and apply the model's own rate.
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=lambda y_true, y_pred: ops.mean(y_pred))
    ones, zeros = np.ones((1, 1), "float32"), np.zeros((1, 1), "float32")

    def batches():
        yield ones, zeros
        yield ones, zeros
        yield np.ones((1, 2), "float32"), zeros

    with pytest.raises(Exception) as raised:
        clrplug.lr_range_test(model, batches(), min_lr=1e-3, max_lr=1e-2, steps=4, verbose=0)
    assert float(model.get_weights()[0].item()) == 0.0
    model.fit(ones, zeros, batch_size=1, verbose=0)
    assert float(model.get_weights()[0].item()) == -0.5
    del raised


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
    if keras.backend.backend() == "torch":
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
    assert validated.suggestion_key() == "val_accuracy"


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


# -- restoring the model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_model():
    """A model with non-trivial state: trained weights, BN statistics, Adam moments.

    Shared by the tests below, which each check that the range test gave it back intact.
    """
    x, y = _data(96)
    model = _classifier()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model, x, y


def test_restores_weights_optimizer_and_iterations_bit_for_bit(trained_model):
    model, x, y = trained_model
    before = _state(model)
    learning_rate = model.optimizer._learning_rate
    optimizer_variables = list(model.optimizer.variables)
    # A weak reference: holding the compiled function would pin JAX's trace cache.
    train_function = weakref.ref(model.train_function)
    result = clrplug.lr_range_test(model, x, y, min_lr=1e-4, max_lr=1.0, steps=7,
                                   batch_size=32, verbose=0)
    assert len(result.lr) == 7
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 3
    _assert_same_state(before, model)
    assert model.optimizer._learning_rate is learning_rate
    assert all(a is b for a, b in zip(model.optimizer.variables, optimizer_variables, strict=True))
    if keras.backend.backend() == "jax":  # dropped: jit would share the sweep's trace
        assert model.train_function is None and train_function() is None
    else:
        assert model.train_function is train_function()


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["exception", "KeyboardInterrupt"]
)
def test_restores_the_model_when_interrupted(trained_model, error):
    model, x, y = trained_model
    before = _state(model)
    learning_rate = model.optimizer._learning_rate
    with pytest.raises(type(error)):
        clrplug.lr_range_test(model, x, y, min_lr=1e-4, max_lr=1.0, steps=9, batch_size=32,
                              verbose=0, callbacks=[_Raise(5, error)])
    _assert_same_state(before, model)
    assert model.optimizer._learning_rate is learning_rate
    assert not model.stop_training


def test_restores_the_model_when_a_training_step_fails(trained_model):
    # The third batch has the wrong shape: the step itself raises (on JAX after the
    # model's variables were handed to the compiled function).
    model, x, y = trained_model
    before = _state(model)

    def batches():
        yield x[:32], y[:32]
        yield x[32:64], y[32:64]
        yield x[:32, :5], y[:32]

    with pytest.raises(Exception) as raised:
        clrplug.lr_range_test(model, batches(), min_lr=1e-4, max_lr=1.0, steps=5, verbose=0)
    assert not isinstance(raised.value, clrplug.ClrplugError)
    _assert_same_state(before, model)


def test_a_kept_reference_to_the_train_function_cannot_silently_defeat_the_sweep():
    x, y = _data(64)
    model = _classifier()
    model.fit(x, y, batch_size=32, verbose=0)
    kept = model.train_function
    before = _state(model)
    if keras.backend.backend() == "jax":
        # jax.jit would reuse the kept function's trace (and its learning rate): refused.
        with pytest.raises(clrplug.ClrplugError, match="cached compilation"):
            clrplug.lr_range_test(model, x, y, min_lr=1e-4, max_lr=1.0, steps=4,
                                  batch_size=32, verbose=0)
    else:
        result = clrplug.lr_range_test(model, x, y, min_lr=1e-4, max_lr=1.0, steps=4,
                                       batch_size=32, verbose=0)
        assert len(result.lr) == 4
    _assert_same_state(before, model)
    del kept


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


# -- data sources ---------------------------------------------------------------------------------


def test_generator_needs_steps_and_runs_with_them():
    x, y = _data(64)

    def batches():
        while True:
            for i in range(0, 64, 16):
                yield x[i : i + 16], y[i : i + 16]

    model = _classifier()
    with pytest.raises(clrplug.InvalidArgumentError, match="steps=None and epochs=None"):
        clrplug.lr_range_test(model, batches(), verbose=0)
    with pytest.raises(clrplug.InvalidArgumentError, match="epochs=2"):
        clrplug.lr_range_test(model, batches(), epochs=2, verbose=0)
    result = clrplug.lr_range_test(model, batches(), min_lr=1e-3, max_lr=0.1, steps=6, verbose=0)
    assert len(result.lr) == 6 and result.steps_per_epoch is None


def test_pydataset_and_tf_data():
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
    if keras.backend.backend() != "tensorflow":
        return  # tf.data is checked on the TensorFlow run (importing TF elsewhere is slow)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(20)  # 20, 20, 20, 4
    result = clrplug.lr_range_test(model, dataset, min_lr=1e-3, max_lr=0.1, verbose=0)
    assert len(result.lr) == 4 and result.steps_per_epoch == 4


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
        ({"validation_data": (1, 2, 3, 4)}, r"validation_data must be \(x_val, y_val\)"),
    ],
)
def test_bad_arguments_are_refused_before_the_model_is_touched(kwargs, match):
    x, y = _data(32)
    model = _classifier()
    before = _state(model)
    with pytest.raises(clrplug.InvalidArgumentError, match=match):
        clrplug.lr_range_test(model, x, y, verbose=0, **kwargs)
    _assert_same_state(before, model)
    assert not model.optimizer.built


def test_uncompiled_or_unbuilt_model_is_refused():
    x, y = _data(32)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(clrplug.InvalidArgumentError, match="model must be compiled"):
        clrplug.lr_range_test(model, x, y)
    lazy = keras.Sequential([keras.layers.Dense(3)])
    lazy.compile(optimizer="sgd", loss="mse")
    with pytest.raises(clrplug.InvalidArgumentError, match="is not built"):
        clrplug.lr_range_test(lazy, x, y)
    with pytest.raises(clrplug.InvalidArgumentError, match=r"model must be a keras\.Model"):
        clrplug.lr_range_test("model", x, y)


# -- suggestions ----------------------------------------------------------------------------------


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


def test_suggestions_follow_the_seed_start_of_rise_and_elbow():
    lr = np.geomspace(1e-5, 10.0, 301)
    z = (np.log10(lr) + 2.0) / 0.25  # rises around 1e-2 and saturates by 1e-1
    accuracy = 0.1 + 0.8 * _sigmoid(z) - 0.7 * _sigmoid((np.log10(lr) - 0.3) / 0.1)
    result = _synthetic(accuracy, 2.3 - 2.0 * _sigmoid(z), lr)
    # Independent: where the noiseless rise reaches 10 % and 90 % (sigmoid = 0.1, 0.9).
    start, elbow = 10 ** (-2.0 + 0.25 * math.log(1 / 9)), 10 ** (-2.0 + 0.25 * math.log(9))
    base, top = result.suggested_base_lr, result.suggested_max_lr
    assert base is not None and top is not None
    assert abs(math.log10(base / start)) < 0.1 and abs(math.log10(top / elbow)) < 0.1
    assert result.suggestion_key() == "accuracy"
    # The same band read from the loss alone.
    loss_only = _synthetic(None, 2.3 - 2.0 * _sigmoid(z), lr)
    assert loss_only.suggestion_key() == "loss"
    b2, t2 = loss_only.suggest()
    assert abs(math.log10(b2 / start)) < 0.1 and abs(math.log10(t2 / elbow)) < 0.1


def test_no_rise_gives_no_suggestion_and_no_cyclic_lr():
    lr = np.geomspace(1e-5, 1e-3, 100)
    flat = 0.1 + 0.01 * np.random.default_rng(0).normal(size=100)
    result = _synthetic(flat, np.full(100, 2.3), lr)
    assert result.suggested_base_lr is None and result.suggested_max_lr is None
    with pytest.raises(clrplug.ClrplugError, match="found no learning-rate range"):
        result.cyclic_lr(step_size=10)


def test_cyclic_lr_is_configured_from_the_suggestion():
    lr = np.geomspace(1e-4, 1.0, 200)
    z = (np.log10(lr) + 2.0) / 0.3
    result = _synthetic(0.1 + 0.8 * _sigmoid(z), 2.3 - 2.0 * _sigmoid(z), lr)
    clr = result.cyclic_lr(step_size=100, mode="triangular2")
    assert isinstance(clr, clrplug.CyclicLR)
    assert (clr.base_lr, clr.max_lr) == (result.suggested_base_lr, result.suggested_max_lr)
    assert clr.step_size == 100 and clr.mode == "triangular2"
    assert result.cyclic_lr().step_size == 4 * 25  # Smith: 2-8 epochs per half cycle
    with pytest.raises(clrplug.InvalidArgumentError, match="step_size=None"):
        _synthetic(0.1 + 0.8 * _sigmoid(z), lr, lr, steps_per_epoch=None).cyclic_lr()


def test_divergent_tail_is_ignored_by_the_suggestion():
    lr = np.geomspace(1e-4, 1.0, 120)
    z = (np.log10(lr) + 2.0) / 0.3
    accuracy = 0.1 + 0.8 * _sigmoid(z)
    accuracy[-1] = 5.0  # the step that tripped the stop rule does not count
    diverged = _synthetic(accuracy, 2.3 - 2.0 * _sigmoid(z), lr, stop_reason="diverged")
    assert diverged.valid_steps == 119
    clean = _synthetic(accuracy[:-1], (2.3 - 2.0 * _sigmoid(z))[:-1], lr[:-1])
    assert diverged.suggest() == clean.suggest()
