"""``clrplug demo``: one range test and one run against a grid of fixed rates, on real data.

The reason to use a cyclical rate is to train well without a learning-rate search:
one cheap range test, then one run. The demo shows it on scikit-learn's handwritten
digits (1,797 8x8 images, 10 classes; they ship with scikit-learn, nothing is
downloaded), with a small MLP and SGD with momentum 0.9:

1. the grid: one run per fixed learning rate, from the same initial weights and in
   the same batch order; the best final test accuracy is the target;
2. the workflow: :func:`clrplug.lr_range_test` (validation on a fifth of the training
   set, never the test set), then one :meth:`~clrplug.RangeTestResult.one_cycle` run
   peaking at the default rule's suggestion;
3. every rule's suggestion, the one-line caveat when the curve cannot tell, a table,
   a verdict and the figures.

A few public calls of the package and ``model.fit``: the harness that benchmarks the
rules over many tasks lives in ``benchmarks/`` (``benchmarks/harness.py``). Keras is
imported when this module is, so the CLI imports it only for ``demo``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from clrplug.digits import Data, load_digits_data
from clrplug.errors import InvalidArgumentError
from clrplug.plotting import (
    new_figure,
    plot_history,
    require_matplotlib,
    save_figure,
)
from clrplug.range_test import DEFAULT_RULE, RangeTestResult, lr_range_test

__all__ = [
    "BATCH_SIZE", "DEFAULT_EPOCHS", "DEFAULT_FIXED_LRS", "TOLERANCE", "Comparison", "Data",
    "Run", "build_model", "compare", "load_digits_data", "main", "rule_table", "write_plots",
]

BATCH_SIZE = 32
#: Epochs of every run: 48 x 43 = 2,064 iterations, long enough that the best fixed rate
#: has plateaued.
DEFAULT_EPOCHS = 48
#: The grid of fixed rates (half-decade steps around SGD's usual defaults).
DEFAULT_FIXED_LRS = (0.01, 0.03, 0.1, 0.3)
#: "Reaches the grid's best accuracy" means within this much of it (0.5 points).
TOLERANCE = 0.005


def build_model(seed: int, learning_rate: float = 0.01) -> keras.Model:
    """64-128-10 (ReLU, dropout 0.2), SGD momentum 0.9; the same ``seed``, the same weights."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ], name="digits_mlp")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@dataclass(frozen=True)
class Run:
    """One training run: test accuracy after every epoch (and before the first)."""

    name: str
    description: str
    iterations: np.ndarray
    accuracy: np.ndarray
    seconds: float
    callback: Any = field(default=None, compare=False, repr=False)

    @property
    def final_accuracy(self) -> float:
        return float(self.accuracy[-1])

    def iterations_to_reach(self, target: float) -> int | None:
        """The first measured iteration with test accuracy >= ``target`` (None: never)."""
        reached = np.flatnonzero(self.accuracy >= target - 1e-9)
        return int(self.iterations[reached[0]]) if reached.size else None


def _train(name: str, description: str, data: Data, seed: int, lr: float, epochs: int,
           callback: Any = None, verbose: int = 0) -> Run:
    model = build_model(seed, lr)
    steps = -(-len(data.x_train) // BATCH_SIZE)
    iterations, accuracy = [], []

    def measure(epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        predicted = np.argmax(model.predict_on_batch(data.x_test), axis=-1)
        iterations.append((epoch + 1) * steps)
        accuracy.append(float(np.mean(predicted == data.y_test)))

    measure(-1)
    keras.utils.set_random_seed(seed)  # the same batch order (and dropout) for every run
    start = time.perf_counter()
    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=measure)]
    model.fit(data.x_train, data.y_train, batch_size=BATCH_SIZE, epochs=epochs,
              callbacks=[*([callback] if callback is not None else []), *callbacks],
              verbose=verbose)
    return Run(name, description, np.asarray(iterations), np.asarray(accuracy),
               time.perf_counter() - start, callback)


