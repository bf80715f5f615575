"""The properties the conformance kit checks, one method each, and the error that names them.

:class:`Checker` runs them on one record (a policy with a parameter set, or a
waveform); :mod:`clrplug.testing.kit` resolves the record and calls them in order.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from clrplug.records import Policy, Waveform

__all__ = [
    "CYCLE_RANGE",
    "ITERATION_RANGE",
    "PROPERTIES",
    "Checker",
    "PolicyConformanceError",
    "sample_x",
]

#: Cycle numbers a ``"cycle"`` policy is checked on (all of them).
CYCLE_RANGE = (1, 10**4)
#: Cycle iterations an ``"iterations"`` policy is checked on (0 to 10^4 densely,
#: then a geometric sample up to 10^7).
ITERATION_RANGE = (0, 10**7)
_DENSE_ITERATIONS = 10**4
_GEOMETRIC_POINTS = 2001
_SCALAR_POINTS = 96  # x compared one at a time against the vectorised call

#: The properties :func:`check_policy` verifies, by the key found in
#: :attr:`PolicyConformanceError.property`, with the statement its message uses.
PROPERTIES: Mapping[str, str] = {
    "resolves": "must register and resolve by name",
    "parameters": "parameters must have defaults and be accepted by name",
    "vectorised": (
        "must be vectorised: an array of x gives an array of the same shape, "
        "equal to calling it on each x alone"
    ),
    "range": "scale values must be finite and within [0, 1]",
    "input": "must not modify its input x",
    "deterministic": "must be deterministic: the same x gives the same value",
    "stateless": "must keep no state between calls",
    "twin": "its keras.ops twin (ops_fn) must agree with its numpy function",
    "ends": "must be 0 at the cycle's ends (t=0) and 1 at its peak (t=1)",
    "serialisation": "must round-trip through CyclicalSchedule serialisation",
}


class PolicyConformanceError(AssertionError):
    """A policy (or waveform) breaks a property clrplug relies on.

    The message reads ``policy 'x' (from dist 1.0): <property>: <evidence>``, e.g.
    ``policy 'x' (from dist 1.0): scale values must be finite and within [0, 1]:
    scale(3.0) = 1.2``.

    Attributes:
        policy: the policy's name.
        source: where it came from (``str(policy.source)``), or None if not registered.
        property: the key of the broken property in :data:`PROPERTIES`.
        x: an x that shows the failure, when there is one.
    """

    def __init__(
        self,
        policy: str,
        source: str | None,
        prop: str,
        evidence: str,
        x: float | None = None,
        kind: str = "policy",
    ) -> None:
        self.policy = policy
        self.source = source
        self.property = prop
        self.x = x
        self.kind = kind
        where = f"from {source}" if source is not None else "not registered"
        super().__init__(f"{kind} {policy!r} ({where}): {PROPERTIES[prop]}: {evidence}")


# -- sampling ------------------------------------------------------------------------


def sample_x(scale_mode: str) -> np.ndarray:
    """The float64 x values :func:`check_policy` evaluates a policy on.

    Args:
        scale_mode: ``"cycle"`` (every cycle number in :data:`CYCLE_RANGE`) or
            ``"iterations"`` (iterations 0 to 10^4 densely, then a geometric sample of
            integers up to 10^7).

    Returns:
        A sorted 1-D float64 array of integer-valued x.
    """
    if scale_mode == "cycle":
        return np.arange(CYCLE_RANGE[0], CYCLE_RANGE[1] + 1, dtype=np.float64)
    dense = np.arange(ITERATION_RANGE[0], _DENSE_ITERATIONS + 1, dtype=np.float64)
    sparse = np.round(np.geomspace(_DENSE_ITERATIONS, ITERATION_RANGE[1], _GEOMETRIC_POINTS))
    return np.unique(np.concatenate([dense, sparse]))


def _scalar_sample(xs: np.ndarray) -> np.ndarray:
    """Indices of a few x spread over the sample (the first ones densely)."""
    n = len(xs)
    spread = np.geomspace(1, n - 1, _SCALAR_POINTS // 2).astype(np.int64)
    return np.unique(np.concatenate([np.arange(min(n, _SCALAR_POINTS // 2)), spread, [n - 1]]))


# -- helpers -------------------------------------------------------------------------


def _call_repr(x: float, params: Mapping[str, float]) -> str:
    args = [repr(float(x))] + [f"{k}={v!r}" for k, v in params.items()]
    return f"scale({', '.join(args)})"


class Checker:
    """One run of a check over one record (a policy with a parameter set, or a waveform)."""

    def __init__(self, record: Policy | Waveform, source: str | None, params: dict[str, float]) -> None:
        self.record = record
        self.policy: Any = record  # the policy-only checks read it under this name
        self.kind = record.kind
        self.fn = record.scale_fn if isinstance(record, Policy) else record.shape_fn
        self.source = source
        self.params = params

    def fail(self, prop: str, evidence: str, x: float | None = None) -> PolicyConformanceError:
        return PolicyConformanceError(self.record.name, self.source, prop, evidence, x, self.kind)

    def call(self, x: Any) -> np.ndarray:
        """The raw numpy function on ``x``, as float64 (exceptions propagate)."""
        with np.errstate(all="ignore"):
            return np.asarray(self.fn(x, **self.params), dtype=np.float64)

    def scalar(self, x: float) -> np.ndarray:
        return self.call(np.asarray(x, dtype=np.float64))

    # -- the properties ------------------------------------------------------------

    def check_signature(self) -> None:
        """Declared parameters: numeric defaults, agreeing with the function's own."""
        __tracebackhide__ = True
        declared = dict(self.policy.params or {})
        for key, value in declared.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise self.fail(
                    "parameters", f"parameter {key!r} has no numeric default: {value!r}"
                )
        try:
            signature = inspect.signature(self.policy.scale_fn)
        except (TypeError, ValueError):  # builtins and ufuncs: nothing to inspect
            return
        parameters = list(signature.parameters.values())
        if not parameters:
            raise self.fail("parameters", "scale_fn takes no argument; it must take x")
        empty = inspect.Parameter.empty
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in parameters[1:]:
            if p.kind in variadic:
                continue
            if p.name not in declared:
                if p.default is empty:
                    raise self.fail(
                        "parameters",
                        f"scale_fn requires argument {p.name!r}, which is not declared in "
                        f"the policy's params {declared}, so clrplug never passes it",
                    )
                continue
            if p.kind is inspect.Parameter.POSITIONAL_ONLY:
                raise self.fail(
                    "parameters", f"scale_fn's parameter {p.name!r} is positional-only"
                )
            if p.default is not empty and p.default != declared[p.name]:
                raise self.fail(
                    "parameters",
                    f"the policy declares {p.name}={declared[p.name]!r} but scale_fn's "
                    f"signature defaults it to {p.default!r}; calling scale_fn directly and "
                    "through clrplug would disagree",
                )

    def first_raising(self, xs: np.ndarray) -> tuple[float, BaseException] | None:
        for x in xs:
            try:
                self.scalar(float(x))
            except Exception as exc:
                return float(x), exc
        return None

    def evaluate(self, xs: np.ndarray) -> np.ndarray:
        """The vectorised call on the whole sample, with input, shape and range checks."""
        __tracebackhide__ = True
        given = xs.copy()
        try:
            values = self.call(given)
        except Exception as exc:
            culprit = self.first_raising(xs)
            if culprit is not None:
                x, error = culprit
                raise self.fail(
                    "range",
                    f"{_call_repr(x, self.params)} raised {type(error).__name__}: {error}",
                    x,
                ) from error
            raise self.fail(
                "vectorised",
                f"scale(array of {len(xs)} x) raised {type(exc).__name__}: {exc}, although "
                "each x alone works (use numpy functions, not math or Python branches)",
            ) from exc
        if not np.array_equal(given, xs):
            index = int(np.flatnonzero(given != xs)[0])
            raise self.fail(
                "input",
                f"after scale(x), x[{index}] was {float(xs[index])!r} and became "
                f"{float(given[index])!r}; return a new array instead of writing into x",
                float(xs[index]),
            )
        if values.shape not in (xs.shape, ()):
            raise self.fail(
                "vectorised",
                f"scale(array of shape {xs.shape}) returned shape {values.shape}",
            )
        values = np.broadcast_to(values, xs.shape)
        bad = ~(np.isfinite(values) & (values >= 0.0) & (values <= 1.0))
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            x = float(xs[index])
            raise self.fail(
                "range", f"{_call_repr(x, self.params)} = {float(values[index])!r}", x
            )
        return np.array(values)

    def check_scalars(self, xs: np.ndarray, values: np.ndarray) -> None:
        """The vectorised result agrees with one-x calls, and keeps 0-d and 2-d shapes."""
        __tracebackhide__ = True
        for index in _scalar_sample(xs):
            x = float(xs[index])
            try:
                alone = self.scalar(x)
            except Exception as exc:
                raise self.fail(
                    "vectorised",
                    f"{_call_repr(x, self.params)} on a 0-d array raised "
                    f"{type(exc).__name__}: {exc}, although an array containing it works",
                    x,
                ) from exc
            if alone.shape != ():
                raise self.fail(
                    "vectorised",
                    f"{_call_repr(x, self.params)} on a 0-d array returned shape {alone.shape}",
                    x,
                )
            if not np.isclose(float(alone), values[index], rtol=1e-9, atol=1e-12):
                raise self.fail(
                    "vectorised",
                    f"{_call_repr(x, self.params)} = {float(alone)!r} alone, but "
                    f"{float(values[index])!r} within an array of {len(xs)} x",
                    x,
                )
        block = xs[: (len(xs) // 8) * 8].reshape(8, -1)
        try:
            grid = self.call(block.copy())
        except Exception as exc:
            raise self.fail(
                "vectorised",
                f"scale(array of shape {block.shape}) raised {type(exc).__name__}: {exc}",
            ) from exc
        if grid.shape not in (block.shape, ()):
            raise self.fail(
                "vectorised", f"scale(array of shape {block.shape}) returned shape {grid.shape}"
            )
        flat = np.broadcast_to(grid, block.shape).ravel()
        expected = values[: flat.size]
        mismatch = ~np.isclose(flat, expected, rtol=1e-9, atol=1e-12)
        if mismatch.any():
            index = int(np.flatnonzero(mismatch)[0])
            x = float(xs[index])
            raise self.fail(
                "vectorised",
                f"{_call_repr(x, self.params)} = {float(flat[index])!r} within a 2-d array "
                f"but {float(expected[index])!r} within a 1-d one",
                x,
            )

    def check_repeatable(self, xs: np.ndarray, values: np.ndarray) -> None:
        """Same x, same value: called again, and after calls on other x."""
        __tracebackhide__ = True

        def compare(prop: str, again: np.ndarray, order: np.ndarray, when: str) -> None:
            __tracebackhide__ = True
            again = np.broadcast_to(again, xs.shape)
            if prop == "deterministic":
                differs = again != values[order]
            else:  # another order or allocation may take another SIMD path: allow rounding
                differs = ~np.isclose(again, values[order], rtol=1e-12, atol=1e-15)
            if differs.any():
                index = int(np.flatnonzero(differs)[0])
                x = float(xs[order][index])
                raise self.fail(
                    prop,
                    f"{_call_repr(x, self.params)} = {float(values[order][index])!r}, then "
                    f"{float(again[index])!r} {when}",
                    x,
                )

        identity = np.arange(len(xs))
        compare("deterministic", self.call(xs.copy()), identity, "when called again")
        reverse = identity[::-1]
        compare("stateless", self.call(xs[reverse].copy()), reverse, "with the x in reverse order")
        self.call(np.full(16, xs[-1]))
        compare("stateless", self.call(xs.copy()), identity, "after calls on other x")

    def check_twin(self) -> None:
        """The keras.ops twin, if any, agrees with the numpy function over the step's range."""
        __tracebackhide__ = True
        from clrplug.cycle import Scale
        from clrplug.engine import twins
        from clrplug.errors import PolicyEvaluationError

        try:
            if isinstance(self.record, Policy):
                twins.scale_twin(Scale(self.record, self.params))
            else:
                twins.shape_twin(self.record)
        except PolicyEvaluationError as exc:
            prop = "ends" if "at the cycle's ends" in str(exc) else "twin"
            raise self.fail(prop, str(exc)) from exc

    def check_serialisation(self) -> None:
        """A schedule using the record survives get_config/JSON/from_config with the same rates."""
        __tracebackhide__ = True
        import keras

        from clrplug.schedule import CyclicalSchedule

        if isinstance(self.record, Policy):
            kwargs: dict[str, Any] = {"mode": self.record.name, "policy_params": self.params}
        else:
            kwargs = {"waveform": self.record.name}
        steps = np.arange(40)
        what = f"CyclicalSchedule({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        try:
            schedule = CyclicalSchedule(0.001, 0.006, 5, _tabulate=True, **kwargs)
            config = json.loads(json.dumps(keras.saving.serialize_keras_object(schedule)))
            restored = keras.saving.deserialize_keras_object(config)
        except Exception as exc:
            raise self.fail("serialisation", f"{what} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(restored, CyclicalSchedule) or restored.state_key() != schedule.state_key():
            raise self.fail("serialisation", f"{what} came back as {restored!r} with another state")
        same = (
            restored.scale.policy.name == schedule.scale.policy.name
            and dict(restored.scale.params) == dict(schedule.scale.params)
            and restored.waveform.name == schedule.waveform.name
        )
        expected, _ = schedule.values_at(steps)
        got, _ = restored.values_at(steps)
        if not same or not np.allclose(got, expected, rtol=1e-12, atol=0.0):
            raise self.fail(
                "serialisation",
                f"{what} came back with mode={restored.scale.policy.name!r}, "
                f"policy_params={dict(restored.scale.params)}, waveform="
                f"{restored.waveform.name!r}, with other rates",
            )


