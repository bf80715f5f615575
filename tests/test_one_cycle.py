"""1cycle: ``OneCycleLR`` and ``OneCycleSchedule`` against PyTorch's ``OneCycleLR``.

Rates and momenta at every step must be PyTorch's (same argument names and defaults),
applied inside the compiled step; past ``total_steps`` the final rate is held with one
warning. Applied values are read from real weight updates by the rate probe
(tests/probe.py, tests/recording.py); expected values come from torch
(tests/oracles.py), never from clrplug. ``RangeTestResult.one_cycle`` is tested elsewhere.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from oracles import torch_one_cycle, torch_one_cycle_at, torch_one_cycle_parameters
from probe import fit_probe, rate_probe_model
from recording import Crash, SaveAt, assert_applied, assert_loaded_run, fit_recorded, probe_data

import clrplug
from clrplug import OneCycleLR, OneCycleSchedule
from clrplug.errors import InvalidArgumentError

BACKEND = keras.backend.backend()
RTOL = 1e-5
INT32_MAX = 2**31 - 1

SHAPES = {
    "cos": {"anneal_strategy": "cos"},
    "linear": {"anneal_strategy": "linear"},
    "cos-three-phase": {"anneal_strategy": "cos", "three_phase": True},
    "linear-three-phase": {"anneal_strategy": "linear", "three_phase": True},
}


def value(x: Any) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(x)))


def schedule_at(schedule: OneCycleSchedule, steps: list[int]) -> np.ndarray:
    """The stand-alone schedule called with each step as a Python int."""
    return np.array([value(schedule(int(s))) for s in steps])


# -- the interface is PyTorch's ----------------------------------------------------------


def test_argument_names_and_defaults_are_pytorchs() -> None:
    ours = inspect.signature(OneCycleLR).parameters
    theirs = torch_one_cycle_parameters()
    shared = set(theirs) - {"optimizer", "last_epoch", "verbose"}
    assert shared <= set(ours)
    for name in shared:
        assert ours[name].default == theirs[name].default, name
    assert next(iter(ours)) == "max_lr" and ours["max_lr"].default is inspect.Parameter.empty


def test_the_schedule_is_serialisable_by_name() -> None:
    assert keras.saving.get_registered_name(OneCycleSchedule) == "clrplug>OneCycleSchedule"
    schedule = OneCycleSchedule(0.1, 200, pct_start=0.25, anneal_strategy="linear",
                                three_phase=True, cycle_momentum=False)
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(schedule)))
    assert config["registered_name"] == "clrplug>OneCycleSchedule"
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, OneCycleSchedule)
    steps = [0, 1, 49, 50, 98, 150, 199, 500]
    expected, _ = torch_one_cycle_at(np.minimum(steps, 199), 0.1, 200, pct_start=0.25,
                                     anneal_strategy="linear", three_phase=True,
                                     cycle_momentum=False)
    np.testing.assert_allclose(schedule_at(restored, steps), expected, rtol=RTOL)



ORDER_SCRIPT = """
import warnings
warnings.filterwarnings("error", message="clrplug: could not register")
{first}
import keras
model = keras.models.load_model({path!r})
print(json.dumps(model.optimizer.get_config()["learning_rate"]["config"]))
"""

# The import order does not depend on the backend: two of the three run on JAX only.
_JAX_ONLY = pytest.mark.skipif(BACKEND != "jax", reason="import order: checked once, on JAX")


@pytest.mark.parametrize("first", [
    "from clrplug import OneCycleSchedule",
    pytest.param("import clrplug.one_cycle_schedule", marks=_JAX_ONLY),
    pytest.param("from clrplug import OneCycleLR", marks=_JAX_ONLY),
])
def test_a_saved_one_cycle_schedule_loads_whatever_the_import_order(tmp_path: Path,
                                                                    first: str) -> None:
    schedule = OneCycleSchedule(0.1, 200, pct_start=0.25, cycle_momentum=False)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    path = tmp_path / "model.keras"
    model.save(path)
    script = "import json\n" + ORDER_SCRIPT.format(first=first, path=str(path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ, KERAS_BACKEND=BACKEND), check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads(out.stdout.strip().splitlines()[-1])
    assert (config["max_lr"], config["total_steps"], config["pct_start"]) == (0.1, 200, 0.25)

# -- the float64 formula ---------------------------------------------------------------------

FORMULA_CASES = [
    {"max_lr": 0.1, "total_steps": 100},
    {"max_lr": 0.1, "total_steps": 100, "anneal_strategy": "linear"},
    {"max_lr": 0.1, "total_steps": 100, "three_phase": True},
    {"max_lr": 0.1, "total_steps": 100, "three_phase": True, "anneal_strategy": "linear"},
    {"max_lr": 3.0, "total_steps": 1001, "pct_start": 0.17, "div_factor": 7.0,
     "final_div_factor": 300.0, "base_momentum": 0.6, "max_momentum": 0.99},
    {"max_lr": 0.01, "total_steps": 7, "pct_start": 0.45, "three_phase": True},
]


@pytest.mark.parametrize("case", FORMULA_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_one_cycle_rates_equal_torch_to_the_last_digits(case: dict[str, Any]) -> None:
    total = case["total_steps"]
    lr, momentum = clrplug.one_cycle_rates(np.arange(total), **case)
    expected_lr, expected_momentum = torch_one_cycle(total, **case)
    np.testing.assert_allclose(lr, expected_lr, rtol=1e-15, atol=0)
    np.testing.assert_allclose(momentum, expected_momentum, rtol=1e-15, atol=0)
    # past the end the final values are held (torch refuses to go there)
    held, held_momentum = clrplug.one_cycle_rates([total, 10 * total, 2**40], **case)
    assert held.tolist() == [expected_lr[-1]] * 3
    assert held_momentum.tolist() == [expected_momentum[-1]] * 3


def test_one_cycle_rates_without_momentum() -> None:
    lr, momentum = clrplug.one_cycle_rates(range(50), 0.2, 50, cycle_momentum=False)
    assert momentum is None
    expected, _ = torch_one_cycle(50, 0.2, 50, cycle_momentum=False)
    np.testing.assert_allclose(lr, expected, rtol=1e-15, atol=0)


# -- applied rates and momenta -----------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_applied_rates_are_pytorchs_at_every_step(shape: str) -> None:
    """Plain SGD reads the rate down to the 1cycle's tiny tail."""
    kwargs = {"max_lr": 0.1, "total_steps": 30, **SHAPES[shape]}
    one_cycle = OneCycleLR(**kwargs, cycle_momentum=False)
    model = rate_probe_model()
    run = fit_probe(model, 10, [one_cycle], epochs=3)
    expected, _ = torch_one_cycle(30, **kwargs, cycle_momentum=False)
    assert expected[-1] < 1e-5 * expected.max()  # the tail is there
    assert_applied(run, expected, nan_ok=0)
    np.testing.assert_allclose(one_cycle.history["lr"], expected, rtol=1e-12)
    assert one_cycle.history["iterations"].tolist() == list(range(1, 31))
    np.testing.assert_allclose(model.history.history["learning_rate"], expected[[9, 19, 29]],
                               rtol=1e-12)


