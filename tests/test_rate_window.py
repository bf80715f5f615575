"""The rate window: on TensorFlow a callback's step reads rates written ahead.

TensorFlow runs the train step's graph op by op on CPU, so there ``CyclicLR`` and
``OneCycleLR`` keep the rates (and momenta) of the coming updates in their state
variable, computed on the host from the float64 formula, and the step reads its own
(``EngineSchedule.bind``'s ``window``). These tests shrink the window to 128 updates so
that a run crosses it many times, and check what the optimizer applied (the rate probe)
against PyTorch's schedulers: across refills, long epochs, resets, holds and fits
without the callback; and that a window nobody refills fails loudly (NaN), never holds
a rate. On JAX and PyTorch the step computes the rate and there is no window.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from oracles import seed_rates, torch_cyclic, torch_cyclic_at, torch_one_cycle
from probe import BiasRecorder, fit_probe, fit_steps, probe_model, rate_probe_model
from recording import Crash, assert_applied

import clrplug.schedule_callback
from clrplug import CyclicalSchedule, CyclicLR, OneCycleLR

BACKEND = keras.backend.backend()
WINDOW = 128  # the smallest a callback makes (128 executions); 4096 by default

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="only TensorFlow's step reads a rate window"
)


@pytest.fixture(autouse=True)
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clrplug.schedule_callback, "WINDOW_STEPS", 8)


def test_a_callback_binds_a_window_and_a_stand_alone_schedule_does_not() -> None:
    clr = CyclicLR(0.001, 0.006, 4)
    fit_probe(rate_probe_model(), 3, [clr])
    assert clr.schedule.window == WINDOW
    schedule = CyclicalSchedule(0.001, 0.006, 4)
    model = rate_probe_model(keras.optimizers.SGD(schedule))
    model.optimizer.build(model.trainable_variables)
    schedule.bind(model.optimizer)
    assert schedule.window == 0


@pytest.mark.parametrize("momentum", [False, True])
def test_an_epoch_longer_than_the_window_applies_pytorchs_rates(momentum: bool) -> None:
    """One epoch of 700 updates: the window is written again five times inside it."""
    clr = CyclicLR(0.01, 0.05, 37, mode="triangular2", cycle_momentum=momentum)
    model = rate_probe_model(keras.optimizers.SGD(0.1, momentum=0.7 if momentum else 0.0))
    run = fit_probe(model, 700, [clr])
    lr, moment = torch_cyclic(700, 0.01, 0.05, 37, mode="triangular2", cycle_momentum=momentum)
    assert_applied(run, lr, moment)


def test_one_cycle_across_windows_and_past_its_end() -> None:
    one_cycle = OneCycleLR(max_lr=0.05, total_steps=300)
    run = fit_probe(rate_probe_model(keras.optimizers.SGD(0.1, momentum=0.7)), 160, [one_cycle],
                    epochs=2)
    lr, momentum = torch_one_cycle(300, 0.05, 300)
    lr = np.concatenate([lr, np.full(20, lr[-1])])  # past total_steps the final rate is held
    assert momentum is not None
    momentum = np.concatenate([momentum, np.full(20, momentum[-1])])
    assert_applied(run, lr, momentum)


def test_steps_per_execution_across_windows() -> None:
    clr = CyclicLR(0.01, 0.05, 9)
    run = fit_probe(rate_probe_model(steps_per_execution=3), 900, [clr])
    assert clr.schedule.window == 128 * 3  # 128 executions
    expected, _ = torch_cyclic(900, 0.01, 0.05, 9)
    assert_applied(run, expected)


def test_gradient_accumulation_across_windows() -> None:
    """Two micro-batches per update: the window is indexed by updates, not batches."""
    clr = CyclicLR(0.01, 0.05, 9)
    model = probe_model(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
    bias = BiasRecorder()  # the gradient is 1 on every micro-batch: each update is -lr
    fit_steps(model, 2 * 300, [clr, bias])
    decrements = bias.decrements()
    expected, _ = torch_cyclic(300, 0.01, 0.05, 9)
    np.testing.assert_allclose(decrements[1::2], expected, rtol=1e-4)
    assert not decrements[0::2].any()


def test_a_reset_mid_epoch_takes_effect_at_the_next_step() -> None:
    clr = CyclicLR(0.01, 0.05, 10)

    class ResetAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 150:
                clr.reset(new_max_lr=0.03, new_step_size=7)

    run = fit_probe(rate_probe_model(), 300, [clr, ResetAt()])
    before, _ = torch_cyclic(151, 0.01, 0.05, 10)
    after, _ = torch_cyclic(149, 0.01, 0.03, 7)
    assert_applied(run, np.concatenate([before, after]))


def test_after_the_fit_its_held_rate_applies_beyond_the_window() -> None:
    model = rate_probe_model()
    clr = CyclicLR(0.01, 0.05, 4)
    first = fit_probe(model, 6, [clr])
    next_rate = torch_cyclic_at([6], 0.01, 0.05, 4)[0][0]
    later = fit_probe(model, 3 * WINDOW, [], run=first)  # no callback
    np.testing.assert_allclose(later.rates[6:], next_rate, rtol=1e-5)
    model.optimizer.learning_rate = 0.02  # e.g. ReduceLROnPlateau
    plain = fit_probe(model, 2 * WINDOW, [], run=later)
    np.testing.assert_allclose(plain.rates[6 + 3 * WINDOW :], 0.02, rtol=1e-5)


def test_a_window_nobody_refills_fails_loudly() -> None:
    """A fit that died (no on_train_end, so no held rate), then training on without the
    callback: the window's rates apply while they last, then NaN, never a held rate."""
    model = probe_model()  # plain SGD, gradient 1 on the bias: each step lowers it by lr
    clr = CyclicLR(0.01, 0.05, 4)
    with pytest.raises(KeyboardInterrupt):
        fit_steps(model, 10, [clr, Crash(0, batch=4)])
    done = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    assert done == 5 and not clr.schedule.holding
    bias = BiasRecorder()
    fit_steps(model, WINDOW, [bias])
    inside = WINDOW - done  # the updates the window still holds
    expected, _ = torch_cyclic(WINDOW, 0.01, 0.05, 4)
    np.testing.assert_allclose(bias.decrements()[:inside], expected[done:], rtol=1e-4)
    assert np.isnan(bias.values[inside + 1 :]).all()


def test_on_the_host_a_bound_schedule_is_the_formula_at_any_step() -> None:
    clr = CyclicLR(0.01, 0.05, 4, mode="triangular2")
    fit_probe(rate_probe_model(), 3, [clr])
    clr.schedule.release()
    steps = [0, 5, 10**6, 2**31 - 100]
    # The seed's formula in float64 (PyTorch's triangular2 overflows that many cycles in).
    for step, expected in zip(steps, seed_rates(steps, 0.01, 0.05, 4, mode="triangular2"),
                              strict=True):
        assert float(clr.schedule(step)) == pytest.approx(expected, rel=1e-5)
