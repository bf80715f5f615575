"""Checkpoints written during and after a fit with clrplug move between backends whole.

Each backend's run saves here, in its own process, every kind of file clrplug's state
is in: a mid-epoch ``BackupAndRestore`` backup, ``ModelCheckpoint`` to ``.keras`` and to
``.weights.h5`` (both after a reset, so the reset's numbers must travel too),
``model.save()`` of a model whose optimizer holds a stand-alone ``CyclicalSchedule`` or
``OneCycleSchedule``, ``model.save()`` and ``save_weights()`` after a fit with
``CyclicLR``, and a ``.weights.h5`` checkpoint of a fit with ``OneCycleLR`` and Adam
(``beta_1`` cycled). Then each backend, this one included, loads them in a process of its
own, checks the optimizer's state and trains on:

* SGD (momentum 0.5): the state is the counter and the bias's velocity, computed here by
  hand; the rates applied are recovered from the bias (gradient 1:
  ``v_t = 0.5 v_(t-1) - lr_t``) and compared with the seed's formula in float64 or
  PyTorch's ``OneCycleLR`` (tests/oracles.py), to 1e-5;
* the files saved after a fit are loaded first, with clrplug made impossible to import in
  that process: plain Keras files, they train at the rate the cycle reached;
* Adam under ``OneCycleLR``: every optimizer variable loaded equals what the saving fit
  held when it wrote the file, and training on from the file moves the bias exactly as
  the saving fit went on from there (whose rates tests/test_one_cycle.py checks against
  PyTorch), to 1e-5.

A ``.keras`` file names the optimizer's backend class: one saved on PyTorch does not
train on JAX or TensorFlow even without clrplug. There, a plain Keras model saved the
same way is the control: clrplug's file must do exactly what the plain one does.
"""

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
from oracles import seed_rates, torch_one_cycle
from probe import BiasRecorder, fit_steps, optimizer_state, probe_model
from recording import Crash, ResetAfterEpoch

from clrplug import CyclicalSchedule, CyclicLR, OneCycleLR, OneCycleSchedule

HERE = keras.backend.backend()
BACKENDS = ("jax", "tensorflow", "torch")
ARGS = {"base_lr": 0.01, "max_lr": 0.05, "step_size": 3, "mode": "exp_range", "gamma": 0.95}
NEW_BASE = 0.02  # the reset at the end of epoch 0
STEPS = 5  # per epoch
MOMENTUM = 0.5
TESTS = Path(__file__).parent
#: A stand-alone 1cycle over two epochs (PyTorch's values stored in tests/torch_oracle.json).
ONE_CYCLE = {"max_lr": 0.1, "total_steps": 2 * STEPS, "cycle_momentum": False}
#: OneCycleLR with Adam, beta_1 cycled, over two epochs.
ADAM_CYCLE = {"max_lr": 0.05, "total_steps": 2 * STEPS}


def expected_rate(iteration: int) -> float:
    """The rate of update ``iteration`` of a run reset to ``NEW_BASE`` after epoch 0."""
    if iteration < STEPS:
        return float(seed_rates([iteration], **ARGS)[0])
    return float(seed_rates([iteration - STEPS], **{**ARGS, "base_lr": NEW_BASE})[0])


def expected_velocity(done: int, rate: Any = expected_rate) -> float:
    """The bias's SGD velocity after ``done`` updates (gradient 1 at each)."""
    velocity = 0.0
    for i in range(done):
        velocity = MOMENTUM * velocity - rate(i)
    return velocity


def standalone_rate(iteration: int) -> float:
    return float(seed_rates([iteration], **ARGS)[0])


def after_fit_rate(iteration: int) -> float:
    """A fit of ``STEPS`` updates with ``CyclicLR(**ARGS)``, then the rate it left held."""
    return standalone_rate(min(iteration, STEPS))


def one_cycle_rate(iteration: int) -> float:
    return float(torch_one_cycle(ONE_CYCLE["total_steps"], **ONE_CYCLE)[0][iteration])


