"""The engine on the active backend: the rate the optimizer applies equals an independent oracle.

Rates are read from real weight updates by the probe (tests/probe.py), which never
touches ``Callback.model`` per batch, so these run the path users run. Expected
values come from PyTorch's ``CyclicLR`` and ``OneCycleLR`` or from transcriptions in
tests/oracles.py and in this file: never from ``clrplug.learning_rates``.
"""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
from oracles import seed_rates, torch_cyclic, torch_cyclic_at
from probe import BiasRecorder, fit_probe, fit_steps, probe_model, rate_probe_model

import clrplug
from clrplug import CyclicalSchedule, CyclicLR, Policy
from clrplug.errors import ClrplugError
from clrplug.registry import Registry

BACKEND = keras.backend.backend()
RTOL = 1e-5
#: The steps the engine must be exact at (the counter on JAX and PyTorch is int32).
HUGE = [10**6, 4_200_001, 10**8, 2**31 - 100]


def assert_rates(run: Any, expected: np.ndarray, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(run.rates, expected, rtol=rtol, atol=0)
    assert np.all(np.abs(run.rates - expected) <= rtol * np.abs(expected) + run.rate_atol)


def sine(x: Any) -> Any:
    return 0.5 * (1 + np.sin(x * np.pi / 2.0))


def decay(x: Any) -> Any:
    with np.errstate(over="ignore"):  # numpy semantics, as the seed: 5**huge is inf, 1/inf is 0
        return 1 / (5.0 ** (np.float64(x) * 0.0001))


def cosine_shape(t: np.ndarray) -> np.ndarray:
    """The Hann window on the triangle, written out: (1 - cos(pi t)) / 2."""
    return (1.0 - np.cos(np.pi * t)) / 2.0


def transcribed(k: np.ndarray, base: float, top: float, up: float, down: float,
                shape: Any = lambda t: t, scale: Any = lambda c, k: 1.0) -> np.ndarray:
    """PyTorch's asymmetric cycle with a waveform, one iteration at a time, in float64."""
    out = []
    for it in np.asarray(k, dtype=np.float64):
        total = up + down
        cycle = math.floor(1 + it / total)
        x = 1.0 + it / total - cycle
        ratio = up / total
        t = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        out.append(base + (top - base) * shape(t) * scale(cycle, it))
    return np.array(out)


@pytest.fixture
def no_cache_clearing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if anything clears JAX's process-wide compilation caches."""
    if BACKEND == "jax":
        import jax

        def refuse() -> None:
            raise AssertionError("jax.clear_caches() was called")

        monkeypatch.setattr(jax, "clear_caches", refuse)
    yield


class TrainFunctionBuilds:
    """Counts the train functions a model builds."""

    def __init__(self, model: keras.Model) -> None:
        self.count = 0
        make = model.make_train_function

        def counted(force: bool = False) -> Any:
            if force or model.train_function is None:
                self.count += 1
            return make(force)

        model.make_train_function = counted


# -- every kind of policy, exact, against an oracle ------------------------------------

TORCH_CASES = {
    "triangular": {"mode": "triangular"},
    "triangular2": {"mode": "triangular2"},
    "exp_range": {"mode": "exp_range", "gamma": 0.9},
    "asymmetric": {"mode": "triangular2", "step_size_down": 2},
    "fractional": {"mode": "triangular", "step_size": 2.5},
}


@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_builtin_policies_apply_pytorchs_rates(case: str, no_cache_clearing: None) -> None:
    kwargs = {"step_size": 4, **TORCH_CASES[case]}
    clr = CyclicLR(0.001, 0.006, **kwargs)
    run = fit_probe(rate_probe_model(), 10, [clr], epochs=3)
    torch_args = {"step_size_up": kwargs.pop("step_size"), **kwargs}
    expected, _ = torch_cyclic_at(np.arange(30), 0.001, 0.006, **torch_args)
    assert_rates(run, expected)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)
    assert clr.history["iterations"].tolist() == list(range(1, 31))


