"""clrplug-sinusoidal: registration through the hook, conformance, training by name.

Runs on the Keras backend chosen by ``KERAS_BACKEND``.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest

import clrplug
from clrplug.cli import main as clrplug_cli
from clrplug.testing import applied_rates, policies_of

DIST = "clrplug-sinusoidal"
NAMES = ["sine_period", "sinusoidal"]


def seed_sinusoidal(x: np.ndarray) -> np.ndarray:
    """The seed README's ``clr_fn = lambda x: 0.5*(1+np.sin(x*np.pi/2.))``."""
    return 0.5 * (1 + np.sin(x * np.pi / 2.0))


def seed_rates(iterations, base_lr, max_lr, step_size, scale_fn):
    """The seed README's algorithm, verbatim, for a cycle-mode scale function."""
    cycle = np.floor(1 + iterations / (2 * step_size))
    x = np.abs(iterations / step_size - 2 * cycle + 1)
    return base_lr + (max_lr - base_lr) * np.maximum(0, (1 - x)) * scale_fn(cycle)


def test_both_policies_register_through_the_hook():
    assert policies_of(DIST) == NAMES
    for name in NAMES:
        policy = clrplug.get_policy(name)
        assert policy.scale_mode == "cycle"
        assert policy.source.kind == "plugin"
        assert policy.source.distribution == DIST
        assert policy.source.version == metadata.version(DIST)
        assert policy.source.entry_point == "clrplug:sinusoidal"
    assert dict(clrplug.get_policy("sine_period").params) == {"period": 4.0}


@pytest.mark.parametrize("name", policies_of(DIST))
def test_policy_conforms(name, clrplug_policy_check):
    clrplug_policy_check(name)


@pytest.mark.parametrize("period", [1.0, 3.0, 7.5, 1000.0, -4.0])
def test_sine_period_conforms_for_other_periods(period, clrplug_policy_check):
    clrplug_policy_check("sine_period", params={"period": period})


def test_scale_values_are_the_seeds():
    cycles = np.arange(1.0, 10_001.0)
    sinusoidal = clrplug.get_policy("sinusoidal")
    # The plugin reduces the phase in whole cycles: the seed's float64 formula carries a
    # rounding error that grows with the cycle (about 2e-12 at cycle 10**4).
    np.testing.assert_allclose(sinusoidal.scale(cycles), seed_sinusoidal(cycles), rtol=0, atol=1e-11)
    np.testing.assert_allclose(
        sinusoidal.scale(np.arange(1.0, 6.0)), [1.0, 0.5, 0.0, 0.5, 1.0], atol=1e-15
    )
    np.testing.assert_allclose(
        clrplug.get_policy("sine_period").scale(cycles), seed_sinusoidal(cycles), atol=1e-12
    )


def test_a_huge_cycle_is_exact():
    cycles = np.array([4.0 * 10**12 + 1, 4.0 * 10**12 + 2, 4.0 * 10**12 + 3])
    np.testing.assert_allclose(clrplug.get_policy("sinusoidal").scale(cycles), [1.0, 0.5, 0.0],
                               atol=1e-15)


def test_sine_period_refuses_a_period_that_is_no_ratio():
    with pytest.raises(clrplug.errors.PolicyEvaluationError, match="whole number of cycles or a ratio"):
        clrplug.CyclicLR(mode="sine_period", policy_params={"period": 2**0.5})


def test_sine_period_refuses_a_zero_period():
    with pytest.raises(clrplug.errors.PolicyEvaluationError, match="period must be a non-zero"):
        clrplug.learning_rates([0, 1], mode="sine_period", policy_params={"period": 0})
    with pytest.raises(clrplug.errors.PolicyEvaluationError, match="period must be a non-zero"):
        clrplug.CyclicLR(mode="sine_period", policy_params={"period": 0})  # refused at once


def test_clrplug_policies_lists_them_with_the_distribution(capsys):
    assert clrplug_cli(["policies"]) == 0
    # The table's columns: TYPE NAME SCALE MODE PARAMETERS IN STEP SOURCE STATUS.
    rows = {
        line.split()[1]: line
        for line in capsys.readouterr().out.splitlines()[1:]
        if line.startswith("policy ")
    }
    for name in NAMES:
        assert f"{DIST} {metadata.version(DIST)}" in rows[name]
        assert rows[name].rstrip().endswith("ok")


def test_cyclic_lr_trains_with_the_seeds_rates():
    clr = clrplug.CyclicLR(base_lr=0.001, max_lr=0.006, step_size=5, mode="sinusoidal")
    lr = applied_rates(clr, steps=20, epochs=2)
    steps = np.arange(40)
    expected = seed_rates(steps, 0.001, 0.006, 5, seed_sinusoidal)
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(
        lr, clrplug.learning_rates(steps, 0.001, 0.006, 5, mode="sinusoidal"),
        rtol=1e-5, atol=1e-9,
    )
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12, atol=0)


def test_cyclic_lr_trains_with_a_period_parameter():
    clr = clrplug.CyclicLR(
        base_lr=0.001, max_lr=0.006, step_size=3, mode="sine_period",
        policy_params={"period": 3.0},
    )
    lr = applied_rates(clr, steps=30)
    steps = np.arange(30)
    expected = seed_rates(
        steps, 0.001, 0.006, 3, lambda c: 0.5 * (1 + np.sin(2 * np.pi * c / 3.0))
    )
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)
