"""Does the default range-test suggestion hold on tasks it was not chosen on? Leave one task out.

    KERAS_BACKEND=jax python benchmarks/generalise.py [--seeds 3] [--first-seed 0] [--tasks ...] [--out FILE]
    KERAS_BACKEND=jax python benchmarks/generalise.py --reuse A B [--out FILE]  # pool runs' seeds
    KERAS_BACKEND=jax python benchmarks/generalise.py --report FILE   # tables from the JSON
    KERAS_BACKEND=jax python benchmarks/generalise.py --extend-grids FILE ...  # widen stored grids

Six small offline tasks of different kinds (dense, convolutional, recurrent, attention,
two tabular; SGD with momentum 0.9 and Adam; batch sizes 32 to 128), data generated or
scikit-learn's digits. Per task and seed, from the same initial weights and batch order:

1. a grid of fixed rates, half a decade apart over two decades (the target: the best
   final test accuracy; the grid's cost: all its runs), extended by half a decade at a
   time, up to twice, past an edge where the seed's best rate sits, as one searching by
   hand would (a best rate at the grid's edge says the grid was too narrow);
2. one LR range test (200 steps, 1e-5 to 10; validation on a fifth of the training set)
   and every registered rule's suggestion;
3. 1cycle runs peaking at each rate of a half-decade ladder spanning the grid and two
   steps beyond it on each side: a candidate workflow (a rule, and a factor on its
   ``max_lr``) is scored on a task by the ladder's accuracy at its peak, interpolated
   linearly in log(rate) between the two runs around it (a peak off the ladder: not
   scorable, counted as a failure).

Leave one task out: for each task, a candidate is chosen on the *other* five, by

1. the number of tasks where it is within 0.5 points of the grid's best (median over
   seeds);
2. then the smallest worst shortfall below the grid's best (being above the grid is not
   rewarded: it is mostly noise, and rewarding it favours peaks near divergence);
3. then robustness to a suggestion off by 2x: the number of tasks where the same rule
   with its peak halved *and* doubled is still within 0.5 points, then the worst
   shortfall of the two;
4. then the smaller factor (too low a peak costs a point or two, too high diverges);
   then the rule's name.

The chosen candidate is then trained for real on the held-out task, each seed: 1cycle
peaking at ``factor * max_lr`` (the default workflow), and CLR ``triangular`` from a
quarter of that peak to the peak, 4 whole cycles in the same budget (how
``result.cyclic_lr()`` derives its bounds). The report gives, per held-out task, the
chosen candidate, its accuracy against the grid's best, its cost (range test + run)
against the grid's, and which candidate the folds chose. Results are written after
every task, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import itertools
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
ROBUST = 2.0  # a candidate should still hold with its peak this factor lower or higher
HALF_DECADE = math.sqrt(10.0)
EXTEND = 2  # at most this many half-decade steps past either edge of a task's grid
CLR_LOWER = 4.0  # CLR's base_lr = peak / this (clrplug.range_test.defaults.DEFAULT_LOWER)


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
        step = HALF_DECADE
        low, high = self.grid[0], self.grid[-1]
        return (low / step**2, low / step, *self.grid, high * step, high * step**2)

    def beyond(self, rate: float) -> float | None:
        """The grid's next rate past ``rate`` (an edge of the rates tried so far), None
        when that would be more than :data:`EXTEND` steps past the task's grid."""
        low, high = self.grid[0], self.grid[-1]
        if rate >= high / 1.001:
            nxt = rate * HALF_DECADE
            return nxt if nxt <= high * HALF_DECADE**EXTEND * 1.001 else None
        nxt = rate / HALF_DECADE
        return nxt if nxt >= low / HALF_DECADE**EXTEND / 1.001 else None


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


