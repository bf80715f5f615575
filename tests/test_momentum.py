"""Momentum cycling on ``CyclicLR`` and ``CyclicalSchedule``, checked against PyTorch.

The momentum (SGD's ``momentum``, Adam's, AdamW's and Adamax's ``beta_1``) must move
inversely to the rate exactly as ``torch.optim.lr_scheduler.CyclicLR`` moves it, inside
the compiled step. Rates and momenta are read from real weight updates by the rate
probe (tests/probe.py, through tests/recording.py); the expected values come from
torch (tests/oracles.py) or from a hand computation of Keras' update written out below,
never from clrplug. Each optimizer's own momentum differs from the cycle's bounds, so a
momentum that is not cycled, or not given back, is seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from oracles import seed_momenta, torch_cyclic
from probe import fit_probe, rate_probe_model
from recording import (
    Crash,
    ResetAfterEpoch,
    SaveAt,
    assert_applied,
    assert_loaded_run,
    fit_recorded,
    record_biases,
)

import clrplug
from clrplug import CyclicalSchedule, CyclicLR
from clrplug.errors import ClrplugError

BACKEND = keras.backend.backend()
OWN_MOMENTUM = 0.7  # SGD's own momentum: outside the cycle's [0.8, 0.9]
OWN_BETA_1 = 0.95  # Adam's own beta_1: outside the cycle's [0.8, 0.9]
SUPPORTED = r"SGD with momentum > 0, or Adam, AdamW or Adamax \(beta_1\)"


def sgd() -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(0.1, momentum=OWN_MOMENTUM)


def adam() -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(0.1, beta_1=OWN_BETA_1)


OPTIMIZERS: dict[str, Callable[[], keras.optimizers.Optimizer]] = {"sgd": sgd, "adam": adam}


def value(x: Any) -> float:
    """A float, a Keras variable or a tensor, as a Python float."""
    return float(np.asarray(keras.ops.convert_to_numpy(x)))


def torch_sequence(n: int, optimizer: str = "sgd", **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's rates and momenta for updates 0..n-1 of CyclicLR-style ``kwargs``."""
    args = dict(kwargs)
    args["step_size_up"] = args.pop("step_size")
    lr, momentum = torch_cyclic(n, cycle_momentum=True, optimizer=optimizer, **args)
    assert momentum is not None
    return lr, momentum


# -- rates and momenta against PyTorch -------------------------------------------------

MODES = {
    "triangular": {"mode": "triangular"},
    "triangular2": {"mode": "triangular2"},
    "exp_range": {"mode": "exp_range", "gamma": 0.9},
}
GEOMETRIES = {"symmetric": {"step_size": 3}, "asymmetric": {"step_size": 3, "step_size_down": 2}}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("mode", list(MODES))
def test_rates_and_momenta_are_pytorchs(mode: str, geometry: str, optimizer: str) -> None:
    """Four cycles and more: every update's rate and momentum (beta_1) equal torch's."""
    kwargs = {"base_lr": 0.01, "max_lr": 0.05, **GEOMETRIES[geometry], **MODES[mode]}
    clr = CyclicLR(**kwargs, cycle_momentum=True, base_momentum=0.8, max_momentum=0.9)
    model = rate_probe_model(OPTIMIZERS[optimizer]())
    # Adam's first update does not reveal beta_1: torch's first value is assumed (0.9).
    run = fit_probe(model, 8, [clr], epochs=3, initial_beta_1=0.9)
    lr, momentum = torch_sequence(24, optimizer, **kwargs)
    assert momentum[0] == 0.9 and momentum.min() < 0.85  # the oracle does cycle
    assert_applied(run, lr, momentum)
    history = clr.history
    np.testing.assert_allclose(history["lr"], lr, rtol=1e-12)
    np.testing.assert_allclose(history["momentum"], momentum, rtol=1e-12)
    assert history["iterations"].tolist() == list(range(1, 25))


