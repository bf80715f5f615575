"""CyclicLR and CyclicalSchedule on the active Keras backend: the applied rate is exact."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from probe import BiasRecorder, bias_of, fit_steps, mean_prediction, probe_model

import clrplug
from clrplug import ClrplugError, CyclicalSchedule, CyclicLR, Policy
from clrplug import schedule as schedule_module
from clrplug.registry import PolicyRegistry

TOL = {"rtol": 2e-5, "atol": 1e-9}


def reference(n: int, **kwargs: Any) -> np.ndarray:
    return clrplug.learning_rates(np.arange(n), **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "triangular"},
        {"mode": "triangular2"},
        {"mode": "exp_range", "gamma": 0.9},
        {"scale_fn": lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0)), "scale_mode": "cycle"},
        {"scale_fn": lambda x: 1 / (5 ** (x * 0.05)), "scale_mode": "iterations"},
    ],
    ids=["triangular", "triangular2", "exp_range", "seed-sine-cycle", "seed-decay-iterations"],
)
def test_applied_rate_equals_the_formula(kwargs: dict[str, Any]) -> None:
    model, recorder = probe_model(), BiasRecorder()
    clr = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=4, **kwargs)
    fit_steps(model, 10, [clr, recorder], epochs=3)
    expected = reference(30, base_lr=0.001, max_lr=0.006, step_size=4, **kwargs)
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)


def test_runtime_registered_policy_by_name(fresh_registry: PolicyRegistry) -> None:
    clrplug.register_policy(
        Policy("stairs", lambda x, n=3.0: np.minimum(1.0, x / n), "cycle", params={"n": 3.0})
    )
    model, recorder = probe_model(), BiasRecorder()
    clr = CyclicLR(0.01, 0.05, 3, mode="stairs", policy_params={"n": 2.0})
    fit_steps(model, 24, [clr, recorder])
    expected = reference(24, base_lr=0.01, max_lr=0.05, step_size=3, mode="stairs",
                         policy_params={"n": 2.0})
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)


def test_fractional_step_size() -> None:
    model, recorder = probe_model(), BiasRecorder()
    fit_steps(model, 20, [CyclicLR(0.001, 0.006, 2.5, mode="triangular2"), recorder])
    expected = reference(20, base_lr=0.001, max_lr=0.006, step_size=2.5, mode="triangular2")
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)


def test_second_fit_continues_the_cycle_without_retracing() -> None:
    model, recorder = probe_model(), BiasRecorder()
    clr = CyclicLR(0.001, 0.006, 5, mode="triangular2")
    fit_steps(model, 12, [clr, recorder])
    train_function = model.train_function
    fit_steps(model, 12, [clr, recorder])
    assert model.train_function is train_function
    expected = reference(24, base_lr=0.001, max_lr=0.006, step_size=5, mode="triangular2")
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)
    assert clr.history["iterations"].tolist() == list(range(1, 25))


def test_base_lr_overrides_the_optimizer_rate() -> None:
    model = probe_model(keras.optimizers.SGD(learning_rate=0.5))
    clr = CyclicLR(0.002, 0.004, 10)
    fit_steps(model, 1, [clr])
    assert bias_of(model) == pytest.approx(-0.002, rel=1e-6)


def test_a_cycle_starts_with_the_first_step_trained_with_the_callback() -> None:
    model, recorder = probe_model(), BiasRecorder()
    fit_steps(model, 3, [])  # 3 steps at the compiled rate 0.1, before CLR
    start = bias_of(model)
    recorder.values.append(start)
    fit_steps(model, 8, [CyclicLR(0.001, 0.006, 4), recorder])
    np.testing.assert_allclose(
        recorder.decrements(), reference(8, base_lr=0.001, max_lr=0.006, step_size=4), **TOL
    )


def test_reset_between_fits_starts_a_new_cycle() -> None:
    model, recorder = probe_model(), BiasRecorder()
    clr = CyclicLR(0.001, 0.006, 4, mode="exp_range", gamma=0.8)
    fit_steps(model, 6, [clr, recorder])
    clr._reset(new_max_lr=0.01)
    assert (clr.base_lr, clr.max_lr, clr.step_size) == (0.001, 0.01, 4)
    fit_steps(model, 10, [clr, recorder])
    expected = np.concatenate(
        [
            reference(6, base_lr=0.001, max_lr=0.006, step_size=4, mode="exp_range", gamma=0.8),
            reference(10, base_lr=0.001, max_lr=0.01, step_size=4, mode="exp_range", gamma=0.8),
        ]
    )
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)
    assert clr.clr_iterations == 10 and clr.trn_iterations == 16


class ResetAt(keras.callbacks.Callback):
    def __init__(self, clr: CyclicLR, batch: int, **kwargs: float) -> None:
        super().__init__()
        self.clr, self.batch, self.kwargs = clr, batch, kwargs

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if batch == self.batch:
            self.clr.reset(**self.kwargs)


def test_reset_from_another_callback_mid_epoch_applies_at_the_next_step() -> None:
    model, recorder = probe_model(), BiasRecorder()
    clr = CyclicLR(0.001, 0.006, 3, mode="triangular2")
    fit_steps(model, 20, [clr, ResetAt(clr, 7, new_base_lr=0.002, new_step_size=2), recorder])
    expected = np.concatenate(
        [
            reference(8, base_lr=0.001, max_lr=0.006, step_size=3, mode="triangular2"),
            reference(12, base_lr=0.002, max_lr=0.006, step_size=2, mode="triangular2"),
        ]
    )
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)


def test_reset_refuses_bad_values_and_changes_nothing() -> None:
    clr = CyclicLR(0.001, 0.006, 4)
    with pytest.raises(clrplug.InvalidArgumentError, match=r"max_lr \(0\.0005\) must be >= base_lr"):
        clr._reset(new_max_lr=0.0005)
    assert (clr.base_lr, clr.max_lr, clr.step_size) == (0.001, 0.006, 4)


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras' torch backend only supports steps_per_execution=1",
)
def test_steps_per_execution_applies_every_steps_rate() -> None:
    model, recorder = probe_model(steps_per_execution=4), BiasRecorder()
    clr = CyclicLR(0.001, 0.006, 3, mode="triangular2")
    fit_steps(model, 10, [clr, recorder], epochs=2)
    per_step = reference(20, base_lr=0.001, max_lr=0.006, step_size=3, mode="triangular2")
    # Callbacks fire once per execution: steps [0-3], [4-7], [8-9] of each epoch.
    chunks = [(0, 4), (4, 8), (8, 10), (10, 14), (14, 18), (18, 20)]
    np.testing.assert_allclose(
        recorder.decrements(), [per_step[a:b].sum() for a, b in chunks], **TOL
    )
    history = clr.history
    np.testing.assert_allclose(history["lr"], per_step, rtol=1e-12)
    assert history["iterations"].tolist() == list(range(1, 21))
    assert np.isnan(history["loss"][[0, 1, 2, 4, 5, 6, 8]]).all()
    assert np.isfinite(history["loss"][[3, 7, 9, 13, 17, 19]]).all()


def momentum_rates(d: np.ndarray, momentum: float) -> np.ndarray:
    # v_t = m v_{t-1} - lr_t g ; w_t = w_{t-1} + v_t ; g = 1  =>  lr_t = d_t - m d_{t-1}
    return d - momentum * np.concatenate([[0.0], d[:-1]])


@pytest.mark.parametrize(
    ("make", "recover"),
    [
        (lambda: keras.optimizers.SGD(0.1), lambda d, t: d),
        (lambda: keras.optimizers.SGD(0.1, momentum=0.9), lambda d, t: momentum_rates(d, 0.9)),
        # m_hat = v_hat = 1 for a constant gradient of 1: the update is lr * 1/(1 + eps/sqrt(v)).
        (lambda: keras.optimizers.Adam(0.1, epsilon=1e-7),
         lambda d, t: d * (1 + 1e-7 / np.sqrt(1 - 0.999**t))),
        (lambda: keras.optimizers.Lion(0.1), lambda d, t: d),
        (lambda: keras.optimizers.RMSprop(0.1, rho=0.9, epsilon=1e-7),
         lambda d, t: d * (np.sqrt(1 - 0.9**t) + 1e-7) / 1.0),
        (lambda: keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=1e-7),
         lambda d, t: d * (np.sqrt(0.1 + t) + 1e-7)),
    ],
    ids=["sgd", "sgd-momentum", "adam", "lion", "rmsprop", "adagrad"],
)
def test_any_optimizer(make: Any, recover: Any) -> None:
    model, recorder = probe_model(make()), BiasRecorder()
    fit_steps(model, 16, [CyclicLR(0.001, 0.006, 3, mode="triangular2"), recorder])
    applied = recover(recorder.decrements(), np.arange(1, 17))
    expected = reference(16, base_lr=0.001, max_lr=0.006, step_size=3, mode="triangular2")
    np.testing.assert_allclose(applied, expected, rtol=2e-4, atol=1e-8)


@pytest.mark.parametrize("make", [keras.optimizers.AdamW, keras.optimizers.Nadam])
def test_other_optimizers_run_and_follow_the_schedule(make: Any) -> None:
    model = probe_model(make(0.1))
    clr = CyclicLR(0.001, 0.006, 3)
    fit_steps(model, 6, [clr])
    inner = model.optimizer
    assert inner.learning_rate is not None
    assert float(keras.ops.convert_to_numpy(inner.learning_rate)) == pytest.approx(
        clrplug.learning_rates([6], 0.001, 0.006, 3)[0], rel=1e-6
    )


def test_loss_scale_optimizer() -> None:
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    model, recorder = probe_model(optimizer), BiasRecorder()
    fit_steps(model, 12, [CyclicLR(0.001, 0.006, 3, mode="triangular2"), recorder])
    expected = reference(12, base_lr=0.001, max_lr=0.006, step_size=3, mode="triangular2")
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)


def test_history_is_compact_and_complete() -> None:
    model = probe_model()
    model.compile(optimizer="sgd", loss=mean_prediction, metrics=["mae"])
    clr = CyclicLR(0.001, 0.006, 4)
    fit_steps(model, 7, [clr], epochs=2)
    history = clr.history
    assert set(history) == {"lr", "iterations", "loss", "mae"}
    assert all(len(v) == 14 for v in history.values())
    assert history["iterations"].dtype == np.int64 and history["lr"].dtype == np.float64
    assert history["loss"].dtype == np.float64
    assert history["iterations"].tolist() == list(range(1, 15))
    np.testing.assert_allclose(history["lr"], reference(14, step_size=4), rtol=1e-12)


def test_learning_rate_goes_into_epoch_logs() -> None:
    model = probe_model()
    fit_steps(model, 5, [CyclicLR(0.001, 0.006, 3)], epochs=3)
    logged = model.history.history["learning_rate"]
    np.testing.assert_allclose(logged, reference(15, step_size=3)[[4, 9, 14]], rtol=1e-12)


def test_schedule_used_directly_by_an_optimizer() -> None:
    schedule = CyclicalSchedule(0.001, 0.006, 4, mode="exp_range", gamma=0.9)
    model, recorder = probe_model(keras.optimizers.SGD(learning_rate=schedule)), BiasRecorder()
    fit_steps(model, 20, [recorder])
    expected = reference(20, base_lr=0.001, max_lr=0.006, step_size=4, mode="exp_range", gamma=0.9)
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)


@pytest.mark.parametrize("mode", ["triangular", "exp_range"])
def test_schedule_is_exact_at_huge_iterations(mode: str) -> None:
    gamma = 0.9999999 if mode == "exp_range" else 1.0
    schedule = CyclicalSchedule(0.001, 0.006, 2000, mode=mode, gamma=gamma)
    its = np.array([10**8, 10**8 + 1, 10**8 + 999, 10**8 + 2000, 2**31 - 10], dtype=np.int64)
    dtype = "int32" if keras.backend.backend() == "jax" else "int64"
    got = []
    for i in its:
        schedule.ensure_window(int(i), int(i))  # what CyclicLR does as training goes
        value = schedule(keras.ops.convert_to_tensor(int(i), dtype))
        got.append(float(keras.ops.convert_to_numpy(value)))
    expected = clrplug.learning_rates(its, step_size=2000, mode=mode, gamma=gamma)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.all(np.asarray(got) >= 0.001 * (1 - 1e-6))


def test_standalone_schedule_covers_its_horizon() -> None:
    schedule = CyclicalSchedule(0.001, 0.006, 10, mode="triangular2", horizon=100)
    inside = [float(keras.ops.convert_to_numpy(schedule(i))) for i in range(100)]
    np.testing.assert_allclose(
        inside, clrplug.learning_rates(range(100), step_size=10, mode="triangular2"), rtol=1e-6
    )
    beyond = float(keras.ops.convert_to_numpy(schedule(105)))
    exact = clrplug.learning_rates([105], step_size=10, mode="triangular2")[0]
    if keras.backend.backend() == "torch":
        assert beyond == pytest.approx(exact, rel=1e-12)  # eager: computed exactly
    else:
        assert beyond == pytest.approx(inside[-1], rel=1e-6)  # documented: held


def test_save_and_load_continue_the_same_sequence(tmp_path: Path) -> None:
    model, recorder = probe_model(), BiasRecorder()
    clr = CyclicLR(0.001, 0.006, 3, mode="exp_range", gamma=0.9)
    fit_steps(model, 7, [clr, recorder])
    clr._reset(new_base_lr=0.002)
    fit_steps(model, 2, [clr, recorder])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded.optimizer.learning_rate, object)
    restored = BiasRecorder()
    restored.values.append(bias_of(loaded))
    # A callback built with the original arguments resumes the saved cycle (reset included).
    resumed = CyclicLR(0.001, 0.006, 3, mode="exp_range", gamma=0.9)
    fit_steps(loaded, 6, [resumed, restored])
    continued = CyclicLR(0.001, 0.006, 3, mode="exp_range", gamma=0.9)
    assert continued is not resumed
    after_reset = reference(8, base_lr=0.002, max_lr=0.006, step_size=3, mode="exp_range",
                            gamma=0.9)
    np.testing.assert_allclose(recorder.decrements()[7:], after_reset[:2], **TOL)
    np.testing.assert_allclose(restored.decrements(), after_reset[2:], **TOL)
    assert resumed.history["iterations"].tolist() == list(range(10, 16))
    np.testing.assert_allclose(resumed.history["lr"], after_reset[2:], rtol=1e-12)


def test_loaded_model_continues_without_a_callback(tmp_path: Path) -> None:
    schedule = CyclicalSchedule(0.001, 0.006, 4, mode="triangular2")
    model = probe_model(keras.optimizers.SGD(learning_rate=schedule))
    fit_steps(model, 5, [])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    recorder = BiasRecorder()
    recorder.values.append(bias_of(loaded))
    fit_steps(loaded, 7, [recorder])
    expected = reference(12, base_lr=0.001, max_lr=0.006, step_size=4, mode="triangular2")[5:]
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)


def test_a_custom_scale_fn_cannot_be_saved_and_says_how_to_fix_it(tmp_path: Path) -> None:
    model = probe_model()
    fit_steps(model, 2, [CyclicLR(scale_fn=lambda x: 1 / (5 ** (x * 0.0001)))])
    with pytest.raises(ClrplugError, match=r"register_policy\(clrplug.Policy\('my_policy'"):
        model.save(tmp_path / "m.keras")


def test_schedule_config_round_trip() -> None:
    schedule = CyclicalSchedule(0.002, 0.01, 7.5, mode="exp_range", gamma=0.99, cycle_start=12)
    config = keras.optimizers.schedules.serialize(schedule)
    again = keras.optimizers.schedules.deserialize(config)
    assert isinstance(again, CyclicalSchedule)
    assert again.get_config() == schedule.get_config()
    its = np.arange(12, 60)
    np.testing.assert_allclose(again.rates_at(its), schedule.rates_at(its), rtol=0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"mode": "triangular", "scale_fn": "lambda x: x"}, r"unsupported key\(s\) \['scale_fn'\]"),
        ({"mode": {"class_name": "function"}}, "config\\['mode'\\] must be str"),
        ({"base_lr": "0.1"}, "config\\['base_lr'\\] must be int or float"),
        ({"policy_params": {"gamma": [1]}}, "must map names to numbers"),
        ({"mode": "not_installed"}, "unknown policy 'not_installed'"),
    ],
)
def test_from_config_refuses_code_and_junk(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ClrplugError, match=message):
        CyclicalSchedule.from_config(config)


def test_refuses_a_model_already_compiled_with_another_schedule() -> None:
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model = probe_model(keras.optimizers.SGD(learning_rate=decay))
    with pytest.raises(ClrplugError, match="already has a learning-rate schedule"):
        fit_steps(model, 1, [CyclicLR()])


def test_refuses_an_uncompiled_model() -> None:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    with pytest.raises(ClrplugError, match="needs a compiled model"):
        CyclicLR().attach(model)


def test_tables_slide_for_long_iteration_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    # A window far smaller than the run forces the table to slide mid-fit.
    monkeypatch.setattr(schedule_module, "MAX_WINDOW", 8)
    monkeypatch.setattr(schedule_module, "_MIN_WINDOW", 4)
    clr = CyclicLR(0.001, 0.006, 3, mode="exp_range", gamma=0.97)
    model, recorder = probe_model(), BiasRecorder()
    x = np.zeros((40, 1), "float32")
    dataset = _generator(x)
    model.fit(dataset, steps_per_epoch=None, epochs=1, callbacks=[clr, recorder], verbose=0)
    expected = reference(40, base_lr=0.001, max_lr=0.006, step_size=3, mode="exp_range",
                         gamma=0.97)
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)
    assert math.isclose(clr.history["lr"][-1], expected[-1], rel_tol=1e-12)
    assert clr.schedule.version > 3  # the window really slid


def _generator(x: np.ndarray) -> Any:
    class Data(keras.utils.PyDataset):
        def __len__(self) -> int:
            return len(x)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            return x[i : i + 1], x[i : i + 1]

    return Data()


def test_gradient_accumulation_an_iteration_is_an_update() -> None:
    optimizer = keras.optimizers.SGD(0.1, gradient_accumulation_steps=2)
    model, recorder = probe_model(optimizer), BiasRecorder()
    clr = CyclicLR(0.001, 0.006, 2, mode="triangular2")
    fit_steps(model, 12, [clr, recorder])
    # The bias moves every second batch, by the rate of update 0, 1, 2, ...
    per_update = reference(6, base_lr=0.001, max_lr=0.006, step_size=2, mode="triangular2")
    expected = np.zeros(12)
    expected[1::2] = per_update
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)
    assert clr.history["iterations"].tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    np.testing.assert_allclose(clr.history["lr"], np.repeat(per_update, 2), rtol=1e-12)


def test_loading_a_policy_that_is_not_installed_names_its_distribution() -> None:
    config = CyclicalSchedule(mode="triangular").get_config()
    config.update(mode="sinusoidal_xyz", distribution="clrplug-sinusoidal-xyz")
    with pytest.raises(clrplug.UnknownPolicyError, match=r"unknown policy 'sinusoidal_xyz'.*"
                       r"`pip install clrplug-sinusoidal-xyz`"):
        CyclicalSchedule.from_config(config)


def test_reset_takes_effect_even_if_the_old_train_function_is_still_referenced() -> None:
    model, recorder = probe_model(), BiasRecorder()
    clr = CyclicLR(0.001, 0.006, 4)
    fit_steps(model, 6, [clr, recorder])
    held = model.train_function  # e.g. a notebook variable, or a tool restoring it later
    clr.reset(new_base_lr=0.002)
    fit_steps(model, 6, [clr, recorder])
    expected = np.concatenate([reference(6, step_size=4), reference(6, base_lr=0.002, step_size=4)])
    np.testing.assert_allclose(recorder.decrements(), expected, **TOL)
    assert held is not model.train_function


class WeightsBeforeEachBatch(keras.callbacks.Callback):
    """Records each batch's own MSE from the weights it starts with (the reference)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.losses = x, y, batch_size, []

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        kernel, bias = (np.asarray(w, dtype=np.float64) for w in self.model.get_weights())
        rows = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        error = self.x[rows] @ kernel + bias - self.y[rows]
        self.losses.append(float(np.mean(error**2)))


