"""``clrplug demo``: one range test and one run against a grid of fixed rates, on real data.

The reason to use a cyclical rate is to train well without a learning-rate search:
one cheap range test, then one run. The demo checks that promise on
scikit-learn's handwritten digits (1,797 8x8 images, 10 classes; they ship with
scikit-learn, nothing is downloaded):

1. the grid: one full run per fixed learning rate, all from the same initial
   weights and in the same batch order; the best final test accuracy is the
   target;
2. the recommended workflow: :func:`clrplug.lr_range_test` (validation on a fifth
   of the training set, never the test set), then one run with
   :data:`WORKFLOW_SCHEDULE` from :data:`~clrplug.range_test.DEFAULT_RULE`'s
   suggestion (:func:`workflow_plan`);
3. one line per run, then a table, a one-line verdict and the figures.

The pieces (:class:`Task`, :class:`Plan`, :func:`train`, :func:`range_test`) are
the harness of ``benchmarks/convergence.py``, which runs them over three tasks,
five seeds, two optimizers and every suggestion rule; that benchmark's evidence
chose the defaults (docs/range-test.md, "Which rule: the benchmark"). Keras is
imported when this module is, so the CLI imports it only for ``demo``.

About 700 lines, over the usual 400: the harness (tasks, data, the training loop,
plans) and the report (table, verdict, figures) are one application that nothing
else in clrplug imports; split, neither half would have another user.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug.callback import CyclicLR
from clrplug.errors import InvalidArgumentError
from clrplug.one_cycle import OneCycleLR
from clrplug.plotting import (
    MissingExtraError,
    new_figure,
    plot_history,
    require_matplotlib,
    save_figure,
)
from clrplug.range_test import DEFAULT_LOWER, DEFAULT_RULE, RangeTestResult, lr_range_test
from clrplug.range_test.result import DEFAULT_MAX_LR, DEFAULT_MIN_LR, DEFAULT_STEPS

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_FIXED_LRS",
    "DIGITS",
    "FIXED_LRS",
    "OPTIMIZERS",
    "TOLERANCE",
    "WORKFLOW_MAX_LR_FACTOR",
    "WORKFLOW_SCHEDULE",
    "Comparison",
    "Data",
    "Plan",
    "Run",
    "Task",
    "build_model",
    "columns",
    "compare",
    "compile_model",
    "load_digits_data",
    "main",
    "one_cpu_thread",
    "plot_accuracy",
    "range_test",
    "rule_table",
    "train",
    "workflow_plan",
    "write_plots",
]

BATCH_SIZE = 32
MOMENTUM = 0.9
#: Training epochs of every run of the demo: 48 x 43 = 2,064 iterations, the benchmark's
#: budget for the digits, long enough that the best fixed rate has plateaued.
DEFAULT_EPOCHS = 48
#: The grid of fixed rates per optimizer (half-decade steps around the usual defaults).
FIXED_LRS: Mapping[str, tuple[float, ...]] = {
    "sgd": (0.003, 0.01, 0.03, 0.1, 0.3),
    "adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
}
#: The demo's grid (SGD with momentum 0.9, as Smith trains): the benchmark's without 0.003,
#: which was never the best on the digits, so that the demo stays under a minute.
DEFAULT_FIXED_LRS = FIXED_LRS["sgd"][1:]
#: "Reaches the grid's best accuracy" means within this much of it (0.5 points).
TOLERANCE = 0.005
#: The schedule of the workflow's one run, chosen by the benchmark: ``"one_cycle"``
#: (:class:`~clrplug.OneCycleLR` peaking at the suggested ``max_lr``), ``"triangular"``
#: or ``"triangular2"`` (:class:`~clrplug.CyclicLR` between the suggested bounds).
WORKFLOW_SCHEDULE = "one_cycle"
#: The workflow's peak is the suggested ``max_lr`` times this.
WORKFLOW_MAX_LR_FACTOR = 1.0
#: Whole cycles of a triangular workflow in the budget (it ends on ``base_lr``).
CYCLES = 4
#: The range test: an exponential sweep over this range and number of steps.
RANGE_MIN_LR, RANGE_MAX_LR, RANGE_STEPS = DEFAULT_MIN_LR, DEFAULT_MAX_LR, DEFAULT_STEPS
SCHEDULES = ("fixed", "plateau", "triangular", "triangular2", "one_cycle")


# -- tasks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    """A training set, and a test set no run trains on or reads its schedule from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


