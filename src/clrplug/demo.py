"""``clrplug demo``: the range test and a cyclical schedule against fixed rates, on real data.

The data set is scikit-learn's handwritten digits (1,797 8x8 images, 10
classes), which ships inside scikit-learn and needs no download. The demo

1. runs :func:`clrplug.lr_range_test` on a small network (validation accuracy
   read from a slice of the training set) and takes its suggested bounds;
2. trains the same network, from the same initial weights and batch order, with
   the suggested ``triangular2`` :class:`~clrplug.CyclicLR` and with each rate of a
   small grid of fixed learning rates, for the same number of iterations;
3. measures test accuracy every few iterations and reports, as the seed does
   for CIFAR-10, the accuracy each run reaches and the iterations the cyclical
   schedule needs to reach the best fixed rate's final accuracy;
4. writes the range-test, schedule and accuracy plots.

``benchmarks/convergence.py`` repeats :func:`compare` over several seeds.
Keras is imported when this module is, so the CLI imports it only for ``demo``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug.callback import CyclicLR
from clrplug.errors import InvalidArgumentError
from clrplug.plotting import (
    MissingExtraError,
    new_figure,
    plot_schedule,
    require_matplotlib,
    save_figure,
)
from clrplug.range_test import RangeTestResult, lr_range_test

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_FIXED_LRS",
    "Comparison",
    "Data",
    "Run",
    "compare",
    "cycle_plan",
    "load_digits_data",
    "main",
    "write_plots",
]

#: Training epochs of every run.
DEFAULT_EPOCHS = 12
#: The fixed learning rates the cyclical schedule is compared with (SGD, momentum 0.9).
DEFAULT_FIXED_LRS = (0.01, 0.03, 0.1, 0.3)
BATCH_SIZE = 32
MOMENTUM = 0.9
#: Test accuracy is measured this many times per epoch.
EVALUATIONS_PER_EPOCH = 4


@dataclass(frozen=True)
class Data:
    """Digits, scaled to [0, 1]: a training set, and a test set no run trains on."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.x_train) / BATCH_SIZE)


def load_digits_data(seed: int = 0, test_fraction: float = 0.25) -> Data:
    """scikit-learn's digits, split into stratified training and test sets."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise MissingExtraError(
            "the demo needs scikit-learn (its digits data set ships with it): "
            f"pip install 'clrplug[demo]'. ({exc})"
        ) from exc
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return Data(x_train, y_train, x_test, y_test)


def build_model(seed: int, learning_rate: float = 0.01) -> keras.Model:
    """A small fully connected network, compiled with SGD and momentum 0.9 (as Smith uses).

    The same ``seed`` gives the same initial weights, dropout masks and batch order.
    """
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="digits_mlp",
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=MOMENTUM),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class TestAccuracy(keras.callbacks.Callback):
    """Test accuracy every ``every`` training iterations (and after the last one).

    Computed by calling the model on the test set, outside Keras' metric trackers,
    so the training logs are untouched; shown as ``test_accuracy`` in the epoch logs.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, every: int) -> None:
        super().__init__()
        self.x, self.y, self.every = x, y, every
        self.iterations: list[int] = []
        self.accuracy: list[float] = []
        self._done = 0

    def _measure(self) -> None:
        probabilities = ops.convert_to_numpy(self.model(self.x, training=False))
        self.iterations.append(self._done)
        self.accuracy.append(float(np.mean(np.argmax(probabilities, axis=-1) == self.y)))

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._measure()

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._done += 1
        if self._done % self.every == 0:
            self._measure()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.iterations[-1] != self._done:
            self._measure()
        if logs is not None:
            logs["test_accuracy"] = self.accuracy[-1]


@dataclass(frozen=True)
class Run:
    """One training run: its test accuracy against training iterations."""

    name: str
    description: str
    iterations: np.ndarray
    accuracy: np.ndarray
    seconds: float

    @property
    def final_accuracy(self) -> float:
        return float(self.accuracy[-1])

    @property
    def best_accuracy(self) -> float:
        return float(self.accuracy.max())

    def iterations_to_reach(self, target: float) -> int | None:
        """The first measured iteration with test accuracy >= ``target`` (None: never)."""
        reached = np.flatnonzero(self.accuracy >= target - 1e-12)
        return int(self.iterations[reached[0]]) if reached.size else None