def test_momentum_goes_into_history_and_epoch_logs() -> None:
    kwargs = {"base_lr": 0.01, "max_lr": 0.05, "step_size": 4, "mode": "triangular2"}
    clr = CyclicLR(**kwargs, cycle_momentum=True, base_momentum=0.85, max_momentum=0.95)
    model = rate_probe_model(sgd())
    fit_probe(model, 5, [clr], epochs=3)
    lr, momentum = torch_cyclic(15, 0.01, 0.05, 4, mode="triangular2", cycle_momentum=True,
                                base_momentum=0.85, max_momentum=0.95)
    logs = model.history.history
    np.testing.assert_allclose(logs["momentum"], momentum[[4, 9, 14]], rtol=1e-12)
    np.testing.assert_allclose(logs["learning_rate"], lr[[4, 9, 14]], rtol=1e-12)
    np.testing.assert_allclose(clr.history["momentum"], momentum, rtol=1e-12)


def test_momentum_is_off_by_default_and_the_optimizers_own_is_applied() -> None:
    clr = CyclicLR(0.01, 0.05, 3)
    assert clr.cycle_momentum is False
    model = rate_probe_model(sgd())
    run = fit_probe(model, 8, [clr], epochs=2)
    lr, _ = torch_cyclic(16, 0.01, 0.05, 3)
    assert_applied(run, lr, np.full(16, OWN_MOMENTUM))
    assert "momentum" not in clr.history and "momentum" not in model.history.history


def test_the_momentum_is_computed_in_the_step_and_adds_no_variable() -> None:
    """The cycle's momentum reaches the update steps from the traced step (the applied
    momenta are PyTorch's); the optimizer holds no clrplug variable, and between steps its
    momentum attribute is a plain float, its own, also in ``get_config``."""
    model = rate_probe_model(sgd())
    model.optimizer.build(model.trainable_variables)
    before = [v.path for v in model.optimizer.variables]
    clr = CyclicLR(0.01, 0.05, 3, cycle_momentum=True)
    seen: list[Any] = []

    class Look(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            optimizer = self.model.optimizer
            seen.append((optimizer.momentum, optimizer.get_config()["momentum"],
                         [v.path for v in optimizer.variables]))

    run = fit_probe(model, 8, [clr, Look()])
    _, momentum = torch_cyclic(8, 0.01, 0.05, 3, cycle_momentum=True)
    assert_applied(run, run.rates, momentum)
    # The rate Variable is set aside while the schedule drives; nothing is added.
    during = [p for p in before if not p.endswith("/learning_rate")]
    for attribute, config, paths in seen:
        assert type(attribute) is float and attribute == config == OWN_MOMENTUM
        assert paths == during


def test_the_defaults_are_base_0_8_and_max_0_9() -> None:
    clr = CyclicLR(0.01, 0.05, 2, cycle_momentum=True)
    run = fit_probe(rate_probe_model(sgd()), 8, [clr])
    lr, momentum = torch_cyclic(8, 0.01, 0.05, 2, cycle_momentum=True)  # torch: 0.8, 0.9
    assert_applied(run, lr, momentum)


def test_a_standalone_schedule_bound_to_its_optimizer_cycles_momentum() -> None:
    schedule = CyclicalSchedule(0.01, 0.05, 3, mode="exp_range", gamma=0.9, step_size_down=2,
                                cycle_momentum=True)
    model = rate_probe_model(keras.optimizers.SGD(learning_rate=schedule, momentum=OWN_MOMENTUM))
    model.optimizer.build(model.trainable_variables)
    schedule.bind(model.optimizer)
    run = fit_probe(model, 8, [], epochs=2)
    lr, momentum = torch_cyclic(16, 0.01, 0.05, 3, 2, mode="exp_range", gamma=0.9,
                                cycle_momentum=True)
    assert_applied(run, lr, momentum)


def test_a_standalone_schedule_that_cycles_momentum_must_be_bound() -> None:
    schedule = CyclicalSchedule(0.01, 0.05, 3, cycle_momentum=True)
    with pytest.raises(ClrplugError, match=r"cycles momentum, so it must be bound"):
        schedule(0)


# -- refusals -------------------------------------------------------------------------------

REFUSED: dict[str, tuple[Callable[[], Any], str]] = {
    "Lion": (lambda: keras.optimizers.Lion(0.1), SUPPORTED + r"; got Lion"),
    "RMSprop": (lambda: keras.optimizers.RMSprop(0.1), SUPPORTED + r"; got RMSprop"),
    "Nadam": (lambda: keras.optimizers.Nadam(0.1), SUPPORTED + r"; got Nadam"),
    "SGD-without-momentum": (lambda: keras.optimizers.SGD(0.1),
                             r"cycle_momentum=True with SGD needs momentum > 0"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_an_optimizer_without_a_momentum_to_cycle_is_refused(name: str) -> None:
    factory, message = REFUSED[name]
    model = rate_probe_model(factory())
    model.optimizer.build(model.trainable_variables)
    before = len(model.optimizer.variables)
    clr = CyclicLR(0.01, 0.05, 3, cycle_momentum=True)
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=message):
        clr.attach(model)
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=message):
        fit_probe(model, 4, [CyclicLR(0.01, 0.05, 3, cycle_momentum=True)],
                  measure="sgd" if name.startswith("SGD") else "momentum")
    # Refused before anything changed: no variable added, the optimizer's own rate in force.
    assert len(model.optimizer.variables) == before
    assert value(model.optimizer.learning_rate) == pytest.approx(0.1)
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=message):
        CyclicalSchedule(0.01, 0.05, 3, cycle_momentum=True).bind(model.optimizer)


