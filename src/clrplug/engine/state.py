"""A schedule's state, held in two optimizer variables the compiled step reads.

Named integers share one integer vector (the counter's dtype); named floats share
one float32 vector, each float as three float32 words, so a float64 value such as
``base_lr=0.001`` round-trips exactly through checkpoints while the step reads the
first word. Until bound to an optimizer the same values are constants, as in
Keras' own schedules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug.engine import compat
from clrplug.errors import ClrplugError

__all__ = ["PackedState", "join_words", "split_words"]


def split_words(value: float) -> tuple[np.float32, np.float32, np.float32]:
    """Three float32 words whose float64 sum is exactly ``value`` (for |value| > 1e-23)."""
    high = np.float32(value)
    rest = value - float(high)
    middle = np.float32(rest)
    return high, middle, np.float32(rest - float(middle))


def join_words(words: Any) -> float:
    """The float64 value of three float32 words (:func:`split_words`' inverse)."""
    return (float(words[0]) + float(words[1])) + float(words[2])


class PackedState:
    """Named int and float fields, as constants or in optimizer variables.

    Args:
        ints: names of the integer fields, in storage order.
        floats: names of the float fields, in storage order.
        prefix: prefix of the two variables' names.
    """

    def __init__(self, ints: Sequence[str], floats: Sequence[str], prefix: str) -> None:
        self.int_fields = tuple(ints)
        self.float_fields = tuple(floats)
        self.prefix = prefix
        self.int_variable: Any = None
        self.float_variable: Any = None

    @property
    def bound(self) -> bool:
        return self.int_variable is not None

    @property
    def variable_count(self) -> int:
        return 2

    def _encode(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        int_values = np.array([int(ints[name]) for name in self.int_fields], dtype=np.int64)
        words = [w for name in self.float_fields for w in split_words(float(floats[name]))]
        return int_values, np.array(words, dtype=np.float32)

    def bind(self, optimizer: Any, ints: Mapping[str, int], floats: Mapping[str, float]) -> None:
        """Create the two variables on ``optimizer`` (public ``add_variable``) and write the values."""
        with compat.variable_scope(optimizer):
            self.int_variable = optimizer.add_variable(
                (len(self.int_fields),), initializer="zeros", dtype=compat.counter_dtype(optimizer),
                name=f"{self.prefix}_ints",
            )
            self.float_variable = optimizer.add_variable(
                (3 * len(self.float_fields),), initializer="zeros", dtype="float32",
                name=f"{self.prefix}_floats",
            )
        self.write(ints, floats)

    def write(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> None:
        """Assign both variables (a no-op until bound).

        Both are always assigned: a checkpoint load or ``BackupAndRestore`` may have
        assigned them since the last write, so the host cannot know what they hold.
        """
        if not self.bound:
            return
        int_values, words = self._encode(ints, floats)
        dtype = np.dtype(keras.backend.standardize_dtype(self.int_variable.dtype))
        limits = np.iinfo(dtype)
        for name, value in zip(self.int_fields, int_values.tolist(), strict=True):
            if not limits.min <= value <= limits.max:
                raise ClrplugError(
                    f"{name}={value} does not fit the optimizer's {dtype} counter "
                    f"({limits.min}..{limits.max})."
                )
        self.int_variable.assign(int_values.astype(dtype))
        self.float_variable.assign(words)

    def read(self) -> tuple[dict[str, int], dict[str, float]]:
        """The variables' values on the host (on JAX, sync the trainer's state first)."""
        int_values = np.asarray(ops.convert_to_numpy(self.int_variable.value)).astype(np.int64)
        words = np.asarray(ops.convert_to_numpy(self.float_variable.value), dtype=np.float32)
        ints = {name: int(v) for name, v in zip(self.int_fields, int_values, strict=True)}
        floats = {
            name: join_words(words[3 * i : 3 * i + 3]) for i, name in enumerate(self.float_fields)
        }
        return ints, floats

    def version(self) -> tuple[Any, ...]:
        """A token that changes when either variable is assigned (PyTorch only)."""
        return compat.variable_version(self.int_variable) + compat.variable_version(self.float_variable)

    def tensors(
        self, ints: Mapping[str, int], floats: Mapping[str, float], int_dtype: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """In-step views: the variables' values once bound, else ``ints``/``floats`` as constants."""
        if self.bound:
            int_tensor = ops.convert_to_tensor(self.int_variable)
            word_tensor = ops.convert_to_tensor(self.float_variable)
        else:
            int_values, words = self._encode(ints, floats)
            int_tensor = ops.convert_to_tensor(int_values.astype(int_dtype))
            word_tensor = ops.convert_to_tensor(words)
        return (
            {name: int_tensor[i] for i, name in enumerate(self.int_fields)},
            {name: word_tensor[3 * i] for i, name in enumerate(self.float_fields)},
        )
