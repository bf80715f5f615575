"""Expected learning rates and momenta that owe nothing to clrplug.

The engine tests must not take their expected values from ``clrplug.learning_rates``: a
mistake there would be copied into both sides of every comparison. This module gives
two kinds of oracle, and imports only numpy and torch, never clrplug:

* **Transcriptions of the seed** (``seed_rates``, ``seed_rates_asymmetric``,
  ``seed_momenta``): the formulas of the seed README (bckenstler/CLR), written out again
  here one iteration at a time in float64 Python arithmetic, for the three built-in modes
  and for custom ``scale_fn`` / ``scale_mode``. The asymmetric variant and the momenta
  follow the geometry of PyTorch's ``CyclicLR`` (``step_size_up`` / ``step_size_down``,
  momentum moving inversely to the rate), but are written independently of its code.
* **PyTorch's own schedulers** (``torch_cyclic``, ``torch_cyclic_at``, ``torch_one_cycle``,
  ``torch_one_cycle_at``): ``torch.optim.lr_scheduler.CyclicLR`` and ``OneCycleLR`` driving a
  real ``torch.optim`` optimizer over a dummy float64 parameter. No one working on clrplug
  wrote that code; the values are what the torch optimizer reads from
  ``param_groups[0]`` when it makes each update. Torch's schedulers compute in Python
  floats, so these are float64 values.

Conventions shared by all oracles: index ``t`` is the t-th optimizer update of the cycle
(``t = 0`` is the first update, made with ``base_lr``). In torch terms the value for
update ``t`` is what the scheduler computes when ``last_epoch == t``: the scheduler's
constructor makes the first computation (``last_epoch`` becomes 0), and each
``scheduler.step()`` after ``optimizer.step()`` computes the next one.

What torch sets for Adam: with ``cycle_momentum=True`` and an optimizer that has ``betas``
(Adam, AdamW, ...), ``CyclicLR`` and ``OneCycleLR`` write the cycled momentum into
``betas[0]`` (``group["betas"] = (momentum, *group["betas"][1:])``): beta_1 takes exactly
the values momentum would take with SGD (``max_momentum`` at the start of a cycle,
``base_momentum`` at its peak), and beta_2 is left alone. ``optimizer="adam"`` below reads
that ``betas[0]`` back.

Jumping to large iterations (``*_at``): ``CyclicLR.get_lr`` and ``OneCycleLR.get_lr`` are
closed forms of ``last_epoch`` and constructor constants (``base_lrs``, ``max_lrs``,
``total_size``, ``step_ratio``, ``scale_fn``; for 1cycle the phase table and the group's
``initial_lr`` / ``max_lr`` / ``min_lr``); unlike chainable schedulers such as ``StepLR``
they do not read the group's current ``lr``. Setting ``last_epoch`` and letting torch compute
is therefore the same computation the t-th ``step()`` would make, without the t steps
before it (tests/test_oracles.py checks the two agree exactly). We do it through
``scheduler.step(epoch)``, torch's own (deprecated) path that sets ``last_epoch = epoch``
and, as neither class has ``_get_closed_form_lr``, calls ``get_lr()`` and writes the result
(and momentum, as a side effect of ``get_lr``) into ``param_groups``; its deprecation
warning is silenced. The numbers are still computed by torch's code, in float64.

Where torch and the seed part: torch's ``triangular2`` computes ``2.0 ** (cycle - 1)`` in
Python floats, which raises ``OverflowError`` from cycle 1026 on (iteration
``2050 * step_size``); the seed's numpy scalars give ``inf`` there, so its rate is
``base_lr``. ``torch_cyclic_at`` lets torch raise.

``exp_range`` in torch scales by ``gamma ** last_epoch`` (iterations since the scheduler
started), which is the seed's ``gamma ** clr_iterations`` as long as the cycle is never
reset.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

ScaleFn = Callable[[float], float]

__all__ = [
    "seed_momenta",
    "seed_rates",
    "seed_rates_asymmetric",
    "torch_cyclic",
    "torch_cyclic_at",
    "torch_one_cycle",
    "torch_one_cycle_at",
]


def _iterations(n_or_iterations: int | Iterable[float]) -> list[float]:
    if isinstance(n_or_iterations, (int, np.integer)):
        return [float(t) for t in range(int(n_or_iterations))]
    return [float(t) for t in np.asarray(n_or_iterations, dtype=np.float64).ravel()]


def _seed_scale(mode: str, gamma: float, scale_fn: ScaleFn | None,
                scale_mode: str) -> tuple[ScaleFn, str]:
    """The seed's ``scale_fn`` / ``scale_mode`` for a mode (a custom ``scale_fn`` wins)."""
    if scale_fn is not None:
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', not {scale_mode!r}")
        return scale_fn, scale_mode
    if mode == "triangular":
        return (lambda x: 1.0), "cycle"
    if mode == "triangular2":
        return (lambda x: 1 / (2.0 ** (x - 1))), "cycle"
    if mode == "exp_range":
        return (lambda x: gamma ** (x)), "iterations"
    raise ValueError(f"mode must be 'triangular', 'triangular2' or 'exp_range', not {mode!r}")