OWN = {"sgd": 0.7, "adam": 0.8}  # each optimizer's own momentum, outside [0.85, 0.95]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("shape", ["cos", "linear-three-phase"])
def test_applied_momenta_are_pytorchs(shape: str, optimizer: str) -> None:
    kwargs = {"max_lr": 0.05, "total_steps": 32, **SHAPES[shape]}
    one_cycle = OneCycleLR(**kwargs)  # cycle_momentum=True, 0.85 .. 0.95 by default
    factory = (keras.optimizers.SGD(0.1, momentum=OWN["sgd"]) if optimizer == "sgd"
               else keras.optimizers.Adam(0.1, beta_1=OWN["adam"]))
    model = rate_probe_model(factory)
    # Adam's first beta_1 cannot be measured: torch's first momentum (max_momentum) is assumed.
    run = fit_probe(model, 8, [one_cycle], epochs=4, initial_beta_1=0.95)
    lr, momentum = torch_one_cycle(32, **kwargs, optimizer=optimizer)
    assert momentum is not None and momentum.min() < 0.86  # the oracle does cycle
    assert_applied(run, lr, momentum)
    history = one_cycle.history
    np.testing.assert_allclose(history["lr"], lr, rtol=1e-12)
    np.testing.assert_allclose(history["momentum"], momentum, rtol=1e-12)
    logs = model.history.history
    np.testing.assert_allclose(logs["momentum"], momentum[[7, 15, 23, 31]], rtol=1e-12)
    np.testing.assert_allclose(logs["learning_rate"], lr[[7, 15, 23, 31]], rtol=1e-12)
    # After the fit: a plain momentum, what the cycle reached (its final value).
    attribute = "momentum" if optimizer == "sgd" else "beta_1"
    reached = getattr(model.optimizer, attribute)
    assert type(reached) is float and reached == pytest.approx(momentum[-1], rel=1e-12)
    assert model.optimizer.get_config()[attribute] == reached