@pytest.mark.parametrize(
    ("kwargs", "scale"),
    [
        ({"scale_fn": sine, "scale_mode": "cycle"}, lambda c, k: sine(c)),
        ({"scale_fn": lambda x: 1 / (5 ** (x * 0.05)), "scale_mode": "iterations"},
         lambda c, k: 1 / (5 ** (k * 0.05))),
        ({"mode": "triangular", "waveform": "cosine"}, lambda c, k: 1.0),
        ({"mode": "triangular", "waveform": "welch", "step_size_down": 7}, lambda c, k: 1.0),
    ],
    ids=["seed-sine-cycle", "seed-decay-iterations", "cosine", "welch-asymmetric"],
)
def test_lambdas_and_waveforms_apply_the_transcribed_rates(kwargs: dict[str, Any], scale: Any) -> None:
    clr = CyclicLR(0.001, 0.006, 3, **kwargs)
    run = fit_probe(rate_probe_model(), 11, [clr], epochs=2)
    shape = {"cosine": cosine_shape, "welch": lambda t: 1 - (1 - t) ** 2}.get(
        kwargs.get("waveform", ""), lambda t: t
    )
    expected = transcribed(np.arange(22), 0.001, 0.006, 3, kwargs.get("step_size_down", 3),
                           shape, scale)
    assert_rates(run, expected)


def test_a_scale_function_that_only_takes_one_number_works() -> None:
    clr = CyclicLR(0.001, 0.006, 2, scale_fn=lambda x: 1.0 if x < 3 else 0.5)
    run = fit_probe(rate_probe_model(), 16, [clr])
    expected = transcribed(np.arange(16), 0.001, 0.006, 2, 2,
                           scale=lambda c, k: 1.0 if c < 3 else 0.5)
    assert_rates(run, expected)


def test_a_tabulated_policy_in_an_epoch_longer_than_its_table() -> None:
    """An epoch of 70,000 steps, more than the scale table holds: covered as it goes."""

    class StopAfter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch + 1 == 6:
                self.model.stop_training = True

    def forever() -> Any:
        while True:
            yield np.ones((1, 1), "float32"), np.zeros((1, 5), "float32")

    # scale_mode="iterations": one table entry per step, so the epoch needs 70,000 of them.
    clr = CyclicLR(0.001, 0.006, 2, scale_fn=lambda x: 1.0 if x < 3 else 0.5,
                   scale_mode="iterations")
    rate_probe_model().fit(forever(), steps_per_epoch=70_000, epochs=1, verbose=0,
                           callbacks=[clr, StopAfter()])
    expected = transcribed(np.arange(6), 0.001, 0.006, 2, 2,
                           scale=lambda c, k: 1.0 if k < 3 else 0.5)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)


@pytest.mark.parametrize(("scale_mode", "step_size"), [("iterations", 3), ("cycle", 1)])
def test_a_tabulated_policy_across_many_table_refills(
    monkeypatch: pytest.MonkeyPatch, scale_mode: str, step_size: int
) -> None:
    """The table shrunk to 128 entries: 700 steps in one epoch refill it several times
    as the epoch goes (on TensorFlow the rate window, refilled likewise, is read)."""
    monkeypatch.setattr(clrplug.schedule, "TABLE_SIZE", 128)
    monkeypatch.setattr(clrplug.callback, "TABLE_SIZE", 128)

    def fast_decay(x: Any) -> Any:
        return 1 / (5.0 ** (np.float64(x) * 0.004))

    clr = CyclicLR(0.01, 0.05, step_size, scale_fn=fast_decay, scale_mode=scale_mode)
    run = fit_probe(rate_probe_model(), 700, [clr])
    expected, _ = torch_cyclic(700, 0.01, 0.05, step_size, scale_fn=fast_decay,
                               scale_mode=scale_mode)
    assert expected[-20:].max() < 0.5 * expected[:20].max()  # the table's values matter
    assert_rates(run, expected)


def test_runtime_registered_policy_by_name(fresh_registry: Registry) -> None:
    clrplug.register_policy(
        Policy("stairs", lambda x, n=3.0: np.minimum(1.0, x / n), "cycle", params={"n": 3.0})
    )
    clr = CyclicLR(0.01, 0.05, 3, mode="stairs", policy_params={"n": 2.0})
    run = fit_probe(rate_probe_model(), 24, [clr])
    expected = transcribed(np.arange(24), 0.01, 0.05, 3, 3, scale=lambda c, k: min(1.0, c / 2.0))
    assert_rates(run, expected)


