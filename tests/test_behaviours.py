"""Behaviours that had no test: resets, moving between models, fit's own options,
checkpoints, damaged cycle state, and the command line's argument handling.

Applied rates are read from real weight updates by the rate probe (tests/probe.py,
tests/recording.py); expected rates come from PyTorch's ``CyclicLR`` (tests/oracles.py):
a cycle that restarts is a fresh torch scheduler from there on.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest
from oracles import torch_cyclic
from probe import LastPrediction, _compile_probe, fit_probe, rate_probe_model
from recording import ResetAfterEpoch, assert_applied, fit_recorded

import clrplug
from clrplug import CyclicLR, OneCycleLR
from clrplug.cli import main as cli_main
from clrplug.errors import ClrplugError
from clrplug.registry import Registry

BACKEND = keras.backend.backend()
BASE, TOP, STEP = 0.01, 0.05, 3


def torch_rates(n: int, base: float = BASE, top: float = TOP, step: float = STEP,
                **kwargs: Any) -> np.ndarray:
    """torch's CyclicLR rates for updates 0..n-1 of a fresh cycle."""
    return torch_cyclic(n, base, top, step, **kwargs)[0]


def restarted(*pieces: tuple[int, dict[str, Any]]) -> np.ndarray:
    """Rates of a run whose cycle restarts: ``(updates, torch arguments)`` per cycle run."""
    return np.concatenate([torch_rates(n, **kwargs) for n, kwargs in pieces])


# -- reset() and _reset() --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["reset", "_reset"])
def test_reset_without_arguments_restarts_the_current_cycle(method: str) -> None:
    model = rate_probe_model()
    clr = CyclicLR(BASE, TOP, STEP, mode="triangular2")
    first = fit_probe(model, 8, [clr])  # into the second, halved cycle
    getattr(clr, method)()
    run = fit_probe(model, 8, [clr], run=first)
    expected = restarted((8, {"mode": "triangular2"}), (8, {"mode": "triangular2"}))
    assert_applied(run, expected, nan_ok=0)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)
    assert clr.history["iterations"].tolist() == list(range(1, 17))
    assert clr.clr_iterations == 8 and clr.trn_iterations == 16


@pytest.mark.parametrize("kwargs", [{}, {"new_max_lr": 0.08, "new_step_size": 2}],
                         ids=["no-arguments", "new-bounds"])
def test_reset_before_the_first_fit_starts_the_cycle_with_the_first_step_trained(
    kwargs: dict[str, float],
) -> None:
    model = rate_probe_model()
    before = fit_probe(model, 5, [])  # the optimizer has made 5 updates already
    clr = CyclicLR(BASE, TOP, STEP, mode="triangular2")
    clr.reset(**kwargs)
    run = fit_probe(model, 10, [clr], run=before)
    expected = torch_rates(10, top=kwargs.get("new_max_lr", TOP),
                           step=kwargs.get("new_step_size", STEP), mode="triangular2")
    assert_applied(run, np.concatenate([np.full(5, 0.1), expected]), nan_ok=0)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)


class ResetAt(keras.callbacks.Callback):
    """Calls ``clr.reset(**kwargs)`` from one hook of another callback."""

    def __init__(self, clr: CyclicLR, hook: str, epoch: int = 0, batch: int = 0,
                 **kwargs: float) -> None:
        super().__init__()
        self.clr, self.hook, self.epoch, self.batch, self.kwargs = clr, hook, epoch, batch, kwargs
        self.current = -1

    def on_train_begin(self, logs: Any = None) -> None:
        if self.hook == "train_begin":
            self.clr.reset(**self.kwargs)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.current = epoch
        if self.hook == "epoch_begin" and epoch == self.epoch:
            self.clr.reset(**self.kwargs)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.hook == "batch_end" and (self.current, batch) == (self.epoch, self.batch):
            self.clr.reset(**self.kwargs)


