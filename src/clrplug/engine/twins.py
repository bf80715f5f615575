"""The ``keras.ops`` twins of policies and waveforms, checked against their numpy references.

A twin runs inside the compiled step in float32; its numpy function is the
reference. Before a schedule uses a twin it is evaluated on the current backend
over the whole range the step can reach (integers up to 2**31 - 1, shapes on
[0, 1]) and refused with :class:`~clrplug.errors.PolicyEvaluationError` where it differs
by more than 2e-6 relative (1e-12 absolute), which keeps the applied rate within
1e-5 of the float64 formula. Results are cached per process and backend.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug.cycle import INT32_MAX, Scale
from clrplug.errors import PolicyEvaluationError
from clrplug.records import Waveform

__all__ = ["ATOL", "RTOL", "scale_twin", "shape_twin"]

RTOL = 2e-6
ATOL = 1e-12

_lock = threading.Lock()
_cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _integers(first: int) -> np.ndarray:
    dense = np.arange(first, first + 257)
    sparse = np.unique(np.round(np.geomspace(257, INT32_MAX, 400)).astype(np.int64))
    return np.unique(np.concatenate([dense, sparse, [INT32_MAX]]))


def _shape_points() -> np.ndarray:
    t = np.concatenate([np.linspace(0.0, 1.0, 1025), np.geomspace(1e-7, 1e-2, 64)])
    return np.unique(t.astype(np.float32)).astype(np.float64)


def _evaluate(fn: Callable[..., Any], x: Any, **params: float) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 and some backends' __array__
        return np.asarray(ops.convert_to_numpy(fn(x, **params)), dtype=np.float64)


def _compare(what: str, label: str, x: np.ndarray, twin: np.ndarray, reference: np.ndarray) -> None:
    twin = np.broadcast_to(twin, reference.shape)
    off = ~(np.abs(twin - reference) <= RTOL * np.abs(reference) + ATOL)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise PolicyEvaluationError(
            f"the keras.ops twin (ops_fn) of {what} gives {float(twin[i])!r} at {label}="
            f"{x[i]!r} on the {keras.backend.backend()} backend, but its numpy function gives "
            f"{float(reference[i])!r} (allowed: {RTOL:g} relative, {ATOL:g} absolute). Make "
            "ops_fn exact in float32 over the whole range (reduce periodic arguments with "
            "ops.mod on the integer x, take logarithms of parameters in Python), or leave it "
            "out so CyclicLR tabulates the numpy function."
        )


def _cached(key: tuple[Any, ...], check: Callable[[], None], keep: tuple[Any, ...]) -> None:
    with _lock:
        if key in _cache:
            return
    check()
    with _lock:
        _cache[key] = keep  # holds the functions, so their ids in the key stay theirs


def scale_twin(scale: Scale) -> Callable[[Any], Any] | None:
    """The checked in-step scale function of ``scale``, or None if its policy has no twin."""
    policy, params = scale.policy, dict(scale.params)
    if policy.ops_fn is None:
        return None
    ops_fn = policy.ops_fn

    def check() -> None:
        x = _integers(1 if scale.scale_mode == "cycle" else 0)
        reference = scale(x.astype(np.float64))
        try:
            twin = _evaluate(ops_fn, ops.convert_to_tensor(x.astype(np.int32)), **params)
        except Exception as exc:
            raise PolicyEvaluationError(
                f"the keras.ops twin (ops_fn) of {policy.label} raised {type(exc).__name__}: {exc}"
            ) from exc
        _compare(policy.label, "x", x, twin, reference)

    key = ("scale", keras.backend.backend(), id(ops_fn), id(policy.scale_fn),
           tuple(sorted(params.items())), scale.scale_mode)
    _cached(key, check, (ops_fn, policy.scale_fn))
    return lambda x: ops_fn(x, **params)


def shape_twin(waveform: Waveform) -> Callable[[Any], Any]:
    """The checked in-step shape function of ``waveform`` (0 at t=0, 1 at t=1)."""

    def check() -> None:
        t = _shape_points()
        reference = waveform.shape(t)
        if abs(reference[0]) > ATOL or abs(reference[-1] - 1.0) > ATOL:
            raise PolicyEvaluationError(
                f"the shape function of {waveform.label} gives {float(reference[0])!r} at t=0 "
                f"and {float(reference[-1])!r} at t=1; a waveform must be 0 at the cycle's ends and 1 "
                "at its peak."
            )
        try:
            twin = _evaluate(waveform.ops_fn, ops.convert_to_tensor(t.astype(np.float32)))
        except Exception as exc:
            raise PolicyEvaluationError(
                f"the keras.ops twin (ops_fn) of {waveform.label} raised {type(exc).__name__}: {exc}"
            ) from exc
        _compare(waveform.label, "t", t, twin, reference)

    key = ("shape", keras.backend.backend(), id(waveform.ops_fn), id(waveform.shape_fn))
    _cached(key, check, (waveform.ops_fn, waveform.shape_fn))
    return waveform.ops_fn