def test_sgd_without_momentum_still_trains_at_its_own_rate_after_the_refusal() -> None:
    model = rate_probe_model(keras.optimizers.SGD(0.1))
    with pytest.raises(clrplug.errors.InvalidArgumentError):
        fit_probe(model, 4, [CyclicLR(0.01, 0.05, 3, cycle_momentum=True)])
    run = fit_probe(model, 4, [])
    assert_applied(run, np.full(4, 0.1))


# -- AdamW and Adamax: the full update by hand ----------------------------------------------

WEIGHT_DECAY = 0.3


def power_f32(beta: float, k: int) -> float:
    """``1 - beta**k`` as Keras computes it in the update: in float32, where ``beta**k`` near
    1 loses digits (``1 - 0.999**3`` is off by 3e-5 relative), which the update keeps."""
    return float(np.float32(1) - np.power(np.float32(beta), np.float32(k)))


def keras_adamw(gradients: np.ndarray, rates: np.ndarray, beta_1: np.ndarray, beta_2: float,
                epsilon: float, weight_decay: float) -> np.ndarray:
    """Biases of Keras' AdamW from zero, in float64, one update at a time.

    Keras 3 (``BaseOptimizer.apply``): first the decoupled weight decay
    ``w -= w * weight_decay * lr``, then Adam's step with ``k = iterations + 1``:
    ``m += (g - m)(1 - beta_1)``, ``v += (g^2 - v)(1 - beta_2)``,
    ``alpha = lr sqrt(1 - beta_2^k) / (1 - beta_1^k)``, ``w -= alpha m / (sqrt(v) + eps)``,
    where ``beta_1^k`` is the current beta_1 to the k-th power; the two bias corrections
    in float32 (:func:`power_f32`), everything else in float64.
    """
    w = np.zeros(gradients.shape[1])
    m, v = np.zeros_like(w), np.zeros_like(w)
    out = [w.copy()]
    for t, g in enumerate(gradients):
        k = t + 1
        lr, b1 = rates[t], beta_1[t]
        w = w - w * weight_decay * lr
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - beta_2)
        alpha = lr * np.sqrt(power_f32(beta_2, k)) / power_f32(b1, k)
        w = w - alpha * m / (np.sqrt(v) + epsilon)
        out.append(w.copy())
    return np.array(out)


