"""Does one range test plus one run match a tuned grid of fixed learning rates?

The promise of cyclical rates (Smith, arXiv:1506.01186) is to train well without
a learning-rate search: one cheap LR range test, then one run. This benchmark
measures it on three offline tasks of different kinds:

- ``digits_mlp``: scikit-learn's 8x8 digits, a 64-128-10 MLP (the demo's task);
- ``digits_cnn``: the digits upsampled to 16x16, shifted by up to 2 pixels and
  with Gaussian noise (two variants per image, split by image), a small CNN;
- ``tabular``: a 4-class, 20-feature problem from scikit-learn's
  ``make_classification`` (3 clusters per class, 2 % label noise), a 2x128 MLP;

each with a budget of about 2,000 iterations, 5 seeds (data split, initial
weights, batch order) and two optimizers (SGD with momentum 0.9, Adam). For
every (task, seed, optimizer) it runs:

- the grid: 5 fixed rates, each a full run (its search costs all 5 runs);
- Keras' ``ReduceLROnPlateau`` (training loss, factor 0.2) from the grid's best rate;
- one LR range test (200 steps, exponential 1e-5..10), shared by every rule; then
  for each rule (valley, steep, minimum, slide, accuracy_rise): CLR
  ``triangular2`` and ``triangular`` between ``max_lr / 4`` and ``max_lr``,
  ``triangular2`` from ``max_lr / 10`` (and from ``accuracy_rise``'s own lower
  bound), 1cycle peaking at ``max_lr`` and at ``max_lr / 2`` (and, for the default
  rule, at ``3 * max_lr``: the default workflow).

Test accuracy (a held-out split no run trains on) is measured after every
epoch. The target per seed is the grid's best final accuracy; a run "reaches"
it when it comes within 0.5 points. A run was "too high" when its outputs went
non-finite, it ended far below its own best, or it ended more than 5 points
below the grid's best while peaking above the grid's best rate. Reported per
task and optimizer (medians over seeds): final accuracy, the gap to the grid's
best, iterations to the target, and iterations including the search (the range
test, or the whole grid); each rule's suggested max_lr; every candidate workflow
ranked over all tasks (the evidence for the first default; today's, ``DEFAULT_RULE``
x ``DEFAULT_PEAK_FACTOR``, comes from ``generalise.py``); and the verdict for the
recommended workflow (``DEFAULT_RULE`` x ``DEFAULT_PEAK_FACTOR`` with
``harness.WORKFLOW_SCHEDULE``) against the target: within 0.5 points of
the grid's best, and there in at most half the grid's iterations.

Run from the repository root (the full run: 30 (task, optimizer, seed), 32
runs each, 80 minutes of process time on 2 shared CPU cores with JAX):

    python benchmarks/convergence.py --json convergence.json --figure convergence.png
    python benchmarks/convergence.py --from-json convergence.json     # tables again
    python benchmarks/convergence.py --tasks digits_mlp --seeds 0 --optimizers sgd \\
        --epochs 1 --range-steps 40 --rules valley                    # a smoke run

Each backend runs in its own process (``--backend jax|tensorflow|torch|all``); on
JAX, identical compiled steps are served from a compilation cache (``--jax-cache``)
instead of being compiled once per run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

BACKENDS = ("jax", "tensorflow", "torch")
TASK_NAMES = ("digits_mlp", "digits_cnn", "tabular")
OPTIMIZER_NAMES = ("sgd", "adam")
RULES = ("valley", "steep", "minimum", "slide", "robust_valley", "robust_steep",
         "robust_minimum", "robust_slide", "accuracy_rise")
#: Schedules derived from each rule's suggestion (max_lr M): name -> (schedule, peak, lower).
VARIANTS: dict[str, tuple[str, float, float | None]] = {
    "tri2/4": ("triangular2", 1.0, 4.0),
    "tri/4": ("triangular", 1.0, 4.0),
    "tri2/10": ("triangular2", 1.0, 10.0),
    "tri2/own": ("triangular2", 1.0, None),  # accuracy_rise's own lower bound
    "1cycle": ("one_cycle", 1.0, None),
    "1cycle/2": ("one_cycle", 0.5, None),
    # The default workflow (DEFAULT_RULE x DEFAULT_PEAK_FACTOR, chosen by generalise.py);
    # run for the default rule only.
    "1cycle x3": ("one_cycle", 3.0, None),
}
#: 1cycle at max_lr, rerun at max_lr / 2 when it collapsed (the failed run's budget counts).
FALLBACK = "1cycle, /2 if collapsed"
#: A run "too high" ends this far below the grid's best with a peak above the grid's best rate.
TOO_HIGH = 0.05
CYCLES = 4  # whole CLR cycles in the budget: the run ends on base_lr
FULL = {"tasks": 3, "seeds": 5, "optimizers": 2, "iterations": 2000}


# -- tasks --------------------------------------------------------------------------------------
# Defined here, not in clrplug: only digits_mlp is also the demo's (harness.DIGITS).


def _tasks() -> dict[str, Any]:
    import keras
    import numpy as np
    from harness import DIGITS, Data, Task
    from sklearn.datasets import load_digits, make_classification
    from sklearn.model_selection import train_test_split

    def digits_cnn_data(seed: int) -> Data:
        digits = load_digits()
        images = (digits.images / 16.0).astype("float32")
        labels = digits.target.astype("int32")
        train, test = train_test_split(np.arange(len(labels)), test_size=0.25,
                                       random_state=seed, stratify=labels)
        rng = np.random.default_rng(seed)

        def variants(index: np.ndarray, copies: int = 2) -> tuple[np.ndarray, np.ndarray]:
            big = np.kron(images[index], np.ones((2, 2), dtype="float32"))  # 16x16
            padded = np.pad(big, ((0, 0), (2, 2), (2, 2)))
            out = []
            for _ in range(copies):
                dy, dx = rng.integers(0, 5, (2, len(index)))
                crops = np.stack([padded[i, y:y + 16, x:x + 16]
                                  for i, (y, x) in enumerate(zip(dy, dx, strict=True))])
                out.append(crops + rng.normal(0.0, 0.3, crops.shape).astype("float32"))
            return np.concatenate(out)[..., None], np.tile(labels[index], copies)

        return Data(*variants(train), *variants(test))

    def digits_cnn() -> keras.Model:
        layers = keras.layers
        return keras.Sequential([
            keras.Input((16, 16, 1)),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ], name="digits_cnn")

    def tabular_data(seed: int) -> Data:
        x, y = make_classification(
            n_samples=6000, n_features=20, n_informative=10, n_redundant=4, n_classes=4,
            n_clusters_per_class=3, class_sep=1.0, flip_y=0.02, random_state=1234)
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=0.25, random_state=seed, stratify=y)
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        return Data(((x_train - mean) / std).astype("float32"), y_train.astype("int32"),
                    ((x_test - mean) / std).astype("float32"), y_test.astype("int32"))

    def tabular_mlp() -> keras.Model:
        return keras.Sequential([
            keras.Input((20,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(4, activation="softmax"),
        ], name="tabular_mlp")

    return {
        "digits_mlp": DIGITS,
        "digits_cnn": Task("digits_cnn", "digits 16x16 shifted + noise, CNN 8-16 conv, batch 32",
                           digits_cnn_data, digits_cnn, batch_size=32, epochs=24,
                           plateau_patience=2),
        "tabular": Task("tabular", "make_classification 20 features 4 classes, MLP 2x128, "
                        "batch 64", tabular_data, tabular_mlp, batch_size=64, epochs=29,
                        plateau_patience=2),
    }


# -- one (task, seed, optimizer) ---------------------------------------------------------------


def candidate_plans(result: Any, budget: int, rules: Sequence[str]) -> dict[str, Any]:
    """Every rule's schedules, by candidate name (``"valley 1cycle"``); a rule with no range maps to None."""
    from harness import Plan

    step_size = max(1, round(budget / (2 * CYCLES)))
    from clrplug.range_test.defaults import DEFAULT_RULE

    plans: dict[str, Any] = {}
    for rule in rules:
        found = result.suggest(rule)
        for variant, (schedule, peak, lower) in VARIANTS.items():
            if variant == "tri2/own" and rule != "accuracy_rise":
                continue
            if variant.startswith("1cycle x") and rule != DEFAULT_RULE:
                continue
            key = f"{rule} {variant}"
            if found is None:
                plans[key] = None
                continue
            top = found.max_lr * peak
            if schedule == "one_cycle":
                plans[key] = Plan(key, "one_cycle", top)
            else:
                base = found.base_lr if lower is None else top / lower
                plans[key] = Plan(key, schedule, top, base, step_size)
    return plans