def test_history_holds_each_batchs_own_loss_not_the_running_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 3)).astype("float32")  # 16-sample batches, a short last one
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse",
                  metrics=["mae", keras.metrics.RootMeanSquaredError(name="rmse")])
    clr, reference_losses = CyclicLR(0.001, 0.01, 5), WeightsBeforeEachBatch(x, y, 16)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
              callbacks=[clr, reference_losses])
    history = clr.history
    np.testing.assert_allclose(history["loss"], reference_losses.losses, rtol=1e-5)
    # RMSE is not a plain mean: kept as Keras logged it (the running value).
    assert history["rmse"][-1] == pytest.approx(model.history.history["rmse"][-1], rel=1e-6)


def test_history_per_batch_values_follow_a_new_batch_size_in_a_second_fit() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(44, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    clr = CyclicLR(0.001, 0.01, 5)
    first, second = WeightsBeforeEachBatch(x, y, 8), WeightsBeforeEachBatch(x, y, 16)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[clr, first])
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[clr, second])
    np.testing.assert_allclose(clr.history["loss"], first.losses + second.losses, rtol=1e-5)


def test_a_registered_function_with_another_scale_mode_is_not_saved_under_its_name(
    fresh_registry: PolicyRegistry,
) -> None:
    def wave(x: np.ndarray) -> np.ndarray:
        return 0.5 * (1 + np.sin(x * np.pi / 2.0))

    clrplug.register_policy(Policy("wave_cycle", wave, "cycle"))
    same = CyclicalSchedule(step_size=2, scale_fn=wave, scale_mode="cycle")
    assert same.get_config()["mode"] == "wave_cycle"
    other = CyclicalSchedule(step_size=2, scale_fn=wave, scale_mode="iterations")
    with pytest.raises(ClrplugError, match="cannot be saved"):
        other.get_config()