@dataclass(frozen=True)
class Comparison:
    """The demo's outcome: the range test, the cyclical run and the fixed-rate runs."""

    range_test: RangeTestResult
    clr: Run
    clr_callback: CyclicLR
    fixed: tuple[Run, ...]
    epochs: int
    steps_per_epoch: int
    backend: str

    @property
    def best_fixed(self) -> Run:
        """The fixed rate with the highest final test accuracy (ties: the earliest)."""
        return max(self.fixed, key=lambda run: (run.final_accuracy, -self.fixed.index(run)))

    @property
    def target(self) -> float:
        """The accuracy to reach: the best fixed rate's final test accuracy."""
        return self.best_fixed.final_accuracy

    @property
    def iterations_fixed(self) -> int:
        reached = self.best_fixed.iterations_to_reach(self.target)
        assert reached is not None  # it ends there
        return reached

    @property
    def iterations_clr(self) -> int | None:
        return self.clr.iterations_to_reach(self.target)

    @property
    def speedup(self) -> float | None:
        """Iterations the best fixed rate needed divided by those the cyclical one needed."""
        clr = self.iterations_clr
        return None if not clr else self.iterations_fixed / clr

    def table(self) -> str:
        """The result as a text table plus a one-line verdict."""
        target = f"{100 * self.target:.1f}%"
        header = ("run", "learning rate", "final acc", "best acc", f"iterations to {target}")
        rows = [header]
        for run in (self.clr, *self.fixed):
            reached = run.iterations_to_reach(self.target)
            name = run.name + (" (best fixed)" if run is self.best_fixed else "")
            rows.append(
                (
                    name,
                    run.description,
                    f"{100 * run.final_accuracy:.1f}%",
                    f"{100 * run.best_accuracy:.1f}%",
                    "not reached" if reached is None else str(reached),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        budget = self.epochs * self.steps_per_epoch
        if self.speedup is None:
            verdict = (
                f"The cyclical schedule did not reach {target} within {budget} iterations: "
                "no win on this run."
            )
        elif self.speedup >= 1:
            verdict = (
                f"CLR (triangular2) reached the best fixed rate's final accuracy ({target}) in "
                f"{self.iterations_clr} iterations, the best fixed rate in "
                f"{self.iterations_fixed}: {self.speedup:.2f}x fewer iterations."
            )
        else:
            verdict = (
                f"CLR (triangular2) needed {self.iterations_clr} iterations to reach the best "
                f"fixed rate's final accuracy ({target}), the best fixed rate "
                f"{self.iterations_fixed}: no win ({1 / self.speedup:.2f}x more iterations)."
            )
        return "\n".join([*lines, "", verdict])


def _fit(
    model: keras.Model,
    data: Data,
    epochs: int,
    seed: int,
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: int,
) -> TestAccuracy:
    every = max(1, data.steps_per_epoch // EVALUATIONS_PER_EPOCH)
    probe = TestAccuracy(data.x_test, data.y_test, every)
    keras.utils.set_random_seed(seed)  # the same batch order for every run
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        callbacks=[*callbacks, probe],
        verbose=verbose,
    )
    return probe


def cycle_plan(epochs: int, steps_per_epoch: int, cycles: int | None = None) -> tuple[int, int]:
    """``(cycles, step_size)`` for a run of ``epochs``: whole cycles that fill the budget.

    By default half a cycle lasts about 4 epochs, as in the seed's CIFAR-10 run
    (``step_size=2000`` at 500 iterations per epoch, within Smith's "2-8 times the
    iterations in an epoch"), rounded so that training ends at the end of a cycle,
    on ``base_lr``, where Smith finds the best accuracies.
    """
    if cycles is None:
        cycles = max(1, round(epochs / 8))
    budget = epochs * steps_per_epoch
    return cycles, max(1, round(budget / (2 * cycles)))


def compare(
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    fixed_lrs: Sequence[float] = DEFAULT_FIXED_LRS,
    *,
    cycles: int | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = print,
) -> Comparison:
    """Range test, then ``triangular2`` CLR and each fixed rate for ``epochs`` epochs.

    Args:
        epochs: training epochs of each run.
        cycles: triangular2 cycles in the budget; default :func:`cycle_plan`'s
            (half-cycles of about 4 epochs).
        seed: seeds the data split, the initial weights and the batch order.
        fixed_lrs: the fixed learning rates to compare with.
        verbose: Keras' progress output (0 silent, 1 progress bar, 2 one line per epoch).
        log: where section headings go.

    Returns:
        A :class:`Comparison`; ``comparison.table()`` is the demo's printed result.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidArgumentError(f"epochs must be an integer >= 1, got {epochs!r}.")
    if not fixed_lrs or any(not (isinstance(v, (int, float)) and v > 0) for v in fixed_lrs):
        raise InvalidArgumentError(
            f"fixed_lrs must be a non-empty list of positive learning rates, got {fixed_lrs!r}."
        )
    data = load_digits_data(seed)
    steps_per_epoch = data.steps_per_epoch
    budget = epochs * steps_per_epoch

    # 1. The range test, on the training set with a fifth of it held out for validation.
    # Four epochs: long enough for a smooth curve, short enough that the curve shows the
    # learning rate's effect more than the progress of training (fastai sweeps 100 steps).
    held_out = len(data.x_train) // 5
    sweep_steps = 4 * math.ceil((len(data.x_train) - held_out) / BATCH_SIZE)
    log(
        f"== LR range test: exp sweep 1e-4 .. 10 over {sweep_steps} iterations "
        f"(validation accuracy on {held_out} held-out training images)"
    )
    model = build_model(seed)
    result = lr_range_test(
        model,
        data.x_train[held_out:],
        data.y_train[held_out:],
        min_lr=1e-4,
        max_lr=10.0,
        steps=sweep_steps,
        batch_size=BATCH_SIZE,
        validation_data=(data.x_train[:held_out], data.y_train[:held_out]),
        validation_every=4,
        validation_batch_size=held_out,
        verbose=verbose,
    )
    log(f"   {result}")

    # 2. The cyclical schedule from the suggestion: whole cycles filling the budget.
    cycles, step_size = cycle_plan(epochs, steps_per_epoch, cycles)
    clr_callback = result.cyclic_lr(step_size=step_size, mode="triangular2")
    log(
        f"== CLR triangular2: base_lr={clr_callback.base_lr:.3g}, "
        f"max_lr={clr_callback.max_lr:.3g}, step_size={step_size} ({cycles} cycle(s) in "
        f"{budget} iterations)"
    )
    start = time.perf_counter()
    probe = _fit(build_model(seed), data, epochs, seed, [clr_callback], verbose)
    clr = Run(
        "CLR triangular2",
        f"{clr_callback.base_lr:.3g} .. {clr_callback.max_lr:.3g}, step_size {step_size}",
        np.asarray(probe.iterations),
        np.asarray(probe.accuracy),
        time.perf_counter() - start,
    )

    # 3. The fixed rates, same budget, same initial weights and batch order.
    fixed = []
    for lr in fixed_lrs:
        log(f"== fixed learning rate {lr:g}")
        start = time.perf_counter()
        probe = _fit(build_model(seed, learning_rate=lr), data, epochs, seed, [], verbose)
        fixed.append(
            Run(
                f"fixed lr={lr:g}",
                f"{lr:g}",
                np.asarray(probe.iterations),
                np.asarray(probe.accuracy),
                time.perf_counter() - start,
            )
        )
    return Comparison(
        result, clr, clr_callback, tuple(fixed), epochs, steps_per_epoch, keras.backend.backend()
    )


def plot_accuracy(comparison: Comparison, path: str | Path | None = None) -> Any:
    """Test accuracy against training iterations for every run, the target marked."""
    figure, (axis,) = new_figure(height=4.2)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
    runs = [comparison.clr, *comparison.fixed]
    for index, run in enumerate(runs):
        axis.plot(
            run.iterations,
            100 * run.accuracy,
            color="tab:red" if run is comparison.clr else colors[index % len(colors)],
            linewidth=2.0 if run is comparison.clr else 1.2,
            label=f"{run.name}" + (" (best fixed)" if run is comparison.best_fixed else ""),
        )
    target = 100 * comparison.target
    axis.axhline(target, color="0.4", linestyle=":", linewidth=1.0,
                 label=f"best fixed rate's final accuracy ({target:.1f}%)")
    for run, marker in ((comparison.clr, "o"), (comparison.best_fixed, "s")):
        reached = run.iterations_to_reach(comparison.target)
        if reached is not None:
            axis.plot([reached], [target], marker=marker, color="black", markersize=6,
                      linestyle="none", label=f"{run.name} reaches it")
            axis.annotate(f"{reached}", (reached, target), textcoords="offset points",
                          xytext=(4, -12), fontsize=8)
    axis.set_ylim(max(0.0, min(80.0, target - 15)), 100)
    axis.set_xlabel("training iterations")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(
        f"Digits, {comparison.epochs} epochs ({comparison.backend} backend)", fontsize=10
    )
    axis.grid(True, alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    if path is not None:
        save_figure(figure, path)
    return figure


def write_plots(comparison: Comparison, out: str | Path) -> list[Path]:
    """Write ``range_test.png``, ``schedule.png``, ``clr_history.png`` and ``accuracy.png``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    clr = comparison.clr_callback
    budget = comparison.epochs * comparison.steps_per_epoch
    paths = [folder / name for name in
             ("range_test.png", "schedule.png", "clr_history.png", "accuracy.png")]
    comparison.range_test.plot(paths[0])
    plot_schedule(clr.mode, base_lr=clr.base_lr, max_lr=clr.max_lr, step_size=clr.step_size,
                  steps=budget, path=paths[1])
    clr.plot_history(path=paths[2])
    plot_accuracy(comparison, paths[3])
    return paths


def main(
    out: str | Path = "clrplug-demo",
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    verbose: int = 1,
    fixed_lrs: Sequence[float] = DEFAULT_FIXED_LRS,
) -> int:
    """Run :func:`compare`, print its table and write the plots to ``out``."""
    require_matplotlib()  # before minutes of training, not after
    start = time.perf_counter()
    comparison = compare(epochs, seed, fixed_lrs, verbose=verbose)
    print()
    print(
        f"Digits ({comparison.steps_per_epoch} iterations per epoch, {comparison.epochs} epochs, Keras backend {comparison.backend}):"
    )
    print(comparison.table())
    paths = write_plots(comparison, out)
    print()
    print("plots: " + ", ".join(str(p) for p in paths))
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0
