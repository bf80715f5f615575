"""Sinusoidal amplitude policies for clrplug, registered through the pluggy hook.

``sinusoidal`` is the seed's sinusoidal cycle policy: the amplitude of cycle ``c``
is scaled by ``0.5 * (1 + sin(c * pi / 2))``, i.e. 1, 0.5, 0, 0.5, 1, ... .
``sine_period`` generalises it with a ``period`` in cycles (4 gives ``sinusoidal``).

Both are found by clrplug through this distribution's ``clrplug`` entry point,
which names this module; clrplug calls :func:`clrplug_register_policies` once per
process, the first time a policy name is looked up.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import clrplug

__version__ = "0.1.0"
__all__ = ["POLICIES", "clrplug_register_policies", "sine_period", "sinusoidal"]


def sinusoidal(x: np.ndarray) -> np.ndarray:
    """The seed's ``0.5 * (1 + sin(x * pi / 2))`` on the cycle number ``x``."""
    return 0.5 * (1 + np.sin(x * np.pi / 2.0))


def sine_period(x: np.ndarray, period: float = 4.0) -> np.ndarray:
    """``0.5 * (1 + sin(2 * pi * x / period))`` on the cycle number ``x``.

    ``period`` is the number of cycles of one full sine wave; it must not be 0.
    """
    if period == 0:
        raise ValueError("period must be a non-zero number of cycles, got 0.")
    return 0.5 * (1 + np.sin(2.0 * np.pi * x / period))


POLICIES = (
    clrplug.Policy(
        "sinusoidal",
        sinusoidal,
        "cycle",
        description="Triangular cycle whose amplitude follows 0.5*(1+sin(cycle*pi/2)).",
    ),
    clrplug.Policy(
        "sine_period",
        sine_period,
        "cycle",
        params={"period": 4.0},
        description="Triangular cycle scaled by 0.5*(1+sin(2*pi*cycle/period)).",
    ),
)


@clrplug.hookimpl
def clrplug_register_policies(register: Callable[[clrplug.Policy], None]) -> None:
    """Register ``sinusoidal`` and ``sine_period``."""
    for policy in POLICIES:
        register(policy)