def run_unit(task: Any, seed: int, optimizer: str, args: argparse.Namespace) -> dict[str, Any]:
    """The grid, the plateau run, the range test and every candidate, for one seed."""
    from harness import FIXED_LRS, Plan, range_test, train

    data = task.load(seed)
    epochs = args.epochs or task.epochs
    budget = task.budget(data, epochs)
    start = time.perf_counter()
    runs: dict[str, Any] = {}
    done: dict[tuple[Any, ...], str] = {}

    def run(key: str, plan: Any) -> str:
        """Train ``plan`` unless an identical plan already ran; the key of its run."""
        same = (plan.schedule, plan.lr, plan.base_lr, plan.step_size)
        if same not in done:
            runs[key] = train(task, data, seed, optimizer, plan, epochs=epochs)
            done[same] = key
        return done[same]

    lrs = getattr(args, f"{optimizer}_lrs") or FIXED_LRS[optimizer]
    grid = [run(f"fixed {lr:g}", Plan(f"fixed lr={lr:g}", "fixed", float(lr))) for lr in lrs]
    best = max(grid, key=lambda key: (runs[key].final_accuracy, -grid.index(key)))
    plateau = run("plateau", Plan(f"plateau from {runs[best].plan.lr:g}", "plateau",
                                  runs[best].plan.lr, patience=task.plateau_patience))
    tested = time.perf_counter()
    result = range_test(task, data, seed, optimizer, steps=args.range_steps)
    tested = time.perf_counter() - tested
    candidates: dict[str, str | None] = {}
    for key, plan in candidate_plans(result, budget, args.rules).items():
        candidates[key] = None if plan is None else run(key, plan)
    suggestions = {}
    for rule in args.rules:
        found = result.suggest(rule)
        suggestions[rule] = None if found is None else {
            "max_lr": found.max_lr, "base_lr": found.base_lr, "reason": found.reason}
    return {
        "task": task.name, "seed": seed, "optimizer": optimizer, "budget": budget,
        "epochs": epochs, "classes": data.classes, "test_size": len(data.y_test),
        "grid": grid, "plateau": plateau, "candidates": candidates,
        "range_test": {"steps": len(result.lr), "planned": args.range_steps,
                       "stop_reason": result.stop_reason, "seconds": round(tested, 2),
                       "suggestions": suggestions},
        "runs": {key: value.to_json() for key, value in runs.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }


# -- summaries (also from saved JSON) -----------------------------------------------------------


def _final(run: Mapping[str, Any]) -> float:
    return float(run["accuracy"][-1])


def _reach(run: Mapping[str, Any], target: float) -> int | None:
    for iteration, accuracy in zip(run["iterations"], run["accuracy"], strict=True):
        if accuracy >= target - 1e-9:
            return int(iteration)
    return None


def _median(values: Iterable[float | None]) -> float | None:
    """Median with None as "never" (infinitely many iterations): None if it is the median."""
    data = [math.inf if v is None else v for v in values]
    if not data:
        return None
    m = statistics.median(data)
    return None if math.isinf(m) else m


def outcome(unit: Mapping[str, Any], candidate: str, tolerance: float) -> dict[str, Any]:
    """One candidate on one seed: final accuracy, gap to the grid's best, iterations, failure."""
    runs = unit["runs"]
    grid_best = max(_final(runs[key]) for key in unit["grid"])
    best_lr = runs[max(unit["grid"], key=lambda k: _final(runs[k]))]["lr"]
    target = grid_best - tolerance
    chance = 1.0 / unit["classes"]
    grid_total = len(unit["grid"]) * unit["budget"]
    search = unit["range_test"]["steps"]

    def collapsed(run: Mapping[str, Any]) -> bool:
        """What shows without a grid: non-finite outputs, or an end far below the run's own best."""
        final, best = _final(run), max(run["accuracy"])
        return not run["finite"] or final < best - 0.5 * (best - chance)

    def too_high(run: Mapping[str, Any]) -> bool:
        """Collapsed, or ended over TOO_HIGH below the grid's best peaking above its best rate."""
        return collapsed(run) or (_final(run) < grid_best - TOO_HIGH and run["lr"] > best_lr)

    if candidate.startswith("fixed ") or candidate in ("grid", "plateau"):
        if candidate == "grid":  # the grid's best run: its search is the whole grid
            key = max(unit["grid"], key=lambda k: _final(runs[k]))
        else:
            key = unit["plateau"] if candidate == "plateau" else candidate
        run = runs[key]
        reached = _reach(run, target)
        if candidate == "grid":
            total: int | None = grid_total
        elif candidate == "plateau":  # it starts from the grid's best, so after the grid
            total = None if reached is None else grid_total + reached
        else:  # one rate of the grid: which is best is known only after all of them
            total = None
        return {"final": _final(run), "gap": _final(run) - grid_best, "reach": reached,
                "total": total, "too_high": too_high(run), "grid_best": grid_best,
                "grid_total": grid_total}
    rule, _, variant = candidate.partition(" ")
    spent = 0
    if variant == FALLBACK:
        first = unit["candidates"].get(f"{rule} 1cycle")
        if first is not None and collapsed(runs[first]):
            spent = unit["budget"]
            key = unit["candidates"].get(f"{rule} 1cycle/2")
        else:
            key = first
    else:
        key = unit["candidates"].get(candidate)
    if key is None:  # the rule found no range: no run, counted as a miss
        return {"final": None, "gap": None, "reach": None, "total": None, "too_high": False,
                "no_range": True, "grid_best": grid_best, "grid_total": grid_total}
    run = runs[key]
    reached = _reach(run, target)
    return {"final": _final(run), "gap": _final(run) - grid_best, "reach": reached,
            "total": None if reached is None else search + spent + reached,
            "too_high": too_high(run), "grid_best": grid_best, "grid_total": grid_total}


def cells(units: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    out: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    order = {name: i for i, name in enumerate((*TASK_NAMES, *OPTIMIZER_NAMES))}
    for unit in sorted(units, key=lambda u: (order[u["task"]], order[u["optimizer"]], u["seed"])):
        out.setdefault((unit["task"], unit["optimizer"]), []).append(unit)
    return out


def candidate_names(units: Sequence[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for unit in units:
        for key in unit["candidates"]:
            if key not in names:
                names.append(key)
    rules = sorted({name.split()[0] for name in names}, key=lambda r: (*RULES, r).index(r))
    return names + [f"{rule} {FALLBACK}" for rule in rules
                    if f"{rule} 1cycle" in names and f"{rule} 1cycle/2" in names]


def cell_stats(units: Sequence[Mapping[str, Any]], candidate: str, tolerance: float) -> dict[str, Any]:
    """Medians over seeds; a seed where the rule found no range counts as a miss (gap -100)."""
    found = [outcome(unit, candidate, tolerance) for unit in units]
    gaps = [-1.0 if o["gap"] is None else o["gap"] for o in found]
    finals = [0.0 if o["final"] is None else o["final"] for o in found]
    median_gap = statistics.median(gaps)
    median_total = _median(o["total"] for o in found)
    half_grid = found[0]["grid_total"] / 2
    return {
        "final": statistics.median(finals),
        "gap": median_gap,
        "reach": _median(o["reach"] for o in found),
        "total": median_total,
        "within": sum(g >= -tolerance - 1e-9 for g in gaps),
        "too_high": sum(o["too_high"] for o in found),
        "no_range": sum(bool(o.get("no_range")) for o in found),
        "seeds": len(found),
        "accuracy_met": median_gap >= -tolerance - 1e-9,
        "speed_met": median_total is not None and median_total <= half_grid,
    }


def ranking(units: Sequence[Mapping[str, Any]], tolerance: float) -> list[dict[str, Any]]:
    """Every candidate workflow over all (task, optimizer) cells, best first.

    Order: cells where the median meets both targets, then fewest runs whose rate
    was too high (a suggestion that diverges is worse than a cautious one), then
    the worst cell's median gap, then the mean of the cells' median gaps.
    """
    groups = cells(units)
    rows = []
    for name in candidate_names(units):
        stats = {cell: cell_stats(group, name, tolerance) for cell, group in groups.items()}
        gaps = [s["gap"] for s in stats.values()]
        rows.append({
            "candidate": name,
            "cells": stats,
            "met": sum(s["accuracy_met"] and s["speed_met"] for s in stats.values()),
            "too_high": sum(s["too_high"] for s in stats.values()),
            "within": sum(s["within"] for s in stats.values()),
            "seeds": sum(s["seeds"] for s in stats.values()),
            "no_range": sum(s["no_range"] for s in stats.values()),
            "worst": min(gaps),
            "mean": statistics.fmean(gaps),
        })
    rows.sort(key=lambda r: (-r["met"], r["too_high"], -r["worst"], -r["mean"]))
    return rows


def recommended(units: Sequence[Mapping[str, Any]], workflow: str | None = None) -> str:
    """The candidate the verdict judges: ``workflow`` if given, else the one the library
    recommends now (DEFAULT_RULE, DEFAULT_PEAK_FACTOR, the demo's schedule)."""
    if workflow is not None:
        if workflow not in candidate_names(units):
            raise SystemExit(f"--workflow {workflow!r} is not a candidate of this record; its "
                             f"candidates: {', '.join(candidate_names(units))}")
        return workflow
    from harness import WORKFLOW_MAX_LR_FACTOR, WORKFLOW_SCHEDULE

    from clrplug.range_test.defaults import DEFAULT_LOWER, DEFAULT_PEAK_FACTOR, DEFAULT_RULE

    if WORKFLOW_SCHEDULE == "one_cycle":
        peak = WORKFLOW_MAX_LR_FACTOR * DEFAULT_PEAK_FACTOR
        variant = ("1cycle" if peak == 1 else f"1cycle x{peak:g}" if peak > 1
                   else f"1cycle/{1 / peak:g}")
    else:
        variant = f"{'tri2' if WORKFLOW_SCHEDULE == 'triangular2' else 'tri'}/{DEFAULT_LOWER:g}"
    name = f"{DEFAULT_RULE} {variant}"
    if name not in candidate_names(units):
        raise SystemExit(f"the recommended workflow {name!r} was not part of this run "
                         "(see --rules); no verdict. A record made before it was the default "
                         "is reported with --workflow NAME (e.g. the record's own default).")
    return name


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def _its(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f}"


def _markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def task_tables(units: Sequence[Mapping[str, Any]], tolerance: float, workflow: str) -> str:
    """Per task and optimizer: the grid, the plateau run, the workflow and each rule's best."""
    out = []
    groups = cells(units)
    for (task, optimizer), group in groups.items():
        grid_total = len(group[0]["grid"]) * group[0]["budget"]
        rows = []
        names = [f"fixed {key.split()[-1]}" for key in group[0]["grid"]]
        names += ["grid", "plateau", workflow]
        names += [n for n in candidate_names(units) if n != workflow and not n.endswith(FALLBACK)]
        for name in names:
            s = cell_stats(group, name, tolerance)
            label = {"grid": "grid's best (per seed)", "plateau": "ReduceLROnPlateau"}.get(name, name)
            if name == workflow:
                label = f"**{name}** (recommended)"
            total = "-" if name.startswith("fixed ") else _its(s["total"])
            rows.append((label, _pct(s["final"]), _pct(s["gap"], True), f"{s['within']}/{s['seeds']}",
                         str(s["too_high"]) + (f" ({s['no_range']} no range)" if s["no_range"] else ""),
                         _its(s["reach"]), total))
        unit = group[0]
        out.append(
            f"### {task}, {optimizer}: {unit['budget']} iterations per run, {len(group)} seeds, "
            f"test set {unit['test_size']}, grid {grid_total} iterations in all\n\n"
            + _markdown(("run", "final acc %", "vs grid's best", f"seeds within {100 * tolerance:g}",
                         "too high",
                         "iters to target", "iters incl. search"), rows))
    return "\n\n".join(out)


def ranking_table(rows: Sequence[Mapping[str, Any]], groups: Sequence[tuple[str, str]],
                  limit: int | None = None) -> str:
    header = ("candidate", *(f"{t} {o}" for t, o in groups), "cells met", "seeds within",
              "too high", "worst")
    body = []
    for row in rows[:limit]:
        body.append((row["candidate"], *(_pct(row["cells"][g]["gap"], True) for g in groups),
                     f"{row['met']}/{len(groups)}", f"{row['within']}/{row['seeds']}",
                     str(row["too_high"]), _pct(row["worst"], True)))
    return _markdown(header, body)


def _best_grid_run(unit: Mapping[str, Any]) -> Mapping[str, Any]:
    runs = unit["runs"]
    return runs[max(unit["grid"], key=lambda key: _final(runs[key]))]


def suggestion_table(units: Sequence[Mapping[str, Any]]) -> str:
    """Each rule's max_lr (median over seeds, and the range), next to the grid's best rates."""
    groups = cells(units)
    rules = [r for r in RULES if any(r in u["range_test"]["suggestions"] for u in units)]
    rows = []
    for (task, optimizer), group in groups.items():
        best = [_best_grid_run(unit)["lr"] for unit in group]
        row = [f"{task} {optimizer}", "/".join(f"{v:g}" for v in sorted(set(best)))]
        for rule in rules:
            found = [u["range_test"]["suggestions"].get(rule) for u in group]
            values = sorted(f["max_lr"] for f in found if f)
            text = "-" if not values else (
                f"{statistics.median(values):.2g} ({values[0]:.2g}..{values[-1]:.2g})")
            missing = sum(f is None for f in found)
            row.append(text + (f", {missing} none" if missing else ""))
        steps = statistics.median(u["range_test"]["steps"] for u in group)
        row.append(f"{steps:.0f}")
        rows.append(row)
    return _markdown(("task, optimizer", "grid's best lr", *rules, "range test steps"), rows)


def verdict(units: Sequence[Mapping[str, Any]], tolerance: float, workflow: str) -> str:
    lines = []
    met_all = True
    for (task, optimizer), group in cells(units).items():
        s = cell_stats(group, workflow, tolerance)
        grid_total = len(group[0]["grid"]) * group[0]["budget"]
        ok = s["accuracy_met"] and s["speed_met"]
        met_all = met_all and ok
        lines.append(
            f"- {task}, {optimizer}: median {_pct(s['gap'], True)} points against the grid's best "
            f"({s['within']}/{s['seeds']} seeds within {100 * tolerance:.1f}); "
            + ("target not reached on most seeds" if s["total"] is None else
               f"target reached after {s['total']:.0f} iterations including the range test")
            + f" (half the grid: {grid_total / 2:.0f}): {'met' if ok else 'NOT met'}")
    head = (f"Recommended workflow: range test + {workflow}: "
            + ("meets the target on every task and optimizer." if met_all
               else "does NOT meet the target everywhere."))
    return "\n".join([head, *lines])


def plot(units: Sequence[Mapping[str, Any]], workflow: str, path: str, backend: str) -> None:
    """Median test accuracy over seeds against iterations: one panel per task and optimizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = cells(units)
    tasks = list(dict.fromkeys(t for t, _ in groups))
    optimizers = list(dict.fromkeys(o for _, o in groups))
    figure, axes = plt.subplots(len(optimizers), len(tasks), figsize=(4.2 * len(tasks),
                                3.4 * len(optimizers)), squeeze=False)
    for (task, optimizer), group in groups.items():
        axis = axes[optimizers.index(optimizer)][tasks.index(task)]

        def median_curve(
            keys: Sequence[str | None], group: Sequence[Mapping[str, Any]] = group
        ) -> tuple[Any, Any] | None:
            curves = [g["runs"][k] for g, k in zip(group, keys, strict=True) if k is not None]
            if not curves:
                return None
            return (np.asarray(curves[0]["iterations"]),
                    100 * np.median([c["accuracy"] for c in curves], axis=0))

        cmap = plt.get_cmap("viridis")
        for index, key in enumerate(group[0]["grid"]):
            curve = median_curve([key] * len(group))
            if curve:
                axis.plot(*curve, color=cmap(index / max(1, len(group[0]["grid"]) - 1)),
                          linewidth=0.9, label=f"fixed {key.split()[-1]}")
        curve = median_curve([g["plateau"] for g in group])
        if curve:
            axis.plot(*curve, color="0.3", linestyle="--", linewidth=1.1, label="ReduceLROnPlateau")
        curve = median_curve([g["candidates"].get(workflow) for g in group])
        if curve:
            axis.plot(*curve, color="tab:red", linewidth=2.0, label=workflow)
        best = statistics.median(max(_final(g["runs"][k]) for k in g["grid"]) for g in group)
        axis.axhline(100 * best, color="0.5", linestyle=":", linewidth=0.8)
        axis.set_ylim(max(0, 100 * best - 20), min(100, 100 * best + 4))
        axis.set_title(f"{task}, {optimizer}", fontsize=9)
        axis.set_xlabel("training iterations", fontsize=8)
        axis.set_ylabel("test accuracy % (median of seeds)", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=6, loc="lower right")
    figure.suptitle(f"Range test + one run against a grid of fixed rates ({backend})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(record: Mapping[str, Any], tolerance: float, figure: str | None,
           workflow: str | None = None) -> None:
    units = record["units"]
    workflow = recommended(units, workflow)
    groups = list(cells(units))
    print()
    print(f"## Per task (Keras backend {record['backend']}; medians over seeds)\n")
    print(task_tables(units, tolerance, workflow))
    print("\n## Suggested max_lr per rule: median over seeds (lowest..highest)\n")
    print(suggestion_table(units))
    rows = ranking(units, tolerance)
    print("\n## Candidate workflows, ranked (median points against the grid's best per task "
          "and optimizer)\n")
    print(ranking_table(rows, groups))
    print()
    print(verdict(units, tolerance, workflow))
    if figure:
        plot(units, workflow, figure, record["backend"])
        print(f"\nwrote {figure}")


# -- driver -------------------------------------------------------------------------------------


def _configure_jax_cache(directory: str | None) -> str:
    import jax

    directory = directory or os.path.join(tempfile.gettempdir(), "clrplug-convergence-jax-cache")
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    if args.backend == "jax":
        _configure_jax_cache(args.jax_cache)
    import keras
    from harness import one_cpu_thread

    tasks = _tasks()
    start = time.perf_counter()
    units = []
    for name in args.tasks:
        for optimizer in args.optimizers:
            for seed in args.seeds:
                with one_cpu_thread():
                    unit = run_unit(tasks[name], seed, optimizer, args)
                units.append(unit)
                grid_best = max(unit["runs"][k]["accuracy"][-1] for k in unit["grid"])
                suggestion = unit["range_test"]["suggestions"].get(args.rules[0])
                print(f"{name:<10} {optimizer:<4} seed {seed}: {len(unit['runs'])} runs of "
                      f"{unit['budget']} iterations, grid's best {100 * grid_best:.1f}%, range "
                      f"test {unit['range_test']['steps']} steps ({unit['range_test']['stop_reason']})"
                      f", {args.rules[0]} max_lr "
                      + ("none" if suggestion is None else f"{suggestion['max_lr']:.3g}")
                      + f"   {unit['seconds']:.0f} s", flush=True)
    return {
        "arguments": {k: v for k, v in vars(args).items() if k not in ("from_json",)},
        "backend": keras.backend.backend(),
        "versions": _versions(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "seconds": round(time.perf_counter() - start),
        "full": _is_full(units),
        "units": units,
    }


def _is_full(units: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the units make up the benchmark as specified (tasks, seeds, optimizers, budget)."""
    return (len({u["task"] for u in units}) >= FULL["tasks"]
            and len({u["seed"] for u in units}) >= FULL["seeds"]
            and len({u["optimizer"] for u in units}) >= FULL["optimizers"]
            and all(u["budget"] >= FULL["iterations"] for u in units))


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("keras", "clrplug", "jax", "tensorflow", "tensorflow-cpu", "torch", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=(*BACKENDS, "all"), default="jax",
                   help="Keras backend, each in its own process (jax)")
    p.add_argument("--tasks", nargs="+", choices=TASK_NAMES, default=list(TASK_NAMES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--optimizers", nargs="+", choices=OPTIMIZER_NAMES, default=list(OPTIMIZER_NAMES))
    p.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    p.add_argument("--epochs", type=int, default=None, help="override every task's epochs")
    p.add_argument("--range-steps", type=int, default=200, help="range test length (200)")
    p.add_argument("--sgd-lrs", type=float, nargs="+", default=None, help="SGD grid")
    p.add_argument("--adam-lrs", type=float, nargs="+", default=None, help="Adam grid")
    p.add_argument("--tolerance", type=float, default=0.5,
                   help="points below the grid's best that still count as reaching it (0.5)")
    p.add_argument("--json", default=None, help="write every run's curve and the summary")
    p.add_argument("--figure", default=None, help="write the accuracy figure (PNG)")
    p.add_argument("--from-json", nargs="+", default=None, metavar="JSON",
                   help="report saved runs (several files of one backend are merged); no training")
    p.add_argument("--workflow", default=None, metavar="NAME",
                   help="the candidate the verdict judges (default: the library's recommended "
                        "workflow; a record made before it was chosen names its own)")
    p.add_argument("--jax-cache", default=None, help="JAX compilation cache directory")
    return p


def _load(paths: Sequence[str]) -> dict[str, Any]:
    records = [json.loads(Path(p).read_text()) for p in paths]
    backends = {r["backend"] for r in records}
    if len(backends) != 1:
        raise SystemExit(f"--from-json: one backend at a time, got {sorted(backends)}")
    if len(records) == 1:
        return records[0]
    merged = dict(records[0])
    merged["units"] = [u for r in records for u in r["units"]]
    merged["arguments"] = dict(merged["arguments"], tasks=[
        t for t in TASK_NAMES if any(t in r["arguments"]["tasks"] for r in records)])
    merged["parts"] = [{"tasks": r["arguments"]["tasks"], "seconds": r["seconds"]} for r in records]
    merged["seconds"] = sum(r["seconds"] for r in records)  # process time, parts may overlap
    merged["full"] = _is_full(merged["units"])
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    tolerance = args.tolerance / 100
    if args.from_json:
        record = _load(args.from_json)
        if args.json:  # the merged record
            Path(args.json).write_text(json.dumps(record))
        report(record, tolerance, args.figure, args.workflow)
        return 0
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    if backends != [os.environ.get("KERAS_BACKEND")]:
        # Each backend in a fresh process: KERAS_BACKEND is read once, at import.
        code = 0
        for backend in backends:
            child = [*argv, "--backend", backend]
            for flag in ("--json", "--figure"):
                value = getattr(args, flag[2:])
                if value and len(backends) > 1:
                    stem, dot, suffix = value.rpartition(".")
                    child += [flag, f"{stem}-{backend}.{suffix}" if dot else f"{value}-{backend}"]
            env = {**os.environ, "KERAS_BACKEND": backend}
            code = max(code, subprocess.run([sys.executable, __file__, *child], env=env).returncode)
        return code
    record = benchmark(args)
    print(f"\n{len(record['units'])} (task, optimizer, seed) in {record['seconds']} s on "
          f"{record['machine']}" + ("" if record["full"] else " (not the full benchmark)"))
    if args.json:
        Path(args.json).write_text(json.dumps(record))
        print(f"wrote {args.json}")
    report(record, tolerance, args.figure, args.workflow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