def keras_adamax(gradients: np.ndarray, rates: np.ndarray, beta_1: np.ndarray, beta_2: float,
                 epsilon: float, weight_decay: float) -> np.ndarray:
    """Biases of Keras' Adamax from zero: ``m += (g - m)(1 - beta_1)``,
    ``u = max(beta_2 u, |g|)``, ``w -= lr m / ((1 - beta_1^k)(u + eps))`` (the bias
    correction in float32, :func:`power_f32`)."""
    assert weight_decay == 0
    w = np.zeros(gradients.shape[1])
    m, u = np.zeros_like(w), np.zeros_like(w)
    out = [w.copy()]
    for t, g in enumerate(gradients):
        k = t + 1
        lr, b1 = rates[t], beta_1[t]
        m = m + (g - m) * (1 - b1)
        u = np.maximum(beta_2 * u, np.abs(g))
        w = w - lr * m / (power_f32(b1, k) * (u + epsilon))
        out.append(w.copy())
    return np.array(out)


VARIANTS = {
    "AdamW": (lambda: keras.optimizers.AdamW(0.1, weight_decay=WEIGHT_DECAY, beta_1=OWN_BETA_1),
              keras_adamw, WEIGHT_DECAY),
    "Adamax": (lambda: keras.optimizers.Adamax(0.1, beta_1=OWN_BETA_1), keras_adamax, 0.0),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_adamw_and_adamax_cycle_beta_1(name: str) -> None:
    factory, by_hand, decay = VARIANTS[name]
    kwargs = {"base_lr": 0.01, "max_lr": 0.05, "step_size": 3, "step_size_down": 2,
              "mode": "triangular2"}
    model = rate_probe_model(factory())
    clr = CyclicLR(**kwargs, cycle_momentum=True)
    biases, gradients, iterations = record_biases(model, 8, [clr], epochs=3)
    assert iterations.tolist() == list(range(24))
    lr, beta_1 = torch_sequence(24, "adam", **kwargs)
    optimizer = model.optimizer
    beta_2, epsilon = value(optimizer.beta_2), value(optimizer.epsilon)
    expected = by_hand(gradients, lr, beta_1, beta_2, epsilon, decay)
    # float32 biases and updates: a few roundings of the largest bias per step.
    atol = 24 * 2.0**-24 * np.abs(expected).max() + 1e-7 * 0.05
    np.testing.assert_allclose(biases, expected, rtol=1e-5, atol=atol)
    # The comparison can tell: with its own beta_1 kept, the biases would be elsewhere.
    uncycled = by_hand(gradients, lr, np.full(24, OWN_BETA_1), beta_2, epsilon, decay)
    assert np.abs(uncycled - biases).max() > 100 * atol
    np.testing.assert_allclose(clr.history["momentum"], beta_1, rtol=1e-12)
    # After the fit: a plain beta_1, the cycle's at the next update (the seed's geometry).
    reached = float(seed_momenta([24], 0.8, 0.9, 3, step_size_down=2, mode="triangular2")[0])
    assert type(optimizer.beta_1) is float and optimizer.beta_1 == pytest.approx(reached, rel=1e-12)
    assert optimizer.get_config()["beta_1"] == optimizer.beta_1


# -- given back after fit, and by whatever gives the rate back --------------------------------


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_after_fit_the_momentum_is_the_cycles_and_a_plain_fit_uses_it(optimizer: str) -> None:
    """As PyTorch's scheduler leaves it: the momentum the cycle reached, now a plain float."""
    model = rate_probe_model(OPTIMIZERS[optimizer]())
    clr = CyclicLR(0.01, 0.05, 3, mode="triangular2", cycle_momentum=True)
    first = fit_probe(model, 7, [clr], initial_beta_1=0.9)
    attribute = "momentum" if optimizer == "sgd" else "beta_1"
    own = float(seed_momenta([7], 0.8, 0.9, 3, mode="triangular2")[0])
    opt = model.optimizer
    assert type(getattr(opt, attribute)) is float
    assert getattr(opt, attribute) == pytest.approx(own, rel=1e-12)
    assert opt.get_config()[attribute] == getattr(opt, attribute)
    plain = fit_probe(model, 6, [], run=first)
    lr, _ = torch_sequence(8, optimizer, base_lr=0.01, max_lr=0.05, step_size=3,
                           mode="triangular2")
    assert_applied(plain, np.full(6, lr[7]), np.full(6, own), start=7, nan_ok=0)
    # The callback takes over again; its cycle runs on the optimizer's count (as in
    # test_engine), the plain updates included.
    cycling = fit_probe(model, 6, [clr], run=plain)
    lr, momentum = torch_sequence(19, optimizer, base_lr=0.01, max_lr=0.05, step_size=3,
                                  mode="triangular2")
    assert_applied(cycling, lr[13:], momentum[13:], start=13, nan_ok=0)


class SetRate(keras.callbacks.Callback):
    """``optimizer.learning_rate = rate`` at the start of ``epoch`` (a plain rate, held)."""

    def __init__(self, epoch: int, rate: float) -> None:
        super().__init__()
        self.epoch, self.rate = epoch, rate

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.epoch:
            self.model.optimizer.learning_rate = self.rate


def test_setting_a_plain_rate_mid_fit_gives_the_momentum_back() -> None:
    model = rate_probe_model(sgd())
    clr = CyclicLR(0.01, 0.05, 3, cycle_momentum=True)
    run = fit_probe(model, 6, [clr, SetRate(1, 0.02)], epochs=3)
    lr, momentum = torch_cyclic(6, 0.01, 0.05, 3, cycle_momentum=True)
    assert_applied(run, np.concatenate([lr, np.full(12, 0.02)]),
                   np.concatenate([momentum, np.full(12, OWN_MOMENTUM)]))
    assert value(model.optimizer.momentum) == pytest.approx(OWN_MOMENTUM, rel=1e-7)
    # The callback's record says what was applied: the plain rate from epoch 1 on.
    expected_lr = np.concatenate([lr, np.full(12, 0.02)])
    np.testing.assert_allclose(clr.history["lr"], expected_lr, rtol=1e-12)
    np.testing.assert_allclose(clr.history["momentum"],
                               np.concatenate([momentum, np.full(12, OWN_MOMENTUM)]), rtol=1e-12)
    np.testing.assert_allclose(model.history.history["learning_rate"], [lr[-1], 0.02, 0.02],
                               rtol=1e-12)


# -- saved and resumed with the cycle ----------------------------------------------------------

ARGS = {"base_lr": 0.01, "max_lr": 0.05, "step_size": 3, "mode": "exp_range", "gamma": 0.95,
        "cycle_momentum": True, "base_momentum": 0.8, "max_momentum": 0.9}
STEPS = 5
RESET_AFTER_EPOCH = 1
NEW_BASE = 0.02


def reset(clr: CyclicLR) -> ResetAfterEpoch:
    return ResetAfterEpoch(clr, RESET_AFTER_EPOCH, new_base_lr=NEW_BASE)

def uninterrupted(n: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's rates and momenta of the run below, reset after epoch 1 to base_lr=0.02."""
    split = (RESET_AFTER_EPOCH + 1) * STEPS
    args = {k: v for k, v in ARGS.items() if k != "cycle_momentum"}
    first = torch_sequence(split, **args)
    second = torch_sequence(n - split, **{**args, "base_lr": NEW_BASE})
    return np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]])




