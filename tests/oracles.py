"""Expected learning rates and momenta that owe nothing to clrplug.

The engine tests must not take their expected values from ``clrplug.learning_rates``: a
mistake there would be copied into both sides of every comparison. This module gives
two kinds of oracle, imports only numpy and the standard library (never clrplug, never
torch), and so serves every backend's test run:

* **Transcriptions of the seed** (``seed_rates``, ``seed_rates_asymmetric``,
  ``seed_momenta``): the formulas of the seed README (bckenstler/CLR), written out again
  here one iteration at a time in float64 Python arithmetic, for the three built-in modes
  and for custom ``scale_fn`` / ``scale_mode``. The asymmetric variant and the momenta
  follow the geometry of PyTorch's ``CyclicLR`` (``step_size_up`` / ``step_size_down``,
  momentum moving inversely to the rate), but are written independently of its code.
* **PyTorch's own schedulers** (``torch_cyclic``, ``torch_cyclic_at``, ``torch_one_cycle``,
  ``torch_one_cycle_at``, ``torch_one_cycle_parameters``): the values
  ``torch.optim.lr_scheduler.CyclicLR`` and ``OneCycleLR`` give, read from
  ``tests/torch_oracle.json``, which the script ``tests/torch_oracle.py`` wrote by running
  torch (see its docstring for the conventions and for how to add a call). A JAX or
  TensorFlow test process must not import torch (a CUDA torch wheel brings ``triton``,
  which crashes a process holding JAX or TensorFlow); the PyTorch run recomputes every
  stored value with torch and fails if one differs (tests/test_oracles.py). A call whose
  arguments are not stored raises ``LookupError`` saying how to add it.

Conventions shared by all oracles: index ``t`` is the t-th optimizer update of the cycle
(``t = 0`` is the first update, made with ``base_lr``); in torch terms, the value the
scheduler computes when ``last_epoch == t``.

Where torch and the seed part: torch's ``triangular2`` computes ``2.0 ** (cycle - 1)`` in
Python floats, which raises ``OverflowError`` from cycle 1026 on (iteration
``2050 * step_size``); the seed's numpy scalars give ``inf`` there, so its rate is
``base_lr``.

``exp_range`` in torch scales by ``gamma ** last_epoch`` (iterations since the scheduler
started), which is the seed's ``gamma ** clr_iterations`` as long as the cycle is never
reset.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ScaleFn = Callable[[float], float]

#: torch's values, written by tests/torch_oracle.py (the script next to it).
DATA = Path(__file__).resolve().parent / "torch_oracle.json"
#: Set to a file in the PyTorch run: the torch oracles ask torch directly and append
#: each call there, for ``python tests/torch_oracle.py --add FILE``.
RECORD_ENV = "CLRPLUG_ORACLE_RECORD"

__all__ = [
    "seed_momenta",
    "seed_rates",
    "seed_rates_asymmetric",
    "torch_cyclic",
    "torch_cyclic_at",
    "torch_one_cycle",
    "torch_one_cycle_at",
    "torch_one_cycle_parameters",
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


# ------------------------------------------------------------ torch, from stored data

_FLOATS = {"base_lr", "max_lr", "step_size_up", "step_size_down", "gamma", "base_momentum",
           "max_momentum", "pct_start", "div_factor", "final_div_factor"}
_INTS = {"steps", "total_steps"}
_BOOLS = {"cycle_momentum", "three_phase"}
_STRINGS = {"mode", "scale_mode", "anneal_strategy", "optimizer"}


def _scale_table(args: dict[str, Any], its: list[int]) -> list[list[float]]:
    """A custom ``scale_fn`` as its values at the arguments torch passes it for these
    updates (and update 0, which the scheduler's constructor computes): the cycle
    ``floor(1 + t / (up + down))`` in ``"cycle"`` mode, else ``t``; ints, as in torch."""
    up = float(args["step_size_up"])
    down = up if args["step_size_down"] is None else float(args["step_size_down"])
    points = {0, *its}
    if args["scale_mode"] == "cycle":
        points = {math.floor(1 + t / (up + down)) for t in points}
    return [[p, float(args["scale_fn"](p))] for p in sorted(points)]


def request(function: str, args: dict[str, Any]) -> dict[str, Any]:
    """One oracle call as data: its arguments with defaults, numbers as floats or ints,
    ``iterations`` as a list of ints, a custom ``scale_fn`` as a table of its values."""
    out: dict[str, Any] = {}
    for name, value in args.items():
        if value is None or name == "scale_fn":
            out[name] = None
        elif name == "iterations":
            out[name] = [int(t) for t in np.asarray(list(value)).ravel()]
        elif name in _FLOATS:
            out[name] = float(value)
        elif name in _INTS:
            out[name] = int(value)
        elif name in _BOOLS:
            out[name] = bool(value)
        elif name in _STRINGS:
            out[name] = str(value)
        else:
            raise TypeError(f"{function}: no stored form for argument {name}={value!r}")
    if args.get("scale_fn") is not None:
        its = out["iterations"] if "iterations" in out else list(range(out["steps"]))
        out["scale_fn"] = _scale_table(args, its)
    return {"function": function, "args": out}


def request_key(case: dict[str, Any]) -> str:
    """The text a stored case is found by."""
    return json.dumps({"function": case["function"], "args": case["args"]}, sort_keys=True)


@functools.cache
def _stored() -> dict[str, Any]:
    if not DATA.exists():
        return {"cases": [], "one_cycle_parameters": []}
    data: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    data["cases"] = {request_key(case): case for case in data["cases"]}
    return data


def _ask_torch(call: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Torch's values computed now (recording): in this process in the PyTorch run, else
    in a child process, so that torch never enters a process holding JAX or TensorFlow."""
    if os.environ.get("KERAS_BACKEND") == "torch":
        import torch_oracle  # the PyTorch run only (see the module docstring)

        return torch_oracle.compute(call)
    script = Path(__file__).resolve().parent / "torch_oracle.py"
    done = subprocess.run([sys.executable, str(script), "--compute"], input=json.dumps(call),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"torch_oracle.py --compute failed: {done.stderr[-2000:]}")
    case = json.loads(done.stdout)
    return _arrays(case)


def _arrays(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    momentum = case["momentum"]
    return (np.asarray(case["lr"], dtype=np.float64),
            None if momentum is None else np.asarray(momentum, dtype=np.float64))


def _lookup(function: str, args: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    call = request(function, args)
    record = os.environ.get(RECORD_ENV)
    if record:
        values = _ask_torch(call)
        with open(record, "a", encoding="utf-8") as out:
            out.write(json.dumps(call, sort_keys=True) + "\n")
        return values
    case = _stored()["cases"].get(request_key(call))
    if case is None:
        raise LookupError(
            f"no stored PyTorch value for {function}({call['args']}); record the calls of "
            f"this test with KERAS_BACKEND=torch {RECORD_ENV}=/tmp/calls.jsonl python -m "
            "pytest ..., then run: python tests/torch_oracle.py --add /tmp/calls.jsonl"
        )
    return _arrays(case)


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

    A float64 dummy parameter trained with ``torch.optim.SGD`` (``optimizer="sgd"``; with
    momentum when ``cycle_momentum``) or ``torch.optim.Adam`` (``"adam"``: the momentum
    returned is ``betas[0]``, which torch cycles). ``scale_mode`` is only used with a
    custom ``scale_fn``, as in torch. Returns ``(lr, momentum)``, momentum ``None`` unless
    ``cycle_momentum``. Stored values (see the module docstring).
    """
    return _lookup("torch_cyclic", dict(locals()))


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
    """``torch_cyclic`` at arbitrary update indices (e.g. ``10**8``): torch's
    ``CyclicLR.get_lr()`` at ``last_epoch = iteration`` (tests/torch_oracle.py)."""
    return _lookup("torch_cyclic_at", dict(locals()))


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
    inversely, ``max_momentum -> base_momentum -> max_momentum``. Stored values.
    """
    if not 0 <= steps <= total_steps:
        raise ValueError(f"steps ({steps}) must be between 0 and total_steps ({total_steps})")
    return _lookup("torch_one_cycle", dict(locals()))


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
    args = dict(locals())
    args["iterations"] = args.pop("its")
    return _lookup("torch_one_cycle_at", args)


def torch_one_cycle_parameters() -> dict[str, inspect.Parameter]:
    """``inspect.signature(torch.optim.lr_scheduler.OneCycleLR).parameters``, as stored:
    each parameter's name and default (``inspect.Parameter.empty`` where it has none)."""
    return {
        row["name"]: inspect.Parameter(row["name"], inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                       default=row.get("default", inspect.Parameter.empty))
        for row in _stored()["one_cycle_parameters"]
    }
