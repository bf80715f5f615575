"""Bad input is refused when ``CyclicLR`` is built (or, for the model, when ``fit`` starts).

Never at the first batch and never silently: the error is a :class:`ClrplugError`
(and a ``ValueError``) whose message names the argument, the value given and
what would be accepted.
"""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np
import pytest
from probe import fit_steps, probe_model

import clrplug
from clrplug import CyclicalSchedule, CyclicLR, Policy
from clrplug.errors import (
    ClrplugError,
    InvalidArgumentError,
    PolicyEvaluationError,
    UnknownPolicyError,
)
from clrplug.registry import Registry

NAN, INF = float("nan"), float("inf")
STEP = r"step_size must be a finite number >= 0\.5 \(training iterations per half cycle; a cycle has at least one\), got "
GAMMA = r"gamma must be a number in \(0, 1\] for policy 'exp_range', got "
SCALE = r"values must be finite and within \[0, 1\]"


def bound(name: str, value: str) -> str:
    return rf"{name} must be a finite number >= 0, got {value}\."


BAD = [
    ({"step_size": 0}, InvalidArgumentError, STEP + r"0\."),
    ({"step_size": 0.25}, InvalidArgumentError, STEP + r"0\.25\."),
    ({"step_size": -4}, InvalidArgumentError, STEP + r"-4\."),
    ({"step_size": 2000.123456789}, InvalidArgumentError,
     r"step_size must be a multiple of 1/Q for some whole Q <= 4096 .* got 2000\.123456789"),
    ({"step_size": 8.98846567431158e307}, InvalidArgumentError,  # found by test_fuzz
     r"step_size=8\.98846567431158e\+307 and step_size_down=8\.98846567431158e\+307 give a cycle "
     r"of inf iterations that the compiled step cannot count exactly"),
    ({"step_size": 3e9}, InvalidArgumentError,
     r"step_size=3000000000\.0 and step_size_down=3000000000\.0 give a cycle of 6000000000\.0 "
     r"iterations that the compiled step cannot count exactly in 32-bit integers"),
    ({"step_size": 4, "step_size_down": 0}, InvalidArgumentError,
     r"step_size_down must be a finite number >= 0\.5 .* got 0\."),
    ({"waveform": "square"}, clrplug.errors.UnknownNameError,
     r"waveform: unknown waveform 'square'\. Choose one of: cosine, triangular, welch\."),
    ({"cycle_momentum": "yes"}, InvalidArgumentError, r"cycle_momentum must be True or False, got 'yes'\."),
    ({"cycle_momentum": True, "base_momentum": 0.95, "max_momentum": 0.9}, InvalidArgumentError,
     r"base_momentum \(0\.95\) must be <= max_momentum \(0\.9\)"),
    ({"cycle_momentum": True, "max_momentum": 1.0}, InvalidArgumentError,
     r"max_momentum must be a number in \[0, 1\), got 1\.0\."),
    ({"history_every": 0}, InvalidArgumentError, r"history_every must be an integer >= 1, got 0\."),
    ({"step_size": NAN}, InvalidArgumentError, STEP + r"nan\."),
    ({"step_size": INF}, InvalidArgumentError, STEP + r"inf\."),
    ({"base_lr": -0.001}, InvalidArgumentError, bound("base_lr", r"-0\.001")),
    ({"base_lr": NAN}, InvalidArgumentError, bound("base_lr", "nan")),
    ({"base_lr": INF}, InvalidArgumentError, bound("base_lr", "inf")),
    ({"max_lr": -0.006}, InvalidArgumentError, bound("max_lr", r"-0\.006")),
    ({"max_lr": NAN}, InvalidArgumentError, bound("max_lr", "nan")),
    ({"max_lr": INF}, InvalidArgumentError, bound("max_lr", "inf")),
    ({"max_lr": 1e39}, InvalidArgumentError, r"max_lr must be at most 3\.4028234663852886e\+38"),
    ({"base_lr": 0.01, "max_lr": 0.001}, InvalidArgumentError,
     r"max_lr \(0\.001\) must be >= base_lr \(0\.01\): base_lr is the lower and max_lr the upper"),
    ({"mode": "exp_range", "gamma": 0.0}, InvalidArgumentError, GAMMA + r"0\.0\."),
    ({"mode": "exp_range", "gamma": -0.5}, InvalidArgumentError, GAMMA + r"-0\.5\."),
    ({"mode": "exp_range", "gamma": 1.000001}, InvalidArgumentError, GAMMA + r"1\.000001\."),
    ({"mode": "exp_range", "gamma": NAN}, InvalidArgumentError, GAMMA + r"nan\."),
    ({"mode": "exp_range", "gamma": INF}, InvalidArgumentError, GAMMA + r"inf\."),
    ({"mode": "exp_range", "policy_params": {"gamma": 2.0}}, InvalidArgumentError,
     r"policy_params\['gamma'\] must be a number in \(0, 1\] for policy 'exp_range', got 2\.0\."),
    ({"scale_mode": "epochs"}, InvalidArgumentError,
     r"scale_mode must be one of \['cycle', 'iterations'\], got 'epochs'\."),
    ({"mode": "triangular2", "scale_mode": "iterations"}, InvalidArgumentError,
     r"scale_mode='iterations' contradicts policy 'triangular2', which is evaluated on 'cycle'"),
    ({"mode": "exp_range", "scale_mode": "cycle"}, InvalidArgumentError,
     r"scale_mode='cycle' contradicts policy 'exp_range', which is evaluated on 'iterations'"),
    ({"scale_fn": "lambda x: 1.0"}, InvalidArgumentError,
     r"scale_fn must be a callable scale_fn\(x\) -> values in \[0, 1\], got str 'lambda x: 1\.0'"),
    ({"scale_fn": 0.5}, InvalidArgumentError, r"scale_fn must be a callable .* got float 0\.5"),
    pytest.param({"scale_fn": lambda x: x * np.nan}, PolicyEvaluationError,
                 rf"scale function of your scale_fn '<lambda>' returned nan at x=1\.0 \(scale_mode='cycle'\); {SCALE}",
                 id="scale_fn-returns-nan"),
    pytest.param({"scale_fn": lambda x: 0.5 - x}, PolicyEvaluationError,
                 rf"returned -0\.5 at x=1\.0 \(scale_mode='cycle'\); {SCALE}", id="scale_fn-returns-negative"),
    # Good for the first cycles, out of range later: the probe reaches x = 10**7.
    pytest.param({"scale_fn": lambda x: np.where(x < 5000, 1.0, 1.5), "scale_mode": "iterations"},
                 PolicyEvaluationError,
                 rf"returned 1\.5 at x=\d{{4}}\.\d+ \(scale_mode='iterations'\); {SCALE}",
                 id="scale_fn-above-1-late"),
    pytest.param({"scale_fn": lambda x: 1 / (x - x)}, PolicyEvaluationError,
                 r"returned inf at x=1\.0", id="scale_fn-returns-inf"),
    pytest.param({"scale_fn": lambda x: {}[x]}, PolicyEvaluationError,
                 r"scale function of your scale_fn '<lambda>' raised TypeError",
                 id="scale_fn-raises"),
    ({"policy_params": {"rate": 1.0}}, InvalidArgumentError,
     r"policy_params: policy 'triangular' has no parameter 'rate'; its parameters are: none\."),
    ({"mode": "exp_range", "policy_params": {"gamma": 0.9, "rate": 1.0}}, InvalidArgumentError,
     r"policy 'exp_range' has no parameter 'rate'; its parameters are: gamma\."),
    ({"mode": "exp_range", "policy_params": {"gamma": "0.9"}}, InvalidArgumentError,
     r"policy_params\['gamma'\] must be a number in \(0, 1\] for policy 'exp_range', got str '0\.9'\."),
    ({"policy_params": ["gamma"]}, InvalidArgumentError,
     r"policy_params must be a mapping of parameter names to numbers, got list \['gamma'\]\."),
    ({"mode": "triangle2"}, UnknownPolicyError,
     r"unknown policy 'triangle2'\. Choose one of: .*triangular2.* Did you mean 'triangular2'\?"),
    ({"mode": None}, InvalidArgumentError,
     r"mode must be a policy name \(str\), got NoneType None; pass a function as scale_fn"),
    ({"base_lr": "0.001"}, InvalidArgumentError, r"base_lr must be a finite number >= 0, got str '0\.001'\."),
    ({"step_size": True}, InvalidArgumentError, STEP + r"bool True\."),
]