@pytest.mark.parametrize("order", ["before", "after"])
def test_reset_from_on_train_begin_of_another_callback(order: str) -> None:
    model = rate_probe_model()
    clr = CyclicLR(BASE, TOP, STEP, mode="triangular2")
    first = fit_probe(model, 7, [clr])
    resetter = ResetAt(clr, "train_begin", new_step_size=2)
    callbacks = [resetter, clr] if order == "before" else [clr, resetter]
    run = fit_probe(model, 8, callbacks, run=first)
    expected = restarted((7, {"mode": "triangular2"}), (8, {"mode": "triangular2", "step": 2}))
    assert_applied(run, expected, nan_ok=0)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)


@pytest.mark.parametrize("order", ["before", "after"])
def test_reset_from_on_train_begin_of_the_first_fit(order: str) -> None:
    model = rate_probe_model()
    before = fit_probe(model, 3, [])
    clr = CyclicLR(BASE, TOP, STEP)
    resetter = ResetAt(clr, "train_begin", new_base_lr=0.02)
    run = fit_probe(model, 8, [resetter, clr] if order == "before" else [clr, resetter],
                    run=before)
    assert_applied(run, np.concatenate([np.full(3, 0.1), torch_rates(8, base=0.02)]), nan_ok=0)


def test_reset_from_on_epoch_begin_restarts_at_the_epochs_first_step() -> None:
    model = rate_probe_model()
    clr = CyclicLR(BASE, TOP, STEP, mode="exp_range", gamma=0.9)
    run = fit_probe(model, 5, [clr, ResetAt(clr, "epoch_begin", epoch=2)], epochs=4)
    kwargs = {"mode": "exp_range", "gamma": 0.9}
    expected = restarted((10, kwargs), (10, kwargs))
    assert_applied(run, expected, nan_ok=0)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)


def test_reset_from_a_batch_hook_takes_effect_at_the_next_step() -> None:
    model = rate_probe_model()
    clr = CyclicLR(BASE, TOP, STEP, mode="triangular2")
    resetter = ResetAt(clr, "batch_end", epoch=1, batch=2, new_max_lr=0.03)
    run = fit_probe(model, 6, [clr, resetter], epochs=3)
    expected = restarted((9, {"mode": "triangular2"}), (9, {"mode": "triangular2", "top": 0.03}))
    assert_applied(run, expected, nan_ok=0)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)


# -- one callback, several models and compiles -------------------------------------------------


def test_recompiling_with_the_same_optimizer_continues_the_cycle() -> None:
    model = rate_probe_model()
    clr = CyclicLR(BASE, TOP, STEP, mode="triangular2")
    first = fit_probe(model, 5, [clr])
    _compile_probe(model, model.optimizer, 1)  # same optimizer, new train function
    run = fit_probe(model, 7, [clr], run=first)
    expected = torch_rates(12, mode="triangular2")
    assert_applied(run, expected, nan_ok=0)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)
    assert clr.history["iterations"].tolist() == list(range(1, 13))
    assert clr.clr_iterations == 12


def test_two_models_alternating_continue_one_cycle() -> None:
    clr = CyclicLR(BASE, TOP, STEP)
    a, b = rate_probe_model(), rate_probe_model()
    a1 = fit_probe(a, 4, [clr])
    b1 = fit_probe(b, 5, [clr])
    a2 = fit_probe(a, 3, [clr], run=a1)
    b2 = fit_probe(b, 2, [clr], run=b1)
    expected = torch_rates(14)
    assert clr.history["iterations"].tolist() == list(range(1, 15))
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)
    assert_applied(a2, np.concatenate([expected[:4], expected[9:12]]), nan_ok=0)
    assert_applied(b2, np.concatenate([expected[4:9], expected[12:14]]), nan_ok=0)


# -- fit's options ---------------------------------------------------------------------------------


