#!/usr/bin/env python3
"""One worker of a multi-process training scenario; tests/test_multiworker.py starts them.

    python tests/multiworker_worker.py SCENARIO[,SCENARIO...] RANK WORLD ADDRESS OUTDIR

Every worker runs the same script and prints one line ``RESULT <json>``: for each
scenario, what it applied and recorded, which the tests compare across workers and with
the oracles. The backend comes from ``KERAS_BACKEND``:

* **JAX**: ``keras.distribution.initialize`` (``jax.distributed`` with ``ADDRESS`` as the
  coordinator; Gloo collectives on CPU), then ``keras.distribution.DataParallel`` over the
  devices of every process. Each worker feeds its own shard of the data
  (``auto_shard_dataset = False``), so a step's global batch is the workers' batches
  together and ``fit``'s ``steps`` is the per-worker count.
* **TensorFlow**: ``tf.distribute.MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, which
  the launcher sets (``ADDRESS`` is unused). Keras 3's ``fit`` does not run under this
  strategy (keras-team/keras#20585, see ``tf_fit``), so the TensorFlow scenarios train
  in a custom loop, ``strategy.run``, with a stand-alone schedule as the rate.
* **PyTorch**: Keras has no distribution for this backend; ``torch.distributed``
  (Gloo, ``ADDRESS`` as the TCP rendezvous) all-reduces the gradients of a custom loop
  that applies them with a Keras optimizer whose rate is a stand-alone schedule.

Imports nothing from clrplug before the distribution is set up (clrplug itself does not
care, but Keras must meet the distribution first).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SCENARIO, RANK, WORLD, ADDRESS, OUTDIR = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
BACKEND = os.environ["KERAS_BACKEND"]

#: The cycle every scenario trains with (as in tests/test_distributed.py).
CYCLIC = {"base_lr": 0.001, "max_lr": 0.006, "step_size": 3}
STEPS, EPOCHS = 8, 2  # per worker, per epoch: 8 batches of one sample each

if BACKEND == "jax":
    import keras

    keras.distribution.initialize(job_addresses=ADDRESS, num_processes=WORLD, process_id=RANK)
    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    distribution.auto_shard_dataset = False  # each worker passes its own shard
    keras.distribution.set_distribution(distribution)
elif BACKEND == "tensorflow":
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras
else:
    import torch
    import torch.distributed

    torch.distributed.init_process_group("gloo", init_method=f"tcp://{ADDRESS}", rank=RANK,
                                         world_size=WORLD)
    import keras

import numpy as np  # noqa: E402
from probe import BiasRecorder, fit_probe, probe_model, rate_probe_model  # noqa: E402
from recording import Crash  # noqa: E402

from clrplug import CyclicalSchedule, CyclicLR, OneCycleLR, OneCycleSchedule  # noqa: E402

#: The stand-alone schedules the custom loops train with.
STANDALONE = {
    "triangular2": lambda: CyclicalSchedule(**CYCLIC, mode="triangular2"),
    "sinusoidal": lambda: CyclicalSchedule(**CYCLIC, mode="sinusoidal"),  # clrplug-sinusoidal
    "one_cycle": lambda: OneCycleSchedule(max_lr=0.01, total_steps=STEPS * EPOCHS,
                                          cycle_momentum=False),
}


def floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def history(callback: Any) -> dict[str, list[float]]:
    return {key: floats(value) for key, value in callback.history.items()
            if key in ("lr", "iterations", "momentum")}


def probe_run(callbacks: list[Any], optimizer: Any = None) -> dict[str, Any]:
    run = fit_probe(rate_probe_model(optimizer), STEPS, callbacks, epochs=EPOCHS)
    out: dict[str, Any] = {"rates": floats(run.rates), "rate_atol": floats(run.rate_atol),
                           "iterations": floats(run.iterations)}
    if run.momenta is not None and run.momentum_atol is not None:
        out["momenta"] = floats(run.momenta)
        out["momentum_atol"] = floats(run.momentum_atol)
    return out


def jax_fit() -> dict[str, Any]:
    """``fit`` with each route; the rates and momenta each worker applied, and history."""
    import jax

    out: dict[str, Any] = {"process_index": jax.process_index(),
                           "devices": len(jax.devices()),
                           "local_devices": len(jax.local_devices())}
    cases: dict[str, tuple[Any, Any]] = {
        "triangular2": (CyclicLR(**CYCLIC, mode="triangular2"), None),
        "sinusoidal": (CyclicLR(**CYCLIC, mode="sinusoidal"), None),  # clrplug-sinusoidal
        "momentum": (CyclicLR(**CYCLIC, cycle_momentum=True, base_momentum=0.8,
                              max_momentum=0.9), keras.optimizers.SGD(0.1, momentum=0.9)),
        # No total_steps: 1cycle takes its length from fit's per-worker steps and epochs.
        "one_cycle": (OneCycleLR(max_lr=0.01, cycle_momentum=False), None),
    }
    for name, (callback, optimizer) in cases.items():
        out[name] = probe_run([callback], optimizer)
        out[name]["history"] = history(callback)
    if "one_cycle" in cases:
        out["one_cycle"]["total_steps"] = int(cases["one_cycle"][0].total_steps)
    schedule = CyclicalSchedule(**CYCLIC, mode="exp_range", gamma=0.9)
    out["schedule"] = probe_run([], keras.optimizers.SGD(schedule))
    model = rate_probe_model()
    out["bias_devices"] = len(model.layers[0].bias.value.sharding.device_set)
    return out


def jax_resume() -> dict[str, Any]:
    """``BackupAndRestore`` (each worker its own directory), interrupted in the middle of
    an epoch on every worker, then a fresh model and callbacks resume from the backup."""
    backup_dir = str(OUTDIR / f"backup-{RANK}")
    x = np.zeros((STEPS, 1), "float32")  # bias probe: loss mean(y_pred), bias gradient 1
    model, recorder, clr = probe_model(), BiasRecorder(), CyclicLR(**CYCLIC, mode="triangular2")
    backup = keras.callbacks.BackupAndRestore(backup_dir, save_freq=2)
    try:
        model.fit(x, x, batch_size=1, epochs=4, verbose=0, shuffle=False,
                  callbacks=[clr, recorder, backup, Crash(epoch=2, batch=3)])
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the crash did not happen")
    first = floats(recorder.decrements())
    model2, recorder2, clr2 = probe_model(), BiasRecorder(), CyclicLR(**CYCLIC, mode="triangular2")
    backup2 = keras.callbacks.BackupAndRestore(backup_dir, save_freq=2)
    model2.fit(x, x, batch_size=1, epochs=4, verbose=0, shuffle=False,
               callbacks=[clr2, backup2, recorder2])
    return {"first": first, "resumed": floats(recorder2.decrements()),
            "end_iterations": int(keras.ops.convert_to_numpy(model2.optimizer.iterations)),
            "history": history(clr2)}


def jax_range_test() -> dict[str, Any]:
    """``lr_range_test`` on every worker: the same curve, every worker restored."""
    from clrplug import lr_range_test

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(RANK)  # each worker its own shard
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x @ np.linspace(-1.0, 1.0, 8) > 0).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "binary_crossentropy")
    before = [np.asarray(w).copy() for w in model.get_weights()]
    result = lr_range_test(model, x, y, batch_size=16, steps=30, verbose=0)
    after = model.get_weights()
    return {"restored": all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)),
            "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
            "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
            "lr": floats(result.lr), "loss": floats(result.loss),
            "stop_reason": result.stop_reason}


def tf_loop() -> dict[str, Any]:
    """A custom loop under ``MultiWorkerMirroredStrategy``: a stand-alone schedule as the
    optimizer's rate; each worker's bias falls by the applied rate at every step."""
    out: dict[str, Any] = {"replicas": strategy.num_replicas_in_sync,
                           "task": [strategy.cluster_resolver.task_type,
                                    strategy.cluster_resolver.task_id]}
    data = tf.data.Dataset.from_tensor_slices(np.zeros((STEPS * WORLD, 1), "float32"))
    for name, make in STANDALONE.items():
        with strategy.scope():
            model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="zeros")])
            optimizer = keras.optimizers.SGD(make())
            optimizer.build(model.trainable_variables)
        # A global batch of one sample per worker: each worker its own.
        batches = strategy.experimental_distribute_dataset(data.batch(WORLD))

        @tf.function
        def step(x: Any, model: Any = model, optimizer: Any = optimizer) -> None:
            def replica(x: Any) -> None:
                with tf.GradientTape() as tape:
                    # The bias gradient summed over the replicas is exactly 1.
                    loss = tf.reduce_mean(model(x)) / strategy.num_replicas_in_sync
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply(grads, model.trainable_variables)

            strategy.run(replica, (x,))

        biases = [0.0]
        for _ in range(EPOCHS):
            for x in batches:
                step(x)
                biases.append(float(model.layers[0].bias.numpy()[0]))
        out[name] = {"rates": floats(-np.diff(biases)),
                     "iterations": int(optimizer.iterations.numpy())}
    return out


def torch_loop() -> dict[str, Any]:
    """A custom loop over ``torch.distributed``: the gradients all-reduced, then applied by a
    Keras optimizer with a stand-alone schedule; each worker's bias falls by the rate."""
    out: dict[str, Any] = {"world": torch.distributed.get_world_size()}
    try:
        keras.distribution.list_devices()
        out["keras_distribution"] = "available"
    except Exception as error:
        out["keras_distribution"] = f"{type(error).__name__}: {error}"
    for name, make in STANDALONE.items():
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="zeros")])
        optimizer = keras.optimizers.SGD(make())
        optimizer.build(model.trainable_variables)
        x = torch.zeros((1, 1))  # this worker's one sample
        biases = [0.0]
        for _ in range(STEPS * EPOCHS):
            model.zero_grad()
            (model(x).mean() / WORLD).backward()  # summed over the workers: gradient 1
            grads = [v.value.grad for v in model.trainable_variables]
            for grad in grads:
                torch.distributed.all_reduce(grad)
            with torch.no_grad():
                optimizer.apply(grads, model.trainable_variables)
            biases.append(float(keras.ops.convert_to_numpy(model.layers[0].bias)[0]))
        out[name] = {"rates": floats(-np.diff(biases)),
                     "iterations": int(keras.ops.convert_to_numpy(optimizer.iterations))}
    torch.distributed.destroy_process_group()
    return out


