#!/usr/bin/env python3
"""PyTorch's schedulers as oracles, and the script that stores their values as data.

Run in the PyTorch test run only (or as a script): no test process that runs JAX or
TensorFlow may import torch (a CUDA torch wheel brings ``triton``, and importing it into
a process holding JAX or TensorFlow can crash it). The other runs read the values this
script stored in ``tests/torch_oracle.json`` through the functions of the same names in
``tests/oracles.py``; tests/test_oracles.py (PyTorch run) checks this module against
values worked out by hand and recomputes every stored value, failing if one differs.

* ``torch_cyclic``, ``torch_cyclic_at``, ``torch_one_cycle``, ``torch_one_cycle_at``:
  ``torch.optim.lr_scheduler.CyclicLR`` and ``OneCycleLR`` driving a real ``torch.optim``
  optimizer over a dummy float64 parameter. No one working on clrplug wrote that code;
  the values are what the torch optimizer reads from ``param_groups[0]`` when it makes
  each update. Torch's schedulers compute in Python floats, so these are float64 values.
  Nothing here imports clrplug.

Conventions: index ``t`` is the t-th optimizer update of the cycle (``t = 0`` is the
first update, made with ``base_lr``). In torch terms the value for update ``t`` is what
the scheduler computes when ``last_epoch == t``: the scheduler's constructor makes the
first computation (``last_epoch`` becomes 0), and each ``scheduler.step()`` after
``optimizer.step()`` computes the next one.

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

The stored data: one case per call a test makes, keyed by the call's arguments as
``oracles.request`` writes them (defaults filled in, numbers as floats or ints; a custom
``scale_fn`` as the table of its values at the arguments torch passes it, so the values
are torch's own computation with exactly the scale the test's function gives)::

    python tests/torch_oracle.py                # recompute every stored case, rewrite the data
    python tests/torch_oracle.py --check        # recompute and compare; exit 1 if one differs
    python tests/torch_oracle.py --add FILE     # also store the calls recorded in FILE
    python tests/torch_oracle.py --replace FILE # store exactly the calls recorded in FILE

A test calling an oracle with arguments not stored fails, saying so. To record its calls,
run it in the PyTorch run with ``CLRPLUG_ORACLE_RECORD=FILE`` (the oracles then ask torch
directly and append each call to FILE), then ``python tests/torch_oracle.py --add FILE``::

    KERAS_BACKEND=torch CLRPLUG_ORACLE_RECORD=/tmp/calls.jsonl python -m pytest tests/test_x.py
    python tests/torch_oracle.py --add /tmp/calls.jsonl
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracles  # numpy only: the request format and the data file's path

ScaleFn = Callable[[float], float]

__all__ = [
    "compute",
    "one_cycle_parameters",
    "torch_cyclic",
    "torch_cyclic_at",
    "torch_one_cycle",
    "torch_one_cycle_at",
]


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


def _signature_of(stored: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give the decorated computation the arguments, defaults and docstring of the function
    of the same name in tests/oracles.py (the stored values' reader): it receives them all,
    bound, as keywords."""
    signature = inspect.signature(stored)

    def decorate(compute: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(stored)
        def oracle(*args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray | None]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return compute(**bound.arguments)

        return oracle

    return decorate


@_signature_of(oracles.torch_cyclic)
def torch_cyclic(steps: int, **args: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A float64 dummy parameter trained with ``torch.optim.SGD`` or ``Adam`` (see
    ``_optimizer``) under torch's ``CyclicLR``, stepped ``steps`` times."""
    scheduler, opt = _cyclic(**args)
    return _run(scheduler, opt, int(steps), args["optimizer"], args["cycle_momentum"])


@_signature_of(oracles.torch_cyclic_at)
def torch_cyclic_at(iterations: Iterable[int], **args: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Torch's ``CyclicLR.get_lr()`` at ``last_epoch = iteration``, reached through
    ``scheduler.step(iteration)`` (the module docstring says why that is the same
    computation as stepping)."""
    scheduler, opt = _cyclic(**args)
    return _jump(scheduler, opt, iterations, args["optimizer"], args["cycle_momentum"])


@_signature_of(oracles.torch_one_cycle)
def torch_one_cycle(steps: int, **args: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if not 0 <= steps <= args["total_steps"]:
        raise ValueError(f"steps ({steps}) must be between 0 and total_steps ({args['total_steps']})")
    scheduler, opt = _one_cycle(**args)
    return _run(scheduler, opt, int(steps), args["optimizer"], args["cycle_momentum"])


@_signature_of(oracles.torch_one_cycle_at)
def torch_one_cycle_at(iterations: Iterable[int], **args: Any) -> tuple[np.ndarray, np.ndarray | None]:
    its = np.asarray(list(iterations)).ravel()
    if its.size and (its.min() < 0 or its.max() > args["total_steps"]):
        raise ValueError(f"iterations must lie in [0, total_steps={args['total_steps']}]")
    scheduler, opt = _one_cycle(**args)
    return _jump(scheduler, opt, its, args["optimizer"], args["cycle_momentum"])


# ------------------------------------------------------------------------- stored data


def _table_fn(table: list[list[float]]) -> ScaleFn:
    """A ``scale_fn`` that gives torch the stored values (a missing argument is an error)."""
    values = {int(x): float(v) for x, v in table}

    def scale_fn(x: float) -> float:
        if x not in values:
            raise KeyError(f"torch asked scale_fn({x!r}), which the stored table lacks")
        return values[int(x)]

    return scale_fn


def compute(request: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Torch's values for one request written by ``oracles.request``."""
    functions = {"torch_cyclic": torch_cyclic, "torch_cyclic_at": torch_cyclic_at,
                 "torch_one_cycle": torch_one_cycle, "torch_one_cycle_at": torch_one_cycle_at}
    args = dict(request["args"])
    if args.get("scale_fn") is not None:
        args["scale_fn"] = _table_fn(args["scale_fn"])
    return functions[request["function"]](**args)


def one_cycle_parameters() -> list[dict[str, Any]]:
    """``OneCycleLR``'s parameters: name, and default where it has one."""
    out = []
    for parameter in inspect.signature(torch.optim.lr_scheduler.OneCycleLR).parameters.values():
        row: dict[str, Any] = {"name": parameter.name}
        if parameter.default is not inspect.Parameter.empty:
            row["default"] = parameter.default
        out.append(row)
    return out


def _case(request: dict[str, Any]) -> dict[str, Any]:
    lr, momentum = compute(request)
    return {**request, "lr": lr.tolist(),
            "momentum": None if momentum is None else momentum.tolist()}


def generate(requests: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The data file's content: torch's values for each distinct request."""
    unique = {oracles.request_key(r): r for r in requests}
    return {
        "generated_by": "tests/torch_oracle.py",
        "torch": torch.__version__,
        "one_cycle_parameters": one_cycle_parameters(),
        "cases": [_case(unique[key]) for key in sorted(unique)],
    }


def dumps(data: dict[str, Any]) -> str:
    """JSON with one case a line (short diffs); floats as ``repr`` (exact round trip)."""
    head = {k: v for k, v in data.items() if k != "cases"}
    lines = [json.dumps(case, sort_keys=True) for case in data["cases"]]
    text = json.dumps(head, indent=1, sort_keys=True)[:-2]
    return text + ',\n "cases": [\n' + ",\n".join(lines) + "\n ]\n}\n"


def differences(stored: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """What differs between two data files' contents (torch's version aside), briefly."""
    problems = []
    if stored["one_cycle_parameters"] != fresh["one_cycle_parameters"]:
        problems.append("OneCycleLR's parameters")
    old = {oracles.request_key(c): c for c in stored["cases"]}
    for case in fresh["cases"]:
        key = oracles.request_key(case)
        if key not in old:
            problems.append(f"missing case {key[:200]}")
        elif (old[key]["lr"], old[key]["momentum"]) != (case["lr"], case["momentum"]):
            problems.append(f"values differ for {key[:200]}")
    return problems


def _recorded(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true",
                       help="recompute the stored cases and compare; write nothing")
    group.add_argument("--add", metavar="FILE", help="also store the calls recorded in FILE")
    group.add_argument("--replace", metavar="FILE",
                       help="store exactly the calls recorded in FILE")
    group.add_argument("--compute", action="store_true",
                       help="read one call (JSON) on stdin, write its case (JSON) on stdout")
    options = parser.parse_args(argv)
    if options.compute:
        print(json.dumps(_case(json.loads(sys.stdin.read())), sort_keys=True))
        return 0
    path = oracles.DATA
    stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    requests = [] if stored is None or options.replace else [
        {"function": c["function"], "args": c["args"]} for c in stored["cases"]]
    requests += _recorded(options.add or options.replace) if (options.add or options.replace) \
        else []
    data = generate(requests)
    if options.check:
        if stored is None:
            print(f"{path} does not exist", file=sys.stderr)
            return 1
        problems = differences(stored, data)
        for problem in problems[:20]:
            print(problem, file=sys.stderr)
        print(f"{len(data['cases'])} cases, {len(problems)} differ", file=sys.stderr)
        return 1 if problems else 0
    path.write_text(dumps(data), encoding="utf-8")
    print(f"wrote {len(data['cases'])} cases to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
