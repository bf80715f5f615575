"""The conformance kit: checks that a policy is fit for the registry and the engine.

A plugin author runs it from the plugin's own test suite:

```
import pytest
from clrplug.testing import policies_of

@pytest.mark.parametrize("name", policies_of("clrplug-mine"))
def test_policy_conforms(name, clrplug_policy_check):
    clrplug_policy_check(name)
```

:func:`check_policy` verifies what clrplug relies on: the policy registers and
resolves by name; its scale values are finite and within ``[0, 1]`` over a long
range of x (cycles 1 to 10^4, or iterations 0 to 10^7); it is vectorised (an array
in gives an array of the same shape, equal to calling it on each x alone);
deterministic; keeps no state between calls and leaves its input alone; its
parameters have defaults and are accepted by name; and a
:class:`~clrplug.CyclicalSchedule` using it round-trips through Keras
serialisation. A failure raises :class:`PolicyConformanceError` naming the policy,
where it came from, the property that broke and a value that breaks it.

The module is also a pytest plugin (entry point ``pytest11``), so installing
clrplug gives every test suite the ``clrplug_policy_check`` fixture and the
``--clrplug-policy NAME`` option. Since pytest imports it at start-up wherever
clrplug is installed, it imports no more than ``import clrplug`` does (numpy,
pluggy, no plugin); Keras is imported only by the serialisation check and by
:func:`applied_rates`.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import numpy as np

from clrplug import registry as registry_module
from clrplug.errors import ClrplugError
from clrplug.policy import Policy

try:  # the pytest half of the module; the checks work without pytest
    import pytest
except ImportError:  # pragma: no cover - pytest is not a dependency of clrplug
    pytest = None  # type: ignore[assignment]

__all__ = [
    "CYCLE_RANGE",
    "ITERATION_RANGE",
    "PROPERTIES",
    "PolicyConformanceError",
    "applied_rates",
    "check_policy",
    "policies_of",
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
    "serialisation": "must round-trip through CyclicalSchedule serialisation",
}


class PolicyConformanceError(AssertionError):
    """A policy breaks a property clrplug relies on.

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
        self, policy: str, source: str | None, prop: str, evidence: str, x: float | None = None
    ) -> None:
        self.policy = policy
        self.source = source
        self.property = prop
        self.x = x
        where = f"from {source}" if source is not None else "not registered"
        super().__init__(f"policy {policy!r} ({where}): {PROPERTIES[prop]}: {evidence}")


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