@pytest.mark.parametrize(
    ("save_freq", "crash"),
    [("epoch", {"epoch": 2}), (2, {"epoch": 3, "batch": 2})],
    ids=["epoch", "every-2-batches"],
)
def test_backup_and_restore_resumes_rate_and_momentum(
    tmp_path: Path, save_freq: Any, crash: dict[str, int]
) -> None:
    folder = str(tmp_path / "backup")
    model, clr = rate_probe_model(sgd()), CyclicLR(**ARGS)
    backup = keras.callbacks.BackupAndRestore(folder, save_freq=save_freq)
    with pytest.raises(KeyboardInterrupt):
        fit_recorded(model, STEPS, [clr, reset(clr), backup, Crash(**crash)], epochs=6)

    model2, clr2 = rate_probe_model(sgd()), CyclicLR(**ARGS)
    backup2 = keras.callbacks.BackupAndRestore(folder, save_freq=save_freq)
    run = fit_recorded(model2, STEPS, [clr2, reset(clr2), backup2], epochs=6)
    restored = int(run.iterations[0])
    assert restored >= (RESET_AFTER_EPOCH + 1) * STEPS  # the reset is in the checkpoint
    lr, momentum = uninterrupted(int(run.iterations[-1]) + 1)
    # The restored velocity is not zero: the first resumed update cannot be measured.
    assert_applied(run, lr[restored:], momentum[restored:])
    history = clr2.history
    np.testing.assert_allclose(history["lr"], lr[restored:], rtol=1e-12)
    np.testing.assert_allclose(history["momentum"], momentum[restored:], rtol=1e-12)
    assert history["iterations"][0] == restored + 1
    # The next update's momentum, as a plain float (the seed's geometry, after the reset).
    after_reset = int(run.iterations[-1]) + 1 - (RESET_AFTER_EPOCH + 1) * STEPS
    reached = seed_momenta([after_reset], 0.8, 0.9, 3, mode="exp_range", gamma=0.95)[0]
    assert model2.optimizer.momentum == pytest.approx(reached, rel=1e-12)