def seed_rates(
    n_or_iterations: int | Iterable[float],
    base_lr: float = 0.001,
    max_lr: float = 0.006,
    step_size: float = 2000.0,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: ScaleFn | None = None,
    scale_mode: str = "cycle",
) -> np.ndarray:
    """The seed's rate for each cycle iteration (``n`` means iterations ``0..n-1``).

    Transcribes the seed's ``CyclicLR.clr()`` for one iteration at a time::

        cycle = floor(1 + iterations / (2 * step_size))
        x = abs(iterations / step_size - 2 * cycle + 1)
        lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale_fn(cycle or iterations)

    with the seed's built-in ``scale_fn``s: ``1`` (triangular), ``1/2**(cycle-1)``
    (triangular2) and ``gamma**iterations`` (exp_range, scaled on iterations). As in the
    seed, ``cycle`` is a ``numpy.float64`` and ``iterations`` a Python float, so
    triangular2's ``2.**(cycle-1)`` overflows to inf past cycle 1025 and the rate is then
    ``base_lr`` (torch raises there instead).
    """
    fn, on = _seed_scale(mode, gamma, scale_fn, scale_mode)
    out = []
    with np.errstate(over="ignore"):  # triangular2 past cycle 1025: 2.**1025 is inf -> 0
        for it in _iterations(n_or_iterations):
            cycle = np.floor(1 + it / (2 * step_size))  # np.float64, as in the seed
            x = np.abs(it / step_size - 2 * cycle + 1)
            scale = fn(cycle) if on == "cycle" else fn(it)
            out.append(base_lr + (max_lr - base_lr) * np.maximum(0, (1 - x)) * scale)
    return np.asarray(out, dtype=np.float64)


def _asymmetric_heights(its: list[float], step_size_up: float,
                        step_size_down: float | None) -> list[tuple[float, float]]:
    """``(cycle, height)`` per iteration: height rises 0 -> 1 over ``step_size_up``
    iterations and falls back to 0 over ``step_size_down``."""
    up = float(step_size_up)
    down = float(step_size_down) if step_size_down is not None else up
    total = up + down
    out = []
    for it in its:
        cycle = np.floor(1 + it / total)
        position = it - (cycle - 1) * total  # iterations since this cycle began
        height = position / up if position <= up else (total - position) / down
        out.append((cycle, float(height)))
    return out


def seed_rates_asymmetric(
    n_or_iterations: int | Iterable[float],
    base_lr: float = 0.001,
    max_lr: float = 0.006,
    step_size_up: float = 2000.0,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: ScaleFn | None = None,
    scale_mode: str = "cycle",
) -> np.ndarray:
    """The seed's policy on a cycle of ``step_size_up + step_size_down`` iterations.

    The rate climbs linearly from ``base_lr`` for ``step_size_up`` iterations and falls
    for ``step_size_down`` (PyTorch's geometry); the amplitude is scaled as in the seed.
    With ``step_size_down=None`` (or equal to ``step_size_up``) this is ``seed_rates``.
    """
    fn, on = _seed_scale(mode, gamma, scale_fn, scale_mode)
    its = _iterations(n_or_iterations)
    out = []
    with np.errstate(over="ignore"):
        for it, (cycle, height) in zip(its, _asymmetric_heights(its, step_size_up,
                                                                step_size_down),
                                       strict=True):
            scale = fn(cycle) if on == "cycle" else fn(it)
            out.append(base_lr + (max_lr - base_lr) * height * scale)
    return np.asarray(out, dtype=np.float64)


