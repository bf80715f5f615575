"""Plots of a schedule and of a training history, and the figure helpers the tools share.

Drawn from the float64 formulas and ``history``, with ``matplotlib.figure.Figure``
rather than pyplot (no GUI backend, no global state): pass ``path`` to write a file,
``ax`` to draw into your own axes, or display the returned ``Figure``. matplotlib is
the optional extra ``clrplug[plot]``; nothing here imports Keras. The range test's
figure is :func:`clrplug.range_test.plot.plot_range_test`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clrplug import checks
from clrplug.cycle import (
    check_bounds,
    check_geometry,
    check_momentum,
    resolve_scale,
    resolve_waveform,
)
from clrplug.errors import ClrplugError, InvalidArgumentError
from clrplug.formula import cyclic_values, one_cycle_rates

__all__ = [
    "MissingExtraError",
    "new_figure",
    "plot_history",
    "plot_schedule",
    "require_matplotlib",
    "save_figure",
]


class MissingExtraError(ClrplugError, ImportError):
    """An optional dependency (a ``clrplug[...]`` extra) is not installed."""


def require_matplotlib() -> Any:
    """The ``matplotlib`` module, or :class:`MissingExtraError` naming the ``plot`` extra."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            "plotting needs matplotlib, which is not installed: pip install 'clrplug[plot]' "
            f"(or pip install matplotlib). ({exc})"
        ) from exc
    return matplotlib