def _optimizer() -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(0.1, momentum=MOMENTUM)


def save_everything(directory: Path) -> None:
    """Every kind of file, written during fits on this backend."""
    x = np.zeros((STEPS, 1), "float32")
    # A backup every 2 batches, and a crash after batch 2 of epoch 1 (update 8).
    model, clr = probe_model(_optimizer()), CyclicLR(**ARGS)
    backup = keras.callbacks.BackupAndRestore(str(directory / "backup"), save_freq=2)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, x, batch_size=1, epochs=3, verbose=0, shuffle=False,
                  callbacks=[clr, ResetAfterEpoch(clr, 0, new_base_lr=NEW_BASE), backup,
                             Crash(epoch=1, batch=2)])
    # Checkpoints at the end of epoch 0, after the reset.
    model, clr = probe_model(_optimizer()), CyclicLR(**ARGS)
    checkpoints = [
        keras.callbacks.ModelCheckpoint(str(directory / "epoch.keras"), save_freq="epoch"),
        keras.callbacks.ModelCheckpoint(str(directory / "epoch.weights.h5"), save_freq="epoch",
                                        save_weights_only=True),
    ]

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.model.stop_training = True

    model.fit(x, x, batch_size=1, epochs=3, verbose=0, shuffle=False,
              callbacks=[clr, ResetAfterEpoch(clr, 0, new_base_lr=NEW_BASE), *checkpoints,
                         StopAfterFirstEpoch()])
    # A stand-alone schedule, and the plain control, each after 5 updates.
    model = probe_model(keras.optimizers.SGD(CyclicalSchedule(**ARGS), momentum=MOMENTUM))
    fit_steps(model, STEPS, [])
    model.save(directory / "standalone.keras")
    plain = probe_model(_optimizer())
    fit_steps(plain, STEPS, [])
    plain.save(directory / "plain.keras")
    model = probe_model(keras.optimizers.SGD(OneCycleSchedule(**ONE_CYCLE), momentum=MOMENTUM))
    fit_steps(model, STEPS, [])
    model.save(directory / "onecycle.keras")
    # Saved after a fit: plain Keras files.
    model = probe_model(_optimizer())
    fit_steps(model, STEPS, [CyclicLR(**ARGS)])
    model.save(directory / "after.keras")
    model.save_weights(directory / "after.weights.h5")
    # OneCycleLR with Adam: a checkpoint after epoch 0 (file "adam-1"), and the fit going on.
    saved_state: dict[str, Any] = {}

    class KeepState(keras.callbacks.Callback):  # after ModelCheckpoint has written the file
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 0:
                saved_state.update(optimizer_state(self.model))

    model, recorder = probe_model(keras.optimizers.Adam(0.1)), BiasRecorder()
    model.fit(np.zeros((STEPS, 1), "float32"), np.zeros((STEPS, 1), "float32"), batch_size=1,
              epochs=2, verbose=0, shuffle=False, callbacks=[
                  OneCycleLR(**ADAM_CYCLE),
                  keras.callbacks.ModelCheckpoint(str(directory / "adam-{epoch}.weights.h5"),
                                                  save_freq="epoch", save_weights_only=True),
                  KeepState(), recorder])
    (directory / "adam.json").write_text(json.dumps(
        {"state": saved_state, "bias": recorder.values[STEPS:]}))


