"""The rate probe (tests/probe.py) against plain Keras, with no clrplug anywhere.

Every expected rate here is computed by hand from Keras' documented formulas, so these
tests check the probe, not a schedule under test. They run on the active backend, with one
and with four steps per execution (JAX and TensorFlow; Keras' torch backend only runs one),
and with ``optimizer.iterations`` moved far ahead between epochs.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import keras
import numpy as np
import pytest
from probe import (
    ProbeRecorder,
    fit_probe,
    probe_gradients,
    rate_probe_model,
    recover_momentum,
    recover_sgd,
)

BACKEND = keras.backend.backend()
EXECUTIONS = [1] if BACKEND == "torch" else [1, 4]
F32 = 2.0**-24  # the rates themselves are float32: compare with this much relative slack


def f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def assert_rates(run: Any, expected: np.ndarray, rtol: float = 2 * F32) -> None:
    """Each recovered rate is within the probe's bound of the expected float32 rate."""
    expected = np.asarray(expected, dtype=np.float64)
    error = np.abs(run.rates - expected)
    allowed = rtol * np.abs(expected) + run.rate_atol
    bad = np.flatnonzero(~(error <= allowed))
    assert bad.size == 0, (
        f"steps {bad[:10]}: recovered {run.rates[bad[:10]]}, expected {expected[bad[:10]]}"
    )


# Counter moves between epochs: a million, 4.2e6 + 1, 1e8, and close to JAX's int32 limit.
MOVES = {1: 10**6, 2: 4_200_001, 3: 10**8, 4: 2**31 - 100}


def expected_iterations(steps: int, epochs: int, moves: dict[int, int], start: int = 0
                        ) -> np.ndarray:
    out, counter = [], start
    for epoch in range(epochs):
        counter = moves.get(epoch, counter)
        out.append(counter + np.arange(steps))
        counter += steps
    return np.concatenate(out)


def test_probe_gradients_are_balanced_and_kick_every_step() -> None:
    for steps in range(1, 40):
        g = probe_gradients(steps)
        assert g.shape == (steps, 5)
        assert set(np.unique(g)) <= {-1.0, 0.0, 1.0}
        assert np.all(np.abs(g).sum(axis=1) > 0), steps  # some rate information every step
        if steps >= 4:
            assert np.all(g.sum(axis=0) == 0), steps  # no drift over repeated epochs
    g = probe_gradients(8)
    # Units 1-4 coast (zero gradient) on alternate steps: that is what measures momentum.
    assert g[:, 1].tolist() == [1, 0, -1, 0, 1, 0, -1, 0]
    assert g[:, 2].tolist() == [0, 1, 0, -1, 0, 1, 0, -1]
    assert g[:, 0].tolist() == [1, -1, -1, 1, -1, 1, 1, -1]  # Thue-Morse


@pytest.mark.parametrize("spe", EXECUTIONS)
def test_sgd_fixed_rate(spe: int) -> None:
    model = rate_probe_model(keras.optimizers.SGD(0.0123), steps_per_execution=spe)
    run = fit_probe(model, 10, epochs=2)
    assert run.measure == "sgd" and run.momenta is None
    assert run.iterations.tolist() == list(range(20))
    assert_rates(run, np.full(20, f32(0.0123)), rtol=0)
    assert run.rate_atol.max() < 2e-7 * 0.0123  # the bound is tight enough to mean something
    # The biases stay within a few rates of 0 (float32 keeps its precision).
    assert np.abs(run.biases).max() <= 2 * 0.0123 * (1 + 1e-6)


@pytest.mark.parametrize("spe", EXECUTIONS)
def test_sgd_piecewise_constant_decay_with_the_counter_moved(spe: int) -> None:
    boundaries = [2, 10**6 + 1, 4_200_002, 10**8 + 3, 2**31 - 97]
    values = [0.01, 0.02, 0.003, 0.004, 0.05, 0.006]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    model = rate_probe_model(keras.optimizers.SGD(schedule), steps_per_execution=spe)
    run = fit_probe(model, 6, epochs=5, iterations=MOVES)
    its = expected_iterations(6, 5, MOVES)
    assert run.iterations.tolist() == its.tolist()
    # By hand: values[i] while iterations <= boundaries[i]; the last value after them all.
    expected = f32(np.asarray(values)[np.searchsorted(boundaries, its, side="left")])
    assert expected[[2, 3]].tolist() == [f32(0.01), f32(0.02)]  # boundaries are inclusive
    assert len(set(expected.tolist())) == 6
    assert_rates(run, expected, rtol=0)