def _range_test(data: Data, seed: int, verbose: int = 0) -> RangeTestResult:
    held_out = len(data.x_train) // 5
    model = build_model(seed)
    keras.utils.set_random_seed(seed)
    return lr_range_test(
        model, data.x_train[held_out:], data.y_train[held_out:], batch_size=BATCH_SIZE,
        validation_data=(data.x_train[:held_out], data.y_train[:held_out]),
        validation_every=5, validation_batch_size=held_out, verbose=verbose,
    )


@dataclass(frozen=True)
class Comparison:
    """The demo's outcome: the grid, the range test and the workflow's run."""

    seed: int
    budget: int
    fixed: tuple[Run, ...]
    range_test: RangeTestResult
    workflow: Run
    backend: str

    @property
    def best_fixed(self) -> Run:
        """The fixed rate with the highest final test accuracy (ties: the earliest)."""
        return max(self.fixed, key=lambda run: (run.final_accuracy, -self.fixed.index(run)))

    @property
    def target(self) -> float:
        """Within :data:`TOLERANCE` of the grid's best final test accuracy."""
        return self.best_fixed.final_accuracy - TOLERANCE

    def table(self) -> str:
        """One row per run, and the verdict."""
        rows = [("run", "learning rate", "final acc", f"iters to {100 * self.target:.1f}%")]
        for run in (self.workflow, *self.fixed):
            reached = run.iterations_to_reach(self.target)
            label = run.name + (" (workflow)" if run is self.workflow else
                                " (grid's best)" if run is self.best_fixed else "")
            rows.append((label, run.description, f"{100 * run.final_accuracy:.1f}%",
                         "not reached" if reached is None else str(reached)))
        return "\n".join([_columns(rows), "", self.verdict()])

    def verdict(self) -> str:
        """One line: did range test + one run match the grid, and at what cost."""
        best, run = self.best_fixed, self.workflow
        gap = 100 * (run.final_accuracy - best.final_accuracy)
        grid = len(self.fixed) * self.budget
        head = (f"Range test + {run.name}: {100 * run.final_accuracy:.1f}% against the grid's "
                f"best {100 * best.final_accuracy:.1f}% ({best.name}, {len(self.fixed)} runs, "
                f"{grid} iterations), {gap:+.1f} points")
        reached = run.iterations_to_reach(self.target)
        if gap < -100 * TOLERANCE or reached is None:
            return f"{head}: short of the grid by more than {100 * TOLERANCE:.1f} points."
        total = len(self.range_test.lr) + reached
        return (f"{head}: matched after {total} iterations including the range test, "
                f"{grid / total:.1f}x fewer than the grid.")


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rule_table(result: RangeTestResult) -> str:
    """Every registered rule's suggestion, the default marked; the caveat line under it."""
    rows = [("rule", "base_lr", "max_lr", "what it found")]
    for name, found in result.suggestions().items():
        label = f"{name} (default)" if name == DEFAULT_RULE else name
        if found is None:
            rows.append((label, "-", "-", "no range found"))
        else:
            reason = found.reason.removeprefix(f"{name}: ")
            rows.append((label, f"{found.base_lr:.3g}", f"{found.max_lr:.3g}", reason))
    caveat = result.ambiguity()
    return _columns(rows) + ("" if caveat is None else f"\nnot confident: {caveat}")