@dataclass(frozen=True)
class Task:
    """A classification problem with its network and budget.

    Attributes:
        name: short name (``digits_mlp``).
        description: one line for tables.
        load: ``seed -> Data`` (the seed picks the split and any augmentation).
        build: ``() -> keras.Model``, uncompiled (weights drawn from Keras' seed).
        batch_size: examples per step.
        epochs: epochs of every run.
        plateau_patience: epochs ``ReduceLROnPlateau`` waits (about 170 iterations).
    """

    name: str
    description: str
    load: Callable[[int], Data]
    build: Callable[[], keras.Model]
    batch_size: int
    epochs: int
    plateau_patience: int

    def steps_per_epoch(self, data: Data) -> int:
        return math.ceil(len(data.x_train) / self.batch_size)

    def budget(self, data: Data, epochs: int | None = None) -> int:
        """Training iterations of one run."""
        return (epochs or self.epochs) * self.steps_per_epoch(data)


def load_digits_data(seed: int = 0, test_fraction: float = 0.25) -> Data:
    """scikit-learn's digits scaled to [0, 1], split into stratified training and test sets."""
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


def digits_mlp() -> keras.Model:
    """64-128-10, ReLU, dropout 0.2."""
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="digits_mlp",
    )


#: The digits with a small fully connected network: the demo's task, and the benchmark's first.
DIGITS = Task(
    "digits_mlp",
    "digits 8x8, MLP 64-128-10, batch 32",
    load_digits_data,
    digits_mlp,
    batch_size=BATCH_SIZE,
    epochs=DEFAULT_EPOCHS,
    plateau_patience=4,
)

#: The optimizers, by name: SGD with momentum 0.9 (Smith's) and Adam (Keras' defaults).
OPTIMIZERS: Mapping[str, Callable[[float], keras.optimizers.Optimizer]] = {
    "sgd": lambda lr: keras.optimizers.SGD(lr, momentum=MOMENTUM),
    "adam": lambda lr: keras.optimizers.Adam(lr),
}


def compile_model(task: Task, seed: int, optimizer: str, learning_rate: float) -> keras.Model:
    """``task``'s network with the initial weights of ``seed``, compiled with ``optimizer``."""
    if optimizer not in OPTIMIZERS:
        raise InvalidArgumentError(
            f"optimizer={optimizer!r} is not known; choose one of {sorted(OPTIMIZERS)}."
        )
    keras.utils.set_random_seed(seed)
    model = task.build()
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def build_model(seed: int, learning_rate: float = 0.01, optimizer: str = "sgd") -> keras.Model:
    """The demo's network (:data:`DIGITS`), compiled; the same ``seed``, the same weights."""
    return compile_model(DIGITS, seed, optimizer, learning_rate)


