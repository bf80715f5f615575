"""exp_range with gamma close to 1 over millions of steps: finite, within bounds, exact.

Complements tests/test_engine.py::test_schedule_is_exact_at_huge_iterations (single
iterations near 10**8) with whole ranges and with training resumed at step 3,000,000.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from probe import BiasRecorder, fit_steps, probe_model

import clrplug
from clrplug import CyclicalSchedule, CyclicLR

GAMMAS = [0.99994, 0.9999999, 1 - 1e-12, float(np.nextafter(1.0, 0.0))]
ARGS = {"base_lr": 0.001, "max_lr": 0.006, "step_size": 2000, "mode": "exp_range"}


@pytest.mark.parametrize("gamma", GAMMAS)
def test_exp_range_over_five_million_iterations_is_finite_and_within_bounds(gamma: float) -> None:
    iterations = np.arange(0, 5e6, 997)
    lr = clrplug.learning_rates(iterations, **ARGS, gamma=gamma)
    assert np.isfinite(lr).all()
    assert lr.min() >= ARGS["base_lr"] and lr.max() <= ARGS["max_lr"]
    # The amplitude at each cycle's peak never grows.
    peaks = np.arange(0, 1250) * 4000 + 2000
    amplitude = clrplug.learning_rates(peaks, **ARGS, gamma=gamma) - ARGS["base_lr"]
    assert np.all(np.diff(amplitude) <= 0) and amplitude.min() >= 0


@pytest.mark.parametrize("first", [3_000_000, 6_000_000])  # one grown table, one sliding
def test_schedule_table_after_ensure_window_at_millions(first: int) -> None:
    schedule = CyclicalSchedule(**ARGS, gamma=0.9999999)
    assert schedule.ensure_window(first, first + 4000)
    its = np.arange(first, first + 4001)
    got = np.array([float(keras.ops.convert_to_numpy(schedule(int(i)))) for i in its[::500]])
    expected = clrplug.learning_rates(its, **ARGS, gamma=0.9999999)
    np.testing.assert_allclose(got, expected[::500], rtol=1e-6)
    assert np.all(got >= ARGS["base_lr"] * (1 - 1e-7))
    assert schedule.covered_until() >= first + 4000


def test_training_resumed_at_step_three_million_applies_the_exact_rates() -> None:
    # As after loading a model saved at step 3,000,000: the optimizer holds the schedule
    # and its counter; a CyclicLR built with the same arguments continues the cycle.
    model = probe_model(keras.optimizers.SGD(CyclicalSchedule(**ARGS, gamma=0.9999999)))
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(3_000_000)
    clr, recorder = CyclicLR(**ARGS, gamma=0.9999999), BiasRecorder()
    fit_steps(model, 12, [clr, recorder])
    expected = clrplug.learning_rates(3_000_000 + np.arange(12), **ARGS, gamma=0.9999999)
    np.testing.assert_allclose(recorder.decrements(), expected, rtol=2e-5, atol=1e-9)
    assert clr.history["iterations"].tolist() == list(range(3_000_001, 3_000_013))
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)
