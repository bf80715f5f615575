"""Observe the learning rate an optimizer actually applied, independently of clrplug.

A one-unit Dense layer on zero inputs with loss ``mean(y_pred)`` has gradient
exactly 1 on its bias (and 0 on its kernel). With plain SGD the bias therefore
falls by exactly the applied rate at each step; for other optimizers the rate
is recovered from the update by each optimizer's own textbook formula.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="clrplug_tests")
def mean_prediction(y_true: Any, y_pred: Any) -> Any:
    """Loss whose gradient on the probe's bias is exactly 1."""
    return keras.ops.mean(y_pred)


def probe_model(optimizer: Any = None, steps_per_execution: int = 1) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="zeros"),
        ]
    )
    model.compile(
        optimizer=optimizer if optimizer is not None else keras.optimizers.SGD(0.1),
        loss=mean_prediction,
        steps_per_execution=steps_per_execution,
    )
    return model


def bias_of(model: keras.Model) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(model.layers[0].bias))[0])


class BiasRecorder(keras.callbacks.Callback):
    """Records the bias after every batch callback (once per execution)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []

    def on_train_begin(self, logs: Any = None) -> None:
        if not self.values:
            self.values.append(bias_of(self.model))

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.values.append(bias_of(self.model))

    def decrements(self) -> np.ndarray:
        return -np.diff(np.asarray(self.values, dtype=np.float64))


def fit_steps(model: keras.Model, steps: int, callbacks: list, epochs: int = 1) -> None:
    """Train ``steps`` steps per epoch (batch size 1, zero data)."""
    x = np.zeros((steps, 1), dtype="float32")
    model.fit(x, x, batch_size=1, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