class _Checker:
    """One run of :func:`check_policy` over one policy and parameter set."""

    def __init__(self, policy: Policy, source: str | None, params: dict[str, float]) -> None:
        self.policy = policy
        self.source = source
        self.params = params

    def fail(self, prop: str, evidence: str, x: float | None = None) -> PolicyConformanceError:
        return PolicyConformanceError(self.policy.name, self.source, prop, evidence, x)

    def call(self, x: Any) -> np.ndarray:
        """The raw scale function on ``x``, as float64 (exceptions propagate)."""
        with np.errstate(all="ignore"):
            return np.asarray(self.policy.scale_fn(x, **self.params), dtype=np.float64)

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

    def check_serialisation(self) -> None:
        """A schedule by name survives get_config/JSON/from_config with the same rates."""
        __tracebackhide__ = True
        import keras

        from clrplug.schedule import CyclicalSchedule

        name = self.policy.name
        step_size, steps = 5, np.arange(40)
        what = f"CyclicalSchedule(mode={name!r}, policy_params={self.params})"
        try:
            schedule = CyclicalSchedule(
                base_lr=0.001, max_lr=0.006, step_size=step_size, mode=name,
                policy_params=self.params, horizon=len(steps),
            )
            config = json.loads(json.dumps(keras.saving.serialize_keras_object(schedule)))
            restored = keras.saving.deserialize_keras_object(config)
        except Exception as exc:
            raise self.fail(
                "serialisation", f"{what} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(restored, CyclicalSchedule):
            raise self.fail(
                "serialisation", f"{what} came back as a {type(restored).__name__}"
            )
        if restored.scale.policy.name != name or dict(restored.scale.params) != self.params:
            raise self.fail(
                "serialisation",
                f"{what} came back with mode={restored.scale.policy.name!r}, "
                f"policy_params={dict(restored.scale.params)}",
            )
        expected = schedule.rates_at(steps)
        for label, tested in (("the schedule", schedule), ("the restored schedule", restored)):
            for step in steps:
                try:
                    with warnings.catch_warnings():
                        # numpy 2 warns about some backends' __array__; harmless here.
                        warnings.simplefilter("ignore", DeprecationWarning)
                        got = float(keras.ops.convert_to_numpy(tested(int(step))))
                except Exception as exc:
                    raise self.fail(
                        "serialisation",
                        f"{label} of {what} raised at step {int(step)}: "
                        f"{type(exc).__name__}: {exc}",
                    ) from exc
                if not math.isclose(got, expected[step], rel_tol=1e-5, abs_tol=1e-9):
                    raise self.fail(
                        "serialisation",
                        f"{label} of {what} (step_size={step_size}) gives lr {got!r} at step "
                        f"{int(step)}; clrplug.learning_rates gives {float(expected[step])!r}",
                    )


@contextmanager
def _resolvable(policy: Policy) -> Iterator[None]:
    """Make ``policy`` resolvable by name for the serialisation check.

    A :class:`Policy` handed to :func:`check_policy` directly need not be registered:
    it is then registered at runtime in a temporary default registry (built-ins
    only), restored afterwards.
    """
    try:
        registered = registry_module.default_registry().get(policy.name) == policy
    except Exception:
        registered = False
    if registered:
        yield
        return
    temporary = registry_module.PolicyRegistry(autoload=False)
    if policy.name not in temporary.names():
        temporary.register(policy)
    previous = registry_module.set_default_registry(temporary)
    try:
        yield
    finally:
        registry_module.set_default_registry(previous)


def _resolve(name_or_policy: str | Policy) -> tuple[Policy, str | None]:
    """The policy to check and its source's description."""
    __tracebackhide__ = True
    if isinstance(name_or_policy, Policy):
        policy = name_or_policy
        try:
            registered = registry_module.default_registry().get(policy.name)
        except ClrplugError:
            return policy, None
        if registered != policy:
            raise PolicyConformanceError(
                policy.name,
                str(policy.source),
                "resolves",
                f"the registry resolves {policy.name!r} to a different policy, from "
                f"{registered.source}",
            )
        return registered, str(registered.source)
    if not isinstance(name_or_policy, str):
        raise TypeError(
            f"check_policy() takes a policy name or a clrplug.Policy, got "
            f"{type(name_or_policy).__name__} {name_or_policy!r}."
        )
    try:
        policy = registry_module.default_registry().get(name_or_policy)
    except ClrplugError as exc:
        raise PolicyConformanceError(
            name_or_policy, None, "resolves", f"{type(exc).__name__}: {exc}"
        ) from exc
    return policy, str(policy.source)


def check_policy(
    name_or_policy: str | Policy, *, params: Mapping[str, float] | None = None
) -> None:
    """Verify that a policy has every property clrplug relies on.

    Runs in well under a second (plus Keras' import, the first time).

    Args:
        name_or_policy: a registered policy's name (checked as the registry resolves
            it), or a :class:`~clrplug.Policy` object (checked as given; if its name is
            not registered it is registered temporarily for the serialisation check).
        params: parameter values to check with instead of the defaults, e.g.
            ``{"rate": 2e-4}``; unknown names fail the check.

    Raises:
        PolicyConformanceError: the first property that does not hold (see
            :data:`PROPERTIES`), naming the policy, its source and an x that shows it.

    Example:

    ```python
    from clrplug.testing import check_policy, PolicyConformanceError

    check_policy("exp_range", params={"gamma": 0.99994})
    try:
        check_policy("exp_range", params={"gamma": 1.5})
    except PolicyConformanceError as error:
        assert error.property == "range" and error.x == 1.0
        assert "scale(1.0, gamma=1.5) = 1.5" in str(error)
    else:
        raise AssertionError("gamma=1.5 leaves [0, 1]")
    ```
    """
    __tracebackhide__ = True  # pytest shows the failing test and the message, not the kit
    policy, source = _resolve(name_or_policy)
    checker = _Checker(policy, source, {})
    try:
        checker.params = policy.resolve_params(params)
    except ClrplugError as exc:
        raise checker.fail("parameters", str(exc)) from exc
    checker.check_signature()
    xs = sample_x(policy.scale_mode)
    values = checker.evaluate(xs)
    checker.check_repeatable(xs, values)
    checker.check_scalars(xs, values)
    with _resolvable(policy):
        checker.check_serialisation()


def policies_of(distribution: str) -> list[str]:
    """The names of the policies a distribution registers, sorted.

    For ``@pytest.mark.parametrize("name", policies_of("clrplug-mine"))``.
    ``"clrplug"`` gives the built-ins. Distribution names compare as pip does
    (``clrplug_mine`` is ``clrplug-mine``).

    Raises:
        LookupError: the distribution registers no policy; the message says why
            (not installed, switched off, failed to load, or no entry point).
    """
    if not isinstance(distribution, str) or not distribution.strip():
        raise TypeError(f"policies_of() takes a distribution name, got {distribution!r}.")
    registry = registry_module.default_registry()
    key = registry_module.canonical_distribution_name(distribution)
    names = sorted(
        {
            p.name
            for p in registry.policies()
            if p.source.distribution and registry_module.canonical_distribution_name(p.source.distribution) == key
        }
    )
    if names:
        return names
    failures = [
        f for f in registry.failures() if registry_module.canonical_distribution_name(f.source.distribution or "") == key
    ]
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        reason = "it is not installed in this environment"
    else:
        groups = {ep.group for ep in dist.entry_points}
        plugin_groups = {
            registry_module.ENTRY_POINT_GROUP,
            registry_module.POLICY_ENTRY_POINT_GROUP,
        }
        switch = registry_module.DISABLE_AUTOLOAD_ENV
        allowlist_env = registry_module.PLUGINS_ENV
        allowlist = os.environ.get(allowlist_env)
        if failures:
            reason = "it failed to load: " + "; ".join(f.error for f in failures)
        elif registry_module.plugins_switched_off():
            reason = f"plugin loading is switched off by {switch}={os.environ[switch]!r}"
        elif allowlist is not None and key not in {
            registry_module.canonical_distribution_name(n) for n in allowlist.split(",") if n.strip()
        }:
            reason = f"{allowlist_env}={allowlist!r} does not include it"
        elif not groups & plugin_groups:
            reason = f"it has no entry point in the groups {sorted(plugin_groups)}"
        else:
            reason = "its hook registered nothing"
    raise LookupError(f"distribution {distribution!r} registers no clrplug policy: {reason}.")


def applied_rates(callback: Any, steps: int = 30, *, epochs: int = 1) -> np.ndarray:
    """The learning rate each training step actually applied, measured from the weights.

    Trains a one-unit ``Dense`` layer with zero kernel and bias on zero inputs with
    plain SGD and the loss ``mean(y_pred)``: the bias' gradient is exactly 1, so each
    step lowers the bias by exactly the rate the optimizer used. Comparing the result
    with :func:`clrplug.learning_rates` (float32 tolerance, e.g. ``rtol=1e-5,
    atol=1e-9``, with ``base_lr`` around 1e-3 and a few dozen steps) checks a
    policy end to end on the current Keras backend.

    Args:
        callback: the callback that sets the rate, e.g. a :class:`~clrplug.CyclicLR`.
        steps: training steps per epoch (batches of one sample).
        epochs: number of epochs.

    Returns:
        A float64 array of ``steps * epochs`` rates, in training order.

    Example:

    ```python
    import numpy as np
    import clrplug
    from clrplug.testing import applied_rates

    lr = applied_rates(clrplug.CyclicLR(step_size=5, mode="triangular2"), steps=20)
    expected = clrplug.learning_rates(np.arange(20), step_size=5, mode="triangular2")
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)
    ```
    """
    import keras

    dense = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="zeros")
    model = keras.Sequential([keras.Input((1,)), dense])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01),
        loss=lambda y_true, y_pred: keras.ops.mean(y_pred),
    )
    biases: list[float] = [0.0]

    class RecordBias(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            _ = self.model  # on JAX, reading the model syncs the trained state back
            with warnings.catch_warnings():
                # numpy 2 warns about Keras' variables' __array__ (no copy keyword); harmless.
                warnings.simplefilter("ignore", DeprecationWarning)
                biases.append(float(keras.ops.convert_to_numpy(dense.bias.value)[0]))

    x = np.zeros((steps, 1), dtype="float32")
    model.fit(
        x, x, batch_size=1, epochs=epochs, shuffle=False, verbose=0,
        callbacks=[callback, RecordBias()],
    )
    trace = np.asarray(biases, dtype=np.float64)
    return trace[:-1] - trace[1:]


# -- the pytest plugin -----------------------------------------------------------------

if pytest is not None:

    @pytest.fixture
    def clrplug_policy_check() -> Callable[..., None]:
        """:func:`clrplug.testing.check_policy`: call it with a policy name (or Policy)."""
        return check_policy

    def pytest_addoption(parser: pytest.Parser) -> None:
        group = parser.getgroup("clrplug", "clrplug policy conformance")
        group.addoption(
            "--clrplug-policy",
            action="append",
            default=[],
            metavar="NAME",
            help="run clrplug's conformance check on the policy NAME (repeatable); "
            "'dist:DISTRIBUTION' checks every policy of an installed distribution.",
        )

    class PolicyConformanceItem(pytest.Item):
        """A test item that runs :func:`check_policy` on one policy (``--clrplug-policy``)."""

        def __init__(self, *, policy: str, error: Exception | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.policy = policy
            self.error = error

        def runtest(self) -> None:
            if self.error is not None:
                raise self.error
            check_policy(self.policy)

        def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
            if isinstance(excinfo.value, (PolicyConformanceError, LookupError)):
                return str(excinfo.value)
            return super().repr_failure(excinfo, style=style)

        def reportinfo(self) -> tuple[Any, int | None, str]:
            return self.path, None, f"clrplug conformance of policy {self.policy!r}"

    def pytest_collection_modifyitems(
        session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        requested: list[str] = config.getoption("clrplug_policy", default=[]) or []
        checks: dict[str, Exception | None] = {}
        for entry in requested:
            if not entry.startswith("dist:"):
                checks.setdefault(entry, None)
                continue
            try:
                checks.update(dict.fromkeys(policies_of(entry[len("dist:") :])))
            except LookupError as exc:
                checks[entry] = exc
        for name, error in checks.items():
            items.append(
                PolicyConformanceItem.from_parent(
                    session, name=f"clrplug-conformance[{name}]", policy=name, error=error
                )
            )
