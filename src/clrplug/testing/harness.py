"""A harness that measures the learning rate each training step actually applied.

For plugin authors' end-to-end tests: it trains a one-unit model with a known
gradient and reads the rate back from the weights.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["applied_rates"]


def applied_rates(callback: Any, steps: int = 30, *, epochs: int = 1) -> np.ndarray:
    """The learning rate each training step actually applied, measured from the weights.

    Trains a one-unit ``Dense`` layer with zero kernel and bias on zero inputs with
    plain SGD and the loss ``mean(y_pred)``: the bias' gradient is exactly 1, so each
    step lowers the bias by exactly the rate the optimizer used. Comparing the result
    with :func:`clrplug.learning_rates` (float32 tolerance, e.g. ``rtol=1e-5,
    atol=1e-9``, with ``base_lr`` around 1e-3 and a few dozen steps) checks a
    policy end to end on the current Keras backend.

    Args:
        callback: the callback that sets the rate, e.g. a :class:`~clrplug.CyclicLR`.
        steps: training steps per epoch (batches of one sample).
        epochs: number of epochs.

    Returns:
        A float64 array of ``steps * epochs`` rates, in training order.

    Example:

    ```python
    import numpy as np
    import clrplug
    from clrplug.testing import applied_rates

    lr = applied_rates(clrplug.CyclicLR(step_size=5, mode="triangular2"), steps=20)
    expected = clrplug.learning_rates(np.arange(20), step_size=5, mode="triangular2")
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)
    ```
    """
    import keras

    dense = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="zeros")
    model = keras.Sequential([keras.Input((1,)), dense])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01),
        loss=lambda y_true, y_pred: keras.ops.mean(y_pred),
    )
    biases: list[float] = [0.0]

    class RecordBias(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            _ = self.model  # on JAX, reading the model syncs the trained state back
            with warnings.catch_warnings():
                # numpy 2 warns about Keras' variables' __array__ (no copy keyword); harmless.
                warnings.simplefilter("ignore", DeprecationWarning)
                biases.append(float(keras.ops.convert_to_numpy(dense.bias.value)[0]))

    x = np.zeros((steps, 1), dtype="float32")
    model.fit(
        x, x, batch_size=1, epochs=epochs, shuffle=False, verbose=0,
        callbacks=[callback, RecordBias()],
    )
    trace = np.asarray(biases, dtype=np.float64)
    return trace[:-1] - trace[1:]