@pytest.mark.parametrize("name", ["sinusoidal", "exp_decay"])
def test_plugin_policies_by_name(name: str) -> None:
    scale = {"sinusoidal": lambda c, k: sine(c), "exp_decay": lambda c, k: decay(k)}[name]
    clr = CyclicLR(0.001, 0.006, 3, mode=name)
    run = fit_probe(rate_probe_model(), 20, [clr])
    assert_rates(run, transcribed(np.arange(20), 0.001, 0.006, 3, 3, scale=scale))


# -- any step, no rebuild, no cache clearing ---------------------------------------------


class ResetAtEpoch(keras.callbacks.Callback):
    def __init__(self, clr: CyclicLR, epoch: int, **kwargs: float) -> None:
        super().__init__()
        self.clr, self.epoch, self.kwargs = clr, epoch, kwargs

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.epoch:
            self.clr.reset(**self.kwargs)


@pytest.mark.parametrize("mode", ["triangular2", "exp_range", "table"])
def test_counter_moved_to_huge_steps_with_resets_one_train_function(
    mode: str, no_cache_clearing: None
) -> None:
    """Four jumps of the counter, two resets: exact rates, and a new trace only when the
    schedule's numbers change (a reset, or a scale table computed for the new counts)."""
    kwargs: dict[str, Any] = (
        {"scale_fn": decay, "scale_mode": "iterations"} if mode == "table"
        else {"mode": mode, "gamma": 0.9999} if mode == "exp_range" else {"mode": mode}
    )
    model = rate_probe_model()
    builds = TrainFunctionBuilds(model)
    clr = CyclicLR(0.001, 0.006, 2000, **kwargs)
    moves = {1 + i: step for i, step in enumerate(HUGE)}
    resets = [ResetAtEpoch(clr, 2, new_max_lr=0.004), ResetAtEpoch(clr, 4, new_step_size=1500)]
    run = fit_probe(model, 6, [clr, *resets], epochs=5, iterations=moves)
    refills = len(moves) if mode == "table" else 0
    # The fit's step, one per change of numbers, and the model's own plain step at the end.
    assert builds.count <= 2 + len(resets) + refills
    it = run.iterations
    epoch = np.repeat(np.arange(5), 6)
    start = np.select([epoch >= 4, epoch >= 2], [it[24], it[12]], 0)
    top = np.where(epoch >= 2, 0.004, 0.006)
    size = np.where(epoch >= 4, 1500, 2000)
    k = it - start
    expected = np.array([
        seed_rates([kk], 0.001, tt, ss, **({"mode": mode, "gamma": 0.9999} if mode != "table"
                                            else {"scale_fn": decay, "scale_mode": "iterations"}))[0]
        for kk, tt, ss in zip(k, top, size, strict=True)
    ])
    assert_rates(run, expected)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "triangular"}, {"mode": "triangular2"}, {"mode": "exp_range", "gamma": 0.99994},
     {"mode": "sinusoidal"}, {"mode": "exp_decay"}, {"mode": "triangular2", "step_size_down": 500},
     {"mode": "triangular", "waveform": "cosine"}],
    ids=["triangular", "triangular2", "exp_range", "sinusoidal", "exp_decay", "asymmetric", "cosine"],
)
def test_standalone_schedule_is_exact_at_any_step(kwargs: dict[str, Any]) -> None:
    schedule = CyclicalSchedule(0.001, 0.006, 2000, **kwargs)
    steps = [0, 1999, 2000, 2001, 3999, 4000, 2**20 + 5, *HUGE]
    got = np.array([float(keras.ops.convert_to_numpy(schedule(s))) for s in steps])
    scale = {
        "sinusoidal": lambda c, k: sine(c), "exp_decay": lambda c, k: decay(k),
        "triangular2": lambda c, k: 0.5 ** (c - 1), "exp_range": lambda c, k: 0.99994**k,
    }.get(kwargs["mode"], lambda c, k: 1.0)
    shape = cosine_shape if kwargs.get("waveform") == "cosine" else (lambda t: t)
    with np.errstate(over="ignore", under="ignore"):
        expected = transcribed(steps, 0.001, 0.006, 2000, kwargs.get("step_size_down", 2000),
                               shape, scale)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-12 * 0.006)