def train(task: Task, data: Sequence[np.ndarray], seed: int, lr: float, schedule: str) -> float:
    """Final test accuracy (%) of one run at ``lr``: fixed, 1cycle or CLR peaking there.

    ``schedule``: ``"fixed"``, ``"one_cycle"`` or ``"cyclic"`` (CLR ``triangular`` from
    ``lr / CLR_LOWER`` to ``lr``, 4 whole cycles).
    """
    from clrplug import CyclicLR, OneCycleLR

    x, y, xt, yt = data
    model = _model(task, seed, lr)
    steps = -(-len(x) // task.batch_size) * task.epochs
    callbacks: list[keras.callbacks.Callback] = []
    if schedule == "one_cycle":
        callbacks = [OneCycleLR(lr, total_steps=steps)]
    elif schedule == "cyclic":
        callbacks = [CyclicLR(lr / CLR_LOWER, lr, step_size=steps / 8, mode="triangular")]
    elif schedule != "fixed":
        raise ValueError(f"schedule must be 'fixed', 'one_cycle' or 'cyclic', got {schedule!r}")
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


def best_rate(fixed: Mapping[str, float]) -> str:
    """The rate (its key) of the best run of a seed's grid; ties go to the lower rate."""
    return max(sorted(fixed, key=float), key=lambda r: fixed[r])


def at_edge(fixed: Mapping[str, float]) -> bool:
    rates = sorted(fixed, key=float)
    return best_rate(fixed) in (rates[0], rates[-1])


def extend_grid(task: Task, data: Sequence[np.ndarray], seed: int,
                fixed: dict[str, float]) -> list[float]:
    """Train the grid's next rate past the edge the seed's best sits at, until the best is
    inside the rates tried or :data:`EXTEND` steps past the task's grid; the rates added."""
    added = []
    while at_edge(fixed):
        nxt = task.beyond(float(best_rate(fixed)))
        if nxt is None:
            break
        rate = float(f"{nxt:.6g}")
        fixed[str(rate)] = train(task, data, seed, rate, "fixed")
        added.append(rate)
    return added


def measure(task: Task, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    data = task.load(seed)
    start = time.perf_counter()
    unit = {"seed": seed, "range_test": range_test(task, data, seed),
            "iterations": -(-len(data[0]) // task.batch_size) * task.epochs}
    unit["fixed"] = {str(lr): train(task, data, seed, lr, "fixed") for lr in task.grid}
    extend_grid(task, data, seed, unit["fixed"])
    unit["one_cycle"] = {str(lr): train(task, data, seed, lr, "one_cycle")
                         for lr in task.ladder()}
    log(f"{task.name} seed {seed}: grid {unit['fixed']}, 1cycle {unit['one_cycle']} "
        f"({time.perf_counter() - start:.0f} s)")
    return unit


# -- leave one task out ---------------------------------------------------------------------


def candidates(units: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[tuple[str, float]]:
    rules = sorted({r for us in units.values() for u in us for r in u["range_test"]["max_lr"]})
    return [(rule, factor) for rule in rules for factor in FACTORS]


def at(unit: Mapping[str, Any], peak: float) -> float | None:
    """The ladder's 1cycle accuracy at ``peak``, linear in log(rate) between its two
    neighbouring runs; None off the ladder."""
    ladder = sorted((float(k), v) for k, v in unit["one_cycle"].items())
    rates = [r for r, _ in ladder]
    if not rates[0] / 1.001 <= peak <= rates[-1] * 1.001:
        return None
    peak = min(max(peak, rates[0]), rates[-1])
    for (r0, v0), (r1, v1) in itertools.pairwise(ladder):
        if r0 <= peak <= r1:
            return v0 + (v1 - v0) * math.log(peak / r0) / math.log(r1 / r0)
    return ladder[-1][1]  # one run only


def gap(task_units: Sequence[Mapping[str, Any]], rule: str, factor: float) -> float | None:
    """Median over seeds of (candidate's ladder accuracy - grid's best), None if unscorable.

    A seed where the rule found no range counts -100 (the workflow has nothing to train
    with); a peak off the ladder makes the task unscorable.
    """
    gaps = []
    for unit in task_units:
        lr = unit["range_test"]["max_lr"].get(rule)
        if lr is None:
            gaps.append(-100.0)
            continue
        accuracy = at(unit, lr * factor)
        if accuracy is None:
            return None
        gaps.append(accuracy - max(unit["fixed"].values()))
    return statistics.median(gaps)


def score(units: Mapping[str, Sequence[Mapping[str, Any]]], tasks: Sequence[str],
          candidate: tuple[str, float]) -> tuple[float, ...]:
    """The choice's key, larger is better (see the module's docstring)."""
    rule, factor = candidate

    def gaps(f: float) -> list[float]:
        return [-100.0 if g is None else g for g in (gap(units[t], rule, f) for t in tasks)]

    def within(gs: Sequence[float]) -> int:
        return sum(g >= -TOLERANCE for g in gs)

    def shortfall(gs: Sequence[float]) -> float:
        return max(max(0.0, -g) for g in gs)

    here = gaps(factor)
    around = [min(lo, hi) for lo, hi in zip(gaps(factor / ROBUST), gaps(factor * ROBUST), strict=True)]
    return (within(here), -round(shortfall(here), 6), within(around),
            -round(shortfall(around), 6), -factor)


def choose(units: Mapping[str, Sequence[Mapping[str, Any]]],
           tasks: Sequence[str]) -> tuple[str, float]:
    """The best candidate on ``tasks`` by :func:`score`; a full tie goes to the rule's name."""
    return max(candidates(units), key=lambda c: score(units, tasks, c))  # first: by name


def leave_one_out(units: dict[str, list[dict[str, Any]]], log: Callable[[str], None],
                  results: dict[str, Any], save: Callable[[], None]) -> None:
    names = list(units)
    held_out = results.setdefault("held_out", {})
    for name in names:
        others = [t for t in names if t != name]
        rule, factor = choose(units, others)
        task, runs = TASKS[name], {"one_cycle": [], "cyclic": []}
        for unit in units[name]:
            lr = unit["range_test"]["max_lr"].get(rule)
            data = task.load(unit["seed"])
            for schedule, out in runs.items():
                out.append(None if lr is None else
                           train(task, data, unit["seed"], lr * factor, schedule))
        held_out[name] = {"rule": rule, "factor": factor, "accuracy": runs["one_cycle"],
                          "cyclic": runs["cyclic"],
                          "score": list(score(units, others, (rule, factor)))}
        log(f"held out {name}: chose {rule} x{factor:g} on the others -> 1cycle "
            f"{runs['one_cycle']}, CLR {runs['cyclic']}")
        save()


# -- report ---------------------------------------------------------------------------------


def _rate(text: str) -> str:
    return f"{float(text):.3g}"


def report(results: Mapping[str, Any]) -> str:
    units, held = results["units"], results.get("held_out", {})
    rows = ["| held-out task | kind, optimizer, batch | chosen on the other five | 1cycle "
            "accuracy (median of seeds) | grid's best (rate per seed) | 1cycle gap | CLR gap | "
            "cost: range test + run vs grid |",
            "|---|---|---|---|---|---|---|---|"]
    passed = []
    for name, task_units in units.items():
        task = TASKS[name]
        bests = [max(u["fixed"].values()) for u in task_units]
        best = statistics.median(bests)
        best_rates = [best_rate(u["fixed"]) for u in task_units]
        edge = any(at_edge(u["fixed"]) for u in task_units)
        it = task_units[0]["iterations"]
        grid_cost = round(statistics.median(len(u["fixed"]) for u in task_units) * it)
        rt = statistics.median(u["range_test"]["steps"] for u in task_units)
        cost = (rt + it) / grid_cost
        h = held.get(name)
        if h and all(a is not None for a in h["accuracy"]):
            acc = statistics.median(h["accuracy"])
            chosen = f"{h['rule']} x{h['factor']:g}"
            accuracy, diff = f"{acc:.1f}", f"{acc - best:+.1f}"
            clr = h.get("cyclic") or []
            clr_diff = (f"{statistics.median(clr) - best:+.1f}"
                        if clr and all(a is not None for a in clr) else "-")
            if acc - best >= -TOLERANCE and cost <= 0.5:
                passed.append(name)
        else:
            chosen, accuracy, diff, clr_diff = "not measured", "-", "-", "-"
        rates = "/".join(_rate(r) for r in best_rates)
        rows.append(f"| {name} | {task.kind}, {task.optimizer}, {task.batch_size} | {chosen} | "
                    f"{accuracy} | {best:.1f} ({rates}{', AT THE EDGE' if edge else ''}) | {diff} "
                    f"| {clr_diff} | {rt:.0f} + {it} = {cost:.2f} of {grid_cost} |")
    lines = ["\n".join(rows), "",
             f"Within {TOLERANCE} points of the grid's best at no more than half its compute: "
             f"{len(passed)} of {len(units)} ({', '.join(passed) or 'none'}).", ""]
    if held:
        picks: dict[str, int] = {}
        for h in held.values():
            key = f"{h['rule']} x{h['factor']:g}"
            picks[key] = picks.get(key, 0) + 1
        lines += ["Chosen by the folds: " + ", ".join(
            f"{k} {v} of {len(held)}" for k, v in sorted(picks.items(), key=lambda kv: -kv[1])),
            "", "Per seed (held out; 1cycle / CLR / grid's best):", ""]
        for name, h in held.items():
            bests = [max(u["fixed"].values()) for u in units[name]]
            def fmt(v: float | None) -> str:
                return "-" if v is None else f"{v:.1f}"

            cells = [f"{fmt(a)} / {fmt(c)} / {b:.1f}" for a, c, b in zip(h["accuracy"], h.get("cyclic") or [None] * len(bests), bests, strict=True)]
            lines.append(f"- {name}: " + "; ".join(cells))
        lines.append("")
    lines += ["Each candidate on each task (median of seeds, points against the grid's best, "
              "ladder interpolated); within 0.5 at its factor, and with its peak both halved "
              "and doubled:", ""]
    header = "| candidate | " + " | ".join(units) + " | within 0.5 | also at /2 and x2 |"
    lines += [header, "|---" * (len(units) + 3) + "|"]
    for rule, factor in candidates(units):
        full = score(units, list(units), (rule, factor))
        cells = ["-" if g is None else f"{g:+.1f}"
                 for g in (gap(units[t], rule, factor) for t in units)]
        lines.append(f"| {rule} x{factor:g} | " + " | ".join(cells)
                     + f" | {full[0]}/{len(units)} | {full[2]}/{len(units)} |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="the first seed (default 0; seeds run from it upwards)")
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--out", default="benchmarks/results/generalise-jax.json")
    p.add_argument("--report", metavar="FILE", help="print the tables of a finished run")
    p.add_argument("--extend-grids", nargs="+", metavar="FILE",
                   help="train the rates past a grid's edge where a seed's best sits (see "
                        "the module's docstring) in these runs, and write them back")
    p.add_argument("--reuse", nargs="+", metavar="FILE",
                   help="take the grids, range tests and ladders of these runs (their seeds "
                        "pooled) instead of measuring them; then leave one task out for real")
    args = p.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return 0
    if args.extend_grids:
        for f in args.extend_grids:
            record = json.loads(Path(f).read_text())
            for name, task_units in record["units"].items():
                for unit in task_units:
                    data = TASKS[name].load(unit["seed"])
                    added = extend_grid(TASKS[name], data, unit["seed"], unit["fixed"])
                    if added:
                        print(f"{f}: {name} seed {unit['seed']}: grid extended by {added}: "
                              f"{unit['fixed']}", flush=True)
                        Path(f).write_text(json.dumps(record, indent=1) + "\n")
        return 0
    out = Path(args.out)
    results: dict[str, Any] = {"backend": keras.backend.backend(), "keras": keras.__version__,
                               "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
                               "units": {}}
    if args.reuse:
        records = [json.loads(Path(f).read_text()) for f in args.reuse]
        results["reused"] = list(args.reuse)
        results["units"] = {name: [u for r in records for u in r["units"][name]]
                            for name in args.tasks}
        results["seeds"] = [u["seed"] for u in results["units"][args.tasks[0]]]

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")

    def log(line: str) -> None:
        print(line, flush=True)

    start = time.perf_counter()
    for name in [] if args.reuse else args.tasks:
        results["units"][name] = [measure(TASKS[name], seed, log) for seed in results["seeds"]]
        save()
    leave_one_out(results["units"], log, results, save)
    results["seconds"] = round(time.perf_counter() - start)
    save()
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
