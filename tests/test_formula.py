"""`learning_rates` against a direct float64 transcription of the seed's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clrplug
from clrplug.errors import InvalidArgumentError, UnknownPolicyError
from clrplug.registry import Registry


def seed_lr(k: float, base: float, top: float, step: float, mode: str, gamma: float = 1.0) -> float:
    """The seed README's "Basic algorithm" blocks, transcribed one scalar at a time."""
    cycle = math.floor(1 + k / (2 * step))
    x = abs(k / step - 2 * cycle + 1)
    height = max(0.0, 1 - x)
    if mode == "triangular":
        return base + (top - base) * height
    if mode == "triangular2":
        return base + (top - base) * height * 0.5 ** (cycle - 1)  # = /2**(cycle-1)
    if mode == "exp_range":
        return base + (top - base) * height * gamma**k
    if mode == "sine_cycle":  # the seed's custom cycle-policy example
        return base + (top - base) * height * 0.5 * (1 + math.sin(cycle * math.pi / 2.0))
    if mode == "decay_iterations":  # the seed's custom iteration-policy example
        return base + (top - base) * height * 5.0 ** -(k * 0.0001)  # = 1/(5**(k*0.0001))
    raise AssertionError(mode)


SEED_LAMBDAS = {
    "sine_cycle": (lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0)), "cycle"),
    "decay_iterations": (lambda x: 1 / (5 ** (x * 0.0001)), "iterations"),
}

bounds = st.tuples(
    st.floats(0.0, 1.0, allow_nan=False), st.floats(0.0, 1.0, allow_nan=False)
).map(sorted)
# Step sizes are integers or fractions n/Q with Q <= 4096 (what clrplug accepts).
step_sizes = st.one_of(
    st.integers(1, 5000),
    st.builds(lambda n, q: n / q, st.integers(1, 5000 * 8), st.integers(1, 8)).filter(lambda s: s >= 0.5),
)
iterations = st.lists(st.integers(0, 10**7), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    its=iterations,
    lims=bounds,
    step=step_sizes,
    mode=st.sampled_from(["triangular", "triangular2", "exp_range", *SEED_LAMBDAS]),
    gamma=st.floats(0.9, 1.0, exclude_min=True),
)
def test_equals_the_seed_formula(
    its: list[int], lims: list[float], step: float, mode: str, gamma: float
) -> None:
    base, top = lims
    if mode in SEED_LAMBDAS:
        fn, scale_mode = SEED_LAMBDAS[mode]
        got = clrplug.learning_rates(its, base, top, step, scale_fn=fn, scale_mode=scale_mode)
    else:
        gamma = gamma if mode == "exp_range" else 1.0
        got = clrplug.learning_rates(its, base, top, step, mode=mode, gamma=gamma)
    expected = [seed_lr(k, base, top, step, mode, gamma) for k in its]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert got.dtype == np.float64


@settings(max_examples=100, deadline=None)
@given(
    its=iterations,
    lims=bounds,
    step=step_sizes,
    level=st.floats(0.0, 1.0),
    mode=st.sampled_from(["cycle", "iterations"]),
)
def test_stays_within_bounds_for_scales_in_unit_interval(
    its: list[int], lims: list[float], step: float, level: float, mode: str
) -> None:
    base, top = lims
    got = clrplug.learning_rates(
        its, base, top, step, scale_fn=lambda x: np.full_like(x, level), scale_mode=mode
    )
    assert np.all(got >= base) and np.all(got <= top)


@settings(max_examples=50, deadline=None)
@given(step=st.integers(1, 1000), cycles=st.integers(2, 12))
def test_triangular2_peak_halves_every_cycle(step: int, cycles: int) -> None:
    peaks = np.arange(cycles) * 2 * step + step  # the top of each triangle
    got = clrplug.learning_rates(peaks, 0.001, 0.006, step, mode="triangular2")
    amplitude = got - 0.001
    np.testing.assert_allclose(amplitude[1:] / amplitude[:-1], 0.5, rtol=1e-12)
    assert got[0] == pytest.approx(0.006, rel=1e-15)


