"""Data parallel training: the applied rates are those of one device.

JAX runs Keras' distribution API (``keras.distribution.DataParallel``) on two
virtual CPU devices, TensorFlow a ``tf.distribute.MirroredStrategy`` on two
logical CPU devices. Both need process-level setup before the backend starts,
so each scenario runs in a subprocess; the test runs only on its backend.
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
from oracles import seed_rates
from probe import BiasRecorder, probe_model

from clrplug import CyclicLR

TOL = {"rtol": 2e-5, "atol": 1e-9}
CASES = {
    "triangular2": {"base_lr": 0.001, "max_lr": 0.006, "step_size": 3, "mode": "triangular2"},
    "exp_range": {"base_lr": 0.001, "max_lr": 0.006, "step_size": 3, "mode": "exp_range",
                  "gamma": 0.9},
}
SAMPLES, BATCH, EPOCHS = 40, 4, 2  # 10 steps per epoch, a global batch of 2 per device
STEPS = SAMPLES // BATCH * EPOCHS

# Shared by both scripts: train the probe with each case, report what was applied.
TRAIN = """
def train(make_model, names=tuple(CASES)):
    out = {}
    x = np.zeros((SAMPLES, 1), "float32")
    for name in names:
        args = CASES[name]
        model, recorder, clr = make_model(), BiasRecorder(), CyclicLR(**args)
        model.fit(x, x, batch_size=BATCH, epochs=EPOCHS, callbacks=[clr, recorder],
                  verbose=0, shuffle=False)
        out[name] = {"applied": recorder.decrements().tolist(),
                     "lr": clr.history["lr"].tolist(),
                     "iterations": clr.history["iterations"].tolist()}
    return out
"""

JAX_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import jax, keras, numpy as np
from probe import BiasRecorder, probe_model
from clrplug import CyclicLR
CASES, SAMPLES, BATCH, EPOCHS = {cases!r}, {samples}, {batch}, {epochs}
{train}
devices = keras.distribution.list_devices("cpu")
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
result = train(probe_model)
model = probe_model()
result["devices"] = len(devices)
result["bias_devices"] = len(model.layers[0].bias.value.sharding.device_set)
print(json.dumps(result))
"""

TF_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from probe import BiasRecorder, mean_prediction, probe_model
from clrplug import CyclicLR
CASES, SAMPLES, BATCH, EPOCHS = {cases!r}, {samples}, {batch}, {epochs}
{train}
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

def per_sample(y_true, y_pred):
    # Keras divides a per-sample loss by the replica count before the gradients are summed.
    return keras.ops.squeeze(y_pred, -1)

def mirrored(loss):
    def make():
        with strategy.scope():
            model = probe_model()
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
        return model
    return make

result = train(mirrored(per_sample))
result["scalar_loss"] = train(mirrored(mean_prediction), ["triangular2"])
result["devices"] = strategy.num_replicas_in_sync
with strategy.scope():
    model = probe_model()
result["bias_type"] = type(model.layers[0].bias.value).__name__
print(json.dumps(result))
"""


def run_script(template: str, env: dict[str, str]) -> dict[str, Any]:
    script = template.format(
        tests=str(Path(__file__).parent), cases=CASES, samples=SAMPLES, batch=BATCH,
        epochs=EPOCHS, train=TRAIN,
    )
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, **env}, capture_output=True, text=True, check=False, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def single_device(args: dict[str, Any]) -> np.ndarray:
    """The same run on one device, in this process."""
    model, recorder = probe_model(), BiasRecorder()
    x = np.zeros((SAMPLES, 1), "float32")
    model.fit(x, x, batch_size=BATCH, epochs=EPOCHS, callbacks=[CyclicLR(**args), recorder],
              verbose=0, shuffle=False)
    return recorder.decrements()


def check_rates(result: dict[str, Any], scale: float = 1.0) -> None:
    for name, args in CASES.items():
        if name not in result:
            continue
        expected = seed_rates(np.arange(STEPS), **args)
        applied = np.asarray(result[name]["applied"]) / scale
        np.testing.assert_allclose(applied, expected, **TOL)
        np.testing.assert_allclose(result[name]["lr"], expected, rtol=1e-12)
        assert result[name]["iterations"] == list(range(1, STEPS + 1))


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="Keras' distribution API on JAX")
def test_jax_data_parallel_applies_the_single_device_rates() -> None:
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    result = run_script(JAX_SCRIPT, {"KERAS_BACKEND": "jax", "XLA_FLAGS": flags.strip()})
    assert result["devices"] == 2 and result["bias_devices"] == 2  # really replicated
    # The probe's loss is a mean over the global batch: its bias gradient stays exactly 1.
    check_rates(result)
    np.testing.assert_allclose(
        result["exp_range"]["applied"], single_device(CASES["exp_range"]), **TOL
    )


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute")
def test_tf_mirrored_strategy_applies_the_single_device_rates() -> None:
    result = run_script(TF_SCRIPT, {"KERAS_BACKEND": "tensorflow"})
    assert result["devices"] == 2 and result["bias_type"] == "MirroredVariable"
    check_rates(result)
    np.testing.assert_allclose(
        result["triangular2"]["applied"], single_device(CASES["triangular2"]), **TOL
    )
    # A loss that already returns a scalar is not divided by the replica count, so the
    # summed gradient is 2 (Keras' behaviour, documented in docs/reliability.md); the
    # rate applied is still exactly the schedule's.
    check_rates(result["scalar_loss"], scale=2.0)
