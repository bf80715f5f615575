"""How many optimizer steps an epoch of the range test's data has, as ``fit`` will batch it.

Arrays (and nested structures of them), ``tf.data.Dataset``, ``keras.utils.PyDataset``
and ``torch.utils.data.DataLoader`` have a knowable length; generators and other
iterators do not (the test then needs ``steps``). Nothing here touches the model.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import keras

__all__ = ["is_iterator", "steps_per_epoch"]


def _module(value: Any) -> str:
    return type(value).__module__ or ""


def is_iterator(value: Any) -> bool:
    """Whether ``value`` is a one-shot iterator (a generator, ``iter(...)``)."""
    return inspect.isgenerator(value) or (
        hasattr(value, "__next__") and not hasattr(value, "__getitem__")
    )


def steps_per_epoch(x: Any, batch_size: int | None, fit_kwargs: Mapping[str, Any]) -> int | None:
    """Optimizer steps in one epoch of ``x`` as ``fit`` will batch it, or None if unknown."""
    if fit_kwargs.get("steps_per_epoch") is not None:
        return int(fit_kwargs["steps_per_epoch"])
    if _module(x).startswith("tensorflow") and hasattr(x, "cardinality"):
        cardinality = int(x.cardinality())
        return cardinality if cardinality > 0 else None
    if isinstance(x, keras.utils.PyDataset):
        try:
            batches = x.num_batches
        except NotImplementedError:
            return None
        return None if batches is None else int(batches)
    if _module(x).startswith("torch.utils.data"):
        try:
            return len(x)
        except TypeError:
            return None
    if is_iterator(x):
        return None
    leaves = [leaf for leaf in keras.tree.flatten(x) if leaf is not None]
    lengths = [leaf.shape[0] for leaf in leaves if getattr(leaf, "shape", None)]
    if not lengths:
        return None
    samples = int(lengths[0])
    split = fit_kwargs.get("validation_split") or 0.0
    if split:
        samples = math.floor(samples * (1.0 - split))
    return max(1, math.ceil(samples / (batch_size or 32)))