def cosine_by_hand(its: np.ndarray, initial: float, decay_steps: int, alpha: float,
                   warmup_steps: int = 0, warmup_target: float | None = None) -> np.ndarray:
    out = []
    for it in its.astype(float):
        if warmup_target is not None and it < warmup_steps:
            out.append(initial + (warmup_target - initial) * it / warmup_steps)
            continue
        top = initial if warmup_target is None else warmup_target
        done = min(it - warmup_steps, decay_steps) / decay_steps
        out.append(top * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * done)) + alpha))
    return np.asarray(out)


@pytest.mark.parametrize("spe", EXECUTIONS)
def test_sgd_cosine_decay_with_warmup(spe: int) -> None:
    schedule = keras.optimizers.schedules.CosineDecay(
        0.002, decay_steps=13, alpha=0.1, warmup_steps=5, warmup_target=0.02
    )
    model = rate_probe_model(keras.optimizers.SGD(schedule), steps_per_execution=spe)
    run = fit_probe(model, 9, epochs=3, iterations={2: 10**8})
    its = expected_iterations(9, 3, {2: 10**8})
    expected = cosine_by_hand(its, 0.002, 13, 0.1, 5, 0.02)
    assert expected[0] == 0.002 and expected[5] == pytest.approx(0.02)
    assert expected[-1] == pytest.approx(0.002)  # alpha * target, held past decay_steps
    assert_rates(run, expected, rtol=2e-6)  # Keras computes the cosine in float32


@pytest.mark.parametrize("spe", EXECUTIONS)
def test_sgd_momentum_fixed(spe: int) -> None:
    model = rate_probe_model(keras.optimizers.SGD(0.01, momentum=0.9), steps_per_execution=spe)
    run = fit_probe(model, 10, epochs=3, iterations={1: 10**8})
    assert run.measure == "momentum"
    assert_rates(run, np.full(30, f32(0.01)))
    assert np.isnan(run.momenta[0])  # the first update of a fresh optimizer has no momentum
    np.testing.assert_allclose(run.momenta[1:], f32(0.9), rtol=0, atol=run.momentum_atol[1:].max())
    assert run.momentum_atol[1:].max() < 1e-5
    assert run.rate_atol.max() < 1e-5 * 0.01


def test_sgd_momentum_with_a_schedule_separates_rate_and_momentum() -> None:
    schedule = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=30, alpha=0.01)
    model = rate_probe_model(keras.optimizers.SGD(schedule, momentum=0.95))
    run = fit_probe(model, 8, epochs=4)
    assert_rates(run, cosine_by_hand(np.arange(32), 0.05, 30, 0.01), rtol=2e-6)
    np.testing.assert_allclose(run.momenta[1:], f32(0.95), rtol=0,
                               atol=run.momentum_atol[1:].max())


@pytest.mark.parametrize("spe", EXECUTIONS)
def test_adam_fixed_betas(spe: int) -> None:
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([7, 10**8 + 2], [0.004, 0.001, 0.03])
    optimizer = keras.optimizers.Adam(schedule, beta_1=0.8, beta_2=0.99, epsilon=1e-6)
    model = rate_probe_model(optimizer, steps_per_execution=spe)
    run = fit_probe(model, 10, epochs=2, iterations={1: 10**8})
    assert run.measure == "adam"
    its = expected_iterations(10, 2, {1: 10**8})
    expected = f32(np.where(its <= 7, 0.004, np.where(its <= 10**8 + 2, 0.001, 0.03)))
    assert_rates(run, expected)
    assert np.isnan(run.momenta[0])  # Adam's first update does not depend on beta_1
    np.testing.assert_allclose(run.momenta[1:], f32(0.8), rtol=0, atol=run.momentum_atol[1:].max())
    assert run.momentum_atol[1:].max() < 1e-5
    assert np.max(run.rate_atol / expected) < 2e-4