def test_standalone_schedule_in_a_fit_applies_the_rate() -> None:
    schedule = CyclicalSchedule(0.001, 0.006, 4, mode="exp_range", gamma=0.9)
    model = rate_probe_model(keras.optimizers.SGD(learning_rate=schedule))
    run = fit_probe(model, 20, [], iterations={})
    expected, _ = torch_cyclic_at(np.arange(20), 0.001, 0.006, 4, mode="exp_range", gamma=0.9)
    assert_rates(run, expected)


def test_standalone_schedule_refuses_a_policy_without_a_keras_twin() -> None:
    with pytest.raises(clrplug.errors.InvalidArgumentError,
                       match=r"no keras\.ops twin .* stand-alone CyclicalSchedule cannot"):
        CyclicalSchedule(scale_fn=sine)


def test_a_wrong_keras_twin_is_refused_when_the_schedule_is_made(fresh_registry: Registry) -> None:
    clrplug.register_policy(Policy(
        "drifting", sine, "cycle",
        ops_fn=lambda x: 0.5 * (1 + keras.ops.sin(keras.ops.cast(x, "float32") * (np.pi / 2))),
    ))
    with pytest.raises(clrplug.errors.PolicyEvaluationError,
                       match=r"keras\.ops twin \(ops_fn\) of policy 'drifting' .* at x="):
        CyclicalSchedule(mode="drifting")


@pytest.mark.skipif(BACKEND == "torch", reason="Keras' torch backend has steps_per_execution=1")
def test_steps_per_execution_applies_every_steps_rate() -> None:
    clr = CyclicLR(0.001, 0.006, 3, mode="triangular2")
    run = fit_probe(rate_probe_model(), 10, [clr], epochs=2, steps_per_execution=4)
    expected, _ = torch_cyclic_at(np.arange(20), 0.001, 0.006, 3, mode="triangular2")
    assert_rates(run, expected)
    history = clr.history
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-12)
    assert history["iterations"].tolist() == list(range(1, 21))
    assert np.isnan(history["loss"][[0, 1, 2, 4, 5, 6, 8]]).all()


def test_the_synced_path_too() -> None:
    """One test reads the model every batch (a state sync per step on JAX)."""
    model, recorder = probe_model(), BiasRecorder()
    fit_steps(model, 12, [CyclicLR(0.001, 0.006, 3, mode="triangular2"), recorder])
    expected, _ = torch_cyclic_at(np.arange(12), 0.001, 0.006, 3, mode="triangular2")
    np.testing.assert_allclose(recorder.decrements(), expected, rtol=2e-5, atol=1e-9)