def seed_momenta(
    n_or_iterations: int | Iterable[float],
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
    step_size_up: float = 2000.0,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: ScaleFn | None = None,
    scale_mode: str = "cycle",
) -> np.ndarray:
    """Momentum cycled inversely to the rate: ``max_momentum`` where the rate is
    ``base_lr``, ``max_momentum - (max_momentum - base_momentum) * scale`` at the peak.

    ``momentum = max_momentum - (max_momentum - base_momentum) * height * scale``, with
    the same height and scale as ``seed_rates_asymmetric`` (PyTorch's ``cycle_momentum``).
    """
    fn, on = _seed_scale(mode, gamma, scale_fn, scale_mode)
    its = _iterations(n_or_iterations)
    out = []
    with np.errstate(over="ignore"):
        for it, (cycle, height) in zip(its, _asymmetric_heights(its, step_size_up,
                                                                step_size_down),
                                       strict=True):
            scale = fn(cycle) if on == "cycle" else fn(it)
            out.append(max_momentum - (max_momentum - base_momentum) * height * scale)
    return np.asarray(out, dtype=np.float64)


# ----------------------------------------------------------------------------- torch


def _optimizer(kind: str, lr: float, momentum: float) -> torch.optim.Optimizer:
    param = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    if kind == "sgd":
        return torch.optim.SGD([param], lr=lr, momentum=momentum)
    if kind == "adam":
        return torch.optim.Adam([param], lr=lr, betas=(momentum, 0.999))
    raise ValueError(f"optimizer must be 'sgd' or 'adam', not {kind!r}")


def _read(optimizer: torch.optim.Optimizer, kind: str) -> tuple[float, float]:
    group = optimizer.param_groups[0]
    momentum = group["betas"][0] if kind == "adam" else group["momentum"]
    return float(group["lr"]), float(momentum)