def new_figure(rows: int = 1, *, width: float = 7.0, height: float = 3.6) -> tuple[Any, list[Any]]:
    """A matplotlib ``Figure`` (not registered with pyplot) and its ``rows`` stacked axes."""
    require_matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height * rows), layout="constrained")
    axes = [figure.add_subplot(rows, 1, i + 1) for i in range(rows)]
    return figure, axes


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` to ``path`` (format from the suffix), creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120)
    return target


def _finish(figure: Any, path: str | os.PathLike[str] | None) -> Any:
    if path is not None:
        save_figure(figure, path)
    return figure


def _axes_or_new(ax: Any, rows: int = 1, **size: float) -> tuple[Any, list[Any]]:
    if ax is None:
        return new_figure(rows, **size)
    axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    if len(axes) != rows:
        raise InvalidArgumentError(
            f"ax must be one matplotlib Axes per panel ({rows} here), got {len(axes)}."
        )
    return axes[0].figure, axes


def _format_lr(value: float) -> str:
    return f"{value:.3g}"


# -- schedules ------------------------------------------------------------------------------


#: The ``mode`` that plots Smith's 1cycle instead of a cyclical policy.
ONE_CYCLE = "one_cycle"


def schedule_values(
    mode: str = "triangular",
    *,
    base_lr: float = 0.001,
    max_lr: float = 0.006,
    step_size: float = 2000,
    steps: int | None = None,
    gamma: float = 1.0,
    scale_fn: Callable[..., Any] | None = None,
    scale_mode: str | None = None,
    policy_params: Mapping[str, float] | None = None,
    step_size_down: float | None = None,
    waveform: str = "triangular",
    cycle_momentum: bool | None = None,
    base_momentum: float | None = None,
    max_momentum: float | None = None,
    **one_cycle: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(iterations, rates, momenta)`` that :func:`plot_schedule` draws, from the float64 formulas."""
    if mode == ONE_CYCLE:
        total = steps if steps is not None else 1000
        total = checks.integer("steps", total, low=2)
        iterations = np.arange(total, dtype=np.float64)
        momentum_args: dict[str, Any] = {
            k: v for k, v in (("cycle_momentum", cycle_momentum), ("base_momentum", base_momentum),
                              ("max_momentum", max_momentum)) if v is not None
        }
        rates, momenta = one_cycle_rates(iterations, max_lr, total, **one_cycle, **momentum_args)
        return iterations, rates, momenta
    if one_cycle:
        raise InvalidArgumentError(
            f"{sorted(one_cycle)} only apply to mode={ONE_CYCLE!r}, not to mode={mode!r}."
        )
    bounds, geometry = check_bounds(base_lr, max_lr), check_geometry(step_size, step_size_down)
    if steps is None:
        steps = math.ceil(3 * (geometry.step_size + geometry.step_size_down))
    steps = checks.integer("steps", steps, low=1)
    iterations = np.arange(steps + 1, dtype=np.float64)
    momentum = (
        check_momentum(0.8 if base_momentum is None else base_momentum,
                       0.9 if max_momentum is None else max_momentum)
        if cycle_momentum else None
    )
    rates, momenta = cyclic_values(
        iterations, geometry, resolve_scale(mode, gamma, scale_fn, scale_mode, policy_params),
        resolve_waveform(waveform), bounds, momentum,
    )
    return iterations, rates, momenta


def plot_schedule(
    mode: str = "triangular",
    *,
    base_lr: float = 0.001,
    max_lr: float = 0.006,
    step_size: float = 2000,
    steps: int | None = None,
    gamma: float = 1.0,
    scale_fn: Callable[..., Any] | None = None,
    scale_mode: str | None = None,
    policy_params: Mapping[str, float] | None = None,
    step_size_down: float | None = None,
    waveform: str = "triangular",
    cycle_momentum: bool | None = None,
    base_momentum: float | None = None,
    max_momentum: float | None = None,
    path: str | os.PathLike[str] | None = None,
    ax: Any = None,
    title: str | None = None,
    **one_cycle: Any,
) -> Any:
    """Plot a schedule's learning rate (and momentum, when it cycles) against iterations.

    The curves are the float64 formulas (:func:`clrplug.learning_rates`, or
    :func:`clrplug.one_cycle_rates` for ``mode="one_cycle"``) at every iteration, for
    built-in and plugin policies alike.

    Args:
        mode: a registered policy name (``clrplug policies`` lists them), or
            ``"one_cycle"`` for Smith's 1cycle (then ``max_lr`` is its peak, ``steps`` its
            ``total_steps``, and ``pct_start``, ``anneal_strategy``, ``div_factor``,
            ``final_div_factor``, ``three_phase`` may be given as keywords).
        base_lr: the lower boundary, as in :class:`clrplug.CyclicLR`.
        max_lr: the upper boundary.
        step_size: training iterations per half cycle (the rising half).
        steps: the last iteration plotted; default three cycles (1000 for 1cycle).
        gamma: the ``exp_range`` constant.
        scale_fn: a custom scale function, used instead of ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``, for ``scale_fn``.
        policy_params: values for the policy's own parameters.
        step_size_down: iterations of the falling half (asymmetric cycles).
        waveform: the shape within a cycle.
        cycle_momentum: draw the momentum under the rate (default: only for 1cycle).
        base_momentum: momentum at the peak rate.
        max_momentum: momentum at the lowest rate.
        path: write the figure there (PNG, SVG or PDF, by suffix).
        ax: a matplotlib ``Axes`` (or two, for the momentum) to draw into.
        title: the title; default the schedule and its parameters.

    Returns:
        The matplotlib ``Figure``. Its first line holds exactly the plotted rates:
        ``fig.axes[0].lines[0].get_ydata()``; the momentum is ``fig.axes[1]``'s.

    Example:

    ```python
    import numpy as np
    import clrplug

    fig = clrplug.plot_schedule("triangular2", base_lr=0.001, max_lr=0.006, step_size=2000)
    line = fig.axes[0].lines[0]
    expected = clrplug.learning_rates(line.get_xdata(), 0.001, 0.006, 2000, "triangular2")
    assert np.array_equal(line.get_ydata(), expected)
    ```
    """
    iterations, lr, momenta = schedule_values(
        mode, base_lr=base_lr, max_lr=max_lr, step_size=step_size, steps=steps, gamma=gamma,
        scale_fn=scale_fn, scale_mode=scale_mode, policy_params=policy_params,
        step_size_down=step_size_down, waveform=waveform, cycle_momentum=cycle_momentum,
        base_momentum=base_momentum, max_momentum=max_momentum, **one_cycle,
    )
    rows = 1 if momenta is None else 2
    figure, axes = _axes_or_new(ax, rows)
    name = mode if scale_fn is None else getattr(scale_fn, "__name__", "scale_fn")
    axes[0].plot(iterations, lr, color="tab:blue", linewidth=1.5, label=name)
    axes[0].set_ylabel("learning rate")
    if momenta is not None:
        axes[1].plot(iterations, momenta, color="tab:purple", linewidth=1.5, label="momentum")
        axes[1].set_ylabel("momentum")
    for axis in axes:
        axis.set_xlim(0, iterations[-1])
        axis.grid(True, alpha=0.3)
    axes[-1].set_xlabel("training iterations")
    if title is None:
        if mode == ONE_CYCLE:
            extra = "".join(f", {k}={v}" for k, v in one_cycle.items())
            title = f"1cycle: max_lr={max_lr:.3g}, total_steps={len(iterations)}{extra}"
        else:
            extra = "".join(f", {k}={v:g}" for k, v in (policy_params or {}).items())
            if gamma != 1.0:
                extra += f", gamma={gamma:g}"
            if step_size_down is not None:
                extra += f", step_size_down={step_size_down:g}"
            if waveform != "triangular":
                extra += f", waveform={waveform}"
            title = (
                f"{name}: base_lr={base_lr:.3g}, max_lr={max_lr:.3g}, "
                f"step_size={step_size:g}{extra}"
            )
    axes[0].set_title(title, fontsize=10)
    return _finish(figure, path)


# -- histories ------------------------------------------------------------------------------


def _accuracy_keys(keys: Sequence[str]) -> list[str]:
    return [k for k in keys if "acc" in k]


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def plot_history(
    history: Mapping[str, Any],
    keys: Sequence[str] | None = None,
    *,
    against: str = "iterations",
    path: str | os.PathLike[str] | None = None,
    ax: Any = None,
    log_lr: bool | None = None,
) -> Any:
    """Plot a training history: ``CyclicLR.history`` or ``RangeTestResult.history``.

    Args:
        history: a mapping with ``lr``, ``iterations`` and logged values, one per step.
        keys: the logged values to plot. Default: every one (``against="iterations"``),
            or the accuracies, else the loss (``against="lr"``).
        against: ``"iterations"``: the learning rate and then each key against the
            training iterations, one panel each (the seed's policy figures);
            ``"lr"``: each key against the learning rate, one panel each (the seed's
            range-test figure, accuracy against learning rate).
        path: write the figure there.
        ax: the axes to draw into, one per panel.
        log_lr: a logarithmic learning-rate axis; default when the rates span more
            than 1.5 decades (an exponential range-test sweep).

    Returns:
        The matplotlib ``Figure``.

    Example:

    ```python
    import numpy as np, keras
    from clrplug import CyclicLR
    from clrplug.plotting import plot_history

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    clr = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=4)
    model.fit(np.ones((64, 4)), np.ones((64, 1)), batch_size=8, epochs=2,
              callbacks=[clr], verbose=0)
    fig = plot_history(clr.history)
    assert [a.get_ylabel() for a in fig.axes] == ["learning rate", "loss"]
    ```
    """
    if against not in ("iterations", "lr"):
        raise InvalidArgumentError(
            f"against must be 'iterations' or 'lr', got {against!r}."
        )
    if not isinstance(history, Mapping) or "lr" not in history or "iterations" not in history:
        raise InvalidArgumentError(
            "history must be a mapping with 'lr' and 'iterations' arrays (CyclicLR.history "
            f"or RangeTestResult.history), got {type(history).__name__} with keys "
            f"{sorted(history) if isinstance(history, Mapping) else '-'}."
        )
    logged = [k for k in history if k not in ("lr", "iterations")]
    if keys is None:
        if against == "iterations":
            keys = logged
        else:
            keys = _accuracy_keys(logged) or [k for k in logged if k == "loss"] or logged[:1]
    keys = list(keys)
    unknown = [k for k in keys if k not in logged]
    if unknown:
        raise InvalidArgumentError(
            f"keys: {unknown} not in the history; it has {logged}."
        )
    lr = np.asarray(history["lr"], dtype=np.float64)
    iterations = np.asarray(history["iterations"], dtype=np.float64)
    if log_lr is None:
        positive = lr[np.isfinite(lr) & (lr > 0)]
        log_lr = bool(positive.size) and positive.min() > 0 and (
            positive.max() / positive.min() > 10**1.5
        ) and len(positive) == np.isfinite(lr).sum()
    if against == "iterations":
        panels = ["lr", *keys]
        figure, axes = _axes_or_new(ax, len(panels), height=2.4)
        for axis, key in zip(axes, panels, strict=True):
            x, y = _finite(iterations, np.asarray(history[key], dtype=np.float64))
            axis.plot(x, y, color="tab:blue" if key == "lr" else "tab:orange", linewidth=1.2)
            axis.set_ylabel("learning rate" if key == "lr" else key)
            if key == "lr" and log_lr:
                axis.set_yscale("log")
            axis.grid(True, alpha=0.3)
        axes[-1].set_xlabel("training iterations")
        return _finish(figure, path)
    if not keys:
        raise InvalidArgumentError("keys: the history has no logged values to plot against lr.")
    figure, axes = _axes_or_new(ax, len(keys))
    for axis, key in zip(axes, keys, strict=True):
        x, y = _finite(lr, np.asarray(history[key], dtype=np.float64))
        axis.plot(x, y, color="tab:orange", linewidth=1.0, marker=".", markersize=3)
        if log_lr:
            axis.set_xscale("log")
        axis.set_xlabel("learning rate" + (" (log scale)" if log_lr else ""))
        axis.set_ylabel(key)
        axis.grid(True, alpha=0.3)
    return _finish(figure, path)
