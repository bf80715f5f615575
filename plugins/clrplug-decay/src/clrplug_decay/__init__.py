"""A decaying-exponential amplitude policy for clrplug, registered by entry point.

``exp_decay`` is the seed's custom iteration policy: the amplitude at cycle
iteration ``k`` is scaled by ``1 / base**(k * rate)``, with ``base=5`` and
``rate=1e-4`` (so ``1/(5**(k*0.0001))``, the original README's example).

clrplug finds the :class:`clrplug.Policy` object :data:`exp_decay` through this
distribution's ``clrplug.policies`` entry point named ``exp_decay``: no hook, no
code runs but this module's import. Its ``keras.ops`` twin runs it inside the
compiled step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import clrplug

__version__ = "0.1.0"
__all__ = ["exp_decay", "exp_decay_scale"]


def exp_decay_scale(x: np.ndarray, base: float = 5.0, rate: float = 1e-4) -> np.ndarray:
    """``1 / base**(x * rate)`` on the cycle iterations ``x``.

    With ``base > 1`` and ``rate > 0`` the amplitude decays from 1 towards 0; other
    values give scale values above 1, which clrplug refuses when the policy is used.
    """
    return 1 / (base ** (x * rate))


def _exp_decay_ops(x: Any, base: float = 5.0, rate: float = 1e-4) -> Any:
    """The keras.ops twin: ``exp(-x * rate * ln(base))``, the constant taken in float64."""
    from keras import ops  # imported by the engine only, never when the plugin loads

    return ops.exp(ops.cast(x, "float32") * (-rate * math.log(base)))


exp_decay = clrplug.Policy(
    "exp_decay",
    exp_decay_scale,
    "iterations",
    params={"base": 5.0, "rate": 1e-4},
    description="Triangular cycle scaled by 1/base**(cycle iterations * rate).",
    ops_fn=_exp_decay_ops,
)