def tf_fit() -> dict[str, Any]:
    """Keras 3's own ``fit`` under the strategy (no clrplug), and ``lr_range_test``."""
    from clrplug import lr_range_test

    with strategy.scope():
        model = probe_model()
    x = np.zeros((STEPS, 1), "float32")
    out: dict[str, Any] = {}
    try:
        model.fit(x, x, batch_size=WORLD, epochs=1, verbose=0)
        out["fit"] = "trained"
    except Exception as error:
        out["fit"] = f"{type(error).__name__}: {error}"[:600]
    try:
        lr_range_test(model, x, x, batch_size=WORLD, steps=4, verbose=0)
        out["range_test"] = "ran"
    except Exception as error:
        out["range_test"] = f"{type(error).__module__}.{type(error).__name__}: {error}"
    return out


SCENARIOS = {"jax_fit": jax_fit, "jax_resume": jax_resume, "jax_range_test": jax_range_test,
             "tf_loop": tf_loop, "tf_fit": tf_fit, "torch_loop": torch_loop}

if __name__ == "__main__":
    # Several scenarios, comma-separated, run one after the other in the same processes
    # (a process pair's start-up costs more than most scenarios).
    result: dict[str, Any] = {name: SCENARIOS[name]() for name in SCENARIO.split(",")}
    result["rank"] = RANK
    print("RESULT " + json.dumps(result), flush=True)
