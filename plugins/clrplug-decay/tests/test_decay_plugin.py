"""clrplug-decay: registration by direct entry point, conformance, training by name.

Runs on the Keras backend chosen by ``KERAS_BACKEND``.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest

import clrplug
from clrplug.cli import main as clrplug_cli
from clrplug.registry import Registry
from clrplug.testing import applied_rates, policies_of

DIST = "clrplug-decay"


def seed_rates(iterations, base_lr, max_lr, step_size, scale_fn):
    """The seed README's algorithm, verbatim, for an iterations-mode scale function."""
    cycle = np.floor(1 + iterations / (2 * step_size))
    x = np.abs(iterations / step_size - 2 * cycle + 1)
    return base_lr + (max_lr - base_lr) * np.maximum(0, (1 - x)) * scale_fn(iterations)


def test_registers_through_the_direct_entry_point():
    assert policies_of(DIST) == ["exp_decay"]
    policy = clrplug.get_policy("exp_decay")
    assert policy.scale_mode == "iterations"
    assert dict(policy.params) == {"base": 5.0, "rate": 1e-4}
    assert policy.source.kind == "plugin"
    assert policy.source.distribution == DIST
    assert policy.source.version == metadata.version(DIST)
    assert policy.source.entry_point == "clrplug.policies:exp_decay"


def test_conforms(clrplug_policy_check):
    clrplug_policy_check("exp_decay")


@pytest.mark.parametrize(
    "params", [{"rate": 2e-4}, {"base": 2.0}, {"base": 10.0, "rate": 1e-2}, {"rate": 0.0}]
)
def test_conforms_with_other_parameters(params, clrplug_policy_check):
    clrplug_policy_check("exp_decay", params=params)


def test_scale_values_are_the_seeds():
    iterations = np.arange(0.0, 100_001.0)
    policy = clrplug.get_policy("exp_decay")
    np.testing.assert_array_equal(policy.scale(iterations), 1 / (5 ** (iterations * 0.0001)))
    np.testing.assert_array_equal(
        policy.scale(iterations, rate=2e-4), 1 / (5 ** (iterations * 0.0002))
    )


def test_parameters_that_grow_the_amplitude_are_refused():
    message = r"policy 'exp_decay' \(from clrplug-decay .*\) returned .* at x=1\.0"
    with pytest.raises(clrplug.errors.PolicyEvaluationError, match=message):
        clrplug.learning_rates([0, 1], mode="exp_decay", policy_params={"base": 0.5})
    with pytest.raises(clrplug.errors.PolicyEvaluationError, match=message):
        clrplug.CyclicLR(mode="exp_decay", policy_params={"base": 0.5})  # refused at once


def test_clrplug_policies_lists_it_with_the_distribution(capsys):
    assert clrplug_cli(["policies"]) == 0
    # The table's columns: TYPE NAME SCALE MODE PARAMETERS IN STEP SOURCE STATUS.
    rows = {
        line.split()[1]: line
        for line in capsys.readouterr().out.splitlines()[1:]
        if line.startswith("policy ")
    }
    assert f"{DIST} {metadata.version(DIST)}" in rows["exp_decay"]
    assert "base=5, rate=0.0001" in rows["exp_decay"]


def test_allowlist_switch_leaves_it_out():
    assert "exp_decay" in Registry(environ={"CLRPLUG_PLUGINS": DIST}).names()
    assert "exp_decay" not in Registry(environ={"CLRPLUG_PLUGINS": ""}).names()
    off = Registry(environ={"CLRPLUG_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "exp_decay" not in off.names()


def test_cyclic_lr_trains_with_the_seeds_rates():
    clr = clrplug.CyclicLR(
        base_lr=0.001, max_lr=0.006, step_size=5, mode="exp_decay",
        policy_params={"rate": 2e-4},
    )
    lr = applied_rates(clr, steps=30)
    steps = np.arange(30)
    expected = seed_rates(steps, 0.001, 0.006, 5, lambda x: 1 / (5 ** (x * 0.0002)))
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(
        lr,
        clrplug.learning_rates(steps, 0.001, 0.006, 5, mode="exp_decay",
                               policy_params={"rate": 2e-4}),
        rtol=1e-5, atol=1e-9,
    )
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12, atol=0)


def test_cyclic_lr_trains_with_the_defaults():
    clr = clrplug.CyclicLR(base_lr=0.001, max_lr=0.006, step_size=5, mode="exp_decay")
    lr = applied_rates(clr, steps=30)
    expected = seed_rates(np.arange(30), 0.001, 0.006, 5, lambda x: 1 / (5 ** (x * 0.0001)))
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)
