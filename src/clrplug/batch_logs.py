"""Per-batch values from Keras 3's batch logs, which hold running means.

Keras 3 logs, after each batch, the mean of the loss (and of each mean metric)
over the epoch so far, weighted by samples. The seed's history, and Smith's
plots, hold each batch's own value. With ``s_j`` samples seen when mean ``m_j``
was logged, the batches between two logs averaged
``(s_j m_j - s_{j-1} m_{j-1}) / (s_j - s_{j-1})``. Metrics that are not plain
sample means (AUC, precision, RMSE, ...) cannot be recovered this way and are
kept as logged. Used by :class:`clrplug.CyclicLR`'s history and the range test.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["deaverage", "loss_count", "non_mean_names"]


def loss_count(model: Any) -> float | None:
    """Samples Keras' loss tracker has averaged over this epoch (None if there is none)."""
    for metric in getattr(model, "metrics", []):
        count = getattr(metric, "count", None)
        if metric.name == "loss" and count is not None:
            return float(ops.convert_to_numpy(count))
    return None


def non_mean_names(model: Any) -> set[str]:
    """Logged metrics that are not sample means (AUC, precision, ...): kept as logged."""
    names: set[str] = set()
    stack = list(getattr(model, "metrics", []))
    while stack:
        metric = stack.pop()
        # Containers (Keras' CompileMetrics) list their metrics; on TensorFlow the list
        # is a tracking wrapper, not a list.
        try:
            children = list(getattr(metric, "metrics", None) or [])
        except TypeError:
            children = []
        if children:
            stack.extend(children)
            continue
        # A Mean whose result() is total / count; RootMeanSquaredError, also a Mean,
        # reports a square root and is not de-averageable.
        if not isinstance(metric, keras.metrics.Mean) or (
            type(metric).result is not keras.metrics.Mean.result
        ):
            names.add(metric.name)
    return names


def deaverage(means: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Each log's own mean from running means ``means`` logged after ``samples`` samples.

    Both arrays cover one epoch, in order; ``samples`` is cumulative and increasing.
    """
    means = np.asarray(means, dtype=np.float64)
    samples = np.asarray(samples, dtype=np.float64)
    before = np.concatenate([[0.0], samples[:-1]])
    previous = np.concatenate([[0.0], means[:-1]])
    with np.errstate(all="ignore"):
        return (samples * means - before * previous) / (samples - before)