def _run(scheduler: Any, optimizer: torch.optim.Optimizer, steps: int, kind: str,
         momentum: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Train ``steps`` updates the way torch documents it, recording what each uses."""
    param = optimizer.param_groups[0]["params"][0]
    lrs, moms = [], []
    for t in range(steps):
        lr, m = _read(optimizer, kind)
        lrs.append(lr)
        moms.append(m)
        param.grad = torch.ones_like(param)
        optimizer.step()
        if t + 1 < steps:  # OneCycleLR refuses a step past total_steps
            scheduler.step()
    lr_out = np.asarray(lrs, dtype=np.float64)
    return lr_out, (np.asarray(moms, dtype=np.float64) if momentum else None)


def _jump(scheduler: Any, optimizer: torch.optim.Optimizer, iterations: Iterable[int],
          kind: str, momentum: bool) -> tuple[np.ndarray, np.ndarray | None]:
    lrs, moms = [], []
    with warnings.catch_warnings():
        # "The epoch parameter in `scheduler.step()` was not necessary..." and the
        # step-order warning: both expected here, neither changes the computation.
        warnings.simplefilter("ignore", UserWarning)
        for it in np.asarray(list(iterations)).ravel():
            scheduler.step(int(it))
            lr, m = _read(optimizer, kind)
            lrs.append(lr)
            moms.append(m)
    lr_out = np.asarray(lrs, dtype=np.float64)
    return lr_out, (np.asarray(moms, dtype=np.float64) if momentum else None)


def _cyclic(base_lr: float, max_lr: float, step_size_up: float, step_size_down: float | None,
            mode: str, gamma: float, scale_fn: ScaleFn | None, scale_mode: str,
            cycle_momentum: bool, base_momentum: float, max_momentum: float,
            optimizer: str) -> tuple[Any, torch.optim.Optimizer]:
    opt = _optimizer(optimizer, base_lr, max_momentum if cycle_momentum else 0.0)
    scheduler = torch.optim.lr_scheduler.CyclicLR(
        opt,
        base_lr=base_lr,
        max_lr=max_lr,
        step_size_up=step_size_up,  # type: ignore[arg-type]  # torch takes float(...)
        step_size_down=step_size_down,  # type: ignore[arg-type]
        mode=mode,  # type: ignore[arg-type]
        gamma=gamma,
        scale_fn=scale_fn,
        scale_mode=scale_mode,  # type: ignore[arg-type]
        cycle_momentum=cycle_momentum,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
    )
    return scheduler, opt


def torch_cyclic(
    steps: int,
    base_lr: float = 0.001,
    max_lr: float = 0.006,
    step_size_up: float = 2000.0,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: ScaleFn | None = None,
    scale_mode: str = "cycle",
    cycle_momentum: bool = False,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
    optimizer: str = "sgd",
) -> tuple[np.ndarray, np.ndarray | None]:
    """``torch.optim.lr_scheduler.CyclicLR``: the rate (and momentum) of updates 0..steps-1.

    A float64 dummy parameter is trained with ``torch.optim.SGD`` (``optimizer="sgd"``;
    with momentum when ``cycle_momentum``) or ``torch.optim.Adam`` (``"adam"``: the
    momentum returned is ``betas[0]``, which torch cycles). ``scale_mode`` is only used
    with a custom ``scale_fn``, as in torch. Returns ``(lr, momentum)``, momentum ``None``
    unless ``cycle_momentum``.
    """
    scheduler, opt = _cyclic(base_lr, max_lr, step_size_up, step_size_down, mode, gamma,
                             scale_fn, scale_mode, cycle_momentum, base_momentum,
                             max_momentum, optimizer)
    return _run(scheduler, opt, int(steps), optimizer, cycle_momentum)


def torch_cyclic_at(
    iterations: Iterable[int],
    base_lr: float = 0.001,
    max_lr: float = 0.006,
    step_size_up: float = 2000.0,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: ScaleFn | None = None,
    scale_mode: str = "cycle",
    cycle_momentum: bool = False,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
    optimizer: str = "sgd",
) -> tuple[np.ndarray, np.ndarray | None]:
    """``torch_cyclic`` at arbitrary update indices (e.g. ``10**8``) without stepping there.

    Each value is torch's ``CyclicLR.get_lr()`` at ``last_epoch = iteration``, reached
    through ``scheduler.step(iteration)`` (see the module docstring for why that is the
    same computation as stepping).
    """
    scheduler, opt = _cyclic(base_lr, max_lr, step_size_up, step_size_down, mode, gamma,
                             scale_fn, scale_mode, cycle_momentum, base_momentum,
                             max_momentum, optimizer)
    return _jump(scheduler, opt, iterations, optimizer, cycle_momentum)


def _one_cycle(max_lr: float, total_steps: int, pct_start: float, anneal_strategy: str,
               div_factor: float, final_div_factor: float, three_phase: bool,
               cycle_momentum: bool, base_momentum: float, max_momentum: float,
               optimizer: str) -> tuple[Any, torch.optim.Optimizer]:
    opt = _optimizer(optimizer, max_lr, max_momentum if cycle_momentum else 0.0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=max_lr,
        total_steps=int(total_steps),
        pct_start=float(pct_start),  # torch insists on a float
        anneal_strategy=anneal_strategy,  # type: ignore[arg-type]
        cycle_momentum=cycle_momentum,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=three_phase,
    )
    return scheduler, opt


def torch_one_cycle(
    steps: int,
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    optimizer: str = "sgd",
) -> tuple[np.ndarray, np.ndarray | None]:
    """``torch.optim.lr_scheduler.OneCycleLR``: rate (and momentum) of updates 0..steps-1.

    ``steps <= total_steps`` (torch raises when stepped past ``total_steps``). The rate
    starts at ``max_lr / div_factor``, reaches ``max_lr`` at update
    ``pct_start * total_steps - 1`` and ends at ``max_lr / div_factor / final_div_factor``
    at update ``total_steps - 1``. Momentum (``betas[0]`` for ``optimizer="adam"``) moves
    inversely, ``max_momentum -> base_momentum -> max_momentum``.
    """
    if not 0 <= steps <= total_steps:
        raise ValueError(f"steps ({steps}) must be between 0 and total_steps ({total_steps})")
    scheduler, opt = _one_cycle(max_lr, total_steps, pct_start, anneal_strategy, div_factor,
                                final_div_factor, three_phase, cycle_momentum,
                                base_momentum, max_momentum, optimizer)
    return _run(scheduler, opt, int(steps), optimizer, cycle_momentum)


def torch_one_cycle_at(
    iterations: Iterable[int],
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    optimizer: str = "sgd",
) -> tuple[np.ndarray, np.ndarray | None]:
    """``torch_one_cycle`` at arbitrary update indices ``0 <= i <= total_steps``."""
    its = np.asarray(list(iterations)).ravel()
    if its.size and (its.min() < 0 or its.max() > total_steps):
        raise ValueError(f"iterations must lie in [0, total_steps={total_steps}]")
    scheduler, opt = _one_cycle(max_lr, total_steps, pct_start, anneal_strategy, div_factor,
                                final_div_factor, three_phase, cycle_momentum,
                                base_momentum, max_momentum, optimizer)
    return _jump(scheduler, opt, its, optimizer, cycle_momentum)
