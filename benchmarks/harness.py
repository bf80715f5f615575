"""The convergence benchmark's harness: tasks, optimizers, plans of a run, training, range test.

:class:`Task` (a data set, a network, a batch size and a budget), :class:`Plan` (how
one run sets its learning rate), :func:`train` (one run, test accuracy per epoch),
:func:`range_test` (one sweep, validation on a fifth of the training set, never the
test set) and :func:`workflow_plan` (the run the range test's suggestion makes).
``benchmarks/convergence.py`` runs them over its tasks, seeds, optimizers and rules.
It lives with the benchmarks, not in the package: ``clrplug demo``
(:mod:`clrplug.demo`) is a small application of its own.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug import digits
from clrplug.callback import CyclicLR
from clrplug.errors import InvalidArgumentError
from clrplug.one_cycle import OneCycleLR
from clrplug.range_test import DEFAULT_LOWER, DEFAULT_RULE, RangeTestResult, lr_range_test
from clrplug.range_test.defaults import DEFAULT_MAX_LR, DEFAULT_MIN_LR, DEFAULT_STEPS

__all__ = [
    "DIGITS", "FIXED_LRS", "OPTIMIZERS", "TOLERANCE", "WORKFLOW_MAX_LR_FACTOR",
    "WORKFLOW_SCHEDULE", "Data", "Plan", "Run", "Task", "compile_model", "load_digits_data",
    "one_cpu_thread", "range_test", "train", "workflow_plan",
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
class Data(digits.Data):
    """A training set, and a test set no run trains on or reads its schedule from."""

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
    """scikit-learn's digits scaled to [0, 1], split into stratified training and test sets:
    the demo's split (:func:`clrplug.digits.load_digits_data`)."""
    split = digits.load_digits_data(seed, test_fraction)
    return Data(split.x_train, split.y_train, split.x_test, split.y_test)


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