LOAD_SCRIPT = """
import json, sys
import keras, numpy as np
sys.path.insert(0, {tests!r})
from probe import LastPrediction
from recording import fit_recorded
from clrplug import CyclicLR
model = keras.models.load_model({path!r}, custom_objects={{"LastPrediction": LastPrediction}})
own = model.optimizer.get_config()["momentum"]
clr = CyclicLR(**{args!r})
run = fit_recorded(model, {steps}, [clr], epochs=2)
print(json.dumps({{
    "own": own, "iterations": run.iterations.tolist(),
    "rates": run.rates.tolist(), "rate_atol": run.rate_atol.tolist(),
    "momenta": run.momenta.tolist(), "momentum_atol": run.momentum_atol.tolist(),
    "history_lr": clr.history["lr"].tolist(), "history_momentum": clr.history["momentum"].tolist(),
    "history_iterations": clr.history["iterations"].tolist(),
    "logged_momentum": model.history.history["momentum"],
    "momentum_after": model.optimizer.momentum,
}}))
"""


def test_model_save_then_load_model_in_a_new_process_resumes_rate_and_momentum(
    tmp_path: Path,
) -> None:
    model, clr = rate_probe_model(sgd()), CyclicLR(**ARGS)
    path = tmp_path / "model.keras"  # written during the fit, as ModelCheckpoint does
    fit_recorded(model, STEPS, [clr, reset(clr), SaveAt(path, 2)], epochs=3)
    script = LOAD_SCRIPT.format(tests=str(Path(__file__).parent), path=str(path), args=ARGS,
                                steps=STEPS)
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                         capture_output=True, text=True, check=False, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["own"] == OWN_MOMENTUM  # saved with the momentum it had when the fit began
    assert result["iterations"] == list(range(15, 25))
    lr, momentum = uninterrupted(25)
    assert_loaded_run(result, lr, momentum, first=15)
    np.testing.assert_allclose(result["logged_momentum"], momentum[[19, 24]], rtol=1e-12)
    reached = seed_momenta([25 - (RESET_AFTER_EPOCH + 1) * STEPS], 0.8, 0.9, 3, mode="exp_range",
                           gamma=0.95)[0]
    assert result["momentum_after"] == pytest.approx(reached, rel=1e-12)


def test_a_weights_checkpoint_carries_the_momentum_cycle(tmp_path: Path) -> None:
    model, clr = rate_probe_model(sgd()), CyclicLR(**ARGS)
    checkpoint = SaveAt(tmp_path / "ckpt.weights.h5", 2, weights_only=True)  # during the fit
    first = fit_recorded(model, STEPS, [clr, reset(clr), checkpoint], epochs=3)
    assert first.momenta is not None
    model2, clr2 = rate_probe_model(sgd()), CyclicLR(**ARGS)
    clr2.attach(model2)
    model2.load_weights(tmp_path / "ckpt.weights.h5")
    run = fit_recorded(model2, STEPS, [clr2], epochs=2)
    lr, momentum = uninterrupted(25)
    assert run.iterations.tolist() == list(range(15, 25))
    assert_applied(run, lr[15:], momentum[15:])

