"""Resume after interruption: the per-step rate sequence continues exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from oracles import seed_rates
from probe import BiasRecorder, bias_of, fit_steps, probe_model
from recording import Crash, ResetAfterEpoch, SaveAt

import clrplug
from clrplug import CyclicLR

TOL = {"rtol": 2e-5, "atol": 1e-9}
ARGS = {"base_lr": 0.001, "max_lr": 0.006, "step_size": 3, "mode": "exp_range", "gamma": 0.95}
STEPS = 5  # per epoch
RESET_AT_EPOCH_END = 1  # reset after epoch 1 (iteration 10) to base_lr=0.002


def reset(clr: CyclicLR) -> ResetAfterEpoch:
    return ResetAfterEpoch(clr, RESET_AT_EPOCH_END, new_base_lr=0.002)

def uninterrupted(n: int) -> np.ndarray:
    """Reference: the rates of an uninterrupted run, from the seed's transcription."""
    reset = (RESET_AT_EPOCH_END + 1) * STEPS
    first = seed_rates(np.arange(reset), **ARGS)
    second = seed_rates(np.arange(n - reset), **{**ARGS, "base_lr": 0.002})
    return np.concatenate([first, second])




@pytest.mark.parametrize(
    ("save_freq", "crash"),
    [("epoch", {"epoch": 2}), (2, {"epoch": 3, "batch": 2})],
    ids=["epoch", "every-2-batches"],
)
def test_backup_and_restore_continues_the_sequence_after_a_reset(
    tmp_path: Path, save_freq: Any, crash: dict[str, int]
) -> None:
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=save_freq)
    model, recorder = probe_model(), BiasRecorder()
    clr = CyclicLR(**ARGS)
    x = np.zeros((STEPS, 1), "float32")
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, x, batch_size=1, epochs=6, verbose=0, shuffle=False,
                  callbacks=[clr, reset(clr), recorder, backup, Crash(**crash)])
    done = len(recorder.values) - 1
    np.testing.assert_allclose(recorder.decrements(), uninterrupted(done), **TOL)

    # "New process": fresh model, optimizer and callbacks built the same way.
    model2, clr2 = probe_model(), CyclicLR(**ARGS)
    backup2 = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=save_freq)
    recorder2 = BiasRecorder()
    model2.fit(x, x, batch_size=1, epochs=6, verbose=0, shuffle=False,
               callbacks=[clr2, reset(clr2), backup2, recorder2])
    resumed = len(recorder2.values) - 1
    restored = int(keras.ops.convert_to_numpy(model2.optimizer.iterations)) - resumed
    assert 0 < restored <= done
    # A batch-level backup resumes the interrupted epoch from its first batch, with the
    # optimizer's counter (and so the rate) where the backup left it.
    expected = uninterrupted(restored + resumed)[restored:]
    np.testing.assert_allclose(recorder2.decrements(), expected, **TOL)
    np.testing.assert_allclose(clr2.history["lr"], expected, rtol=1e-12)
    assert clr2.history["iterations"][0] == restored + 1


def test_weights_checkpoint_loaded_into_a_fresh_model_carries_the_reset(tmp_path: Path) -> None:
    """A weights checkpoint written during the fit (as ModelCheckpoint writes them) holds
    the reset's numbers; one written after the fit is plain Keras (the counter only)."""
    model, clr = probe_model(), CyclicLR(**ARGS)
    fit_steps(model, STEPS, [clr], epochs=2)
    clr.reset(new_base_lr=0.002)
    fit_steps(model, STEPS, [clr, SaveAt(tmp_path / "ckpt.weights.h5", 0, weights_only=True)])

    model2, clr2, recorder = probe_model(), CyclicLR(**ARGS), BiasRecorder()
    clr2.attach(model2)  # same optimizer variables as when saved
    model2.load_weights(tmp_path / "ckpt.weights.h5")
    recorder.values.append(bias_of(model2))
    fit_steps(model2, STEPS, [clr2, recorder])
    np.testing.assert_allclose(recorder.decrements(), uninterrupted(20)[15:], **TOL)


def test_a_checkpoint_saved_without_clrplug_loads_unchanged(tmp_path: Path) -> None:
    plain = probe_model()
    fit_steps(plain, 4, [])
    plain.save_weights(tmp_path / "plain.weights.h5")
    model, clr = probe_model(), CyclicLR(**ARGS)
    clr.attach(model)
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        model.load_weights(tmp_path / "plain.weights.h5")
    assert clr.schedule.cycle_start == 0 and clr.base_lr == ARGS["base_lr"]


SCRIPT = """
import json, sys
import keras, numpy as np
sys.path.insert(0, {tests!r})
from probe import BiasRecorder, bias_of, fit_steps
from clrplug import CyclicLR
model = keras.models.load_model({path!r})
recorder = BiasRecorder()
recorder.values.append(bias_of(model))
clr = CyclicLR(**{args!r})
fit_steps(model, 10, [clr, recorder])
print(json.dumps({{"rates": recorder.decrements().tolist(),
                  "iterations": clr.history["iterations"].tolist()}}))
"""


def test_model_save_then_load_model_in_a_new_process(tmp_path: Path) -> None:
    """A ``.keras`` checkpoint written during the fit resumes the cycle, reset included."""
    model, clr = probe_model(), CyclicLR(**ARGS)
    path = tmp_path / "model.keras"
    fit_steps(model, STEPS, [clr, reset(clr), SaveAt(path, 2)], epochs=3)
    script = SCRIPT.format(tests=str(Path(__file__).parent), path=str(path), args=ARGS)
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["rates"], uninterrupted(25)[15:], **TOL)
    assert result["iterations"] == list(range(16, 26))


ORDER_SCRIPT = """
{first}
import keras
model = keras.models.load_model({path!r})
schedule = model.optimizer._learning_rate  # the property gives the current value
assert type(schedule).__name__ == "CyclicalSchedule", type(schedule)
config = schedule.get_config()
assert (config["base_lr"], config["max_lr"], config["step_size"]) == (0.001, 0.006, 7.0), config
print("ok")
"""


# Which import registers clrplug's classes with Keras does not depend on the backend:
# the other orders run on JAX only (each is a new process); every backend loads a file.
JAX_ONLY = pytest.mark.skipif(keras.backend.backend() != "jax",
                              reason="import order: checked once, on JAX")


@pytest.mark.parametrize(
    ("first", "loads"),
    [
        ("import keras; import clrplug", True),  # Keras first: registered on import
        pytest.param("import clrplug; clrplug.CyclicLR", True,  # a Keras piece registers all
                     marks=JAX_ONLY),
        pytest.param("import clrplug; clrplug.OneCycleLR", True, marks=JAX_ONLY),
        pytest.param("import clrplug.schedule", True, marks=JAX_ONLY),
        # clrplug alone, Keras after: no import hook registers
        pytest.param("import clrplug", False, marks=JAX_ONLY),
    ],
)
def test_a_saved_schedule_loads_once_clrplug_meets_keras(tmp_path: Path, first: str,
                                                         loads: bool) -> None:
    schedule = clrplug.CyclicalSchedule(0.001, 0.006, 7, mode="triangular2")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    path = tmp_path / "model.keras"
    model.save(path)
    script = ORDER_SCRIPT.format(first=first, path=str(path))
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=False)
    if loads:
        assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
    else:
        assert out.returncode != 0 and "Could not locate class 'CyclicalSchedule'" in out.stderr