def test_the_default_cycle_momentum_refuses_sgd_without_momentum() -> None:
    with pytest.raises(InvalidArgumentError, match=r"cycle_momentum=True with SGD needs momentum > 0"):
        fit_probe(rate_probe_model(), 4, [OneCycleLR(0.1, total_steps=8)])


# -- the stand-alone schedule at any step ------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_standalone_schedule_at_huge_steps_of_a_long_cycle(shape: str) -> None:
    """Warm-up, peak and first descent of a cycle of 2**31 - 1 steps."""
    kwargs = {"max_lr": 0.1, "total_steps": INT32_MAX, **SHAPES[shape]}
    schedule = OneCycleSchedule(**kwargs, cycle_momentum=False)
    peak = int(0.3 * INT32_MAX)
    steps = [0, 1, 2, 2**20 + 5, 10**8, 4_200_001, 3 * 10**8, peak - 2, peak - 1, peak, 8 * 10**8]
    expected, _ = torch_one_cycle_at(steps, **kwargs, cycle_momentum=False)
    np.testing.assert_allclose(schedule_at(schedule, steps), expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_standalone_schedule_holds_the_final_rate_up_to_int32(shape: str) -> None:
    kwargs = {"max_lr": 0.1, "total_steps": 1000, **SHAPES[shape]}
    schedule = OneCycleSchedule(**kwargs, cycle_momentum=False)
    steps = [998, 999, 1000, 1001, 10**6, 10**8, 2**31 - 100]
    final, _ = torch_one_cycle_at([998, 999], **kwargs, cycle_momentum=False)
    expected = np.concatenate([final, np.full(5, final[1])])
    assert final[1] == pytest.approx(0.1 / 25 / 1e4)
    np.testing.assert_allclose(schedule_at(schedule, steps), expected, rtol=RTOL, atol=0)


def _tail_steps() -> list[int]:
    back = np.unique(np.round(np.geomspace(2, 3e8, 60)).astype(np.int64))
    return sorted({*(INT32_MAX - back).tolist(), 2**31 - 100, INT32_MAX - 67, INT32_MAX - 2_502_960})


@pytest.mark.parametrize("shape", ["cos", "linear"])
def test_standalone_schedule_in_the_tail_of_a_cycle_of_2_31_steps(shape: str) -> None:
    """Where float32 cannot hold the step (past 2**24) yet the rate depends on every step."""
    kwargs = {"max_lr": 0.1, "total_steps": INT32_MAX, **SHAPES[shape]}
    schedule = OneCycleSchedule(**kwargs, cycle_momentum=False)
    steps = _tail_steps()
    expected, _ = torch_one_cycle_at(steps, **kwargs, cycle_momentum=False)
    np.testing.assert_allclose(schedule_at(schedule, steps), expected, rtol=RTOL, atol=0)


def test_a_standalone_schedule_in_a_fit_applies_the_rate() -> None:
    schedule = OneCycleSchedule(0.1, 24, anneal_strategy="linear", cycle_momentum=False)
    model = rate_probe_model(keras.optimizers.SGD(learning_rate=schedule))
    run = fit_probe(model, 8, [], epochs=4)  # 8 steps past the end: held
    expected, _ = torch_one_cycle(24, 0.1, 24, anneal_strategy="linear", cycle_momentum=False)
    assert_applied(run, np.concatenate([expected, np.full(8, expected[-1])]), nan_ok=0)


def test_a_model_compiled_with_the_schedule_saves_and_loads(tmp_path: Path) -> None:
    schedule = OneCycleSchedule(0.1, 20, three_phase=True, cycle_momentum=False)
    model = rate_probe_model(keras.optimizers.SGD(learning_rate=schedule))
    fit_probe(model, 6, [])
    model.save(tmp_path / "m.keras")
    from probe import LastPrediction

    loaded = keras.models.load_model(tmp_path / "m.keras",
                                     custom_objects={"LastPrediction": LastPrediction})
    run = fit_recorded(loaded, 6, [], epochs=2)
    expected, _ = torch_one_cycle(20, 0.1, 20, three_phase=True, cycle_momentum=False)
    assert run.iterations.tolist() == list(range(6, 18))
    assert_applied(run, expected[6:18], nan_ok=0)


# -- total_steps from fit ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "total"),
    [({}, 24), ({"epochs": 3}, 24), ({"steps_per_epoch": 8}, 24), ({"epochs": 5}, 40),
     ({"steps_per_epoch": 10}, 30), ({"epochs": 4, "steps_per_epoch": 9}, 36)],
    ids=["from-fit", "epochs", "steps_per_epoch", "more-epochs-than-fit", "longer-epochs",
         "both"],
)
def test_total_steps_is_taken_from_fit_when_not_given(kwargs: dict[str, int], total: int) -> None:
    one_cycle = OneCycleLR(0.1, cycle_momentum=False, **kwargs)
    assert one_cycle.total_steps == (total if len(kwargs) == 2 else None)
    run = fit_probe(rate_probe_model(), 8, [one_cycle], epochs=3)
    assert one_cycle.total_steps == total
    expected, _ = torch_one_cycle(24, 0.1, total, cycle_momentum=False)
    assert_applied(run, expected, nan_ok=0)


