"""The Policy record: normalisation, validation and evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from clrplug import Policy
from clrplug.errors import (
    ClrplugError,
    InvalidArgumentError,
    InvalidPolicyError,
    PolicyEvaluationError,
)


def test_seed_lambdas_are_valid_scale_functions() -> None:
    sine = Policy("sine", lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0)), "cycle")
    decay = Policy("decay", lambda x: 1 / (5 ** (x * 0.0001)), "iterations")
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(sine.scale(x), [1.0, 0.5, 0.0], atol=1e-15)
    np.testing.assert_allclose(decay.scale(np.array([0.0, 10000.0])), [1.0, 0.2])


@pytest.mark.parametrize(
    ("given", "expected"),
    [("Exp-Range", "exp_range"), ("my policy", "my_policy"), ("a.b", "a_b"), (" tri2 ", "tri2")],
)
def test_names_are_normalised(given: str, expected: str) -> None:
    assert Policy(given, lambda x: x * 0).name == expected


@pytest.mark.parametrize("bad", ["", "2fast", "héllo", "a/b", 3, None])
def test_bad_names_are_refused(bad: object) -> None:
    with pytest.raises(InvalidPolicyError, match="name"):
        Policy(bad, lambda x: x * 0)  # type: ignore[arg-type]


def test_bad_scale_mode_fn_and_params_are_refused() -> None:
    with pytest.raises(InvalidPolicyError, match=r"scale_mode must be one of \['cycle', 'iterations'\]"):
        Policy("p", lambda x: x * 0, scale_mode="epoch")
    with pytest.raises(InvalidPolicyError, match="scale_fn must be callable"):
        Policy("p", 0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidPolicyError, match="params must be a mapping"):
        Policy("p", lambda x, a: x * 0, params=[("a", 1.0)])  # type: ignore[arg-type]
    with pytest.raises(InvalidPolicyError, match="must be a number"):
        Policy("p", lambda x, a: x * 0, params={"a": "1"})
    with pytest.raises(InvalidPolicyError, match=r"does not accept the declared parameter\(s\) \['b'\]"):
        Policy("p", lambda x, a=1.0: x * 0, params={"b": 1.0})


def test_errors_share_one_base_class() -> None:
    assert issubclass(InvalidPolicyError, ClrplugError)
    assert issubclass(InvalidPolicyError, ValueError)


def test_policy_is_immutable() -> None:
    policy = Policy("p", lambda x: x * 0)
    with pytest.raises(AttributeError):
        policy.name = "q"  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.params["a"] = 1.0  # type: ignore[index]


def test_params_resolve_by_name_and_refuse_unknown() -> None:
    policy = Policy("p", lambda x, gamma=1.0: gamma**x, "iterations", params={"gamma": 1.0})
    np.testing.assert_allclose(policy.scale(np.array([2.0]), gamma=0.5), [0.25])
    with pytest.raises(InvalidArgumentError, match=r"no parameter 'rate'; its parameters are: gamma"):
        policy.scale(np.array([2.0]), rate=0.5)


def test_scalar_results_are_broadcast() -> None:
    policy = Policy("flat", lambda x: 1.0)
    assert policy.scale(np.zeros((2, 3))).shape == (2, 3)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda x: x * 0 + 1.5, r"returned 1\.5 at x=0\.0"),
        (lambda x: -x, r"returned -1\.0 at x=1\.0"),
        (lambda x: x * np.nan, "returned nan"),
        (lambda x: np.where(x == 1.0, np.inf, 0.0), "returned inf at x=1.0"),
    ],
)
def test_out_of_range_values_name_the_policy_and_x(fn: object, message: str) -> None:
    policy = Policy("bad", fn)  # type: ignore[arg-type]
    with pytest.raises(PolicyEvaluationError, match=message) as info:
        policy.scale(np.array([0.0, 1.0, 2.0]))
    assert "'bad'" in str(info.value)


def test_a_raising_scale_function_is_reported() -> None:
    def boom(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("kaput")

    with pytest.raises(PolicyEvaluationError, match=r"policy 'boom' .* raised RuntimeError: kaput"):
        Policy("boom", boom).scale(np.array([1.0]))