def test_known_values_and_defaults() -> None:
    lr = clrplug.learning_rates([0, 1000, 2000, 3000, 4000])
    np.testing.assert_allclose(lr, [0.001, 0.0035, 0.006, 0.0035, 0.001], rtol=1e-14)
    # The seed's exp_range example: gamma=0.99994.
    lr = clrplug.learning_rates([2000], mode="exp_range", gamma=0.99994)
    assert lr[0] == pytest.approx(0.001 + 0.005 * 0.99994**2000, rel=1e-14)
    assert clrplug.learning_rates(np.zeros((2, 3))).shape == (2, 3)


def test_a_million_iterations_vectorised() -> None:
    lr = clrplug.learning_rates(np.arange(1_000_000), mode="exp_range", gamma=0.99999)
    assert lr.shape == (1_000_000,) and np.isfinite(lr).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step_size": 0}, r"step_size must be a finite number >= 0\.5 .* got 0\."),
        ({"step_size": 0.3}, r"step_size must be a finite number >= 0\.5 .* got 0\.3\."),
        ({"step_size": 1000.1234567}, r"step_size must be a multiple of 1/Q for some whole Q <= 4096"),
        ({"step_size": 3, "step_size_down": -1}, r"step_size_down must be a finite number >= 0\.5"),
        ({"waveform": "saw"}, r"unknown waveform 'saw'"),
        ({"step_size": -5}, "step_size must be"),
        ({"step_size": float("nan")}, "step_size must be"),
        ({"step_size": float("inf")}, "step_size must be"),
        ({"step_size": "2000"}, r"step_size must be a finite number >= 0\.5 .* got str '2000'"),
        ({"base_lr": -0.1}, r"base_lr must be a finite number >= 0, got -0\.1"),
        ({"max_lr": float("nan")}, "max_lr must be a finite number >= 0, got nan"),
        ({"max_lr": float("inf")}, "max_lr must be a finite number >= 0, got inf"),
        ({"base_lr": 0.01, "max_lr": 0.001}, r"max_lr \(0\.001\) must be >= base_lr \(0\.01\)"),
        ({"mode": "exp_range", "gamma": 0.0}, r"gamma must be a number in \(0, 1\] for policy 'exp_range', got 0\.0"),
        ({"mode": "exp_range", "gamma": 1.5}, r"gamma must be a number in \(0, 1\] for policy 'exp_range', got 1\.5"),
        ({"mode": "exp_range", "policy_params": {"gamma": 2.0}}, r"policy_params\['gamma'\] must be a number in \(0, 1\]"),
        ({"mode": "exp_range", "gamma": 0.9, "policy_params": {"gamma": 0.8}}, "disagree"),
        ({"scale_mode": "epochs"}, r"scale_mode must be one of \['cycle', 'iterations'\]"),
        ({"mode": "triangular2", "scale_mode": "iterations"}, "contradicts policy 'triangular2'"),
        ({"mode": "triangular", "policy_params": {"rate": 1.0}}, "has no parameter 'rate'"),
        ({"mode": "exp_range", "policy_params": [1]}, "policy_params must be a mapping"),
        ({"scale_fn": 3}, "scale_fn must be a callable"),
        ({"scale_fn": lambda x: x * 0 + 2.0}, r"returned 2\.0 at x=1\.0"),
        ({"scale_fn": lambda x: -x, "scale_mode": "iterations"}, r"returned -1\.0 at x=1\.0"),
        ({"mode": len}, "mode must be a policy name"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(kwargs: dict, message: str) -> None:
    with pytest.raises((InvalidArgumentError, clrplug.errors.PolicyEvaluationError, clrplug.errors.UnknownNameError), match=message):
        clrplug.learning_rates([0, 1, 2], **kwargs)


def test_unknown_mode(fresh_registry: Registry) -> None:
    with pytest.raises(UnknownPolicyError, match="Did you mean 'exp_range'"):
        clrplug.learning_rates([0], mode="exp-rang")


def test_gamma_given_to_a_policy_without_it_warns() -> None:
    with pytest.warns(UserWarning, match="gamma=0.5 is ignored: policy 'triangular'"):
        clrplug.learning_rates([0], gamma=0.5)


def test_iterations_must_be_non_negative() -> None:
    with pytest.raises(InvalidArgumentError, match="iterations must be finite and >= 0"):
        clrplug.learning_rates([-1])