def _id(kwargs: dict[str, Any]) -> str:
    return ",".join(f"{k}={getattr(v, '__name__', v)!s}" for k, v in kwargs.items())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [case if hasattr(case, "id") else pytest.param(*case, id=_id(case[0])) for case in BAD],
)
def test_bad_arguments_are_refused_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        CyclicLR(**kwargs)
    assert isinstance(info.value, ClrplugError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "kwargs", [{"mode": "triangular2", "scale_mode": "cycle"},
               {"mode": "exp_range", "gamma": 0.99, "scale_mode": "iterations"}],
)
def test_a_scale_mode_that_agrees_with_the_policy_is_accepted(kwargs: dict[str, Any]) -> None:
    clr = CyclicLR(0.001, 0.006, 5, **kwargs)
    plain = {k: v for k, v in kwargs.items() if k != "scale_mode"}
    np.testing.assert_array_equal(
        clr.schedule.values_at(np.arange(50))[0], clrplug.learning_rates(np.arange(50), 0.001, 0.006, 5, **plain)
    )
    assert clr.scale_mode == kwargs["scale_mode"]


# -- arguments of a registered policy -------------------------------------------------

LEVEL = Policy("level", lambda x, level=0.5: np.full_like(x, level), params={"level": 0.5})


def test_policy_params_out_of_range_for_a_named_policy_are_refused_at_construction(
    fresh_registry: Registry,
) -> None:
    clrplug.register_policy(LEVEL)
    with pytest.raises(PolicyEvaluationError,
                       match=r"policy 'level' \(from runtime\) returned 2\.0 at x=1\.0 "
                       r"\(scale_mode='cycle'\); values must be finite and within \[0, 1\]"):
        CyclicLR(mode="level", policy_params={"level": 2.0})
    CyclicLR(mode="level", policy_params={"level": 1.0})