def test_initial_epoch_continues_the_cycle_and_names_the_epochs() -> None:
    model = rate_probe_model()
    clr = CyclicLR(BASE, TOP, STEP, mode="triangular2")
    first = fit_recorded(model, 5, [clr], epochs=2)
    run = fit_recorded(model, 5, [clr], epochs=5, initial_epoch=2, run=first)
    expected = torch_rates(25, mode="triangular2")
    assert_applied(run, expected, nan_ok=0)
    assert model.history.epoch == [2, 3, 4]
    np.testing.assert_allclose(model.history.history["learning_rate"], expected[[14, 19, 24]],
                               rtol=1e-12)
    assert clr.history["iterations"].tolist() == list(range(1, 26))


def test_initial_epoch_in_the_first_fit_starts_the_cycle_at_the_first_step() -> None:
    model = rate_probe_model()
    clr = CyclicLR(BASE, TOP, STEP, mode="triangular2")
    run = fit_recorded(model, 5, [clr], epochs=5, initial_epoch=3)
    expected = torch_rates(10, mode="triangular2")
    assert_applied(run, expected, nan_ok=0)
    np.testing.assert_allclose(model.history.history["learning_rate"], expected[[4, 9]],
                               rtol=1e-12)


def test_early_stopping_leaves_history_and_hold_consistent() -> None:
    model = rate_probe_model()
    clr = CyclicLR(BASE, TOP, STEP, mode="triangular2")
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    run = fit_probe(model, 5, [clr, stop], epochs=6)
    assert stop.stopped_epoch == 1 and len(run.rates) == 10  # stopped after two epochs
    expected = torch_rates(20, mode="triangular2")
    assert_applied(run, expected[:10], nan_ok=0)
    assert clr.history["iterations"].tolist() == list(range(1, 11))
    np.testing.assert_allclose(clr.history["lr"], expected[:10], rtol=1e-12)
    # The next step's rate is held as a plain rate...
    held = fit_probe(model, 4, [], run=run)
    assert_applied(held, np.full(4, expected[10]), start=10, nan_ok=0)
    # ... and the callback's next fit runs the cycle on at the optimizer's count.
    again = fit_probe(model, 6, [clr], run=held)
    assert_applied(again, expected[14:20], start=14, nan_ok=0)


