"""Mixed precision: the rate applied to float32 variables is exact, on the active backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from oracles import seed_rates
from probe import BiasRecorder, bias_of, fit_steps, probe_model
from recording import SaveAt

from clrplug import CyclicLR

TOL = {"rtol": 2e-5, "atol": 1e-9}  # float32 variables, float32 rate
ARGS = {"base_lr": 0.001, "max_lr": 0.006, "step_size": 3, "mode": "triangular2"}
MODES = {"mixed_float16": {"mode": "triangular2"},
         "mixed_bfloat16": {"mode": "exp_range", "gamma": 0.9}}


def reference(n: int, **kwargs: Any) -> np.ndarray:
    return seed_rates(np.arange(n), **{**ARGS, **kwargs})


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def policy(request: pytest.FixtureRequest) -> Iterator[str]:
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_rates_are_exact_under_a_mixed_policy(policy: str) -> None:
    model, recorder = probe_model(), BiasRecorder()
    layer = model.layers[0]
    # Variables stay float32 under mixed policies; only the computation is half precision.
    assert layer.bias.dtype == "float32"
    assert layer.compute_dtype == policy.removeprefix("mixed_")
    # compile() wraps the optimizer in a LossScaleOptimizer for float16 only.
    wrapped = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert wrapped == (policy == "mixed_float16")
    clr = CyclicLR(**{**ARGS, **MODES[policy]})
    fit_steps(model, 8, [clr, recorder], epochs=2)
    expected = reference(16, **MODES[policy])
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)
    assert np.isfinite(clr.history["loss"]).all()
    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    after = seed_rates([16], **{**ARGS, **MODES[policy]})[0]
    assert float(keras.ops.convert_to_numpy(inner.learning_rate)) == pytest.approx(after, rel=1e-6)
    np.testing.assert_allclose(model.history.history["learning_rate"], expected[[7, 15]],
                               rtol=1e-12)


def test_a_real_model_trains_without_dtype_errors(policy: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.integers(0, 3, size=64)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    clr = CyclicLR(0.0001, 0.01, 4, mode="exp_range", gamma=0.99)
    model.fit(x, y, batch_size=16, epochs=2, callbacks=[clr], verbose=0)
    assert np.isfinite(clr.history["loss"]).all()
    np.testing.assert_allclose(
        clr.history["lr"],
        seed_rates(np.arange(8), 0.0001, 0.01, 4, mode="exp_range", gamma=0.99),
        rtol=1e-12,
    )


def test_save_and_load_under_mixed_float16(tmp_path: Path) -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = probe_model()  # the file written during the fit, as ModelCheckpoint does
        fit_steps(model, 5, [CyclicLR(**ARGS), SaveAt(tmp_path / "m.keras", 0)])
        loaded = keras.models.load_model(tmp_path / "m.keras")
        assert isinstance(loaded.optimizer, keras.optimizers.LossScaleOptimizer)
        recorder = BiasRecorder()
        recorder.values.append(bias_of(loaded))
        resumed = CyclicLR(**ARGS)
        fit_steps(loaded, 5, [resumed, recorder])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    np.testing.assert_allclose(recorder.decrements(), reference(10)[5:], **TOL)
    assert resumed.history["iterations"].tolist() == list(range(6, 11))


def scaled_mean(y_true: Any, y_pred: Any) -> Any:
    # 4 * 32768 (the initial loss scale) overflows float16: the first 2 updates are skipped
    # while the loss scale drops to 8192, as happens at the start of real float16 runs.
    return 4.0 * keras.ops.mean(y_pred)


def test_updates_skipped_by_the_loss_scale_do_not_advance_the_cycle() -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = probe_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=scaled_mean)
        recorder = BiasRecorder()
        fit_steps(model, 6, [CyclicLR(**ARGS), recorder], epochs=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert float(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale)) == 8192.0
    applied = recorder.decrements() / 4.0
    # An iteration is an optimizer update: the skipped batches apply nothing and the
    # cycle starts with the first update actually applied.
    np.testing.assert_allclose(applied[:2], 0.0, atol=0)
    np.testing.assert_allclose(applied[2:], reference(10), **TOL)


def test_history_has_a_row_per_batch_when_the_loss_scale_skips_updates() -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = probe_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=scaled_mean)
        clr = CyclicLR(**ARGS)
        fit_steps(model, 6, [clr], epochs=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    history = clr.history
    assert len(history["loss"]) == 12  # one row per batch, as documented
    # Batches 0 and 1 updated nothing; batch b >= 2 applied update b - 2.
    assert history["iterations"].tolist() == [0, 0, *range(1, 11)]
    np.testing.assert_allclose(history["lr"][2:], reference(10), rtol=1e-12)


@pytest.mark.parametrize(
    ("policy", "steps_per_execution"),
    [("float32", 1), ("mixed_float16", 2)],
    ids=["explicit-loss-scale-optimizer", "mixed_float16-steps_per_execution-2"],
)
def test_history_counts_skipped_updates_in_other_set_ups(
    policy: str, steps_per_execution: int
) -> None:
    if keras.backend.backend() == "torch" and steps_per_execution > 1:
        pytest.skip("Keras' torch backend only supports steps_per_execution=1")
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = probe_model()
        optimizer = keras.optimizers.SGD(0.1)
        if policy == "float32":  # an explicit LossScaleOptimizer whose scale overflows first
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0**127)
        model.compile(optimizer=optimizer, loss=scaled_mean,
                      steps_per_execution=steps_per_execution)
        clr = CyclicLR(**ARGS)
        fit_steps(model, 6, [clr], epochs=2)
        updates = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    history = clr.history
    assert len(history["loss"]) == 12  # one row per batch
    assert 0 < updates < 12  # some updates were skipped
    iterations = history["iterations"]
    assert iterations[-1] == updates and np.all(np.diff(iterations) >= 0)
    # Every update's rate is recorded at the row where the count advanced.
    advanced = np.flatnonzero(np.diff(np.concatenate([[0], iterations])) == 1)
    np.testing.assert_allclose(history["lr"][advanced], reference(updates), rtol=1e-12)
