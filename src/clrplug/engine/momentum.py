"""How an optimizer applies a cycled momentum: SGD's ``momentum``, Adam's ``beta_1``.

Keras' update steps read the momentum from that public attribute when the step is traced
(Keras 3.15 ``SGD.update_step``, ``Adam.update_step``; PyTorch's eager step, every step).
A schedule that cycles momentum computes it in the same traced step as the rate, from the
optimizer's counter, and sets the attribute to it (:func:`apply_momentum`) before the
update steps read it; nothing is stored, and the optimizer gains no variable. In a traced
step Adam's ``beta_1`` holds the traced tensor itself, and SGD's ``momentum`` a
:class:`TracedMomentum`: a float equal to the optimizer's own momentum (so SGD's Python
test ``momentum != 0`` holds) that converts to the traced value in the step's operations
(``__jax_array__``, ``__tf_tensor__``). After the traced call the attribute is set back
to a plain float (:func:`release_momentum`), as it is when the fit ends.
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["TracedMomentum", "apply_momentum", "momentum_attribute", "release_momentum"]

#: The attribute each supported optimizer reads its momentum from.
_MOMENTUM_ATTRIBUTES = {
    "SGD": "momentum",
    "Adam": "beta_1",
    "AdamW": "beta_1",
    "Adamax": "beta_1",
}


def momentum_attribute(optimizer: Any) -> str | None:
    """``"momentum"`` for SGD, ``"beta_1"`` for Adam, AdamW and Adamax; else None.

    The backend subclasses (``keras.src.backend.*.optimizers``) share these names.
    """
    for cls in type(optimizer).__mro__:
        if cls.__module__.startswith("keras.") and cls.__name__ in _MOMENTUM_ATTRIBUTES:
            return _MOMENTUM_ATTRIBUTES[cls.__name__]
    return None


class TracedMomentum(float):
    """A momentum computed in a traced step: on the host, the float ``host``; in the
    step's operations (JAX, TensorFlow), the traced value ``tensor``."""

    tensor: Any

    def __new__(cls, tensor: Any, host: float) -> TracedMomentum:
        value = super().__new__(cls, host)
        value.tensor = tensor
        return value

    def __jax_array__(self) -> Any:
        return self.tensor

    def __tf_tensor__(self, dtype: Any = None, name: Any = None) -> Any:
        import tensorflow as tf

        return tf.convert_to_tensor(self.tensor, dtype=dtype, name=name)

    def __repr__(self) -> str:
        return f"TracedMomentum({float(self)!r})"


def apply_momentum(optimizer: Any, attribute: str, value: Any, host: float) -> None:
    """Have the optimizer's update steps read ``value`` as their momentum.

    ``value`` is a float in PyTorch's eager step (set for each step), else a tensor of
    the traced step (wrapped in a :class:`TracedMomentum` whose float is ``host``).
    """
    if isinstance(value, float) or keras.backend.backend() == "torch" or attribute != "momentum":
        # A float (PyTorch's eager step), or the tensor itself: Adam's update computes
        # ``1 - beta_1`` in Python, which a tensor does in the step's operations.
        setattr(optimizer, attribute, value)
    else:
        # SGD tests ``momentum != 0`` in Python, which a tensor cannot answer in a trace.
        setattr(optimizer, attribute, TracedMomentum(value, host))


def release_momentum(optimizer: Any, attribute: str, value: float) -> None:
    """The plain float ``value`` in the attribute."""
    setattr(optimizer, attribute, float(value))