# -- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How one run sets its learning rate.

    Attributes:
        name: what the run is called in tables (``fixed lr=0.1``, ``1cycle valley``).
        schedule: ``"fixed"``, ``"plateau"`` (Keras' ``ReduceLROnPlateau`` from ``lr``),
            ``"triangular"``, ``"triangular2"`` (``CyclicLR``) or ``"one_cycle"``.
        lr: the fixed or starting rate, or the cycle's ``max_lr``.
        base_lr: a cyclical schedule's lower bound.
        step_size: a cyclical schedule's half cycle, in iterations.
        patience: ``ReduceLROnPlateau``'s patience in epochs.
    """

    name: str
    schedule: str
    lr: float
    base_lr: float | None = None
    step_size: int | None = None
    patience: int = 4

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise InvalidArgumentError(
                f"schedule={self.schedule!r} is not known; choose one of {list(SCHEDULES)}."
            )
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise InvalidArgumentError(f"lr must be a positive number, got {self.lr!r}.")

    def describe(self) -> str:
        """The rates, in a few words."""
        if self.schedule == "fixed":
            return f"{self.lr:.3g}"
        if self.schedule == "plateau":
            return f"{self.lr:.3g}, x0.2 after {self.patience} flat epochs"
        if self.schedule == "one_cycle":
            return f"peak {self.lr:.3g}"
        return f"{self.base_lr:.3g}..{self.lr:.3g}, step {self.step_size}"

    def callbacks(self, budget: int) -> list[keras.callbacks.Callback]:
        """The callbacks that drive the rate over ``budget`` iterations."""
        if self.schedule == "plateau":
            return [keras.callbacks.ReduceLROnPlateau(
                monitor="loss", factor=0.2, patience=self.patience, verbose=0)]
        if self.schedule in ("triangular", "triangular2"):
            assert self.base_lr is not None and self.step_size is not None
            return [CyclicLR(base_lr=self.base_lr, max_lr=self.lr, step_size=self.step_size,
                             mode=self.schedule)]
        if self.schedule == "one_cycle":
            return [OneCycleLR(self.lr, total_steps=budget)]
        return []

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "schedule": self.schedule, "lr": self.lr,
                "base_lr": self.base_lr, "step_size": self.step_size}


class Probe(keras.callbacks.Callback):
    """Test accuracy before training and after every epoch (``test_accuracy`` in the logs).

    Computed from the model's predictions outside Keras' metric trackers, so the
    training logs are untouched; a non-finite prediction marks the run as diverged.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, steps_per_epoch: int) -> None:
        super().__init__()
        self.x, self.y, self.steps_per_epoch = x, y, steps_per_epoch
        self.iterations: list[int] = []
        self.accuracy: list[float] = []
        self.finite = True

    def _measure(self, iterations: int) -> None:
        probabilities = np.asarray(ops.convert_to_numpy(self.model.predict_on_batch(self.x)))
        self.finite = self.finite and bool(np.isfinite(probabilities).all())
        self.iterations.append(iterations)
        self.accuracy.append(float(np.mean(np.argmax(probabilities, axis=-1) == self.y)))

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._measure(0)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._measure((epoch + 1) * self.steps_per_epoch)
        if logs is not None:
            logs["test_accuracy"] = self.accuracy[-1]


@dataclass(frozen=True)
class Run:
    """One training run: test accuracy against training iterations."""

    plan: Plan
    iterations: np.ndarray
    accuracy: np.ndarray
    finite: bool
    seconds: float
    callback: keras.callbacks.Callback | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def description(self) -> str:
        return self.plan.describe()

    @property
    def final_accuracy(self) -> float:
        return float(self.accuracy[-1])

    @property
    def best_accuracy(self) -> float:
        return float(self.accuracy.max())

    def iterations_to_reach(self, target: float) -> int | None:
        """The first measured iteration with test accuracy >= ``target`` (None: never)."""
        reached = np.flatnonzero(self.accuracy >= target - 1e-9)
        return int(self.iterations[reached[0]]) if reached.size else None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan.to_json(),
            "finite": self.finite,
            "seconds": round(self.seconds, 2),
            "iterations": [int(i) for i in self.iterations],
            "accuracy": [round(float(a), 6) for a in self.accuracy],
        }


def train(
    task: Task,
    data: Data,
    seed: int,
    optimizer: str,
    plan: Plan,
    *,
    epochs: int | None = None,
    verbose: int = 0,
) -> Run:
    """One run of ``plan``: a fresh model with ``seed``'s weights, ``seed``'s batch order."""
    epochs = epochs or task.epochs
    steps = task.steps_per_epoch(data)
    model = compile_model(task, seed, optimizer, plan.lr)
    callbacks = plan.callbacks(epochs * steps)
    probe = Probe(data.x_test, data.y_test, steps)
    keras.utils.set_random_seed(seed)  # the same batch order (and dropout) for every run
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=task.batch_size, epochs=epochs,
              callbacks=[*callbacks, probe], verbose=verbose)
    return Run(plan, np.asarray(probe.iterations), np.asarray(probe.accuracy), probe.finite,
               time.perf_counter() - start, callbacks[0] if callbacks else None)


