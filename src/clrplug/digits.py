"""scikit-learn's handwritten digits, split into a training and a test set: the data
``clrplug demo`` trains on, and the benchmarks reuse (``benchmarks/harness.py``).

1,797 8x8 images, 10 classes, scaled to [0, 1]; they ship with scikit-learn, nothing is
downloaded. NumPy and scikit-learn only (the ``demo`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clrplug.plotting import MissingExtraError

__all__ = ["Data", "load_digits_data"]


@dataclass(frozen=True)
class Data:
    """The digits scaled to [0, 1]: a training set and a test set no run reads its rate from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_data(seed: int = 0, test_fraction: float = 0.25) -> Data:
    """scikit-learn's digits, split into stratified training and test sets by ``seed``."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise MissingExtraError(
            "the demo needs scikit-learn (its digits data set ships with it): "
            f"pip install 'clrplug[demo]'. ({exc})"
        ) from exc
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return Data(x_train, y_train, x_test, y_test)