def compare(epochs: int | None = None, seed: int = 0,
            fixed_lrs: Sequence[float] = DEFAULT_FIXED_LRS, *, verbose: int = 0,
            log: Callable[[str], None] = print) -> Comparison:
    """The grid of fixed rates, then the range test and the workflow's one 1cycle run."""
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise InvalidArgumentError(f"epochs must be an integer >= 1, got {epochs!r}.")
    if not fixed_lrs or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0
                            for v in fixed_lrs):
        raise InvalidArgumentError(
            f"fixed_lrs must be a non-empty list of positive learning rates, got {fixed_lrs!r}."
        )
    epochs = epochs or DEFAULT_EPOCHS
    data = load_digits_data(seed)
    budget = epochs * -(-len(data.x_train) // BATCH_SIZE)
    fixed = []
    for index, lr in enumerate(fixed_lrs, 1):
        run = _train(f"fixed lr={lr:g}", f"{lr:.3g}", data, seed, float(lr), epochs,
                     verbose=verbose)
        fixed.append(run)
        log(f"grid {index}/{len(fixed_lrs)}  {run.name:<16} final "
            f"{100 * run.final_accuracy:5.1f}%   {run.seconds:5.1f} s")
    start = time.perf_counter()
    result = _range_test(data, seed, verbose)
    callback = result.one_cycle(total_steps=budget)
    log(f"range test    {len(result.lr)} steps ({result.stop_reason}), rule {DEFAULT_RULE!r}: "
        f"peak {callback.max_lr:.3g}   {time.perf_counter() - start:5.1f} s")
    if result.ambiguity() is not None:
        log(f"not confident: {result.ambiguity()}")
    workflow = _train(f"1cycle {DEFAULT_RULE}", f"peak {callback.max_lr:.3g}", data, seed,
                      callback.max_lr, epochs, callback, verbose)
    comparison = Comparison(seed, budget, tuple(fixed), result, workflow,
                            keras.backend.backend())
    log(f"workflow      {workflow.name:<16} final {100 * workflow.final_accuracy:5.1f}%   "
        f"{workflow.seconds:5.1f} s")
    return comparison


def plot_accuracy(comparison: Comparison, path: str | Path | None = None) -> Any:
    """Test accuracy against training iterations for every run, the target marked."""
    figure, (axis,) = new_figure(height=4.2)
    for run in comparison.fixed:
        best = run is comparison.best_fixed
        axis.plot(run.iterations, 100 * run.accuracy, linewidth=1.6 if best else 1.0,
                  label=run.name + (" (grid's best)" if best else ""))
    run = comparison.workflow
    axis.plot(run.iterations, 100 * run.accuracy, color="tab:red", linewidth=2.2,
              label=f"{run.name} after a {len(comparison.range_test.lr)}-step range test")
    target = 100 * comparison.target
    axis.axhline(target, color="0.4", linestyle=":", linewidth=1.0,
                 label=f"target: grid's best - {100 * TOLERANCE:.1f} ({target:.1f}%)")
    axis.set_ylim(max(0.0, min(80.0, target - 15)), 100)
    axis.set_xlabel("training iterations")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(f"digits 8x8, MLP 64-128-10, SGD momentum 0.9, seed {comparison.seed} "
                   f"({comparison.backend} backend)", fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    if path is not None:
        save_figure(figure, path)
    return figure


def write_plots(comparison: Comparison, out: str | Path) -> list[Path]:
    """Write ``accuracy.png``, ``range_test.png`` and ``workflow_history.png`` to ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in ("accuracy.png", "range_test.png", "workflow_history.png")]
    plot_accuracy(comparison, paths[0])
    comparison.range_test.plot(paths[1])
    plot_history(comparison.workflow.callback.history, ["loss"], path=paths[2])
    return paths


def main(out: str | Path = "clrplug-demo", epochs: int | None = None, seed: int = 0,
         verbose: int = 0, fixed_lrs: Sequence[float] = DEFAULT_FIXED_LRS) -> int:
    """Run :func:`compare`, print the rules, the table and the verdict, write the figures."""
    require_matplotlib()  # before the training, not after
    start = time.perf_counter()
    print(f"digits 8x8, MLP 64-128-10, batch {BATCH_SIZE}, SGD momentum 0.9, "
          f"{epochs or DEFAULT_EPOCHS} epochs per run, seed {seed}, "
          f"Keras backend {keras.backend.backend()}")
    if keras.backend.backend() == "torch":  # small products: threads cost more than they save
        import torch

        torch.set_num_threads(1)
    comparison = compare(epochs, seed, fixed_lrs, verbose=verbose)
    print()
    print(rule_table(comparison.range_test))
    print()
    print(comparison.table())
    paths = write_plots(comparison, out)
    print()
    print("plots: " + ", ".join(str(p) for p in paths))
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0
