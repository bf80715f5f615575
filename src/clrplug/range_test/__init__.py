"""The LR range test: sweep the learning rate once and watch the loss and accuracy.

Smith (arXiv:1506.01186, section 3.3) picks the cycle's bounds by training
briefly while the learning rate rises from a very small to a very large value,
then reading off where learning starts and where it stalls or breaks down.
:func:`lr_range_test` runs that sweep on any compiled Keras model, on anything
``fit`` reads, and hands back a :class:`RangeTestResult` with the per-step
record, the two suggested bounds, a plot and a ready :class:`~clrplug.CyclicLR`.

How it fits: the sweep is a small :class:`SweepSchedule` put on the optimizer
in place of its learning rate for the duration of the test (it is a tool, not a
cyclical policy, so it is not registered). Everything the test changes (weights,
optimizer and metric variables, the iteration counter, the learning rate, the
compiled train function) is saved before and put back afterwards, bit for bit,
including when the test ends in an exception or a ``KeyboardInterrupt``.

Keras 3 logs the running mean of the loss over the epoch at each batch, not the
batch's own loss. The recorder recovers each batch's value from consecutive
means, weighting by the number of samples as Keras' ``Mean`` tracker does (see
:class:`_Recorder`), so the curves are per batch as in Smith's and fastai's plots.
"""

from __future__ import annotations

import gc
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from clrplug.batch_logs import deaverage, loss_count, non_mean_names
from clrplug.callback import CyclicLR, inner_optimizer
from clrplug.errors import ClrplugError, InvalidArgumentError

__all__ = ["STEP_MODES", "RangeTestResult", "SweepSchedule", "lr_range_test", "sweep_rates"]

#: How the learning rate rises from ``min_lr`` to ``max_lr``.
STEP_MODES = ("exp", "linear")

# Callbacks that set the learning rate themselves would fight the sweep.
_LR_SETTERS = (
    CyclicLR,
    keras.callbacks.LearningRateScheduler,
    keras.callbacks.ReduceLROnPlateau,
)

# Keys of ``fit`` that lr_range_test sets itself.
_RESERVED_FIT_KWARGS = ("epochs", "validation_data", "x", "y", "batch_size")


# -- the sweep ---------------------------------------------------------------------------


def sweep_rates(
    step: Any, min_lr: float, max_lr: float, steps: int, step_mode: str = "exp"
) -> np.ndarray:
    """The range test's learning rate at sweep step ``step`` (0-based), in float64.

    ``exp``: ``min_lr * (max_lr / min_lr) ** (step / (steps - 1))``, a straight line
    in log-lr (fastai's and torch-lr-finder's sweep). ``linear``:
    ``min_lr + (max_lr - min_lr) * step / (steps - 1)`` (the seed's recipe: the
    triangular policy with ``step_size`` equal to the test's length minus one). Steps past
    the end hold ``max_lr``.
    """
    k = np.clip(np.asarray(step, dtype=np.float64), 0.0, steps - 1)
    fraction = k / (steps - 1)
    if step_mode == "exp":
        return min_lr * (max_lr / min_lr) ** fraction
    return min_lr + (max_lr - min_lr) * fraction


class SweepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The range test's rising learning rate, evaluated inside the compiled step.

    At optimizer iteration ``t`` the rate is :func:`sweep_rates` at
    ``t - start``, so the sweep begins at the model's current iteration whatever
    it is. The step count is kept integral until the fraction is formed, so a
    large ``start`` loses no precision.

    Args:
        min_lr: the first rate (``> 0`` for ``"exp"``).
        max_lr: the last rate, reached at step ``steps - 1`` and held after it.
        steps: optimizer steps the sweep lasts (``>= 2``).
        step_mode: ``"exp"`` or ``"linear"``.
        start: the optimizer iteration of the sweep's first step.
    """

    def __init__(
        self, min_lr: float, max_lr: float, steps: int, step_mode: str = "exp", start: int = 0
    ) -> None:
        super().__init__()
        self.min_lr, self.max_lr = float(min_lr), float(max_lr)
        self.steps, self.step_mode, self.start = int(steps), step_mode, int(start)
        #: Times the optimizer asked for the rate (at trace time, or every step eagerly).
        self.calls = 0

    def rates_at(self, iterations: Any) -> np.ndarray:
        """The sweep's rate at absolute optimizer iterations (float64; applied in float32)."""
        k = np.asarray(iterations, dtype=np.float64) - self.start
        return sweep_rates(k, self.min_lr, self.max_lr, self.steps, self.step_mode)

    def __call__(self, step: Any) -> Any:
        self.calls += 1
        step = ops.convert_to_tensor(step)
        if keras.backend.is_int_dtype(step.dtype):
            k = ops.clip(step - self.start, 0, self.steps - 1)
        else:
            k = ops.clip(ops.floor(step) - float(self.start), 0.0, float(self.steps - 1))
        fraction = ops.cast(k, "float32") / float(self.steps - 1)
        if self.step_mode == "exp":
            lr = self.min_lr * ops.exp(fraction * math.log(self.max_lr / self.min_lr))
        else:
            lr = self.min_lr + (self.max_lr - self.min_lr) * fraction
        return ops.cast(lr, "float32")

    def get_config(self) -> dict[str, Any]:
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "steps": self.steps,
            "step_mode": self.step_mode,
            "start": self.start,
        }