def range_test(
    task: Task,
    data: Data,
    seed: int,
    optimizer: str,
    *,
    steps: int = RANGE_STEPS,
    verbose: int = 0,
) -> RangeTestResult:
    """The LR range test on ``task``'s network with ``seed``'s weights.

    An exponential sweep from :data:`RANGE_MIN_LR` to :data:`RANGE_MAX_LR` over
    ``steps`` iterations, stopped where the loss diverges; validation accuracy (for
    ``accuracy_rise``) on the first fifth of the training set, which the sweep does
    not train on. The test set is never read.
    """
    held_out = len(data.x_train) // 5
    model = compile_model(task, seed, optimizer, RANGE_MIN_LR)
    keras.utils.set_random_seed(seed)
    return lr_range_test(
        model, data.x_train[held_out:], data.y_train[held_out:],
        min_lr=RANGE_MIN_LR, max_lr=RANGE_MAX_LR, steps=steps, batch_size=task.batch_size,
        validation_data=(data.x_train[:held_out], data.y_train[:held_out]),
        validation_every=5, validation_batch_size=held_out, verbose=verbose,
    )


def workflow_plan(
    result: RangeTestResult,
    budget: int,
    *,
    rule: str | None = None,
    schedule: str = WORKFLOW_SCHEDULE,
) -> Plan:
    """The recommended workflow's one run, from a range test's suggestion.

    ``"one_cycle"``: 1cycle over ``budget`` iterations peaking at the rule's
    ``max_lr``; ``"triangular"``/``"triangular2"``: :data:`CYCLES` whole cycles
    between ``max_lr / DEFAULT_LOWER`` (or the rule's own lower bound) and ``max_lr``.

    Raises:
        ClrplugError: the rule found no range.
    """
    name = rule or DEFAULT_RULE
    if schedule == "one_cycle":
        peak = result.one_cycle(rule=rule, total_steps=budget).max_lr * WORKFLOW_MAX_LR_FACTOR
        return Plan(f"1cycle {name}", "one_cycle", peak)
    if schedule not in ("triangular", "triangular2"):
        raise InvalidArgumentError(
            f"schedule={schedule!r}: the workflow trains with 'one_cycle', 'triangular' or "
            "'triangular2'."
        )
    step_size = max(1, round(budget / (2 * CYCLES)))
    clr = result.cyclic_lr(step_size=step_size, mode=schedule, rule=rule, base_div=DEFAULT_LOWER)
    return Plan(f"{schedule} {name}", schedule, clr.max_lr, clr.base_lr, step_size)