def test_adam_update_matches_a_hand_computed_step() -> None:
    # The first update of a fresh Adam with a unit gradient is lr * sqrt(1-b2)/(sqrt(1-b2)+eps)
    # (bias correction exact at k = 1), whatever beta_1 is.
    model = rate_probe_model(keras.optimizers.Adam(0.01, beta_1=0.7, beta_2=0.9, epsilon=1e-3))
    run = fit_probe(model, 4)
    by_hand = 0.01 * math.sqrt(1 - 0.9) / (math.sqrt(1 - 0.9) + 1e-3)
    np.testing.assert_allclose(-run.updates[0, 0] * probe_gradients(4)[0, 0], by_hand, rtol=1e-6)
    assert_rates(run, np.full(4, f32(0.01)))
    np.testing.assert_allclose(run.momenta[1:], f32(0.7), rtol=0, atol=run.momentum_atol[1:].max())


def test_loss_scale_optimizer_is_looked_through() -> None:
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.02, momentum=0.5))
    run = fit_probe(rate_probe_model(optimizer), 8)
    assert run.measure == "momentum"
    assert_rates(run, np.full(8, f32(0.02)))


def test_a_continued_run_keeps_the_momentum_state() -> None:
    model = rate_probe_model(keras.optimizers.SGD(0.01, momentum=0.9))
    first = fit_probe(model, 6)
    both = fit_probe(model, 6, run=first)
    assert len(both.rates) == 12 and both.iterations.tolist() == list(range(12))
    np.testing.assert_array_equal(both.biases[:7], first.biases)
    assert not np.isnan(both.momenta[6])  # the second fit's first step is measured too
    np.testing.assert_allclose(both.momenta[1:], f32(0.9), rtol=0, atol=both.momentum_atol[1:].max())
    # Training outside the probe in between breaks the chain, and says so.
    model.fit(np.zeros((2, 1)), probe_gradients(2), batch_size=1, verbose=0)
    with pytest.raises(AssertionError, match="trained outside fit_probe"):
        fit_probe(model, 4, run=both)


@pytest.mark.skipif(BACKEND == "torch", reason="Keras' torch backend only supports one step")
def test_steps_per_execution_can_be_changed_by_fit_probe() -> None:
    model = rate_probe_model(keras.optimizers.SGD(0.01, momentum=0.8))
    run = fit_probe(model, 9, steps_per_execution=4)
    assert model.steps_per_execution == 4
    assert_rates(run, np.full(9, f32(0.01)))


def test_the_batch_hooks_never_read_callback_model(monkeypatch: pytest.MonkeyPatch) -> None:
    readers: list[str] = []

    def watched(self: ProbeRecorder) -> keras.Model:
        readers.append(inspect.stack()[1].function)
        return self._model

    monkeypatch.setattr(ProbeRecorder, "model", property(watched))
    run = fit_probe(rate_probe_model(keras.optimizers.SGD(0.01)), 12, epochs=2)
    assert readers == ["on_train_end"]
    assert_rates(run, np.full(24, f32(0.01)), rtol=0)


class ReadsTheModelEveryBatch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.model.layers[0].bias  # noqa: B018  (the access is the point)