def test_gradient_accumulation_an_iteration_is_an_update() -> None:
    clr = CyclicLR(0.001, 0.006, 3)
    model = rate_probe_model(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
    fit_steps_plain = np.zeros((24, 1), "float32")
    model.fit(fit_steps_plain, np.zeros((24, 5), "float32"), batch_size=1, epochs=1, verbose=0,
              shuffle=False, callbacks=[clr])
    history = clr.history
    assert history["iterations"].tolist() == [i // 2 for i in range(1, 25)]
    expected, _ = torch_cyclic_at(np.arange(24) // 2, 0.001, 0.006, 3)
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-12)


# -- the optimizer between fits ------------------------------------------------------------


class TrainFunctionSeen(keras.callbacks.Callback):
    """The model's train function during the fit."""

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.function = self.model.train_function


def test_second_fit_continues_the_cycle_without_a_new_train_function() -> None:
    """The second fit uses the first fit's step again (no trace), and between and after
    the fits the model's own plain step is back."""
    model = rate_probe_model()
    builds = TrainFunctionBuilds(model)
    clr = CyclicLR(0.001, 0.006, 5, mode="triangular2")
    seen = TrainFunctionSeen()
    first = fit_probe(model, 12, [clr, seen])
    during, plain, count = seen.function, model.train_function, builds.count
    run = fit_probe(model, 12, [clr, seen], run=first)
    assert seen.function is during and model.train_function is plain and builds.count == count
    expected, _ = torch_cyclic_at(np.arange(24), 0.001, 0.006, 5, mode="triangular2")
    assert_rates(run, expected)
    assert clr.history["iterations"].tolist() == list(range(1, 25))


def test_between_fits_the_optimizer_holds_a_plain_rate_and_can_be_set() -> None:
    model = rate_probe_model()
    clr = CyclicLR(0.001, 0.006, 4)
    first = fit_probe(model, 6, [clr])
    next_rate = torch_cyclic_at([6], 0.001, 0.006, 4)[0][0]
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(next_rate)
    held = fit_probe(model, 3, [], run=first)  # no callback: the seed left a plain rate
    np.testing.assert_allclose(held.rates[6:], next_rate, rtol=RTOL)
    model.optimizer.learning_rate = 0.02
    plain = fit_probe(model, 3, [], run=held)
    np.testing.assert_allclose(plain.rates[9:], 0.02, rtol=RTOL)
    cycling = fit_probe(model, 4, [clr], run=plain)  # the callback takes over again
    expected, _ = torch_cyclic_at(np.arange(12, 16), 0.001, 0.006, 4)
    assert_rates(type(cycling)(**{**cycling.__dict__, "rates": cycling.rates[12:],
                                  "rate_atol": cycling.rate_atol[12:]}), expected)


def test_reduce_lr_on_plateau_after_a_cyclical_phase() -> None:
    model = rate_probe_model()
    fit_probe(model, 8, [CyclicLR(0.001, 0.006, 4)])
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                                min_delta=1e9)
    model.fit(np.zeros((4, 1)), np.zeros((4, 5)), batch_size=1, epochs=3, verbose=0,
              callbacks=[plateau])
    # The phase started at the held rate (the cycle's next, base_lr at step 8); the first
    # epoch improved on nothing, the next two halved it.
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
        0.001 / 4, rel=1e-6
    )


def test_recompiling_continues_the_cycle_and_the_iteration_count() -> None:
    model = rate_probe_model()
    clr = CyclicLR(0.001, 0.006, 4, mode="triangular2")
    fit_probe(model, 6, [clr])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=model.loss, metrics=model.metrics[1:] or None)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=model.loss)
    fit_steps(model, 5, [clr])
    expected, _ = torch_cyclic_at(np.arange(11), 0.001, 0.006, 4, mode="triangular2")
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)
    assert clr.history["iterations"].tolist() == list(range(1, 12))
    assert clr.clr_iterations == 11


def test_one_callback_on_a_second_model_continues_its_cycle() -> None:
    clr = CyclicLR(0.001, 0.006, 3)
    first, second = probe_model(), probe_model()
    fit_steps(first, 4, [clr])
    recorder = BiasRecorder()
    fit_steps(second, 5, [clr, recorder])
    expected, _ = torch_cyclic_at(np.arange(9), 0.001, 0.006, 3)
    np.testing.assert_allclose(recorder.decrements(), expected[4:], rtol=2e-5, atol=1e-9)
    assert clr.history["iterations"].tolist() == list(range(1, 10))


def test_the_model_holds_no_reference_to_the_callback() -> None:
    model = rate_probe_model()
    clr = CyclicLR(0.001, 0.006, 4)
    fit_probe(model, 4, [clr])
    ref = weakref.ref(clr)
    del clr
    gc.collect()
    assert ref() is None


# -- state and attributes ------------------------------------------------------------------


def test_public_attributes_report_the_values_in_force() -> None:
    clr = CyclicLR(mode="exp_range", policy_params={"gamma": 0.9})
    assert clr.gamma == 0.9 and clr.policy_params == {"gamma": 0.9}
    clr = CyclicLR(0.001, 0.006, 10, step_size_down=5, waveform="welch")
    clr.reset(new_max_lr=0.01, new_step_size=8)
    assert (clr.base_lr, clr.max_lr, clr.step_size, clr.step_size_down) == (0.001, 0.01, 8, 5)
    assert clr.waveform == "welch" and clr.mode == "triangular" and clr.gamma == 1.0