def _generator(steps: int, forever: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    x, y = probe_data(steps)
    while True:
        for i in range(steps):
            yield x[i : i + 1], y[i : i + 1]
        if not forever:
            return


def test_a_generator_of_unknown_length_needs_total_steps() -> None:
    model = rate_probe_model()
    with pytest.raises(InvalidArgumentError, match=r"OneCycleLR needs total_steps, or epochs "
                       r"and steps_per_epoch: this fit does not say how many steps"):
        model.fit(_generator(4, forever=False), epochs=2, verbose=0, shuffle=False,
                  callbacks=[OneCycleLR(0.1, cycle_momentum=False)])
    with pytest.raises(InvalidArgumentError, match=r"pass total_steps"):
        model.fit(_generator(4, forever=False), epochs=2, verbose=0, shuffle=False,
                  callbacks=[OneCycleLR(0.1, epochs=2, cycle_momentum=False)])
    # Nothing half-applied: without the callback, the optimizer's own rate (SGD(0.1)).
    run = fit_probe(model, 3, [])
    assert_applied(run, np.full(3, 0.1), nan_ok=0)


def test_epochs_and_steps_per_epoch_count_batches_under_gradient_accumulation() -> None:
    """As fit's steps: 3 epochs x 8 batches, 2 batches per update, is a 12-update cycle."""
    x, y = np.zeros((8, 1), "float32"), np.zeros((8, 5), "float32")
    given = OneCycleLR(0.1, epochs=3, steps_per_epoch=8, cycle_momentum=False)
    from_fit = OneCycleLR(0.1, cycle_momentum=False)
    for one_cycle in (given, from_fit):
        model = rate_probe_model(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
        model.fit(x, y, batch_size=1, epochs=3, verbose=0, shuffle=False, callbacks=[one_cycle])
    assert given.total_steps == from_fit.total_steps == 12
    expected, _ = torch_one_cycle(12, 0.1, 12, cycle_momentum=False)
    np.testing.assert_allclose(given.history["lr"], expected[np.arange(24) // 2], rtol=1e-12)


@pytest.mark.filterwarnings("ignore:Your input ran out of data")  # the finite one
def test_a_generator_with_total_steps_given_runs_the_cycle() -> None:
    model = rate_probe_model()
    one_cycle = OneCycleLR(0.1, total_steps=8, cycle_momentum=False)
    model.fit(_generator(4, forever=True), steps_per_epoch=4, epochs=2, verbose=0, shuffle=False,
              callbacks=[one_cycle])
    expected, _ = torch_one_cycle(8, 0.1, 8, cycle_momentum=False)
    np.testing.assert_allclose(one_cycle.history["lr"], expected, rtol=1e-12)
    model.fit(_generator(4, forever=False), epochs=1, verbose=0, shuffle=False,
              callbacks=[OneCycleLR(0.1, steps_per_epoch=4, epochs=1, cycle_momentum=False)])


def test_a_pending_total_is_checked_when_fit_gives_it() -> None:
    one_cycle = OneCycleLR(0.1, pct_start=0.05, cycle_momentum=False)  # fine until fit says 10
    model = rate_probe_model()
    with pytest.raises(InvalidArgumentError, match=r"pct_start=0\.05 with total_steps=10"):
        fit_probe(model, 5, [one_cycle], epochs=2)
    # Nothing half-applied: without the callback, the optimizer's own rate (SGD(0.1)).
    assert_applied(fit_probe(model, 3, []), np.full(3, 0.1), nan_ok=0)


# -- past total_steps ------------------------------------------------------------------------


def test_past_total_steps_the_final_rate_is_held_with_one_warning() -> None:
    one_cycle = OneCycleLR(0.1, total_steps=10, cycle_momentum=False)
    model = rate_probe_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = fit_probe(model, 5, [one_cycle], epochs=4)
        second = fit_probe(model, 5, [one_cycle], run=first)
    about = [w for w in caught if "total_steps" in str(w.message)]
    assert len(about) == 1, [str(w.message) for w in about]
    assert issubclass(about[0].category, UserWarning)
    assert "past total_steps=10" in str(about[0].message) and "held" in str(about[0].message)
    expected, _ = torch_one_cycle(10, 0.1, 10, cycle_momentum=False)
    held = np.concatenate([expected, np.full(15, expected[-1])])
    assert_applied(second, held, nan_ok=0)
    np.testing.assert_allclose(one_cycle.history["lr"], held, rtol=1e-12)


def test_past_total_steps_warns_with_pytest_warns() -> None:
    one_cycle = OneCycleLR(0.1, total_steps=6, cycle_momentum=False)
    with pytest.warns(UserWarning, match=r"OneCycleLR: training went past total_steps=6"):
        fit_probe(rate_probe_model(), 4, [one_cycle], epochs=2)


def test_past_total_steps_momentum_is_held_too() -> None:
    one_cycle = OneCycleLR(0.05, total_steps=12)
    model = rate_probe_model(keras.optimizers.SGD(0.1, momentum=OWN["sgd"]))
    with pytest.warns(UserWarning, match="past total_steps=12"):
        run = fit_probe(model, 6, [one_cycle], epochs=3)
    lr, momentum = torch_one_cycle(12, 0.05, 12)
    assert_applied(run, np.concatenate([lr, np.full(6, lr[-1])]),
                   np.concatenate([momentum, np.full(6, momentum[-1])]))


# -- resume -------------------------------------------------------------------------------------

ARGS = {"max_lr": 0.05, "pct_start": 0.4, "anneal_strategy": "linear"}
STEPS, EPOCHS = 5, 6



@pytest.mark.parametrize("total_steps", [None, STEPS * EPOCHS], ids=["from-fit", "given"])
def test_backup_and_restore_resumes_the_cycle(tmp_path: Path, total_steps: int | None) -> None:
    folder = str(tmp_path / "backup")
    sgd = lambda: keras.optimizers.SGD(0.1, momentum=OWN["sgd"])  # noqa: E731
    model = rate_probe_model(sgd())
    with pytest.raises(KeyboardInterrupt):
        fit_recorded(model, STEPS, [OneCycleLR(**ARGS, total_steps=total_steps),
                                    keras.callbacks.BackupAndRestore(folder), Crash(2)],
                     epochs=EPOCHS)
    model2, one_cycle = rate_probe_model(sgd()), OneCycleLR(**ARGS, total_steps=total_steps)
    run = fit_recorded(model2, STEPS, [one_cycle, keras.callbacks.BackupAndRestore(folder)],
                       epochs=EPOCHS)
    assert run.iterations.tolist() == list(range(15, 30))
    lr, momentum = torch_one_cycle(30, **ARGS, total_steps=30)
    assert_applied(run, lr[15:], momentum[15:])
    np.testing.assert_allclose(one_cycle.history["lr"], lr[15:], rtol=1e-12)
    np.testing.assert_allclose(one_cycle.history["momentum"], momentum[15:], rtol=1e-12)
    assert one_cycle.total_steps == 30


LOAD_SCRIPT = """
import json, sys
import keras
sys.path.insert(0, {tests!r})
from probe import LastPrediction
from recording import fit_recorded
from clrplug import OneCycleLR
model = keras.models.load_model({path!r}, custom_objects={{"LastPrediction": LastPrediction}})
one_cycle = OneCycleLR(**{args!r})
run = fit_recorded(model, {steps}, [one_cycle], epochs=3)
print(json.dumps({{
    "iterations": run.iterations.tolist(), "rates": run.rates.tolist(),
    "rate_atol": run.rate_atol.tolist(), "momenta": run.momenta.tolist(),
    "momentum_atol": run.momentum_atol.tolist(),
    "history_lr": one_cycle.history["lr"].tolist(),
    "history_momentum": one_cycle.history["momentum"].tolist(),
    "history_iterations": one_cycle.history["iterations"].tolist(),
    "own_momentum": model.optimizer.get_config()["momentum"],
}}))
"""


def test_model_save_then_load_model_in_a_new_process_resumes_the_cycle(tmp_path: Path) -> None:
    args = {**ARGS, "total_steps": 30}
    model = rate_probe_model(keras.optimizers.SGD(0.1, momentum=OWN["sgd"]))
    path = tmp_path / "model.keras"  # written during the fit, as ModelCheckpoint does
    fit_recorded(model, STEPS, [OneCycleLR(**args), SaveAt(path, 2)], epochs=3)
    script = LOAD_SCRIPT.format(tests=str(Path(__file__).parent), path=str(path), args=args,
                                steps=STEPS)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                         env=dict(os.environ, KERAS_BACKEND=BACKEND), capture_output=True,
                         text=True, check=False, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["iterations"] == list(range(15, 30))
    lr, momentum = torch_one_cycle(30, **args)
    assert_loaded_run(result, lr, momentum, first=15)
    assert result["own_momentum"] == pytest.approx(momentum[-1], rel=1e-12)  # what it reached


# -- bad input -----------------------------------------------------------------------------------

BAD = {
    "pct_start-0": ({"pct_start": 0.0}, r"pct_start"),
    "pct_start-1": ({"pct_start": 1.0}, r"pct_start"),
    "pct_start-above-1": ({"pct_start": 1.5}, r"pct_start"),
    "pct_start-negative": ({"pct_start": -0.1}, r"pct_start"),
    "anneal_strategy": ({"anneal_strategy": "exp"}, r"anneal_strategy.*'exp'"),
    "total_steps-and-epochs": ({"total_steps": 10, "epochs": 2}, r"total_steps.*not both"),
    "total_steps-and-steps_per_epoch": ({"total_steps": 10, "steps_per_epoch": 2},
                                        r"total_steps.*not both"),
    "warm-up-without-steps": ({"total_steps": 3, "pct_start": 0.3},
                              r"pct_start \* total_steps > 1"),
    "warm-up-of-one-step": ({"total_steps": 10, "pct_start": 0.1},
                            r"pct_start \* total_steps > 1"),
    "three_phase-past-half": ({"total_steps": 100, "pct_start": 0.6, "three_phase": True},
                              r"three_phase needs pct_start < 0\.5"),
    "momenta-reversed": ({"base_momentum": 0.95, "max_momentum": 0.85},
                         r"base_momentum \(0\.95\) must be <= max_momentum \(0\.85\)"),
    "max_momentum-1": ({"max_momentum": 1.0}, r"max_momentum"),
    "base_momentum-negative": ({"base_momentum": -0.1}, r"base_momentum"),
    "total_steps-1": ({"total_steps": 1}, r"total_steps"),
    "total_steps-float": ({"total_steps": 10.5}, r"total_steps"),
    "epochs-0": ({"epochs": 0}, r"epochs"),
    "steps_per_epoch-0": ({"steps_per_epoch": 0}, r"steps_per_epoch"),
    "div_factor-0": ({"div_factor": 0.0}, r"div_factor"),
    "final_div_factor-negative": ({"final_div_factor": -1.0}, r"final_div_factor"),
    "max_lr-0": ({"max_lr": 0.0}, r"max_lr"),
    "max_lr-negative": ({"max_lr": -0.1}, r"max_lr"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_at_construction(case: str) -> None:
    kwargs, message = BAD[case]
    kwargs = {"max_lr": 0.1, **kwargs}
    with pytest.raises(InvalidArgumentError, match=message):
        OneCycleLR(**kwargs)


@pytest.mark.parametrize(
    "case", [c for c in BAD if c not in {"total_steps-and-epochs", "total_steps-and-steps_per_epoch",
                                         "epochs-0", "steps_per_epoch-0"}]
)
def test_bad_input_is_refused_by_the_schedule_too(case: str) -> None:
    kwargs, message = BAD[case]
    kwargs = {"max_lr": 0.1, "total_steps": 100, **kwargs}
    with pytest.raises(InvalidArgumentError, match=message):
        OneCycleSchedule(**kwargs)