@pytest.mark.skipif(BACKEND != "jax", reason="JAX keeps the training state off the model")
def test_on_jax_the_probe_adds_no_state_sync_per_batch() -> None:
    def syncs(train: Any) -> int:
        model = rate_probe_model(keras.optimizers.SGD(0.01))
        calls = []
        sync = model.jax_state_sync

        def counting() -> None:
            calls.append(1)
            sync()

        model.jax_state_sync = counting
        train(model)
        return len(calls)

    data = (np.zeros((15, 1)), probe_gradients(15))
    plain = syncs(lambda m: m.fit(*data, batch_size=1, epochs=2, verbose=0, shuffle=False))
    probed = syncs(lambda m: fit_probe(m, 15, epochs=2))
    per_batch = syncs(lambda m: fit_probe(m, 15, [ReadsTheModelEveryBatch()], epochs=2))
    assert probed <= plain + 1  # at most the one read at train end
    assert per_batch >= plain + 30  # what reading self.model every batch costs


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), "nesterov=True"),
        (lambda: keras.optimizers.AdamW(0.1), "weight_decay"),
        (lambda: keras.optimizers.Adam(0.1, amsgrad=True), "amsgrad=True"),
        (lambda: keras.optimizers.SGD(0.1, clipnorm=1.0), "clipnorm"),
        (lambda: keras.optimizers.RMSprop(0.1), "not RMSprop"),
    ],
)
def test_refuses_what_it_cannot_measure(optimizer: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_probe(rate_probe_model(optimizer()), 2)


# ----------------------------------------------------------- recovery on simulated float32


def simulate_momentum(lr: np.ndarray, momentum: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Keras' SGD momentum update in float32, one rounding per operation."""
    f = np.float32
    w = np.zeros(gradients.shape[1], f)
    v = np.zeros(gradients.shape[1], f)
    out = [w.copy()]
    for t in range(len(lr)):
        v = (v * f(momentum[t])).astype(f) - (gradients[t].astype(f) * f(lr[t])).astype(f)
        w = (w + v).astype(f)
        out.append(w.copy())
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize(
    "case", ["cyclic", "one-cycle", "momentum-0.99", "constant"]
)
def test_momentum_recovery_is_within_its_bound_on_long_runs(case: str) -> None:
    n = 3000
    t = np.arange(n)
    cycle = np.floor(1 + t / 500)
    height = np.maximum(0, 1 - np.abs(t / 250 - 2 * cycle + 1))
    if case == "cyclic":
        lr, m = 0.001 + 0.005 * height, 0.95 - 0.1 * height
    elif case == "one-cycle":  # falls to 4e-6 of its peak: the hardest case for float32
        phase = np.where(t < 900, (1 - np.cos(np.pi * t / 900)) / 2,
                         (1 + np.cos(np.pi * (t - 900) / 2099)) / 2)
        lr = 0.1 * np.where(t < 900, 0.04 + 0.96 * phase, 4e-6 + (1 - 4e-6) * phase)
        m = 0.95 - 0.1 * (lr / 0.1)
    elif case == "momentum-0.99":
        lr, m = 0.001 + 0.005 * height, np.full(n, 0.99)
    else:
        lr, m = np.full(n, 0.01), np.full(n, 0.9)
    gradients = np.vstack([probe_gradients(100)] * (n // 100))
    biases = simulate_momentum(lr, m, gradients)
    rates, rate_atol, momenta, momentum_atol = recover_momentum(biases, gradients)
    assert np.all(np.abs(rates - f32(lr)) <= rate_atol)
    assert np.all(np.abs(momenta[1:] - f32(m[1:])) <= momentum_atol[1:])
    # What the bounds are worth. Where the rate falls by orders of magnitude within the
    # momentum's memory (the last steps of 1cycle) the biases are still those of the larger
    # rates, and float32 resolves less: there, look at the rates above 1% of the peak.
    kept = lr >= 0.01 * lr.max()
    worst = {"cyclic": 1e-5, "one-cycle": 5e-5, "momentum-0.99": 5e-5, "constant": 5e-6}[case]
    assert np.max(rate_atol[kept] / lr[kept]) < worst
    assert np.nanmax(momentum_atol[kept]) < worst
    assert np.median(rate_atol / lr) < 2e-6


def test_sgd_recovery_is_exact_to_float32_down_to_one_cycles_last_step() -> None:
    t = np.arange(3000)
    phase = np.where(t < 900, (1 - np.cos(np.pi * t / 900)) / 2,
                     (1 + np.cos(np.pi * (t - 900) / 2099)) / 2)
    lr = 0.1 * np.where(t < 900, 0.04 + 0.96 * phase, 4e-6 + (1 - 4e-6) * phase)
    gradients = np.vstack([probe_gradients(100)] * 30)
    biases = simulate_momentum(lr, np.zeros(3000), gradients)  # momentum 0: plain SGD
    rates, rate_atol = recover_sgd(biases, gradients)
    assert np.all(np.abs(rates - f32(lr)) <= rate_atol)
    assert np.max(rate_atol / lr) < 5e-7  # even at 4e-6 of the peak


def test_sgd_recovery_refuses_a_moving_bias_with_zero_gradient() -> None:
    gradients = probe_gradients(6)
    biases = simulate_momentum(np.full(6, 0.01), np.full(6, 0.5), gradients)
    with pytest.raises(ValueError, match="not plain SGD"):
        recover_sgd(biases, gradients)
