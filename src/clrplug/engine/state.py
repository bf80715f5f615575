"""A schedule's state, held in one optimizer variable the compiled step reads.

Named integers come first in one integer vector (the counter's dtype); named floats
follow as float32 words stored bit for bit in the same vector, each float as three
words, so a float64 value such as ``base_lr=0.001`` round-trips exactly through
checkpoints while the step reads the first word; a table of float32 values, when the
schedule has one, comes last. One variable: a reset, a hold or a refill is one
host-to-device copy, and the step carries one more array (each array the JAX trainer
carries costs a few microseconds a step in its Python). Until bound to an optimizer the
same values are constants, as in Keras' own schedules.
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
    """Named int and float fields, as constants or in one optimizer variable.

    Args:
        ints: names of the integer fields, in storage order.
        floats: names of the float fields, in storage order.
        prefix: prefix of the variable's name.
        table_size: float32 values stored after the fields (0: no table); only a bound
            state has them.
    """

    def __init__(self, ints: Sequence[str], floats: Sequence[str], prefix: str, table_size: int = 0) -> None:
        self.int_fields = tuple(ints)
        self.float_fields = tuple(floats)
        self.prefix = prefix
        self.table_size = table_size
        #: The table as last written or read back (float32), written with the fields.
        self.table = np.zeros(table_size, dtype=np.float32)
        self.variable: Any = None

    @property
    def bound(self) -> bool:
        return self.variable is not None

    @property
    def variable_count(self) -> int:
        return 1

    def _encode(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        int_values = np.array([int(ints[name]) for name in self.int_fields], dtype=np.int64)
        words = [w for name in self.float_fields for w in split_words(float(floats[name]))]
        return int_values, np.array(words, dtype=np.float32)

    @staticmethod
    def _per_element(dtype: np.dtype) -> int:
        """Float32 words one element of ``dtype`` holds (an int64 holds two)."""
        return dtype.itemsize // 4

    def _table_start(self, dtype: np.dtype) -> int:
        """The table's first word: after the float words, at the start of an element."""
        per_element = self._per_element(dtype)
        return -(-3 * len(self.float_fields) // per_element) * per_element

    def _word_slots(self, dtype: np.dtype, table: bool = True) -> int:
        """Elements of ``dtype`` that hold the float words (and the table, with ``table``)."""
        words = self._table_start(dtype) + self.table_size if table else 3 * len(self.float_fields)
        return -(-words // self._per_element(dtype))

    def bind(self, optimizer: Any, ints: Mapping[str, int], floats: Mapping[str, float]) -> None:
        """Create the variable on ``optimizer`` (public ``add_variable``) and write the values."""
        dtype = compat.counter_dtype(optimizer)
        size = len(self.int_fields) + self._word_slots(np.dtype(dtype))
        with compat.variable_scope(optimizer):
            self.variable = optimizer.add_variable(
                (size,), initializer="zeros", dtype=dtype, name=f"{self.prefix}_state"
            )
        self.write(ints, floats)

    def _dtype(self) -> np.dtype:
        return np.dtype(keras.backend.standardize_dtype(self.variable.dtype))

    def write(self, ints: Mapping[str, int], floats: Mapping[str, float]) -> None:
        """Assign the variable (a no-op until bound).

        Always assigned in full: a checkpoint load or ``BackupAndRestore`` may have
        assigned it since the last write, so the host cannot know what it holds.
        """
        if not self.bound:
            return
        int_values, words = self._encode(ints, floats)
        dtype = self._dtype()
        limits = np.iinfo(dtype)
        for name, value in zip(self.int_fields, int_values.tolist(), strict=True):
            if not limits.min <= value <= limits.max:
                raise ClrplugError(
                    f"{name}={value} does not fit the optimizer's {dtype} counter "
                    f"({limits.min}..{limits.max})."
                )
        padded = np.zeros(self._word_slots(dtype) * self._per_element(dtype), dtype=np.float32)
        padded[: len(words)] = words
        first = self._table_start(dtype)
        padded[first : first + self.table_size] = self.table
        self.variable.assign(np.concatenate([int_values.astype(dtype), padded.view(dtype)]))

    def read(self) -> tuple[dict[str, int], dict[str, float], np.ndarray]:
        """The variable's fields and table on the host (on JAX, sync the trainer's state
        first); :attr:`table` is left as it was (the caller checks what it read first)."""
        values = np.asarray(ops.convert_to_numpy(self.variable.value)).astype(self._dtype(), copy=False)
        count = len(self.int_fields)
        words = np.ascontiguousarray(values[count:]).view(np.float32)
        ints = {name: int(v) for name, v in zip(self.int_fields, values[:count].tolist(), strict=True)}
        floats = {
            name: join_words(words[3 * i : 3 * i + 3]) for i, name in enumerate(self.float_fields)
        }
        first = self._table_start(self._dtype())
        return ints, floats, words[first : first + self.table_size].copy()

    def version(self) -> tuple[Any, ...]:
        """A token that changes when the variable is assigned (PyTorch only)."""
        return compat.variable_version(self.variable)

    def tensors(
        self, ints: Mapping[str, int], floats: Mapping[str, float], int_dtype: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """In-step views: the variable's values once bound, else ``ints``/``floats`` as constants."""
        if self.bound:
            state = ops.convert_to_tensor(self.variable)
            count = len(self.int_fields)
            int_tensor = state[:count]
            # The float words only (not the table after them): a bitcast of a few elements.
            word_elements = self._word_slots(self._dtype(), table=False)
            word_tensor = ops.view(state[count : count + word_elements], "float32")
        else:
            int_values, words = self._encode(ints, floats)
            int_tensor = ops.convert_to_tensor(int_values.astype(int_dtype))
            word_tensor = ops.convert_to_tensor(words)
        # One unstack each, not an index op per field: TensorFlow runs its graph op by op
        # (no XLA on CPU), a few microseconds each; XLA fuses either way.
        int_values_in_step = ops.unstack(int_tensor)
        words_in_step = ops.unstack(word_tensor)
        return (
            {name: int_values_in_step[i] for i, name in enumerate(self.int_fields)},
            {name: words_in_step[3 * i] for i, name in enumerate(self.float_fields)},
        )

    def table_value(self, index: Any) -> Any:
        """In-step: the table's value at ``index`` (an integer tensor; bound only).

        Gathers the one element holding that word and bitcasts it, so the step never
        copies the table (an int64 element holds two words, on TensorFlow).
        """
        state = ops.convert_to_tensor(self.variable)
        per_element = self._per_element(self._dtype())
        word = ops.convert_to_tensor(index) + self._table_start(self._dtype())
        element = len(self.int_fields) + word // per_element
        words = ops.view(ops.take(state, ops.reshape(element, (1,))), "float32")
        return words[0] if per_element == 1 else ops.take(words, word % per_element)

    def window_pair(self, u: Any, origin_field: str, length: int) -> tuple[Any, Any]:
        """In-step, on TensorFlow: the two table words of update ``u`` in a window of
        ``length`` updates starting at the update in ``origin_field`` (bound only).

        The table holds one pair of words per update, after a pair for updates before
        the window and followed by one for updates after it. TensorFlow's state is
        int64, so one element holds a pair: the variable is read once, then one gather
        and one bitcast give both words (TensorFlow's own ops: Keras' ``take`` and
        ``view`` add index and shape handling, five more graph operations of about a
        microsecond each there). The callbacks bind a window on TensorFlow only.
        """
        import tensorflow as tf

        dtype = self._dtype()
        if keras.backend.backend() != "tensorflow" or self._per_element(dtype) != 2:
            raise ClrplugError(f"a rate window is read on TensorFlow only (int64 state), not {dtype}")
        state = tf.convert_to_tensor(self.variable.value)  # read once
        first = len(self.int_fields) + self._table_start(dtype) // 2
        # Element ``first`` holds the pair for updates before the window, ``first + 1 + i``
        # that of update ``origin + i``, ``first + length + 1`` that for updates after it.
        offset = u - state[self.int_fields.index(origin_field)]
        element = tf.clip_by_value(offset, -1, length) + (first + 1)
        first_word, second_word = tf.unstack(tf.bitcast(tf.gather(state, element), tf.float32))
        return first_word, second_word
