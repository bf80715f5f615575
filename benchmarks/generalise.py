"""Does the default range-test suggestion hold on tasks it was not chosen on? Leave one task out.

    KERAS_BACKEND=jax python benchmarks/generalise.py [--seeds 3] [--tasks ...] [--out FILE]
    KERAS_BACKEND=jax python benchmarks/generalise.py --report FILE   # tables from the JSON

Six small offline tasks of different kinds (dense, convolutional, recurrent, attention,
two tabular; SGD with momentum 0.9 and Adam; batch sizes 32 to 128), data generated or
scikit-learn's digits. Per task and seed, from the same initial weights and batch order:

1. a grid of fixed rates, half a decade apart over two decades (the target: the best
   final test accuracy; the grid's cost: all its runs);
2. one LR range test (200 steps, 1e-5 to 10; validation on a fifth of the training set)
   and every registered rule's suggestion;
3. 1cycle runs peaking at each rate of a half-decade ladder spanning the grid and two
   steps beyond it on each side: a candidate workflow (a rule, and a factor on its
   ``max_lr``) is scored on a task by the ladder run nearest its peak (within a
   factor 1.8).

Leave one task out: for each task, the candidate that comes within 0.5 points of the
grid's best (median over seeds) on most of the *other* tasks (ties: the best worst
gap) is chosen, then trained for real on the held-out task (1cycle at its peak, each
seed). The report gives, per held-out task, the chosen candidate, its accuracy against
the grid's best, and its cost (range test + run) against the grid's. Results are
written after every task, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np

RANGE = {"min_lr": 1e-5, "max_lr": 10.0, "steps": 200}
FACTORS = (0.5, 1.0, 2.0, 3.0)
TOLERANCE = 0.5  # points of accuracy
NEAREST = 1.8  # a ladder run scores a candidate whose peak is within this factor


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    optimizer: str
    batch_size: int
    epochs: int
    grid: tuple[float, ...]
    load: Callable[[int], tuple[np.ndarray, ...]]
    build: Callable[[], keras.Model]

    def ladder(self) -> tuple[float, ...]:
        step = math.sqrt(10.0)
        low, high = self.grid[0], self.grid[-1]
        return (low / step**2, low / step, *self.grid, high * step, high * step**2)


def _split(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(seed).permutation(len(x))
    test = len(x) // 4
    te, tr = order[:test], order[test:]
    return x[tr], y[tr], x[te], y[te]


def _digits(seed: int, images: bool = False) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[..., None] if images else digits.data) / 16.0
    return _split(x.astype("float32"), digits.target.astype("int32"), seed)


def _tabular(seed: int, classes: int, features: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import make_classification

    x, y = make_classification(3000, features, n_informative=features // 2, n_classes=classes,
                               n_clusters_per_class=2, flip_y=0.03, random_state=100 + classes)
    x = (x - x.mean(0)) / x.std(0)
    return _split(x.astype("float32"), y.astype("int32"), seed)


def _sequences(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3000, 16, 4)).astype("float32")
    w = rng.standard_normal((4, 3))
    late = np.linspace(0.2, 1.8, 16)[None, :, None]  # later steps weigh more
    y = np.argmax((x * late).sum(1) @ w, axis=1).astype("int32")
    return _split(x, y, seed)


def _tokens(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(11)
    x = rng.integers(0, 8, size=(3000, 12)).astype("int32")
    y = np.count_nonzero(x == 1, axis=1) > np.count_nonzero(x == 2, axis=1)
    flip = rng.random(3000) < 0.03  # label noise: a ceiling below 100 %
    return _split(x, (y ^ flip).astype("int32"), seed)


def _mlp(inputs: int, width: int, classes: int) -> keras.Model:
    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(classes, activation="softmax")])


def _cnn() -> keras.Model:
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(), keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])


def _gru() -> keras.Model:
    return keras.Sequential([keras.Input((16, 4)), keras.layers.GRU(24),
                             keras.layers.Dense(3, activation="softmax")])


def _attention() -> keras.Model:
    tokens = keras.Input((12,), dtype="int32")
    h = keras.layers.Embedding(8, 16)(tokens)
    h = h + keras.layers.MultiHeadAttention(2, 8)(h, h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(tokens, keras.layers.Dense(2, activation="softmax")(h))


SGD_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)
ADAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
TASKS = {t.name: t for t in (
    Task("digits_mlp", "dense", "sgd", 32, 12, SGD_GRID, _digits, lambda: _mlp(64, 64, 10)),
    Task("digits_cnn", "convolutional", "adam", 64, 20, tuple(3 * r for r in ADAM_GRID),
         lambda s: _digits(s, images=True), _cnn),
    Task("seq_gru", "recurrent", "adam", 64, 12, ADAM_GRID, _sequences, _gru),
    Task("tokens_attention", "attention", "sgd", 32, 4, SGD_GRID, _tokens, _attention),
    Task("tabular_sgd", "tabular", "sgd", 128, 25, tuple(3 * r for r in SGD_GRID),
         lambda s: _tabular(s, 3, 20), lambda: _mlp(20, 64, 3)),
    Task("tabular_adam", "tabular", "adam", 32, 6, tuple(3 * r for r in ADAM_GRID),
         lambda s: _tabular(s, 4, 12), lambda: _mlp(12, 48, 4)),
)}


def _model(task: Task, seed: int, lr: float) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = task.build()
    opt = (keras.optimizers.SGD(lr, momentum=0.9) if task.optimizer == "sgd"
           else keras.optimizers.Adam(lr))
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(task: Task, data: Sequence[np.ndarray], seed: int, lr: float, one_cycle: bool) -> float:
    """Final test accuracy (%) of one run: a fixed rate, or 1cycle peaking at ``lr``."""
    from clrplug import OneCycleLR

    x, y, xt, yt = data
    model = _model(task, seed, lr)
    steps = -(-len(x) // task.batch_size) * task.epochs
    callbacks = [OneCycleLR(lr, total_steps=steps)] if one_cycle else []
    keras.utils.set_random_seed(seed)
    model.fit(x, y, batch_size=task.batch_size, epochs=task.epochs, callbacks=callbacks,
              verbose=0)
    predicted = np.argmax(np.asarray(model.predict(xt, verbose=0)), axis=-1)
    return 100.0 * float(np.mean(predicted == yt))


def range_test(task: Task, data: Sequence[np.ndarray], seed: int) -> dict[str, Any]:
    import warnings

    from clrplug import lr_range_test

    x, y = data[0], data[1]
    held = len(x) // 5
    model = _model(task, seed, RANGE["min_lr"])
    keras.utils.set_random_seed(seed)
    result = lr_range_test(model, x[held:], y[held:], batch_size=task.batch_size,
                           validation_data=(x[:held], y[:held]), validation_every=5,
                           validation_batch_size=held, verbose=0, **RANGE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = result.suggestions()
    return {"steps": len(result.lr), "stop_reason": result.stop_reason,
            "caveat": result.ambiguity(),
            "max_lr": {k: (None if v is None else v.max_lr) for k, v in found.items()}}


def measure(task: Task, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    data = task.load(seed)
    start = time.perf_counter()
    unit = {"seed": seed, "range_test": range_test(task, data, seed),
            "iterations": -(-len(data[0]) // task.batch_size) * task.epochs}
    unit["fixed"] = {str(lr): train(task, data, seed, lr, False) for lr in task.grid}
    unit["one_cycle"] = {str(lr): train(task, data, seed, lr, True) for lr in task.ladder()}
    log(f"{task.name} seed {seed}: grid {unit['fixed']}, 1cycle {unit['one_cycle']} "
        f"({time.perf_counter() - start:.0f} s)")
    return unit


# -- leave one task out ---------------------------------------------------------------------


def candidates(units: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[tuple[str, float]]:
    rules = sorted({r for us in units.values() for u in us for r in u["range_test"]["max_lr"]})
    return [(rule, factor) for rule in rules for factor in FACTORS]


def gap(task_units: Sequence[Mapping[str, Any]], rule: str, factor: float) -> float | None:
    """Median over seeds of (candidate's ladder accuracy - grid's best), None if unscorable."""
    gaps = []
    for unit in task_units:
        lr = unit["range_test"]["max_lr"].get(rule)
        if lr is None:
            gaps.append(-100.0)  # no suggestion: the workflow has nothing to train with
            continue
        peak = lr * factor
        ladder = {float(k): v for k, v in unit["one_cycle"].items()}
        nearest = min(ladder, key=lambda r: abs(math.log(r / peak)))
        if abs(math.log(nearest / peak)) > math.log(NEAREST):
            return None
        gaps.append(ladder[nearest] - max(unit["fixed"].values()))
    return statistics.median(gaps)


def choose(units: Mapping[str, Sequence[Mapping[str, Any]]],
           tasks: Sequence[str]) -> tuple[str, float]:
    """The candidate within TOLERANCE on most of ``tasks``; ties: the best worst gap."""
    def score(candidate: tuple[str, float]) -> tuple[int, float]:
        gaps = [gap(units[t], *candidate) for t in tasks]
        scored = [g if g is not None else -100.0 for g in gaps]
        return sum(g >= -TOLERANCE for g in scored), min(scored)

    return max(candidates(units), key=score)


def leave_one_out(units: dict[str, list[dict[str, Any]]], log: Callable[[str], None],
                  results: dict[str, Any], save: Callable[[], None]) -> None:
    names = list(units)
    held_out = results.setdefault("held_out", {})
    for name in names:
        rule, factor = choose(units, [t for t in names if t != name])
        task, runs = TASKS[name], []
        for unit in units[name]:
            lr = unit["range_test"]["max_lr"].get(rule)
            runs.append(None if lr is None else
                        train(task, task.load(unit["seed"]), unit["seed"], lr * factor, True))
        held_out[name] = {"rule": rule, "factor": factor, "accuracy": runs}
        log(f"held out {name}: chose {rule} x{factor:g} on the others -> {runs}")
        save()


# -- report ---------------------------------------------------------------------------------


def report(results: Mapping[str, Any]) -> str:
    units, held = results["units"], results.get("held_out", {})
    rows = ["| held-out task | kind, optimizer, batch | chosen on the other five | accuracy "
            "(median of seeds) | grid's best (rate) | gap | cost: range test + run vs grid |",
            "|---|---|---|---|---|---|---|"]
    for name, task_units in units.items():
        task = TASKS[name]
        best = statistics.median(max(u["fixed"].values()) for u in task_units)
        best_rates = [max(u["fixed"], key=u["fixed"].get) for u in task_units]
        edge = any(r in (str(task.grid[0]), str(task.grid[-1])) for r in best_rates)
        it = task_units[0]["iterations"]
        grid_cost = len(task.grid) * it
        rt = statistics.median(u["range_test"]["steps"] for u in task_units)
        if name in held and all(a is not None for a in held[name]["accuracy"]):
            h = held[name]
            acc = statistics.median(h["accuracy"])
            chosen = f"{h['rule']} x{h['factor']:g}"
            accuracy, diff = f"{acc:.1f}", f"{acc - best:+.1f}"
        else:
            chosen, accuracy, diff = "not measured", "-", "-"
        rows.append(f"| {name} | {task.kind}, {task.optimizer}, {task.batch_size} | {chosen} | "
                    f"{accuracy} | {best:.1f} ({'/'.join(best_rates)}{', AT THE EDGE' if edge else ''})"
                    f" | {diff} | {rt:.0f} + {it} = {(rt + it) / grid_cost:.2f} of {grid_cost} |")
    lines = ["\n".join(rows), "", "Gap of each candidate on each task (median of seeds, points; "
             "ladder approximation):", ""]
    header = "| candidate | " + " | ".join(units) + " | within 0.5 |"
    lines += [header, "|---" * (len(units) + 2) + "|"]
    for rule, factor in candidates(units):
        gaps = [gap(units[t], rule, factor) for t in units]
        cells = ["-" if g is None else f"{g:+.1f}" for g in gaps]
        ok = sum(g is not None and g >= -TOLERANCE for g in gaps)
        lines.append(f"| {rule} x{factor:g} | " + " | ".join(cells) + f" | {ok}/{len(gaps)} |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--out", default="benchmarks/results/generalise-jax.json")
    p.add_argument("--report", metavar="FILE", help="print the tables of a finished run")
    args = p.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return 0
    out = Path(args.out)
    results: dict[str, Any] = {"backend": keras.backend.backend(), "keras": keras.__version__,
                               "seeds": args.seeds, "units": {}}

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")

    def log(line: str) -> None:
        print(line, flush=True)

    start = time.perf_counter()
    for name in args.tasks:
        results["units"][name] = [measure(TASKS[name], seed, log) for seed in range(args.seeds)]
        save()
    leave_one_out(results["units"], log, results, save)
    results["seconds"] = round(time.perf_counter() - start)
    save()
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