# -- the comparison ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """The demo's outcome: the grid, the range test and the workflow's run."""

    task: Task
    seed: int
    optimizer: str
    budget: int
    fixed: tuple[Run, ...]
    range_test: RangeTestResult
    workflow: Run
    backend: str

    @property
    def range_test_steps(self) -> int:
        """Iterations the range test trained (it stops early where the loss diverges)."""
        return len(self.range_test.lr)

    @property
    def best_fixed(self) -> Run:
        """The fixed rate with the highest final test accuracy (ties: the earliest)."""
        return max(self.fixed, key=lambda run: (run.final_accuracy, -self.fixed.index(run)))

    @property
    def best_accuracy(self) -> float:
        """The grid's best final test accuracy."""
        return self.best_fixed.final_accuracy

    @property
    def target(self) -> float:
        """What "reaching the grid's best" means: within :data:`TOLERANCE` of it."""
        return self.best_accuracy - TOLERANCE

    @property
    def grid_iterations(self) -> int:
        """The grid's cost: every one of its runs, to know which is best."""
        return len(self.fixed) * self.budget

    @property
    def workflow_iterations(self) -> int | None:
        """The range test plus the workflow's iterations to the target (None: never)."""
        reached = self.workflow.iterations_to_reach(self.target)
        return None if reached is None else self.range_test_steps + reached

    # Names of the earlier demo, kept for scripts that used them.
    @property
    def clr(self) -> Run:
        return self.workflow

    @property
    def clr_callback(self) -> Any:
        return self.workflow.callback

    def table(self) -> str:
        """One row per run, and the verdict."""
        header = ("run", "learning rate", "final acc",
                  f"iters to {100 * self.target:.1f}%", "iters incl. search")
        rows = [header]
        for run in (self.workflow, *self.fixed):
            reached = run.iterations_to_reach(self.target)
            if run is self.workflow:
                total = "-" if reached is None else f"{self.range_test_steps} + {reached}"
                name = f"{run.name} (workflow)"
            elif run is self.best_fixed:
                total, name = f"{self.grid_iterations} (whole grid)", f"{run.name} (grid's best)"
            else:
                total, name = "", run.name
            rows.append((name, run.description, f"{100 * run.final_accuracy:.1f}%",
                         "not reached" if reached is None else str(reached), total))
        return "\n".join([columns(rows), "", self.verdict()])

    def verdict(self) -> str:
        """One line: did range test + one run match the grid, and at what cost."""
        gap = 100 * (self.workflow.final_accuracy - self.best_accuracy)
        best = (f"the grid's best {100 * self.best_accuracy:.1f}% "
                f"({self.best_fixed.name}, {len(self.fixed)} runs, {self.grid_iterations} iterations)")
        head = (f"Range test + {self.workflow.name}: {100 * self.workflow.final_accuracy:.1f}% "
                f"against {best}, {gap:+.1f} points")
        total = self.workflow_iterations
        if gap < -100 * TOLERANCE:
            return f"{head}: short of the grid by more than {100 * TOLERANCE:.1f} points."
        if total is None:
            return f"{head}: within {100 * TOLERANCE:.1f} points at the end only."
        return (f"{head}: matched, {100 * self.target:.1f}% reached after {total} iterations "
                f"including the range test, {self.grid_iterations / total:.1f}x fewer than the grid.")


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as left-aligned columns, the first row a header underlined."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rule_table(result: RangeTestResult) -> str:
    """Every registered rule's suggestion from ``result``, the default rule marked."""
    rows = [("rule", "base_lr", "max_lr", "what it found")]
    for name, suggestion in result.suggestions().items():
        label = f"{name} (default)" if name == DEFAULT_RULE else name
        if suggestion is None:
            rows.append((label, "-", "-", "no range found"))
        else:
            reason = suggestion.reason.removeprefix(f"{name}: ")
            rows.append((label, f"{suggestion.base_lr:.3g}", f"{suggestion.max_lr:.3g}", reason))
    return columns(rows)


def compare(
    epochs: int | None = None,
    seed: int = 0,
    fixed_lrs: Sequence[float] = DEFAULT_FIXED_LRS,
    *,
    optimizer: str = "sgd",
    task: Task = DIGITS,
    verbose: int = 0,
    log: Callable[[str], None] = print,
) -> Comparison:
    """The grid of fixed rates, then the range test and the workflow's one run.

    Args:
        epochs: training epochs of each run (default ``task.epochs``).
        seed: seeds the data split, the initial weights and the batch order.
        fixed_lrs: the grid.
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adam"``.
        task: the problem (default the digits).
        verbose: Keras' progress output for each run (0 silent, 1 bars, 2 a line per epoch).
        log: where the line per run goes.

    Returns:
        A :class:`Comparison`; ``comparison.table()`` is the demo's printed result.
    """
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise InvalidArgumentError(f"epochs must be an integer >= 1, got {epochs!r}.")
    if not fixed_lrs or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in fixed_lrs
    ):
        raise InvalidArgumentError(
            f"fixed_lrs must be a non-empty list of positive learning rates, got {fixed_lrs!r}."
        )
    epochs = epochs or task.epochs
    data = task.load(seed)
    budget = task.budget(data, epochs)
    fixed = []
    for index, lr in enumerate(fixed_lrs, 1):
        plan = Plan(f"fixed lr={lr:g}", "fixed", float(lr))
        run = train(task, data, seed, optimizer, plan, epochs=epochs, verbose=verbose)
        fixed.append(run)
        log(f"grid {index}/{len(fixed_lrs)}  {run.name:<16} final {100 * run.final_accuracy:5.1f}%"
            f"   {run.seconds:5.1f} s")
    start = time.perf_counter()
    result = range_test(task, data, seed, optimizer, verbose=verbose)
    plan = workflow_plan(result, budget)
    log(f"range test    {len(result.lr)} steps ({result.stop_reason}), rule {DEFAULT_RULE!r}: "
        f"{plan.describe()}   {time.perf_counter() - start:5.1f} s")
    workflow = train(task, data, seed, optimizer, plan, epochs=epochs, verbose=verbose)
    comparison = Comparison(task, seed, optimizer, budget, tuple(fixed), result, workflow,
                            keras.backend.backend())
    reached = workflow.iterations_to_reach(comparison.target)
    log(f"workflow      {workflow.name:<16} final {100 * workflow.final_accuracy:5.1f}%, "
        f"{100 * comparison.target:.1f}% "
        + ("not reached" if reached is None else f"reached at iteration {reached}")
        + f"   {workflow.seconds:5.1f} s")
    return comparison


