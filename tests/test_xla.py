"""Under XLA: the rate and momentum applied when the whole train step is compiled.

TensorFlow compiles the train step with XLA when ``compile(jit_compile=True)`` asks for it,
and by default (``jit_compile="auto"``) on a GPU; on CPU it runs the graph op by op, which
is what the rest of the suite exercises there. XLA lowers the engine's integer arithmetic,
the momentum handed to the update steps and the table gather on its own terms, so every
kind of schedule is checked here against PyTorch's schedulers (the independent oracle),
through the rate probe, with ``jit_compile=True``. On JAX this is the path of every test;
on PyTorch ``jit_compile=True`` means ``torch.compile``, not XLA, so the module is skipped.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from oracles import seed_rates, torch_cyclic, torch_one_cycle
from probe import fit_probe, rate_probe_model
from recording import assert_applied

from clrplug import CyclicLR, OneCycleLR

pytestmark = pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="jit_compile=True means torch.compile on PyTorch; XLA is JAX's and TensorFlow's",
)

#: The steps the engine must be exact at (the counter on JAX is int32).
HUGE = [10**6, 4_200_001, 10**8, 2**31 - 100]


def decay(x: Any) -> Any:
    """The seed's iterations-mode example, vectorised: read from a table in the step."""
    return 1 / (5.0 ** (np.float64(x) * 0.05))


def xla_probe(momentum: float = 0.0) -> keras.Model:
    model = rate_probe_model(keras.optimizers.SGD(0.1, momentum=momentum), jit_compile=True)
    assert model.jit_compile is True
    return model


CYCLIC = {
    "triangular2": {"mode": "triangular2"},
    "exp_range-asymmetric": {"mode": "exp_range", "gamma": 0.9, "step_size_down": 2},
    "fractional": {"mode": "triangular", "step_size": 2.5},
}


@pytest.mark.parametrize("case", list(CYCLIC))
def test_cyclic_rates_and_momenta_are_pytorchs(case: str) -> None:
    kwargs: dict[str, Any] = {"base_lr": 0.01, "max_lr": 0.05, "step_size": 3, **CYCLIC[case]}
    clr = CyclicLR(**kwargs, cycle_momentum=True, base_momentum=0.8, max_momentum=0.9)
    run = fit_probe(xla_probe(momentum=0.7), 8, [clr], epochs=3)
    torch_args = dict(kwargs, step_size_up=kwargs.pop("step_size"))
    lr, momentum = torch_cyclic(24, **torch_args, cycle_momentum=True)
    assert momentum is not None and momentum.min() < 0.85  # the oracle does cycle
    assert_applied(run, lr, momentum)


def test_a_policy_read_from_its_table_applies_pytorchs_rates() -> None:
    clr = CyclicLR(0.01, 0.05, 3, scale_fn=decay, scale_mode="iterations")
    run = fit_probe(xla_probe(), 8, [clr], epochs=3)
    lr, _ = torch_cyclic(24, 0.01, 0.05, 3, scale_fn=decay, scale_mode="iterations")
    assert lr[-1] < 0.5 * 0.05  # the scale does decay
    assert_applied(run, lr)


def test_one_cycle_rates_and_momenta_are_pytorchs() -> None:
    kwargs = {"max_lr": 0.05, "total_steps": 32, "three_phase": True}
    run = fit_probe(xla_probe(momentum=0.7), 8, [OneCycleLR(**kwargs)], epochs=4)
    lr, momentum = torch_one_cycle(32, **kwargs)
    assert_applied(run, lr, momentum)


@pytest.mark.parametrize("mode", ["triangular2", "table"])
def test_exact_at_huge_steps(mode: str) -> None:
    """The counter moved to 1e6 ... 2**31-100 between epochs: still the seed's formula
    (float64; PyTorch's triangular2 overflows a Python float that many cycles in)."""
    kwargs: dict[str, Any] = (
        {"scale_fn": lambda x: 1 / (5.0 ** (np.float64(x) * 1e-9)), "scale_mode": "iterations"}
        if mode == "table" else {"mode": mode}
    )
    clr = CyclicLR(0.001, 0.006, 2000, **kwargs)
    moves = {1 + i: step for i, step in enumerate(HUGE)}
    run = fit_probe(xla_probe(), 6, [clr], epochs=5, iterations=moves)
    expected = seed_rates(run.iterations, 0.001, 0.006, 2000, **kwargs)
    assert run.iterations.max() >= 2**31 - 100
    assert_applied(run, expected)