# -- the model: refused when fit starts ------------------------------------------------


class BatchSpy(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.batches.append(batch)


def optimizer_steps(model: keras.Model) -> int:
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


class FixedStepSGD(keras.optimizers.Optimizer):
    """A learning-rate-free optimizer: it has no ``_learning_rate`` to schedule."""

    def __init__(self, step: float = 0.01) -> None:
        super().__init__(learning_rate=0.0, name="fixed_step_sgd")
        del self._learning_rate
        self.step = step

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        self.assign_sub(variable, keras.ops.sign(gradient) * self.step)


class Custom(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step: Any) -> Any:
        return 0.01

    def get_config(self) -> dict[str, Any]:
        return {}


SCHEDULES = {
    "cosine-decay": lambda: keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 100)),
    "custom-schedule": lambda: keras.optimizers.SGD(Custom()),
    "callable": lambda: keras.optimizers.SGD(lambda: 0.01),
    "cyclical-other-bounds": lambda: keras.optimizers.SGD(CyclicalSchedule(0.01, 0.1, 50)),
    "behind-loss-scale": lambda: keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))),
}
SCHEDULE_TYPES = {"cosine-decay": "CosineDecay", "custom-schedule": "Custom",
                  "callable": "function", "cyclical-other-bounds": "CyclicalSchedule",
                  "behind-loss-scale": "ExponentialDecay"}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_a_model_compiled_with_a_schedule_is_refused_when_fit_starts(name: str) -> None:
    model, spy = probe_model(SCHEDULES[name]()), BatchSpy()
    message = (
        rf"CyclicLR: optimizer SGD already has a learning-rate schedule "
        rf"\({re.escape(SCHEDULE_TYPES[name])}\), and CyclicLR sets the rate itself\. Compile "
        r"with a float learning_rate \(base_lr overrides it\)"
    )
    with pytest.raises(ClrplugError, match=message):
        fit_steps(model, 4, [CyclicLR(0.001, 0.006, 4), spy])
    assert spy.batches == [] and optimizer_steps(model) == 0


def test_an_optimizer_without_a_learning_rate_is_refused_when_fit_starts() -> None:
    model, spy = probe_model(FixedStepSGD()), BatchSpy()
    with pytest.raises(ClrplugError,
                       match="CyclicLR: optimizer FixedStepSGD has no learning rate to set"):
        fit_steps(model, 4, [CyclicLR(), spy])
    assert spy.batches == [] and optimizer_steps(model) == 0


def test_an_object_that_is_not_a_keras_optimizer_is_refused() -> None:
    class ExternalOptimizer:  # e.g. an optax or torch.optim object swapped in by hand
        iterations = 0

    model = probe_model()
    model.optimizer = ExternalOptimizer()
    with pytest.raises(ClrplugError, match="optimizer ExternalOptimizer has no learning rate"):
        CyclicLR().set_model(model)  # what fit() does first with every callback

