"""The default workflow, as clrplug ships it, on tasks that no choice of it ever saw.

    KERAS_BACKEND=jax python benchmarks/unseen.py [--seeds 3] [--out FILE]
    KERAS_BACKEND=jax python benchmarks/unseen.py --report FILE

``benchmarks/generalise.py`` chose the default (``DEFAULT_RULE`` with its peak times
``DEFAULT_PEAK_FACTOR``) by leaving one of its six tasks out at a time. This script takes
that default as fixed and tries it on tasks outside those six, built the same way
(:class:`generalise.Task`, its grid widened past an edge where a seed's best sits): per
task and seed, one LR range test (200 steps, 1e-5 to 10), one 1cycle run peaking at the
default's ``max_lr`` (``result.one_cycle()``), one CLR run between the default's bounds
(4 whole cycles), and the grid of fixed rates. The report gives the median accuracy of
each against the grid's best, and the cost (range test + run) against the grid's.

The first task is the case issue 21 reported: a small convolutional classifier trained
with SGD and momentum 0.9, where the rule then shipped suggested a peak 4-5x too low.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise import (
    SGD_GRID,
    TOLERANCE,
    Task,
    _cnn,
    _digits,
    _gru,
    _sequences,
    best_rate,
    extend_grid,
    range_test,
    train,
)

from clrplug.range_test.defaults import DEFAULT_PEAK_FACTOR, DEFAULT_RULE

UNSEEN = {t.name: t for t in (
    Task("digits_cnn_sgd", "convolutional", "sgd", 32, 20, SGD_GRID,
         lambda s: _digits(s, images=True), _cnn),
    Task("seq_gru_sgd", "recurrent", "sgd", 32, 12, SGD_GRID, _sequences, _gru),
)}


def measure(task: Task, seed: int) -> dict[str, Any]:
    data = task.load(seed)
    found = range_test(task, data, seed)
    unit: dict[str, Any] = {"seed": seed, "range_test": found,
                            "iterations": -(-len(data[0]) // task.batch_size) * task.epochs}
    unit["fixed"] = {str(lr): train(task, data, seed, lr, "fixed") for lr in task.grid}
    extend_grid(task, data, seed, unit["fixed"])
    suggested = found["max_lr"].get(DEFAULT_RULE)
    peak = None if suggested is None else suggested * DEFAULT_PEAK_FACTOR
    unit["peak"] = peak
    for schedule in ("one_cycle", "cyclic"):
        unit[schedule] = None if peak is None else train(task, data, seed, peak, schedule)
    return unit


def _median(units: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [u[key] for u in units]
    return None if any(v is None for v in values) else statistics.median(values)


def _cell(value: float | None, against: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if against is None else f"{value - against:+.1f}"


def report(results: dict[str, Any]) -> str:
    rows = [f"The default: {results['rule']} x{results['factor']:g}, on tasks no choice saw "
            f"(seeds {results['seeds']}).", "",
            "| task | kind, optimizer, batch | peak (per seed) | 1cycle (median) | CLR (median) "
            "| grid's best (rate per seed) | 1cycle gap | CLR gap | cost: range test + run vs grid |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, units in results["units"].items():
        task = UNSEEN[name]
        best = statistics.median(max(u["fixed"].values()) for u in units)
        rates = "/".join(f"{float(best_rate(u['fixed'])):.3g}" for u in units)
        peaks = "/".join("-" if u["peak"] is None else f"{u['peak']:.3g}" for u in units)
        it = units[0]["iterations"]
        grid = round(statistics.median(len(u["fixed"]) for u in units) * it)
        rt = statistics.median(u["range_test"]["steps"] for u in units)
        one, clr = _median(units, "one_cycle"), _median(units, "cyclic")
        rows.append(f"| {name} | {task.kind}, {task.optimizer}, {task.batch_size} | {peaks} | "
                    f"{_cell(one)} | {_cell(clr)} | {best:.1f} ({rates}) | {_cell(one, best)} | "
                    f"{_cell(clr, best)} | {rt:.0f} + {it} = {(rt + it) / grid:.2f} of {grid} |")
    within = [n for n, us in results["units"].items()
              if all(u["one_cycle"] is not None for u in us)
              and statistics.median(u["one_cycle"] for u in us)
              >= statistics.median(max(u["fixed"].values()) for u in us) - TOLERANCE]
    rows += ["", f"1cycle within {TOLERANCE} points of the grid's best: {len(within)} of "
                 f"{len(results['units'])} ({', '.join(within) or 'none'})."]
    return "\n".join(rows)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--tasks", nargs="+", choices=list(UNSEEN), default=list(UNSEEN))
    p.add_argument("--out", default="benchmarks/results/unseen-jax.json")
    p.add_argument("--report", metavar="FILE", help="print the table of a finished run")
    args = p.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return 0
    import keras

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    results: dict[str, Any] = {"backend": keras.backend.backend(), "keras": keras.__version__,
                               "rule": DEFAULT_RULE, "factor": DEFAULT_PEAK_FACTOR,
                               "seeds": seeds, "units": {}}
    start = time.perf_counter()
    out = Path(args.out)
    for name in args.tasks:
        results["units"][name] = []
        for seed in seeds:
            unit = measure(UNSEEN[name], seed)
            results["units"][name].append(unit)
            print(f"{name} seed {seed}: peak {unit['peak']}, 1cycle {unit['one_cycle']}, "
                  f"CLR {unit['cyclic']}, grid {unit['fixed']}", flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1) + "\n")
    results["seconds"] = round(time.perf_counter() - start)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