# -- figures ----------------------------------------------------------------------------------


def plot_accuracy(comparison: Comparison, path: str | Path | None = None) -> Any:
    """Test accuracy against training iterations for every run, the target marked."""
    figure, (axis,) = new_figure(height=4.2)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
    for index, run in enumerate(comparison.fixed):
        best = run is comparison.best_fixed
        axis.plot(run.iterations, 100 * run.accuracy, color=colors[index % len(colors)],
                  linewidth=1.6 if best else 1.0, alpha=1.0 if best else 0.8,
                  label=run.name + (" (grid's best)" if best else ""))
    run = comparison.workflow
    axis.plot(run.iterations, 100 * run.accuracy, color="tab:red", linewidth=2.2,
              label=f"{run.name} after a {comparison.range_test_steps}-step range test")
    target = 100 * comparison.target
    axis.axhline(target, color="0.4", linestyle=":", linewidth=1.0,
                 label=f"target: grid's best - {100 * TOLERANCE:.1f} ({target:.1f}%)")
    reached = run.iterations_to_reach(comparison.target)
    if reached is not None:
        axis.plot([reached], [target], marker="o", color="black", markersize=5, linestyle="none")
        axis.annotate(f"{reached}", (reached, target), textcoords="offset points",
                      xytext=(4, -12), fontsize=8)
    axis.set_ylim(max(0.0, min(80.0, target - 15)), 100)
    axis.set_xlabel("training iterations")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(f"{comparison.task.description}, {comparison.optimizer}, seed "
                   f"{comparison.seed} ({comparison.backend} backend)", fontsize=10)
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
    callback = comparison.workflow.callback
    if callback is not None:
        plot_history(callback.history, ["loss"], path=paths[2])
    else:
        paths.pop()
    return paths


@contextlib.contextmanager
def one_cpu_thread() -> Iterator[None]:
    """Run the small networks of the demo and the benchmark on one CPU thread.

    PyTorch and TensorFlow spread each small matrix product over every core; on a
    small or busy machine synchronising the threads costs more than the product
    (PyTorch ran these steps 8 times slower on 2 shared cores). PyTorch's setting is
    put back afterwards; TensorFlow's can be set only before its runtime starts, and
    then stays. JAX needs nothing.
    """
    backend = keras.backend.backend()
    previous = None
    if backend == "torch":
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(1)
    elif backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already started its thread pools: keep them
            pass
    try:
        yield
    finally:
        if previous is not None:
            import torch

            torch.set_num_threads(previous)


def main(
    out: str | Path = "clrplug-demo",
    epochs: int | None = None,
    seed: int = 0,
    verbose: int = 0,
    fixed_lrs: Sequence[float] = DEFAULT_FIXED_LRS,
) -> int:
    """Run :func:`compare`, print its table and verdict, and write the figures to ``out``."""
    require_matplotlib()  # before the training, not after
    start = time.perf_counter()
    epochs = epochs or DIGITS.epochs
    print(f"{DIGITS.description}, SGD momentum {MOMENTUM}, {epochs} epochs per run, seed {seed}, "
          f"Keras backend {keras.backend.backend()}")
    with one_cpu_thread():
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
