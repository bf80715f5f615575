"""exp_range with gamma close to 1 over millions of steps: finite, within bounds, exact.

Complements tests/test_engine.py (single steps up to 2**31 - 100) with whole ranges and
with training resumed at step 3,000,000.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from oracles import seed_rates
from probe import BiasRecorder, fit_steps, probe_model

import clrplug
from clrplug import CyclicLR

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


def test_training_resumed_at_step_three_million_applies_the_exact_rates() -> None:
    # As after loading a model saved at step 3,000,000: the optimizer holds the schedule
    # and its counter; a CyclicLR built with the same arguments continues the cycle.
    model = probe_model(keras.optimizers.SGD(0.1))
    clr, recorder = CyclicLR(**ARGS, gamma=0.9999999), BiasRecorder()
    clr.attach(model)
    model.optimizer.iterations.assign(3_000_000)
    clr.schedule.reset(cycle_start=0)  # the cycle began at step 0, as in the saved run
    fit_steps(model, 12, [clr, recorder])
    expected = seed_rates(3_000_000 + np.arange(12), **ARGS, gamma=0.9999999)
    np.testing.assert_allclose(recorder.decrements(), expected, rtol=2e-5, atol=1e-9)
    assert clr.history["iterations"].tolist() == list(range(3_000_001, 3_000_013))
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)