# -- the result --------------------------------------------------------------------------


def _ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Bias-corrected exponential moving average (fastai's smoothed loss); NaN passes through."""
    out = np.full(len(values), np.nan)
    average, seen = 0.0, 0
    for i, value in enumerate(values):
        if not np.isfinite(value):
            out[i] = value
            continue
        seen += 1
        average = smoothing * average + (1.0 - smoothing) * value
        out[i] = average / (1.0 - smoothing**seen)
    return out


def _centered_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average centred on each point (no lag, unlike an EMA); edges repeat."""
    width = max(1, int(width)) | 1
    half = width // 2
    padded = np.concatenate([np.full(half, values[0]), values, np.full(half, values[-1])])
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def _accuracy_key(keys: Sequence[str]) -> str | None:
    for prefix in ("val_", ""):
        for key in keys:
            rest = key[len(prefix):] if key.startswith(prefix) else None
            if rest is not None and not rest.startswith("val_") and "acc" in rest:
                return key
    return None


@dataclass(frozen=True, eq=False)
class RangeTestResult:
    """What :func:`lr_range_test` recorded, and the bounds it suggests.

    Each array has one entry per optimizer step of the test (one per
    ``steps_per_execution`` group when that is above 1).

    Attributes:
        lr: the learning rate of the step (float64 from :func:`sweep_rates`; the optimizer
            applies it rounded to float32).
        iterations: the optimizer's iteration count after the step.
        loss: the step's own training loss (de-averaged from Keras' running mean).
        smoothed_loss: ``loss`` through fastai's bias-corrected moving average with
            factor ``smoothing``: what the stop rule watched.
        metrics: every other logged value per step, de-averaged like the loss
            (``accuracy``, ...), and ``val_*`` results where validation ran (NaN
            between evaluations).
        min_lr: the sweep's first rate.
        max_lr: the sweep's last rate.
        steps: optimizer steps the sweep was planned to last.
        step_mode: ``"exp"`` or ``"linear"``.
        steps_per_epoch: optimizer steps in one epoch of the data, when known.
        stop_reason: ``"completed"`` (the whole sweep ran), ``"diverged"`` (the
            smoothed loss exceeded ``stop_factor`` times its best) or ``"nan"``.
        stop_factor: the stop rule's multiple of the best smoothed loss (None: off).
        smoothing: the moving average's factor.

    Suggestions (:attr:`suggested_base_lr`, :attr:`suggested_max_lr`, :meth:`suggest`)
    follow the seed: ``base_lr`` where accuracy starts to rise (or the loss to
    fall), ``max_lr`` at the elbow where it stops rising, before it stalls, wobbles
    or falls. Concretely, on the accuracy curve (validation accuracy if it was
    measured, else training accuracy, else the negated loss), smoothed with a
    centred moving average over a tenth of the points and cut before divergence:

    - the *rise* is from the curve's starting level to its peak;
    - ``base_lr`` is the first rate at which 10 % of the rise is reached: learning
      has clearly begun;
    - ``max_lr`` is the first rate at which 90 % of the rise is reached: after it
      the curve flattens (the elbow) or turns down.

    Why not fastai's rules: they pick *one* constant rate from the loss curve,
    whereas a cycle needs the *band* in which learning happens. ``minimum``
    (``lr`` at the lowest loss, divided by 10) and ``steep`` (steepest descent of
    the loss) each land inside the band; ``valley`` (two thirds down the
    longest descending stretch) sits near its top, close to our ``max_lr``. The
    thresholds follow the seed's reading of Smith's plot (0.001 to 0.006 on
    CIFAR-10: where accuracy starts to rise, and where it stops rising), and
    measuring them as fractions of the rise makes them independent of the
    metric's scale and of the sweep's length. They are parameters of
    :meth:`suggest`.
    """

    lr: np.ndarray
    iterations: np.ndarray
    loss: np.ndarray
    smoothed_loss: np.ndarray
    metrics: Mapping[str, np.ndarray]
    min_lr: float
    max_lr: float
    steps: int
    step_mode: str
    steps_per_epoch: int | None
    stop_reason: str
    stop_factor: float | None
    smoothing: float
    _suggestion: tuple[float | None, float | None] = field(
        default=(None, None), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_suggestion", self.suggest())

    def __repr__(self) -> str:
        def fmt(value: float | None) -> str:
            return "None" if value is None else f"{value:.3g}"

        return (
            f"RangeTestResult(steps={len(self.lr)}/{self.steps}, step_mode={self.step_mode!r}, "
            f"lr={self.min_lr:.3g}..{self.max_lr:.3g}, stop_reason={self.stop_reason!r}, "
            f"suggested_base_lr={fmt(self.suggested_base_lr)}, "
            f"suggested_max_lr={fmt(self.suggested_max_lr)})"
        )

    @property
    def history(self) -> dict[str, np.ndarray]:
        """``lr``, ``iterations``, ``loss`` and the metrics: the shape of ``CyclicLR.history``."""
        out = {"lr": self.lr.copy(), "iterations": self.iterations.copy(), "loss": self.loss.copy()}
        out.update({key: value.copy() for key, value in self.metrics.items()})
        return out

    @property
    def valid_steps(self) -> int:
        """Steps before the loss diverged or became NaN (all of them if it did not)."""
        if self.stop_reason == "completed":
            return len(self.lr)
        return max(0, len(self.lr) - 1)

    @property
    def suggested_base_lr(self) -> float | None:
        """Where accuracy starts to rise (see the class docstring); None if it never did."""
        return self._suggestion[0]

    @property
    def suggested_max_lr(self) -> float | None:
        """The elbow, where accuracy stops rising; None if it never rose."""
        return self._suggestion[1]

    def suggestion_key(self) -> str:
        """The column the suggestions are read from: an accuracy if logged, else ``loss``."""
        return _accuracy_key(list(self.metrics)) or "loss"

    def suggest(
        self, key: str | None = None, *, rise_start: float = 0.1, rise_end: float = 0.9
    ) -> tuple[float | None, float | None]:
        """``(base_lr, max_lr)`` read from column ``key`` (default :meth:`suggestion_key`).

        Args:
            key: ``"loss"`` (read as falling) or a metric in :attr:`metrics` (read as
                rising, so pass an accuracy rather than an error metric).
            rise_start: fraction of the rise at which ``base_lr`` is read.
            rise_end: fraction of the rise at which ``max_lr`` is read (the elbow).

        Returns:
            The two rates, or ``(None, None)`` when the curve shows no rise above its
            noise (widen the range or run more steps).
        """
        key = self.suggestion_key() if key is None else key
        if not (0.0 <= rise_start < rise_end <= 1.0):
            raise InvalidArgumentError(
                f"rise_start ({rise_start!r}) and rise_end ({rise_end!r}) must satisfy "
                "0 <= rise_start < rise_end <= 1."
            )
        lrs, raw, smooth = self._curve(key)
        if len(smooth) < 5:
            return (None, None)
        sign = -1.0 if key == "loss" else 1.0
        score, raw_score = sign * smooth, sign * raw
        width = max(3, len(score) // 10)
        noise = float(np.std(raw_score - score)) / math.sqrt(width)
        peak = int(np.argmax(score))
        rise = float(score[peak] - score[0])
        if rise <= max(3.0 * noise, 1e-12):
            return (None, None)
        rising = score[: peak + 1] - score[0]
        first = int(np.argmax(rising >= rise_start * rise))
        elbow = int(np.argmax(rising >= rise_end * rise))
        return (float(lrs[first]), float(lrs[max(elbow, first)]))

    def smoothed(self, key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(lr, values)``: the curve the suggestions are read from.

        Column ``key`` (default :meth:`suggestion_key`) up to divergence, NaN rows
        dropped, through a moving average centred on each point over a tenth of
        the points. Unlike :attr:`smoothed_loss` (a causal average, which the
        stop rule needs) it has no lag, so its features sit at the right rate.
        """
        lrs, _, smooth = self._curve(self.suggestion_key() if key is None else key)
        return lrs, smooth

    def _curve(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if key != "loss" and key not in self.metrics:
            raise InvalidArgumentError(
                f"key={key!r} was not recorded; choose one of {['loss', *self.metrics]}."
            )
        values = self.loss if key == "loss" else self.metrics[key]
        values = np.asarray(values[: self.valid_steps], dtype=np.float64)
        lrs = np.asarray(self.lr[: self.valid_steps], dtype=np.float64)
        keep = np.isfinite(values)
        values, lrs = values[keep], lrs[keep]
        if not len(values):
            return lrs, values, values
        return lrs, values, _centered_mean(values, max(3, len(values) // 10))

    # -- tools built on the result ---------------------------------------------------

    def plot(self, path: Any = None, ax: Any = None, **kwargs: Any) -> Any:
        """Loss (and accuracy) against the learning rate, both suggestions marked.

        See :func:`clrplug.plotting.plot_range_test`; needs ``clrplug[plot]``.
        Returns the matplotlib ``Figure``; writes it to ``path`` if given.
        """
        # Imported here: the range test works without matplotlib.
        from clrplug.plotting import plot_range_test

        return plot_range_test(self, path=path, ax=ax, **kwargs)

    def cyclic_lr(
        self, step_size: float | None = None, mode: str = "triangular", **kwargs: Any
    ) -> CyclicLR:
        """A :class:`~clrplug.CyclicLR` cycling between the two suggested bounds.

        Args:
            step_size: training iterations per half cycle. Default: 4 epochs' worth
                (Smith suggests 2 to 8 times the iterations in an epoch); required
                when the epoch length is unknown.
            mode: the policy, e.g. ``"triangular2"``.
            **kwargs: any other :class:`~clrplug.CyclicLR` argument (``gamma``, ...).

        Raises:
            ClrplugError: the test found no range (the suggestions are None).
        """
        base, top = self.suggested_base_lr, self.suggested_max_lr
        if base is None or top is None:
            raise ClrplugError(
                "the range test found no learning-rate range: the "
                f"{self.suggestion_key()} curve never rose above its noise between "
                f"{self.min_lr:g} and {self.max_lr:g}. Widen min_lr..max_lr or run more "
                "steps, or choose base_lr and max_lr by hand from result.plot()."
            )
        if step_size is None:
            if not self.steps_per_epoch:
                raise InvalidArgumentError(
                    "step_size=None: the epoch length of the range test's data is unknown, "
                    "so give step_size (training iterations per half cycle; Smith suggests "
                    "2-8 times the iterations in an epoch)."
                )
            step_size = 4 * self.steps_per_epoch
        return CyclicLR(base_lr=base, max_lr=top, step_size=step_size, mode=mode, **kwargs)


# -- recording ---------------------------------------------------------------------------


class _Recorder(keras.callbacks.Callback):
    """Per-step record, de-averaging, stop rule and validation for the range test.

    De-averaging: Keras updates its ``Mean`` loss tracker with each batch's loss
    weighted by the batch's number of samples, and logs ``total / count`` after each
    batch; the tracker is reset when an epoch starts. So with ``C_i`` samples seen
    after batch ``i`` and ``m_i`` the logged mean, batch ``i``'s loss is
    ``(C_i m_i - C_{i-1} m_{i-1}) / (C_i - C_{i-1})``; equal batches cancel their
    size, giving ``(i+1) m_i - i m_{i-1}``. Only an epoch's last batch may be
    smaller: its true ``C`` is read from the tracker's ``count`` when the epoch
    ends (and the full batch size once, after the epoch's first batch), so that
    batch is exact too. Metrics that are sample means are de-averaged the same way.
    The model is touched (on JAX, a state sync) only at those two points per
    epoch, and when validating.
    """

    def __init__(
        self,
        *,
        sweep: SweepSchedule,
        optimizer: Any,
        plan: int,
        stop_factor: float | None,
        smoothing: float,
        validation: tuple[tuple[Any, ...], dict[str, Any]] | None,
        validation_every: int,
    ) -> None:
        super().__init__()
        self._sweep = sweep
        self._optimizer = optimizer
        self._plan = plan
        self._stop_factor = stop_factor
        self._smoothing = smoothing
        self._validation = validation
        self._validation_every = validation_every
        self.iterations: list[int] = []
        self.means: list[dict[str, float]] = []  # as logged (running means)
        self.values: list[dict[str, float]] = []  # per batch
        self.validation: dict[int, dict[str, float]] = {}
        self._batch_index: list[int] = []
        self._done = 0
        self._epoch_done = 0
        self._epoch_row = 0
        self._batch_samples: float | None = None
        self._pending = False
        self._average, self._seen, self._best = 0.0, 0, math.inf
        self._non_mean: set[str] = set()
        self.stop_reason = "completed"
        #: True from a batch's start until its end is recorded: an exception meanwhile
        #: came out of the compiled step (or the data), whose frames it keeps.
        self.stepping = False

    # -- bookkeeping ---------------------------------------------------------------

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch_done = self._done
        self._epoch_row = len(self.iterations)
        self._batch_samples = None

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.stepping = True

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.stepping = False
        means: dict[str, float] = {}
        for key, value in (logs or {}).items():
            try:
                means[key] = float(value)
            except (TypeError, ValueError):
                continue
        row = len(self.iterations)
        if row == 0:
            if self._sweep.calls == 0:
                raise ClrplugError(
                    "the range test's learning rate never reached the compiled train step: a "
                    "cached compilation of the model's train function was reused. Drop any "
                    "reference you keep to model.train_function and run the test again."
                )
            # Compile metrics are built by the first step (on TensorFlow, when it is traced).
            self._non_mean = non_mean_names(self._model)
        if row == self._epoch_row:
            # Full batch size, for the epoch's possibly smaller last batch (JAX: one sync).
            count = loss_count(self.model)
            self._batch_samples = None if count is None else count / (batch + 1)
        self._done = self._epoch_done + batch + 1
        self.iterations.append(self._sweep.start + self._done)
        self.means.append(means)
        self._batch_index.append(batch)
        self.values.append(self._deaverage(row, None))
        last_of_epoch = (self.params or {}).get("steps")
        if last_of_epoch is not None and batch >= last_of_epoch - 1:
            self._pending = True  # exact once the epoch's sample count is known
        else:
            self._observe(row)
        if self._validation is not None and self.stop_reason == "completed" and (
            (row + 1) % self._validation_every == 0 or self._done >= self._plan
        ):
            self.validation[row] = self._validate()
        if self._done >= self._plan:
            self._model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        row = len(self.iterations) - 1
        if row < self._epoch_row:
            return
        # With steps_per_execution > 1 Keras reports a partial last execution as full;
        # the optimizer's counter (synced by now on JAX) says how many steps really ran.
        done = int(ops.convert_to_numpy(self._optimizer._iterations)) - self._sweep.start
        if 0 < done != self._done:
            self._done = done
            self.iterations[row] = self._sweep.start + done
        if self._batch_samples is not None:
            count = loss_count(self.model)
            if count is not None:
                self.values[row] = self._deaverage(row, count)
        if self._pending:
            self._pending = False
            self._observe(row)

    def _deaverage(self, row: int, count: float | None) -> dict[str, float]:
        """Row ``row``'s own values from the running means (``count``: samples so far)."""
        unit = self._batch_samples or 1.0
        batches = self._batch_index[row] + 1
        seen = count if count is not None else batches * unit
        if row > self._epoch_row:
            before, previous = (self._batch_index[row - 1] + 1) * unit, self.means[row - 1]
        else:
            before, previous = 0.0, {}
        out = {}
        for key, mean in self.means[row].items():
            if key in self._non_mean or seen <= before:
                out[key] = mean
            else:
                pair = deaverage(np.array([previous.get(key, 0.0), mean]), np.array([before, seen]))
                out[key] = float(pair[-1])
        return out

    def _observe(self, row: int) -> None:
        """fastai's stop rule on the bias-corrected moving average of the loss."""
        if self.stop_reason != "completed" or "loss" not in self.values[row]:
            return
        loss = self.values[row]["loss"]
        if not math.isfinite(loss):
            self._stop("nan")
            return
        self._seen += 1
        self._average = self._smoothing * self._average + (1.0 - self._smoothing) * loss
        smoothed = self._average / (1.0 - self._smoothing**self._seen)
        # A ratio to the best only means something for a positive loss.
        if self._stop_factor is not None and self._seen > 1 and 0 < self._best < math.inf and (
            smoothed > self._stop_factor * self._best
        ):
            self._stop("diverged")
        self._best = min(self._best, smoothed)

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._model.stop_training = True

    def _validate(self) -> dict[str, float]:
        """Evaluate on the validation data without disturbing the epoch's running means."""
        model = self.model  # on JAX this syncs the training state into the variables
        saved = [np.array(ops.convert_to_numpy(v)) for v in model.metrics_variables]
        training = getattr(model, "training", None)
        assert self._validation is not None
        args, kwargs = self._validation
        try:
            results = model.evaluate(*args, verbose=0, return_dict=True, **kwargs)
        finally:
            for variable, value in zip(model.metrics_variables, saved, strict=True):
                variable.assign(value)
            if keras.backend.backend() == "torch" and training is not None:
                model.train(training)  # evaluate() leaves a torch module in eval mode
        return {f"val_{key}": float(value) for key, value in results.items()}

    # -- output ---------------------------------------------------------------------

    def result(self, **settings: Any) -> RangeTestResult:
        rows = len(self.iterations)
        iterations = np.asarray(self.iterations, dtype=np.int64)
        keys: list[str] = []
        for values in [*self.values, *self.validation.values()]:
            keys.extend(key for key in values if key not in keys)
        columns = {key: np.full(rows, np.nan) for key in keys}
        for row, values in enumerate(self.values):
            for key, value in values.items():
                columns[key][row] = value
        for row, values in self.validation.items():
            for key, value in values.items():
                columns[key][row] = value
        loss = columns.pop("loss", np.full(rows, np.nan))
        return RangeTestResult(
            lr=self._sweep.rates_at(iterations - 1),
            iterations=iterations,
            loss=loss,
            smoothed_loss=_ema(loss, self._smoothing),
            metrics=columns,
            stop_reason=self.stop_reason,
            **settings,
        )


# -- saving and restoring the model -------------------------------------------------------

_MISSING = object()


class _Snapshot:
    """Everything a ``fit`` changes on a model, saved as numpy copies and put back exactly.

    The compiled train function is a cache, not state: on TensorFlow and PyTorch the
    original is put back. On JAX it is dropped instead (the next ``fit`` compiles
    again): ``jax.jit`` shares its trace cache between jitted copies of the same
    bound ``train_step`` while any of them is alive, so keeping the old function
    would make the sweep reuse the old learning rate, and keeping the sweep's would
    make later training reuse the sweep.
    """

    _ATTRIBUTES = ("train_function", "stop_training", "history", "_jax_state", "_jax_state_synced")

    def __init__(self, model: Any) -> None:
        self.model = model
        self.optimizer = inner_optimizer(model.optimizer)
        self.learning_rate = self.optimizer._learning_rate
        variables: dict[int, Any] = {}
        for variable in [*model.variables, *model.optimizer.variables, *model.metrics_variables]:
            variables.setdefault(id(variable), variable)
        self.values = [
            (variable, np.array(ops.convert_to_numpy(variable.value), copy=True))
            for variable in variables.values()
        ]
        self.attributes = {name: model.__dict__.get(name, _MISSING) for name in self._ATTRIBUTES}
        self.training = getattr(model, "training", None)
        self.jax = keras.backend.backend() == "jax"
        if self.jax:
            self.attributes["train_function"] = None
            model.train_function = None
            gc.collect()

    def restore(self, failed: bool = False) -> None:
        """Put everything back; ``failed``: an exception came out of a training step."""
        model = self.model
        self.optimizer._learning_rate = self.learning_rate
        for name, value in self.attributes.items():
            if value is _MISSING:
                model.__dict__.pop(name, None)
            else:
                object.__setattr__(model, name, value)
        # Metric variables created by the test (compile metrics build lazily) go back
        # to their empty state; every variable that existed gets its saved value.
        for metric in getattr(model, "metrics", []):
            metric.reset_state()
        for variable, value in self.values:
            variable.assign(value)
        if keras.backend.backend() == "torch" and self.training is not None:
            model.train(self.training)
        if self.jax:
            # Let the sweep's compiled step go, so no later jit of this model reuses its
            # trace. After an exception from inside a step the traceback's frames still
            # hold it: then clear JAX's caches (everything recompiles once), rather than
            # risk a later fit() training silently at the sweep's rates.
            gc.collect()
            if failed:
                import jax

                jax.clear_caches()


# -- argument checks ------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.number))


def _check_positive_int(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidArgumentError(f"{name} must be None or an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_arguments(
    min_lr: Any, max_lr: Any, step_mode: Any, stop_factor: Any, smoothing: Any
) -> tuple[float, float, float | None, float]:
    if step_mode not in STEP_MODES:
        raise InvalidArgumentError(
            f"step_mode must be one of {list(STEP_MODES)}, got {step_mode!r}."
        )
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        if not _is_number(value) or not math.isfinite(float(value)):
            raise InvalidArgumentError(f"{name} must be a finite number, got {value!r}.")
    low, high = float(min_lr), float(max_lr)
    if step_mode == "exp" and low <= 0:
        raise InvalidArgumentError(
            f"min_lr must be > 0 for step_mode='exp' (the sweep is geometric), got {min_lr!r}; "
            "use step_mode='linear' to start at 0."
        )
    if low < 0:
        raise InvalidArgumentError(f"min_lr must be >= 0, got {min_lr!r}.")
    if high <= low:
        raise InvalidArgumentError(
            f"max_lr ({max_lr!r}) must be > min_lr ({min_lr!r}): the test sweeps upwards."
        )
    if stop_factor is not None and (not _is_number(stop_factor) or not float(stop_factor) > 1):
        raise InvalidArgumentError(
            f"stop_factor must be a number > 1 (or None or math.inf to never stop early), "
            f"got {stop_factor!r}."
        )
    if not _is_number(smoothing) or not 0.0 <= float(smoothing) < 1.0:
        raise InvalidArgumentError(
            f"smoothing must be a number in [0, 1) (0: no smoothing), got {smoothing!r}."
        )
    factor = None if stop_factor is None or math.isinf(stop_factor) else float(stop_factor)
    return low, high, factor, float(smoothing)


def _check_model(model: Any) -> None:
    if not isinstance(model, keras.Model):
        raise InvalidArgumentError(
            f"model must be a keras.Model, got {type(model).__name__} {model!r}."
        )
    if getattr(model, "optimizer", None) is None:
        raise InvalidArgumentError(
            "model must be compiled: call model.compile(optimizer=..., loss=..., "
            "metrics=['accuracy']) before the range test."
        )
    if not model.built or not model.variables:
        raise InvalidArgumentError(
            f"model {model.name!r} is not built, so its weights cannot be saved and restored: "
            "give it a keras.Input, or call model.build(input_shape) first."
        )
    inner = inner_optimizer(model.optimizer)
    if not hasattr(inner, "_learning_rate") or not hasattr(inner, "_iterations"):
        raise InvalidArgumentError(
            f"model.optimizer ({type(inner).__name__}) has no learning rate the test can sweep; "
            "use a keras.optimizers.Optimizer."
        )


def _module(value: Any) -> str:
    return type(value).__module__ or ""


def _is_iterator(value: Any) -> bool:
    return inspect.isgenerator(value) or (
        hasattr(value, "__next__") and not hasattr(value, "__getitem__")
    )


def _steps_per_epoch(x: Any, batch_size: int | None, fit_kwargs: Mapping[str, Any]) -> int | None:
    """Optimizer steps in one epoch of ``x`` as ``fit`` will batch it, or None if unknown."""
    if fit_kwargs.get("steps_per_epoch") is not None:
        return int(fit_kwargs["steps_per_epoch"])
    if _module(x).startswith("tensorflow") and hasattr(x, "cardinality"):
        cardinality = int(x.cardinality())
        return cardinality if cardinality > 0 else None
    if isinstance(x, keras.utils.PyDataset):
        try:
            batches = x.num_batches
        except NotImplementedError:
            return None
        return None if batches is None else int(batches)
    if _module(x).startswith("torch.utils.data"):
        try:
            return len(x)
        except TypeError:
            return None
    if _is_iterator(x):
        return None
    leaves = [leaf for leaf in keras.tree.flatten(x) if leaf is not None]
    lengths = [leaf.shape[0] for leaf in leaves if getattr(leaf, "shape", None)]
    if not lengths:
        return None
    samples = int(lengths[0])
    split = fit_kwargs.get("validation_split") or 0.0
    if split:
        samples = math.floor(samples * (1.0 - split))
    return max(1, math.ceil(samples / (batch_size or 32)))


def _validation_args(
    validation_data: Any, fit_kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    batch = fit_kwargs.pop("validation_batch_size", None)
    steps = fit_kwargs.pop("validation_steps", None)
    if validation_data is None:
        return None
    if _is_iterator(validation_data):
        raise InvalidArgumentError(
            f"validation_data is evaluated many times during the test, so it cannot be a "
            f"one-shot iterator ({type(validation_data).__name__}); give arrays (x_val, y_val), "
            "a tf.data.Dataset or a keras.utils.PyDataset."
        )
    kwargs: dict[str, Any] = {"batch_size": batch, "steps": steps}
    if isinstance(validation_data, (tuple, list)):
        if len(validation_data) not in (2, 3):
            raise InvalidArgumentError(
                f"validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight), "
                f"got a {type(validation_data).__name__} of length {len(validation_data)}."
            )
        if len(validation_data) == 3:
            kwargs["sample_weight"] = validation_data[2]
        return tuple(validation_data[:2]), kwargs
    return (validation_data,), kwargs


def _check_callbacks(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = callbacks.callbacks
    callbacks = list(callbacks)
    for callback in callbacks:
        if isinstance(callback, _LR_SETTERS):
            raise InvalidArgumentError(
                f"callbacks: {type(callback).__name__} sets the learning rate, which the range "
                "test sweeps itself; leave it out of the test."
            )
    return callbacks


# -- the entry point ------------------------------------------------------------------------


def lr_range_test(
    model: Any,
    x: Any = None,
    y: Any = None,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    step_mode: str = "exp",
    validation_data: Any = None,
    stop_factor: float | None = 4.0,
    smoothing: float = 0.98,
    validation_every: int | None = None,
    **fit_kwargs: Any,
) -> RangeTestResult:
    """Run the LR range test on a compiled model and restore the model afterwards.

    The learning rate rises from ``min_lr`` to ``max_lr`` over ``steps`` optimizer
    steps while the model trains on ``x``/``y`` as ``model.fit`` would. Each step's
    rate, loss and metrics are recorded; the test stops early once the smoothed loss
    exceeds ``stop_factor`` times its best or becomes NaN (fastai's rule). The
    model's weights, optimizer variables (iteration count included), metric state,
    learning rate and train function are then restored exactly, also if the test
    raises or is interrupted.

    Args:
        model: a compiled, built ``keras.Model``.
        x: training data, anything ``fit`` accepts: arrays, a ``tf.data.Dataset``,
            a ``keras.utils.PyDataset``, a generator.
        y: targets, for array ``x`` (None for datasets and generators).
        min_lr: the first learning rate (``> 0`` for ``"exp"``, ``>= 0`` for ``"linear"``).
        max_lr: the last learning rate (``> min_lr``).
        steps: optimizer steps the sweep lasts (``>= 2``); the data is repeated for as
            many epochs as needed.
        epochs: alternatively, the sweep lasts this many epochs of the data (its
            length must be known, or give ``steps_per_epoch``). With neither, one
            epoch; for a generator of unknown length one of them is required.
        batch_size: as in ``fit`` (arrays only).
        step_mode: ``"exp"``: geometric, evenly spaced in log-lr, as fastai and
            torch-lr-finder sweep; ``"linear"``: the seed's recipe (the triangular
            policy over the range, with ``step_size`` the test's length).
        validation_data: ``(x_val, y_val)``, a dataset or a PyDataset, evaluated every
            ``validation_every`` steps into ``val_*`` columns (the running means of
            the training epoch are left untouched). The suggestions then read the
            validation accuracy, which is less noisy than one batch's.
        stop_factor: stop when the smoothed loss exceeds this multiple of its best
            (while that best is positive); None or ``math.inf`` never stops early. A
            NaN or infinite loss always stops the test.
        smoothing: factor of the bias-corrected exponential moving average of the
            loss the stop rule watches (fastai's 0.98); 0 watches the raw loss.
        validation_every: steps between evaluations of ``validation_data``; default
            about 50 evaluations over the sweep.
        **fit_kwargs: passed to ``fit``: ``verbose`` (1 shows Keras' progress bar),
            ``callbacks``, ``shuffle``, ``sample_weight``, ``class_weight``,
            ``steps_per_epoch``, ``validation_steps``, ``validation_batch_size``, ...

    Returns:
        A :class:`RangeTestResult`.

    Raises:
        InvalidArgumentError: a bad argument; raised before the model is touched.

    Example:

    ```python
    import numpy as np, keras
    import clrplug

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]

    result = clrplug.lr_range_test(model, x, y, min_lr=1e-4, max_lr=10.0, steps=40,
                                   batch_size=32, verbose=0)
    assert len(result.lr) <= 40 and result.lr[0] == 1e-4
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))
    ```
    """
    low, high, factor, beta = _check_arguments(min_lr, max_lr, step_mode, stop_factor, smoothing)
    steps = _check_positive_int("steps", steps, 2)
    epochs = _check_positive_int("epochs", epochs, 1)
    every = _check_positive_int("validation_every", validation_every, 1)
    if steps is not None and epochs is not None:
        raise InvalidArgumentError(
            f"give steps ({steps!r}) or epochs ({epochs!r}), not both: the sweep lasts "
            "either a number of optimizer steps or a number of epochs."
        )
    batch_size = _check_positive_int("batch_size", batch_size, 1)
    reserved = sorted(set(fit_kwargs) & set(_RESERVED_FIT_KWARGS))
    if reserved:
        raise InvalidArgumentError(
            f"{reserved[0]} is set by lr_range_test itself; use its own arguments "
            "(steps/epochs, validation_data, batch_size)."
        )
    _check_model(model)
    if x is None:
        raise InvalidArgumentError("x is None: the range test needs training data, as fit does.")
    callbacks = _check_callbacks(fit_kwargs.pop("callbacks", None))
    validation = _validation_args(validation_data, fit_kwargs)
    per_epoch = _steps_per_epoch(x, batch_size, fit_kwargs)
    initial_epoch = int(fit_kwargs.get("initial_epoch", 0) or 0)
    if steps is not None:
        plan = steps
        if per_epoch is None:
            fit_kwargs["steps_per_epoch"] = steps
            fit_epochs = 1
        else:
            fit_epochs = math.ceil(steps / per_epoch)
    elif per_epoch is None:
        what = type(x).__name__
        raise InvalidArgumentError(
            f"steps={steps!r} and epochs={epochs!r}, and the number of steps in an epoch of x "
            f"(a {what}) is unknown: pass steps=N (optimizer steps to sweep over), or "
            "epochs=N together with steps_per_epoch=M."
        )
    else:
        fit_epochs = epochs or 1
        plan = fit_epochs * per_epoch
        if plan < 2:
            raise InvalidArgumentError(
                f"epochs={fit_epochs!r} of this data is {plan} optimizer step(s); the sweep "
                "needs at least 2: pass steps=N or a smaller batch_size."
            )
    every = every or max(1, plan // 50)
    if batch_size is not None:
        fit_kwargs["batch_size"] = batch_size

    # Nothing has been changed so far. Build the optimizer's slots first (fit would),
    # so the snapshot holds every variable the test touches.
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    snapshot = _Snapshot(model)
    recorder: _Recorder | None = None
    done = False
    try:
        start = int(ops.convert_to_numpy(snapshot.optimizer._iterations))
        sweep = SweepSchedule(low, high, plan, step_mode, start=start)
        snapshot.optimizer._learning_rate = sweep
        model.make_train_function(force=True)
        recorder = _Recorder(
            sweep=sweep,
            optimizer=snapshot.optimizer,
            plan=plan,
            stop_factor=factor,
            smoothing=beta,
            validation=validation,
            validation_every=every,
        )
        model.fit(
            # The recorder first: it has recorded a step before any other callback can raise.
            x, y, epochs=fit_epochs + initial_epoch, callbacks=[recorder, *callbacks], **fit_kwargs
        )
        done = True
        return recorder.result(
            min_lr=low,
            max_lr=high,
            steps=plan,
            step_mode=step_mode,
            steps_per_epoch=per_epoch,
            stop_factor=factor,
            smoothing=beta,
        )
    finally:
        snapshot.restore(failed=not done and recorder is not None and recorder.stepping)
