"""clrplug's own policies, registered through the plugin hook like any plugin.

``triangular``, ``triangular2`` and ``exp_range`` are the seed's three policies,
with the seed's scale functions and scale modes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clrplug.hookspecs import hookimpl
from clrplug.policy import Policy


def triangular(x: np.ndarray) -> np.ndarray:
    """Constant amplitude: ``1``."""
    return np.ones_like(x)


def triangular2(x: np.ndarray) -> np.ndarray:
    """Amplitude halved every cycle: ``1 / 2**(cycle - 1)``."""
    return 1.0 / (2.0 ** (x - 1.0))


def exp_range(x: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Amplitude ``gamma**iterations``."""
    return gamma**x


POLICIES = (
    Policy("triangular", triangular, "cycle", description="Simple triangular cycle."),
    Policy(
        "triangular2",
        triangular2,
        "cycle",
        description="Triangular cycle whose amplitude halves every cycle.",
    ),
    Policy(
        "exp_range",
        exp_range,
        "iterations",
        params={"gamma": 1.0},
        description="Triangular cycle scaled by gamma**(cycle iterations).",
    ),
)


@hookimpl
def clrplug_register_policies(register: Callable[[Policy], None]) -> None:
    for policy in POLICIES:
        register(policy)
