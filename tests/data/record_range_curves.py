"""Record real LR range test curves for the fastai parity data (run once; JAX, no torch).

    KERAS_BACKEND=jax python tests/data/record_range_curves.py

Writes ``tests/data/range_curves.json``: per curve the sweep's settings and the
record (``lr``, raw ``loss``, the recorder's ``smoothed_loss``, ``stop_reason``).
``make_fastai_suggestions.py`` then runs fastai's rules on them, in a process of its
own (it imports torch). Tiny models on scikit-learn's digits and generated tabular
data: exponential and linear sweeps of 50 to 500 steps, SGD with momentum and Adam.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np

import clrplug

OUT = Path(__file__).with_name("range_curves.json")

# (name, data, optimizer, step_mode, min_lr, max_lr, steps, batch_size)
CASES = [
    ("digits_sgd_exp200", "digits", "sgd", "exp", 1e-5, 10.0, 200, 32),
    ("digits_adam_exp100", "digits", "adam", "exp", 1e-7, 10.0, 100, 64),
    ("digits_sgd_lin100", "digits", "sgd", "linear", 0.0, 2.0, 100, 32),
    ("digits_sgd_exp50", "digits", "sgd", "exp", 1e-6, 10.0, 50, 16),
    ("tabular_adam_exp500", "tabular", "adam", "exp", 1e-6, 10.0, 500, 32),
    ("tabular_sgd_lin300", "tabular", "sgd", "linear", 0.0, 3.0, 300, 64),
]


def data(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.data / 16.0).astype("float32"), digits.target.astype("int32"), 10
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 12)).astype("float32")
    w = rng.standard_normal((12, 3))
    y = np.argmax(x @ w + 0.5 * rng.standard_normal((2000, 3)), axis=1).astype("int32")
    return x, y, 3


def main() -> None:
    curves = []
    for name, source, optimizer, mode, low, high, steps, batch in CASES:
        x, y, classes = data(source)
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((x.shape[1],)), keras.layers.Dense(64, activation="relu"),
             keras.layers.Dense(classes, activation="softmax")]
        )
        opt = keras.optimizers.SGD(0.01, momentum=0.9) if optimizer == "sgd" else (
            keras.optimizers.Adam(0.001))
        model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
        result = clrplug.lr_range_test(
            model, x, y, min_lr=low, max_lr=high, steps=steps, batch_size=batch, step_mode=mode
        )
        curves.append({
            "name": name, "step_mode": mode, "steps": steps, "stop_reason": result.stop_reason,
            "lr": result.lr.tolist(), "loss": result.loss.tolist(),
            "smoothed_loss": result.smoothed_loss.tolist(),
        })
        print(name, result.stop_reason, len(result.lr), "of", steps)
    OUT.write_text(json.dumps({"made_by": "tests/data/record_range_curves.py", "keras": keras.__version__,
                               "backend": keras.backend.backend(), "curves": curves}) + "\n")


if __name__ == "__main__":
    main()