class StopAt(keras.callbacks.Callback):
    """``model.stop_training = True`` after batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.current = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if (self.current, batch) == (self.epoch, self.batch):
            self.model.stop_training = True


def test_stopping_in_the_middle_of_an_epoch_leaves_history_and_hold_consistent() -> None:
    model = rate_probe_model()
    clr = CyclicLR(BASE, TOP, STEP, mode="triangular2")
    run = fit_recorded(model, 5, [clr, StopAt(1, 1)], epochs=4)
    expected = torch_rates(20, mode="triangular2")
    assert len(run.rates) == 7
    assert_applied(run, expected[:7], nan_ok=0)
    assert clr.history["iterations"].tolist() == list(range(1, 8))
    np.testing.assert_allclose(clr.history["lr"], expected[:7], rtol=1e-12)
    np.testing.assert_allclose(model.history.history["learning_rate"], expected[[4, 6]],
                               rtol=1e-12)
    held = fit_recorded(model, 3, [], run=run)
    assert_applied(held, np.full(3, expected[7]), start=7, nan_ok=0)


# -- ModelCheckpoint, then resuming ----------------------------------------------------------------

ARGS = {"base_lr": BASE, "max_lr": TOP, "step_size": STEP, "mode": "exp_range", "gamma": 0.95}
RESET_AFTER_EPOCH, NEW_BASE, STEPS = 1, 0.02, 5



def uninterrupted(n: int) -> np.ndarray:
    split = (RESET_AFTER_EPOCH + 1) * STEPS
    kwargs = {"mode": "exp_range", "gamma": 0.95}
    return restarted((split, kwargs), (n - split, {**kwargs, "base": NEW_BASE}))


@pytest.mark.parametrize("weights_only", [False, True], ids=["keras-file", "weights-only"])
def test_model_checkpoint_then_resume_carries_the_cycle_and_its_reset(
    tmp_path: Path, weights_only: bool,
) -> None:
    path = tmp_path / ("ckpt.weights.h5" if weights_only else "ckpt.keras")
    checkpoint = keras.callbacks.ModelCheckpoint(str(path), save_weights_only=weights_only)
    model, clr = rate_probe_model(), CyclicLR(**ARGS)
    first = fit_recorded(model, STEPS, [clr, ResetAfterEpoch(clr, RESET_AFTER_EPOCH, new_base_lr=NEW_BASE), checkpoint], epochs=3)
    assert_applied(first, uninterrupted(15), nan_ok=0)
    assert path.exists()
    clr2 = CyclicLR(**ARGS)
    if weights_only:
        model2 = rate_probe_model()
        clr2.attach(model2)
        model2.load_weights(path)
    else:
        model2 = keras.models.load_model(path, custom_objects={"LastPrediction": LastPrediction})
    run = fit_recorded(model2, STEPS, [clr2], epochs=2)
    assert run.iterations.tolist() == list(range(15, 25))
    expected = uninterrupted(25)[15:]
    assert_applied(run, expected, nan_ok=0)
    np.testing.assert_allclose(clr2.history["lr"], expected, rtol=1e-12)
    assert clr2.base_lr == NEW_BASE


# -- damaged cycle state ---------------------------------------------------------------------------

GEOMETRY = {"step_size": 2.5, "step_size_down": 1.5}  # up=5, down=3, denominator=2 in the state
DAMAGE = {"up-0": ("up", 0), "up-negative": ("up", -4), "down-0": ("down", 0),
          "down-negative": ("down", -3), "denominator-0": ("denominator", 0),
          "denominator-negative": ("denominator", -2)}
#: Where a checkpoint written during a fit with a clrplug callback keeps the cycle's numbers.
STATE_GROUP = "optimizer/clrplug_cycle_state/vars"


def _state_store(schedule: Any, **changes: Any) -> dict[str, np.ndarray]:
    """The arrays a checkpoint holds for ``schedule``, with ``changes`` written over them."""
    store = schedule.state()
    for name, value in changes.items():
        store[name] = np.asarray(value, dtype=store[name].dtype)
    return store


def test_a_checkpoint_saved_during_a_fit_holds_the_cycle_as_named_numbers(tmp_path: Path) -> None:
    model, clr = rate_probe_model(), CyclicLR(BASE, TOP, **GEOMETRY)
    saved: list[Path] = []

    class Save(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            saved.append(tmp_path / "mid.weights.h5")
            self.model.save_weights(saved[-1])

    fit_probe(model, 4, [clr, Save()])
    with h5py.File(saved[-1], "r") as store:
        group = store[STATE_GROUP]
        fields = {name: group[name][()] for name in group}
        dtypes = {name: group[name].dtype for name in group}
    assert (fields["up"], fields["down"], fields["denominator"], fields["period"]) == (5, 3, 2, 8)
    assert fields["base_lr"] == BASE and fields["max_lr"] == TOP  # float64, exactly
    assert {str(d) for d in dtypes.values()} == {"int64", "float64"}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_weights_checkpoint_is_refused_clearly(tmp_path: Path, damage: str) -> None:
    field, new = DAMAGE[damage]
    model, clr = rate_probe_model(), CyclicLR(BASE, TOP, **GEOMETRY)
    clr.attach(model)
    good, bad = tmp_path / "good.weights.h5", tmp_path / "bad.weights.h5"
    model.save_weights(good)
    shutil.copy(good, bad)
    with h5py.File(bad, "r+") as store:
        store[f"{STATE_GROUP}/{field}"][...] = new
    model2, clr2 = rate_probe_model(), CyclicLR(BASE, TOP, **GEOMETRY)
    clr2.attach(model2)
    before = clr2.schedule.state_key()
    with pytest.raises(Exception, match=r"cycle state .* is damaged \(step sizes"):
        model2.load_weights(bad)
    assert clr2.schedule.state_key() == before


def test_damaged_state_changes_nothing_on_the_host() -> None:
    """A hold flag that is fine and step sizes that are not: nothing of it is applied."""
    model, clr = rate_probe_model(), CyclicLR(BASE, TOP, **GEOMETRY)
    clr.attach(model)
    before = clr.schedule.state_key()
    with pytest.raises(ClrplugError, match=r"is damaged \(step sizes"):
        clr.schedule.load_state(_state_store(clr.schedule, hold=1, held_lr=0.5, denominator=0))
    assert clr.schedule.state_key() == before and not clr.schedule.holding


@pytest.mark.parametrize("new", [0, -7])
def test_a_damaged_accumulation_count_is_refused_clearly(new: int) -> None:
    model = rate_probe_model(keras.optimizers.SGD(0.1, gradient_accumulation_steps=7))
    clr = CyclicLR(BASE, TOP, STEP)
    clr.attach(model)
    with pytest.raises(ClrplugError, match=rf"damaged \(update divisor {new}, where the optimizer accumulates 7"):
        clr.schedule.load_state(_state_store(clr.schedule, accumulation=new))


def test_a_cycle_length_that_is_not_up_plus_down_is_refused_clearly() -> None:
    model, clr = rate_probe_model(), CyclicLR(BASE, TOP, **GEOMETRY)  # up=5, down=3
    clr.attach(model)
    before = clr.schedule.state_key()
    with pytest.raises(ClrplugError, match=r"is damaged \(cycle length 9, not 5 \+ 3\)"):
        clr.schedule.load_state(_state_store(clr.schedule, period=9))
    assert clr.schedule.state_key() == before


def test_a_missing_field_is_refused_clearly() -> None:
    model, clr = rate_probe_model(), CyclicLR(BASE, TOP, STEP)
    clr.attach(model)
    store = clr.schedule.state()
    del store["cycle_start"]
    with pytest.raises(ClrplugError, match=r"is damaged \(missing field\(s\) cycle_start\)"):
        clr.schedule.load_state(store)


def test_damaged_one_cycle_phases_are_refused_clearly() -> None:
    model, one_cycle = rate_probe_model(), OneCycleLR(0.1, total_steps=40, cycle_momentum=False)
    one_cycle.attach(model)
    doubled = 2 * float(one_cycle.schedule.state()["lr_from0"])  # the first phase's starting rate
    with pytest.raises(ClrplugError, match=r"is damaged \(phase field\(s\) lr_from0 do not match"):
        one_cycle.schedule.load_state(_state_store(one_cycle.schedule, lr_from0=doubled))


def test_a_plain_checkpoint_leaves_the_cycle_as_it_is(tmp_path: Path) -> None:
    """A file saved by plain Keras (no cycle numbers in it) loads into a driven optimizer's
    model weights and changes nothing of the cycle."""
    plain = rate_probe_model()
    plain.save_weights(tmp_path / "plain.weights.h5")
    model, clr = rate_probe_model(), CyclicLR(BASE, TOP, **GEOMETRY)
    clr.attach(model)
    before = clr.schedule.state_key()
    model.load_weights(tmp_path / "plain.weights.h5")
    assert clr.schedule.state_key() == before


def test_a_scale_function_failing_on_the_table_is_refused_when_the_callback_is_made() -> None:
    """The scale table is computed when the callback is created: a failure names the
    function, and no model was touched."""

    def picky(x: Any) -> Any:
        x = np.asarray(x)
        # Inside the first table, past the points checked at creation.
        if np.any(x == 1001):
            raise ValueError("no 1001")
        return np.where(x < 3, 1.0, 0.5)

    with pytest.raises(clrplug.errors.PolicyEvaluationError, match=r"'picky' raised ValueError: no 1001"):
        CyclicLR(BASE, TOP, STEP, scale_fn=picky, scale_mode="iterations")


@pytest.mark.parametrize("start", [2**31, -(2**31), 2**40])
def test_a_start_the_counter_cannot_hold_is_refused(start: int) -> None:
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=rf"start.*{start}"):
        clrplug.OneCycleSchedule(0.1, 100, start=start)
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=rf"cycle_start.*{start}"):
        clrplug.CyclicalSchedule(0.001, 0.006, 4, cycle_start=start)


# -- the command line's arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
        (["policies", "--bogus"], r"unrecognized arguments: --bogus"),
        (["plot"], r"the following arguments are required: MODE"),
        (["plot", "triangular", "--steps", "many"], r"argument --steps: invalid int value: 'many'"),
        (["plot", "triangular", "--base-lr"], r"argument --base-lr: expected one argument"),
        (["demo", "--verbose", "5"], r"argument --verbose: invalid choice: '?5'?"),
        (["new-plugin"], r"the following arguments are required: NAME"),
        ([], r"the following arguments are required: COMMAND"),
    ],
    ids=["unknown-command", "unknown-option", "missing-mode", "bad-int", "missing-value",
         "bad-choice", "missing-name", "no-command"],
)
def test_argument_errors_exit_2_with_usage(argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: clrplug") and "error:" in err
    assert len(re.findall(message, err)) == 1, err


def test_no_command_in_a_real_process_exits_2_with_usage() -> None:
    out = subprocess.run([sys.executable, "-m", "clrplug"], capture_output=True, text=True,
                         check=False, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("usage: clrplug") and "COMMAND" in out.stderr
    assert out.stdout == ""


def test_version_prints_the_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"clrplug {clrplug.__version__}"


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["--version"])
    assert capsys.readouterr().out.strip() == f"clrplug {metadata.version('clrplug')}"


CONFLICTING = """
import numpy as np
import clrplug