LOAD = textwrap.dedent(
    """
    import importlib.abc, json, shutil, sys, traceback
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import keras, numpy as np
    from probe import BiasRecorder, optimizer_state, probe_model

    source, work, kinds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(",")
    args = {args!r}
    x = np.zeros(({steps}, 1), "float32")

    def optimizer():
        return keras.optimizers.SGD(0.1, momentum={momentum})

    def state(model):
        variables = {{v.path.rsplit("/", 1)[-1]: v for v in model.optimizer.variables}}
        velocity = [v for name, v in variables.items() if name.endswith("bias_momentum")]
        return (int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
                float(np.asarray(keras.ops.convert_to_numpy(velocity[0])).ravel()[0]))

    class NoClrplug(importlib.abc.MetaPathFinder):  # as where clrplug is not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "clrplug":
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    def train(model, callbacks, epochs=1, restored=False):
        recorder = BiasRecorder()  # last: it reads the bias after a backup was restored
        count, velocity = (None, None) if restored else state(model)
        model.fit(x, x, batch_size=1, epochs=epochs, verbose=0, shuffle=False,
                  callbacks=[*callbacks, recorder])
        return {{"count": count, "velocity": velocity,
                 "steps": np.diff(np.asarray(recorder.values, dtype=np.float64)).tolist()}}

    def attempt(kind):
        if kind == "after":
            model = keras.models.load_model(source / "after.keras")
            return train(model, [])
        if kind == "after_weights":
            model = probe_model(optimizer())
            model.optimizer.build(model.trainable_variables)  # as plain Keras needs it
            model.load_weights(source / "after.weights.h5")
            return train(model, [])
        if kind == "adam":
            model, clr = probe_model(keras.optimizers.Adam(0.1)), OneCycleLR(**{adam_cycle!r})
            clr.attach(model)
            model.load_weights(source / "adam-1.weights.h5")
            loaded = optimizer_state(model)
            recorder = BiasRecorder()
            model.fit(x, x, batch_size=1, epochs=1, verbose=0, shuffle=False,
                      callbacks=[clr, recorder])
            return {{"state": loaded, "bias": recorder.values}}
        if kind == "backup":
            shutil.copytree(source / "backup", work / "backup")
            model, clr = probe_model(optimizer()), CyclicLR(**args)
            backup = keras.callbacks.BackupAndRestore(str(work / "backup"), save_freq=2)
            seen = {{}}

            class Loaded(keras.callbacks.Callback):  # after BackupAndRestore's load
                def on_epoch_begin(self, epoch, logs=None):
                    seen.setdefault("state", state(self.model))

            return train(model, [clr, ResetAfterEpoch(clr, 0, new_base_lr={new_base}), backup,
                                 Loaded()], epochs=3, restored=True) | {{"loaded": seen["state"]}}
        if kind == "weights":
            model, clr = probe_model(optimizer()), CyclicLR(**args)
            clr.attach(model)
            model.load_weights(source / "epoch.weights.h5")
            return train(model, [clr])
        if kind == "keras":
            model = keras.models.load_model(source / "epoch.keras")
            return train(model, [CyclicLR(**args)])
        model = keras.models.load_model(source / (kind + ".keras"))
        return train(model, [])

    def attempt_all(names):
        for kind in names:
            try:
                results[kind] = attempt(kind)
            except Exception as exc:
                results[kind] = {{"error": type(exc).__name__, "message": str(exc)[:300]}}

    results = {{}}
    assert "clrplug" not in sys.modules
    blocker = NoClrplug()
    sys.meta_path.insert(0, blocker)
    attempt_all([kind for kind in kinds if kind.startswith("after")])
    assert not any(name.split(".")[0] == "clrplug" for name in sys.modules)
    sys.meta_path.remove(blocker)
    from recording import ResetAfterEpoch
    from clrplug import CyclicLR, OneCycleLR
    attempt_all([kind for kind in kinds if not kind.startswith("after")])
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp(f"saved-on-{HERE}")
    save_everything(directory)
    return directory


#: Files loaded by ``LOAD``; those saved after a fit ("after*") where clrplug cannot be
#: imported. "keras", "standalone", "onecycle", "after" and "plain" are ``.keras`` files.
KINDS = ("after", "after_weights", "backup", "weights", "adam", "keras", "standalone",
         "onecycle", "plain")
KERAS_FILES = ("keras", "standalone", "onecycle", "after", "plain")


def _load_on(backend: str, saved: Path, work: Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Each kind's outcome in one process of ``backend``; a process that dies (not an
    exception: a crash) is every kind's outcome, as its exit status."""
    script = LOAD.format(tests=str(TESTS), args=ARGS, steps=STEPS, momentum=MOMENTUM,
                         new_base=NEW_BASE, adam_cycle=ADAM_CYCLE)
    env = {**os.environ, "KERAS_BACKEND": backend}
    work.mkdir()
    done = subprocess.run([sys.executable, "-c", script, str(saved), str(work), ",".join(kinds)],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        died = {"error": f"exit status {done.returncode}", "message": done.stderr[-2000:]}
        return {kind: died for kind in kinds}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _applied(run: dict[str, Any]) -> np.ndarray:
    """The rates applied, from the bias's steps and the velocity it started with."""
    velocities = np.concatenate([[run["velocity"]], np.asarray(run["steps"])])
    return MOMENTUM * velocities[:-1] - velocities[1:]


@pytest.mark.parametrize("target", BACKENDS)
def test_a_checkpoint_saved_here_resumes_on_every_backend(saved: Path, target: str,
                                                          tmp_path: Path) -> None:
    if HERE == "torch" and target != "torch":
        # Loading a .keras file saved on PyTorch imports Keras' torch backend (its optimizer
        # class), and so torch, into this process, which can crash it (a CUDA torch build
        # with TensorFlow): the weights files, the plain control and clrplug's .keras files
        # each in a process of their own, so that a crash is the outcome of that group only
        # (each of clrplug's files must then have the control's outcome).
        weights = tuple(kind for kind in KINDS if kind not in KERAS_FILES)
        results = _load_on(target, saved, tmp_path / "weights", weights)
        results.update(_load_on(target, saved, tmp_path / "plain", ("plain",)))
        ours = tuple(kind for kind in KERAS_FILES if kind != "plain")
        results.update(_load_on(target, saved, tmp_path / "keras", ours))
    else:
        results = _load_on(target, saved, tmp_path / "all", KINDS)
    plain = results["plain"]
    adam = results["adam"]
    assert "error" not in adam, adam
    saved_adam = json.loads((saved / "adam.json").read_text())
    assert sorted(adam["state"]) == sorted(saved_adam["state"])
    for name, values in saved_adam["state"].items():
        np.testing.assert_allclose(adam["state"][name], values, rtol=1e-6, err_msg=name)
    assert int(adam["state"]["iteration"][0]) == STEPS
    np.testing.assert_allclose(adam["bias"], saved_adam["bias"], rtol=1e-5, atol=1e-7)
    rates = {"standalone": standalone_rate, "onecycle": one_cycle_rate,
             "after": after_fit_rate, "after_weights": after_fit_rate}
    for kind in ("after", "after_weights", "backup", "weights", "keras", "standalone",
                 "onecycle"):
        run = results[kind]
        portable = kind not in KERAS_FILES or "error" not in plain
        if not portable:
            # A .keras file saved on PyTorch, loaded elsewhere: the plain control fails,
            # so clrplug's file must fail the same way, and for no reason of its own.
            assert HERE == "torch" and target != "torch", plain
            assert run.get("error") == plain["error"], (kind, run, plain)
            continue
        assert "error" not in run, (kind, {k: v for k, v in run.items() if k != "message"},
                                    run.get("message"))
        if kind == "backup":
            done, velocity = run["loaded"]
            assert 0 < done <= 8  # a backup from before the crash
        else:
            done, velocity = run["count"], run["velocity"]
            assert done == STEPS, (kind, run)
        rate = rates.get(kind, expected_rate)
        assert velocity == pytest.approx(expected_velocity(done, rate), rel=1e-5), kind
        applied = _applied(run if kind != "backup" else {**run, "velocity": velocity})
        expected = [rate(done + i) for i in range(len(applied))]
        np.testing.assert_allclose(applied, expected, rtol=1e-5, atol=1e-7, err_msg=kind)
