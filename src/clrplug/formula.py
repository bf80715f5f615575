"""The formulas, in float64: the one reference for every rate and momentum clrplug applies.

:func:`learning_rates` is the seed's formula (PyTorch's for asymmetric cycles);
:func:`one_cycle_rates` is PyTorch's ``OneCycleLR``. The compiled step computes
the same values with integer positions and float32 arithmetic (``clrplug.engine``)
and is tested against these; the callbacks' ``history``, the plots and PyTorch's
eager path (evaluated in blocks of updates) call them directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from clrplug import checks
from clrplug.cycle import (
    Bounds,
    Geometry,
    Momentum,
    OneCycle,
    Scale,
    check_bounds,
    check_geometry,
    check_momentum,
    check_one_cycle,
    resolve_scale,
    resolve_waveform,
)
from clrplug.errors import InvalidArgumentError
from clrplug.records import Waveform

__all__ = ["cycle_position", "cyclic_values", "learning_rates", "one_cycle_rates", "one_cycle_values"]


def _counts(name: str, values: Any, meaning: str) -> np.ndarray:
    """``values`` as float64; refuses the first one that is not finite and >= 0."""
    array = np.asarray(values, dtype=np.float64)
    bad = ~(np.isfinite(array) & (array >= 0))
    if bad.any():
        raise InvalidArgumentError(
            f"{name} must be finite and >= 0 ({meaning}), got {float(array[bad].flat[0])!r}."
        )
    return array


def cycle_position(k: Any, geometry: Geometry) -> tuple[Any, Any]:
    """The cycle number and the linear rise ``t`` (0 at the cycle's ends, 1 at its peak).

    Symmetric cycles use the seed's formula verbatim::

        cycle = floor(1 + k / (2 * step_size)); x = abs(k / step_size - 2 * cycle + 1)
        t = max(0, 1 - x)

    asymmetric ones PyTorch's ``CyclicLR`` (``x`` the fraction of the cycle done,
    rising over ``step_size / (step_size + step_size_down)`` of it). Works on numpy
    arrays and on single numbers.
    """
    if geometry.symmetric:
        s = geometry.step_size
        cycle = np.floor(1.0 + k / (2.0 * s))
        x = np.abs(k / s - 2.0 * cycle + 1.0)
        return cycle, np.maximum(0.0, 1.0 - x)
    total = geometry.step_size + geometry.step_size_down
    ratio = geometry.step_size / total
    cycle = np.floor(1.0 + k / total)
    x = 1.0 + k / total - cycle
    return cycle, np.where(x <= ratio, x / ratio, (x - 1.0) / (ratio - 1.0))


def cyclic_values(
    k: Any,
    geometry: Geometry,
    scale: Scale,
    waveform: Waveform,
    bounds: Bounds,
    momentum: Momentum | None = None,
) -> tuple[Any, Any]:
    """Rates (and momenta, when cycled) at cycle iterations ``k`` for validated arguments.

    ``lr = base_lr + (max_lr - base_lr) * shape(t) * scale(cycle or k)`` and
    ``momentum = max_momentum - (max_momentum - base_momentum) * shape(t) * scale(...)``.
    ``k`` is validated and every value range-checked.
    """
    k = _counts("iterations", k, "cycle iterations since the last reset")
    cycle, rise = cycle_position(k, geometry)
    x = cycle if scale.scale_mode == "cycle" else k
    height = waveform.shape(rise) * scale(x)
    rates = bounds.base_lr + (bounds.max_lr - bounds.base_lr) * height
    if momentum is None:
        return rates, None
    return rates, momentum.max_momentum - (momentum.max_momentum - momentum.base_momentum) * height


def learning_rates(
    iterations: Any,
    base_lr: float = 0.001,
    max_lr: float = 0.006,
    step_size: float = 2000,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[..., Any] | None = None,
    scale_mode: str | None = None,
    policy_params: Mapping[str, float] | None = None,
    *,
    step_size_down: float | None = None,
    waveform: str | Waveform = "triangular",
) -> np.ndarray:
    """The learning rate at each cycle iteration, in float64: the seed's formula.

    ```
    cycle = floor(1 + iterations / (2 * step_size))
    x = abs(iterations / step_size - 2 * cycle + 1)
    lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale_fn(cycle or iterations)
    ```

    Args:
        iterations: cycle iterations (training steps since the cycle started or was
            last reset), any array-like of non-negative numbers.
        base_lr: lower boundary of the cycle.
        max_lr: upper boundary of the cycle.
        step_size: training iterations per half cycle (the rising half when
            ``step_size_down`` is given).
        mode: a registered policy name (ignored when ``scale_fn`` is given).
        gamma: the ``exp_range`` constant, in (0, 1].
        scale_fn: a scale function used instead of ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``; defaults to the policy's own
            (``"cycle"`` for a ``scale_fn``).
        policy_params: values for the policy's own parameters.
        step_size_down: iterations of the falling half (PyTorch's ``step_size_down``);
            None for symmetric cycles.
        waveform: the shape within a cycle (``"triangular"``, ``"cosine"``, ``"welch"``
            or a plugin's), applied to the triangle's height.

    Returns:
        A float64 array of the shape of ``iterations``.

    Example:

    ```python
    import clrplug
    lr = clrplug.learning_rates(range(8001), mode="triangular2")
    assert lr[0] == 0.001 and abs(lr[2000] - 0.006) < 1e-15 and abs(lr[6000] - 0.0035) < 1e-15
    ```
    """
    bounds = check_bounds(base_lr, max_lr)
    geometry = check_geometry(step_size, step_size_down)
    scale = resolve_scale(mode, gamma, scale_fn, scale_mode, policy_params)
    rates, _ = cyclic_values(iterations, geometry, scale, resolve_waveform(waveform), bounds)
    return rates


def _anneal(strategy: str, start: Any, end: Any, pct: Any) -> Any:
    if strategy == "cos":
        return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1.0)
    return (end - start) * pct + start


def one_cycle_values(step: Any, spec: OneCycle) -> tuple[np.ndarray, np.ndarray | None]:
    """Rates (and momenta) of a validated 1cycle at optimizer steps ``step`` since its start.

    PyTorch's ``OneCycleLR.get_lr``, vectorised; from ``total_steps - 1`` on the
    final rate is held (PyTorch raises there).
    """
    given = _counts("step", step, "optimizer steps since the 1cycle began")
    t = np.minimum(given, spec.total_steps - 1.0)
    rates, momenta = np.zeros_like(t), np.zeros_like(t)
    start = 0.0
    done = np.zeros(t.shape, dtype=bool)
    for i, (end, lr0, lr1, m0, m1) in enumerate(spec.phases):
        here = ~done & ((t <= end) if i < len(spec.phases) - 1 else True)
        pct = (t[here] - start) / (end - start)
        rates[here] = _anneal(spec.anneal_strategy, lr0, lr1, pct)
        momenta[here] = _anneal(spec.anneal_strategy, m0, m1, pct)
        done |= here
        start = end
    return rates, (momenta if spec.momentum is not None else None)


def one_cycle_rates(
    steps: Any,
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    *,
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Smith's 1cycle rates and momenta at each step, in float64 (PyTorch's ``OneCycleLR``).

    The rate warms up from ``max_lr / div_factor`` to ``max_lr`` over ``pct_start`` of
    ``total_steps``, then anneals to ``max_lr / div_factor / final_div_factor``
    (``three_phase``: back to the initial rate first); momentum moves the other way
    between ``max_momentum`` and ``base_momentum``. Past ``total_steps`` the final
    values are held.

    Returns:
        ``(rates, momenta)``; ``momenta`` is None when ``cycle_momentum=False``.

    Example:

    ```python
    import clrplug
    lr, momentum = clrplug.one_cycle_rates(range(100), max_lr=0.1, total_steps=100)
    assert abs(lr[0] - 0.004) < 1e-15 and abs(lr[29] - 0.1) < 1e-15
    assert abs(momentum[29] - 0.85) < 1e-15 and abs(lr[99] - 4e-7) < 1e-18
    ```
    """
    momentum = (
        check_momentum(base_momentum, max_momentum)
        if checks.flag("cycle_momentum", cycle_momentum)
        else None
    )
    spec = check_one_cycle(
        max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor,
        three_phase, momentum,
    )
    return one_cycle_values(steps, spec)