def test_reset_refuses_bad_values_and_changes_nothing() -> None:
    clr = CyclicLR(0.001, 0.006, 4)
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=r"max_lr \(0\.0005\) must be >= base_lr"):
        clr._reset(new_max_lr=0.0005)
    assert (clr.base_lr, clr.max_lr, clr.step_size) == (0.001, 0.006, 4)


@pytest.mark.parametrize("kwargs", [{"mode": "triangular2"}, {"mode": "exp_decay"},
                                    {"mode": "sinusoidal", "cycle_momentum": True}])
def test_attaching_adds_no_optimizer_variable(kwargs: dict[str, Any]) -> None:
    """While the callback drives the rate the optimizer holds what a model compiled with a
    schedule holds: its own variables less the rate Variable, nothing added."""
    model = rate_probe_model(keras.optimizers.SGD(0.1, momentum=0.9))
    model.optimizer.build(model.trainable_variables)
    before = [v for v in model.optimizer.variables if not v.path.endswith("/learning_rate")]
    clr = CyclicLR(0.001, 0.006, 4, **kwargs)
    clr.attach(model)
    assert [v.path for v in model.optimizer.variables] == [v.path for v in before]
    CyclicLR(scale_fn=sine).attach(model)  # a tabulated policy: its table is no variable
    assert [v.path for v in model.optimizer.variables] == [v.path for v in before]


def test_history_every_bounds_the_history() -> None:
    model = probe_model()
    clr = CyclicLR(0.001, 0.006, 4, history_every=5)
    fit_steps(model, 12, [clr], epochs=2)
    history = clr.history
    # Rows stand for steps 5, 10, 12 of each epoch.
    assert history["iterations"].tolist() == [5, 10, 12, 17, 22, 24]
    expected, _ = torch_cyclic_at(np.array([5, 10, 12, 17, 22, 24]) - 1, 0.001, 0.006, 4)
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-12)


def test_learning_rate_goes_into_epoch_logs() -> None:
    model = probe_model()
    fit_steps(model, 5, [CyclicLR(0.001, 0.006, 3)], epochs=3)
    logged = model.history.history["learning_rate"]
    expected, _ = torch_cyclic_at([4, 9, 14], 0.001, 0.006, 3)
    np.testing.assert_allclose(logged, expected, rtol=1e-12)


def test_refuses_a_model_already_compiled_with_another_schedule() -> None:
    model = probe_model(keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 100)))
    with pytest.raises(ClrplugError, match=r"already has a learning-rate schedule \(CosineDecay\)"):
        fit_steps(model, 2, [CyclicLR()])


def test_refuses_an_uncompiled_model() -> None:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    with pytest.raises(ClrplugError, match="needs a compiled model"):
        CyclicLR().attach(model)


@pytest.mark.parametrize("scale_mode", ["cycle", "iterations"])
@pytest.mark.parametrize(("step_size", "step_size_down", "cycle_start", "origin"),
                         [(3, None, 0, None), (2.5, 4, 7, None), (4000 / 3, None, 100, 3),
                          (1, 1, 0, 40_000)])
def test_the_updates_a_scale_table_still_covers(
    scale_mode: str, step_size: float, step_size_down: float | None, cycle_start: int,
    origin: int | None,
) -> None:
    """``table_updates_left`` (integers) against ``table_x`` (floats): x never decreases,
    so the update ``left`` updates on is the first whose x is past the table."""
    schedule = CyclicalSchedule(0.001, 0.006, step_size, step_size_down=step_size_down,
                                scale_fn=decay, scale_mode=scale_mode, cycle_start=cycle_start,
                                _tabulate=True)
    if origin is not None:
        schedule._table_origin = origin  # as after a refill
    size = clrplug.schedule.TABLE_SIZE
    for update in [0, 5, 99, 100, 101, 4000, 70_000, 200_000]:
        left = schedule.table_updates_left(update)
        if not schedule.table_covers(*schedule.table_x([update, update])):
            assert left == 0
            continue
        assert left > 0
        last_in, first_out = schedule.table_x([update + left - 1, update + left])
        assert schedule._table_origin <= last_in < schedule._table_origin + size
        assert first_out == schedule._table_origin + size, (update, left)
