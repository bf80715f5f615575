"""clrplug's own records, registered through the plugin hook like any plugin's.

The seed's three policies (``triangular``, ``triangular2``, ``exp_range``), the
waveforms ``triangular`` (the seed's), ``cosine`` (Hann) and ``welch``
(parabolic), and the range test's suggestion rules. Each policy and waveform
gives its numpy function and its ``keras.ops`` twin; Keras is imported only when
a twin is called, inside a schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from clrplug.hookspecs import hookimpl
from clrplug.records import Policy, Record, Waveform


def _ops() -> Any:
    from keras import ops

    return ops


def triangular(x: np.ndarray) -> np.ndarray:
    """Constant amplitude: ``1``."""
    return np.ones_like(x)


def _triangular_ops(x: Any) -> Any:
    return _ops().ones_like(x, dtype="float32")


def triangular2(x: np.ndarray) -> np.ndarray:
    """Amplitude halved every cycle: ``1 / 2**(cycle - 1)``."""
    return 1.0 / (2.0 ** (x - 1.0))


def _triangular2_ops(x: Any) -> Any:
    ops = _ops()
    return ops.power(2.0, 1.0 - ops.cast(x, "float32"))


def exp_range(x: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Amplitude ``gamma**iterations``."""
    return gamma**x


def _exp_range_ops(x: Any, gamma: float = 1.0) -> Any:
    ops = _ops()
    # log(gamma) in float64 on the host: gamma near 1 would lose its digits in float32.
    return ops.exp(ops.cast(x, "float32") * math.log(gamma))


def _shape_twin(fn: Callable[[Any, Any], Any]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """One expression for both the numpy reference and the compiled step."""
    return (lambda t: fn(t, np)), (lambda t: fn(t, _ops()))


# sin^2(pi t / 2) == (1 - cos(pi t)) / 2 without its cancellation near t = 0; t (2 - t) is
# 1 - (1 - t)^2 likewise.
_cosine, _cosine_ops = _shape_twin(lambda t, xp: xp.square(xp.sin(t * (np.pi / 2.0))))
_welch, _welch_ops = _shape_twin(lambda t, xp: t * (2.0 - t))

POLICIES = (
    Policy("triangular", triangular, "cycle", description="Simple triangular cycle.",
           ops_fn=_triangular_ops),
    Policy("triangular2", triangular2, "cycle",
           description="Triangular cycle whose amplitude halves every cycle.",
           ops_fn=_triangular2_ops),
    Policy("exp_range", exp_range, "iterations", params={"gamma": 1.0},
           description="Triangular cycle scaled by gamma**(cycle iterations).",
           ops_fn=_exp_range_ops),
)

WAVEFORMS = (
    Waveform("triangular", lambda t: t, lambda t: t,
             description="Linear rise and fall (the seed's triangle)."),
    Waveform("cosine", _cosine, _cosine_ops,
             description="Hann window: sin^2(pi t / 2) of the triangle t."),
    Waveform("welch", _welch, _welch_ops,
             description="Welch (parabolic) window: 1 - (1 - t)^2 of the triangle t."),
)


def _rules() -> tuple[Record, ...]:
    from clrplug.range_test.rules import BUILTIN_RULES
    from clrplug.records import SuggestionRule

    return tuple(
        SuggestionRule(name, fn, description) for name, (fn, description) in BUILTIN_RULES.items()
    )


@hookimpl
def clrplug_register_policies(register: Callable[[Record], None]) -> None:
    for record in (*POLICIES, *WAVEFORMS, *_rules()):
        register(record)