@clrplug.hookimpl
def clrplug_register_policies(register):
    register(clrplug.Policy("wave", lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0))))
    register(clrplug.Policy("{own}", lambda x: np.ones_like(x)))
"""


def test_policies_shows_a_conflict_row_per_source(
    fresh_registry: Registry, fake_dist: Callable[..., Path], capsys: pytest.CaptureFixture[str],
) -> None:
    fake_dist("clrplug-a", "1.0", {"conflict_a": CONFLICTING.format(own="only_a")},
              {"clrplug": {"a": "conflict_a"}})
    fake_dist("clrplug-b", "2.0", {"conflict_b": CONFLICTING.format(own="only_b")},
              {"clrplug": {"b": "conflict_b"}})
    assert cli_main(["policies", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    wave = [r for r in rows if r["name"] == "wave"]
    assert sorted((r["distribution"], r["version"], r["status"]) for r in wave) == [
        ("clrplug-a", "1.0", "conflict"), ("clrplug-b", "2.0", "conflict")]
    status = {r["name"]: r["status"] for r in rows if r["name"] in ("only_a", "only_b", "triangular")}
    assert status == {"only_a": "ok", "only_b": "ok", "triangular": "ok"}
    assert cli_main(["policies"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " wave " in f" {line} "]
    assert len(lines) == 2 and all(line.rstrip().endswith("conflict") for line in lines)
    assert {"clrplug-a 1.0", "clrplug-b 2.0"} == {
        src for line in lines for src in ("clrplug-a 1.0", "clrplug-b 2.0") if src in line}
    with pytest.raises(clrplug.errors.PolicyConflictError):
        CyclicLR(mode="wave")


def test_one_cycle_with_a_damaged_total_is_refused() -> None:
    model = rate_probe_model(keras.optimizers.SGD(0.1, momentum=0.9))
    one_cycle = OneCycleLR(0.05, total_steps=20)
    one_cycle.attach(model)
    before = one_cycle.schedule.state_key()
    with pytest.raises(ClrplugError, match=r"total_steps"):
        one_cycle.schedule.load_state(_state_store(one_cycle.schedule, total_steps=-5))
    assert one_cycle.schedule.state_key() == before
