"""Observe the learning rate an optimizer actually applied, independently of clrplug.

Two probes live here; neither imports clrplug.

**The bias probe** (``probe_model``, ``BiasRecorder``, ``fit_steps``): a one-unit Dense
layer on zero inputs with loss ``mean(y_pred)`` has gradient exactly 1 on its bias (and 0
on its kernel). With plain SGD the bias therefore falls by exactly the applied rate at
each step; for other optimizers the rate is recovered from the update by each optimizer's
own textbook formula. ``BiasRecorder`` reads ``self.model`` after every batch. On JAX
that forces Keras to write the whole training state back into the model's variables
(``jax_state_sync``) at every step: a mode users never run. It serves where that does
not matter to what is tested (mixed precision, resuming, distribution strategies, a
counter at 3e6, the synced path itself in test_engine); every exactness test of the path
users run uses the rate probe below.

**The rate probe** (``rate_probe_model``, ``fit_probe``): never touches ``Callback.model``
in a batch hook. The model is a five-unit Dense layer on zero inputs, so its output *is*
its bias. A metric, ``LastPrediction``, stores the last predictions exactly (``assign``,
not a running mean) in a small ring buffer, one slot per step of an execution, and
exposes them in the per-batch logs: they are the biases *before* each step's update,
because Keras computes metrics from the forward pass of that step. A callback reads the
logs; it touches ``self.model`` once, at ``on_train_end``, for the bias after the last
update. The loss is ``sum(y_pred * y_true)`` per sample (batch size 1, ``shuffle=False``),
so the targets *are* the gradients on the five biases, known in advance
(``probe_gradients``):

====  ===========================================  ==========================================
unit  gradient at step j of an epoch               why
====  ===========================================  ==========================================
0     ``tm(j)`` every step                         the rate at every step; Thue-Morse signs
                                                   cancel drift to high order
1, 3  alternating / Thue-Morse signs on even j,    kicked on even steps, coasting on odd ones
      0 on odd j                                   (alternating signs keep the velocity away
                                                   from 0 for any momentum)
2, 4  the same on odd j, 0 on even j               kicked on odd steps, coasting on even ones
====  ===========================================  ==========================================

(``tm(j) = (-1)**popcount(j)``). Each column sums to 0 over an epoch of 4 steps or more
(one kick is dropped where the count is odd), so a bias fed the same epoch again and again
does not drift. A unit whose gradient is 0 at a step "coasts": with SGD momentum its
update is ``m_t * v_{t-1}``, which measures the momentum alone. At every step each unit
gives one equation in the two unknowns (rate, and momentum or Adam's beta_1), and
``recover_*`` solves them by least squares weighted by the float32 spacing of the biases
involved, with a first-order bound on the error (``rate_atol``, ``momentum_atol``):

* SGD: ``db = -lr g``.
* SGD with momentum (Keras: ``v = m v' - lr g; w += v``): ``db_t = m_t db_{t-1} - lr_t g``.
  The momentum of the first update of a fresh optimizer multiplies a zero velocity:
  ``momenta[0]`` is NaN.
* Adam (Keras: ``m += (g - m)(1 - beta_1)``, ``v += (g**2 - v)(1 - beta_2)``,
  ``w -= alpha m / (sqrt(v) + eps)``, ``alpha = lr sqrt(1 - beta_2**k) / (1 - beta_1**k)``,
  ``k`` = iterations + 1): ``v`` is known (``g**2`` is 0 or 1, beta_2 fixed) and ``m`` is
  followed step by step, so ``-db (sqrt(v) + eps) = (alpha beta_1) m' + (alpha (1 -
  beta_1)) g`` is linear in two unknowns. The first update of a fresh Adam does not depend
  on its beta_1 (and later the scale of ``m`` trades against the rate), so that beta_1
  cannot be measured: ``initial_beta_1`` is assumed (by default the optimizer's
  configured value) and ``momenta[0]`` is NaN. Adam runs must start from a fresh
  optimizer (or continue a ``ProbeRun``).

Precision, measured on JAX, TensorFlow and torch against the float32 rate the optimizer
used (16-step epochs, counter moved to 1e8): plain SGD recovers a constant rate exactly,
and any rate within one float32 spacing of the bias (``2**-24 |b| / lr``, about 1e-7, as
``|b|`` stays within a few rates of 0, even at the end of 1cycle). SGD with momentum: about
3e-7 for rate and momentum (median 3e-8). Adam: about 1e-6 for the rate (3e-6 in its first
steps, where Keras' float32 bias correction rounds) and 2e-7 for beta_1. Where the rate
falls by orders of magnitude within the momentum's memory (cosine decay to 1% in 60 steps
with momentum 0.95, or Adam; the last steps of 1cycle), the biases still carry the larger
rates' updates and precision drops: 1e-5 to 4e-5 measured at 1% of the peak, 1e-3 at 1cycle's
last steps. The bounds ``rate_atol`` / ``momentum_atol`` held in every case and say so
step by step (about 3e-6 relative for SGD momentum, 1e-4 for Adam's first steps, 2e-4
after a hundredfold drop). To check a rate schedule down to its tail, use plain SGD.
Compare with ``rtol=2**-23`` (the rate is float32) plus ``atol=run.rate_atol``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="clrplug_tests")
def mean_prediction(y_true: Any, y_pred: Any) -> Any:
    """Loss whose gradient on the probe's bias is exactly 1."""
    return keras.ops.mean(y_pred)


def probe_model(optimizer: Any = None, steps_per_execution: int = 1) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="zeros"),
        ]
    )
    model.compile(
        optimizer=optimizer if optimizer is not None else keras.optimizers.SGD(0.1),
        loss=mean_prediction,
        steps_per_execution=steps_per_execution,
    )
    return model


def bias_of(model: keras.Model) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(model.layers[0].bias))[0])


class BiasRecorder(keras.callbacks.Callback):
    """Records the bias after every batch callback (once per execution)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []

    def on_train_begin(self, logs: Any = None) -> None:
        if not self.values:
            self.values.append(bias_of(self.model))

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.values.append(bias_of(self.model))

    def decrements(self) -> np.ndarray:
        return -np.diff(np.asarray(self.values, dtype=np.float64))


def optimizer_state(model: keras.Model) -> dict[str, list[float]]:
    """The optimizer's variables (the rate Variable aside), as flat float64 lists, by their
    names without the model's prefix: ``iteration``, ``bias_momentum``, ``kernel_velocity``..."""
    return {"_".join(v.path.rsplit("/", 1)[-1].split("_")[-2:]).removeprefix("adam_"):
            np.asarray(keras.ops.convert_to_numpy(v), np.float64).ravel().tolist()
            for v in model.optimizer.variables if "learning_rate" not in v.path}


def fit_steps(model: keras.Model, steps: int, callbacks: list, epochs: int = 1) -> None:
    """Train ``steps`` steps per epoch (batch size 1, zero data)."""
    x = np.zeros((steps, 1), dtype="float32")
    model.fit(x, x, batch_size=1, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)


# --------------------------------------------------------------------------- rate probe

PROBE_UNITS = 5
PROBE_METRIC = "bias_probe"
_U = 2.0**-24  # unit roundoff of float32: |fl(x) - x| <= _U |x|
_TINY = 2.0**-149  # float32's smallest spacing (subnormal)


def _thue_morse(j: np.ndarray) -> np.ndarray:
    bits = np.zeros(j.shape, dtype=np.int64)
    k = j.astype(np.int64).copy()
    while np.any(k):
        bits ^= k & 1
        k >>= 1
    return np.where(bits == 1, -1.0, 1.0)


def _kicks(positions: np.ndarray, steps: int, signs: str) -> np.ndarray:
    """A column that is ±1 at ``positions`` (alternating or Thue-Morse signs), 0 elsewhere.

    Its sum over the epoch is 0 whenever it has at least 2 kicks, so a bias fed the same
    epoch again and again does not drift: with an odd number of kicks one of them is
    dropped (the last for alternating signs, the first for Thue-Morse ones, so that two
    columns kicking at the same steps never both drop the same step).
    """
    column = np.zeros(steps)
    k = len(positions)
    index = np.arange(k)
    if signs == "alternate":
        values = (-1.0) ** index
        if k % 2 == 1 and k > 1:
            values[-1] = 0.0
    else:
        values = _thue_morse(index)
        if k % 2 == 1 and k > 1:
            values = np.concatenate([[0.0], _thue_morse(index[:-1])])
    column[positions] = values
    return column


def probe_gradients(steps: int) -> np.ndarray:
    """The gradient on each of the probe's five biases at steps ``0..steps-1`` of an epoch.

    These are also the targets fed to the probe (its loss makes target = gradient). Every
    column sums to 0 over an epoch of 4 steps or more, and at every step at least one
    bias has a non-zero gradient.
    """
    j = np.arange(steps)
    every = _thue_morse(j)
    if steps % 2 == 1 and steps > 1:
        every[-1] = 0.0
    even, odd = j[j % 2 == 0], j[j % 2 == 1]
    return np.stack(
        [
            every,
            _kicks(even, steps, "alternate"),
            _kicks(odd, steps, "alternate"),
            _kicks(even, steps, "thue-morse"),
            _kicks(odd, steps, "thue-morse"),
        ],
        axis=1,
    )


@keras.saving.register_keras_serializable(package="clrplug_tests")
def gradient_is_target(y_true: Any, y_pred: Any) -> Any:
    """Per-sample loss ``sum(y_pred * y_true)``: its gradient on each bias is the target."""
    return keras.ops.sum(y_pred * y_true, axis=-1)


class LastPrediction(keras.metrics.Metric):
    """The exact predictions of the last ``slots`` steps, for reading from the batch logs.

    ``result()`` is one float32 vector: ``[count, slot 0 (units values), slot 1, ...]``,
    where the prediction of the step numbered ``c`` (counting from 0 since the last reset,
    i.e. the start of the epoch) is in slot ``c % slots``. With batch size 1 the values are
    the model's outputs, unaveraged.
    """

    def __init__(self, units: int = PROBE_UNITS, slots: int = 1, name: str = PROBE_METRIC,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.units, self.slots = int(units), int(slots)
        self.values = self.add_variable((self.slots, self.units), "zeros", dtype="float32",
                                        name="values")
        self.count = self.add_variable((), "zeros", dtype="int32", name="count")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        ops = keras.ops
        row = ops.reshape(ops.mean(ops.cast(y_pred, "float32"), axis=0), (1, self.units))
        count, values = self.count.value, self.values.value
        here = ops.equal(ops.arange(self.slots, dtype="int32"), ops.mod(count, self.slots))
        self.values.assign(ops.where(ops.expand_dims(here, -1), row, values))
        self.count.assign(count + 1)

    def result(self) -> Any:
        ops = keras.ops
        return ops.concatenate(
            [ops.reshape(ops.cast(self.count, "float32"), (1,)), ops.reshape(self.values, (-1,))]
        )

    def reset_state(self) -> None:
        self.values.assign(keras.ops.zeros((self.slots, self.units), "float32"))
        self.count.assign(0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "slots": self.slots}


class ProbeRecorder(keras.callbacks.Callback):
    """Collects the biases before every step from the batch logs of a rate-probe model.

    Its batch hooks read only ``logs``; ``self.model`` is read once, in ``on_train_end``
    (``model_reads`` counts it), for the bias after the last update.
    """

    def __init__(self, slots: int, units: int = PROBE_UNITS, key: str = PROBE_METRIC) -> None:
        super().__init__()
        self.slots, self.units, self.key = slots, units, key
        self.rows: list[np.ndarray] = []
        self.epoch_lengths: list[int] = []
        self.final: np.ndarray | None = None
        self.model_reads = 0
        self._seen = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._seen = 0  # Keras resets metrics at the start of every epoch
        self.epoch_lengths.append(0)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if not logs or self.key not in logs:
            raise AssertionError(f"no {self.key!r} in the batch logs {sorted(logs or {})}")
        vector = np.asarray(logs[self.key], dtype=np.float64).ravel()
        count = int(vector[0])
        values = vector[1:].reshape(self.slots, self.units)
        if not 0 < count - self._seen <= self.slots:
            raise AssertionError(
                f"{count - self._seen} steps since the last batch callback, but the probe "
                f"keeps {self.slots}: compile the probe with the steps_per_execution it runs"
            )
        for c in range(self._seen, count):
            self.rows.append(values[c % self.slots].copy())
        self.epoch_lengths[-1] += count - self._seen
        self._seen = count

    def on_train_end(self, logs: Any = None) -> None:
        self.model_reads += 1
        self.final = _biases(self.model)


class SetIterations(keras.callbacks.Callback):
    """Assigns ``optimizer.iterations`` at the start of the given epochs ({epoch: value}).

    Touches the model only in ``on_epoch_begin``; on JAX the state is already synced
    there and is re-read from the variables before the epoch's first step.
    """

    def __init__(self, at_epoch: Mapping[int, int]) -> None:
        super().__init__()
        self.at_epoch = dict(at_epoch)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if epoch in self.at_epoch:
            self.model.optimizer.iterations.assign(int(self.at_epoch[epoch]))


def _biases(model: keras.Model) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(model.layers[0].bias), dtype=np.float64)


def rate_probe_model(optimizer: Any = None, steps_per_execution: int = 1,
                     jit_compile: bool | str = "auto") -> keras.Model:
    """A compiled rate probe: ``Dense(5)`` on zero inputs, float32, zero-initialised;
    ``jit_compile`` is ``compile()``'s (``True``: XLA on JAX and TensorFlow)."""
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(PROBE_UNITS, kernel_initializer="zeros",
                               bias_initializer="zeros", dtype="float32"),
        ]
    )
    _compile_probe(model, optimizer if optimizer is not None else keras.optimizers.SGD(0.1),
                   steps_per_execution, jit_compile)
    return model


def _compile_probe(model: keras.Model, optimizer: Any, steps_per_execution: int,
                   jit_compile: bool | str = "auto") -> None:
    model.compile(
        optimizer=optimizer,
        loss=gradient_is_target,
        metrics=[LastPrediction(PROBE_UNITS, max(1, steps_per_execution))],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    model.probe_slots = max(1, steps_per_execution)


@dataclasses.dataclass
class ProbeRun:
    """What a rate probe saw, and the rates (and momenta) recovered from it.

    Attributes:
        biases: ``(N + 1, 5)``: the five biases before each of the N updates, and after
            the last one.
        gradients: ``(N, 5)``: the gradient on each bias at each update.
        iterations: ``(N,)``: ``optimizer.iterations`` when each update was made (the
            value a learning-rate schedule is called with).
        measure: ``"sgd"``, ``"momentum"`` or ``"adam"``.
        rates: ``(N,)``: the learning rate applied at each update (float64 estimate of
            the optimizer's float32 value).
        rate_atol: ``(N,)``: first-order bound on the error of ``rates`` from float32
            rounding in the probe.
        momenta: ``(N,)`` momentum (``"momentum"``) or beta_1 (``"adam"``) at each update,
            NaN where the update does not depend on it; ``None`` for ``"sgd"``.
        momentum_atol: bound for ``momenta``, like ``rate_atol``.
    """

    biases: np.ndarray
    gradients: np.ndarray
    iterations: np.ndarray
    measure: str
    rates: np.ndarray
    rate_atol: np.ndarray
    momenta: np.ndarray | None = None
    momentum_atol: np.ndarray | None = None
    adam: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def updates(self) -> np.ndarray:
        """``(N, 5)``: the change of each bias at each update."""
        return np.diff(self.biases, axis=0)


def _measure_of(optimizer: Any) -> str:
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    refuse = {
        "weight_decay": getattr(inner, "weight_decay", None),
        "clipnorm": getattr(inner, "clipnorm", None),
        "clipvalue": getattr(inner, "clipvalue", None),
        "global_clipnorm": getattr(inner, "global_clipnorm", None),
        "gradient_accumulation_steps": getattr(inner, "gradient_accumulation_steps", None),
        "nesterov": getattr(inner, "nesterov", None) or None,
        "amsgrad": getattr(inner, "amsgrad", None) or None,
    }
    for name, value in refuse.items():
        if value is not None:
            raise ValueError(f"the rate probe cannot measure an optimizer with {name}={value!r}")
    # isinstance: on torch, Keras instantiates backend subclasses of these classes.
    if isinstance(inner, keras.optimizers.Adam):
        return "adam"
    if isinstance(inner, keras.optimizers.SGD):
        momentum = inner.momentum
        return "sgd" if isinstance(momentum, (int, float)) and momentum == 0 else "momentum"
    raise ValueError(
        f"the rate probe measures SGD (with or without momentum) and Adam, not "
        f"{type(inner).__name__}; pass measure=... to force one of 'sgd', 'momentum', 'adam'"
    )


def _scalar(value: Any) -> float:
    if callable(value):
        value = value()
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


def adam_constants(
    optimizer: Any, kind: str, run: ProbeRun | None, initial_beta_1: float | None
) -> dict[str, float]:
    """Adam's constants for recovering its updates: a continued run's, else the optimizer's."""
    adam: dict[str, float] = dict(run.adam) if run is not None else {}
    if kind == "adam" and not adam:
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        adam = {
            "beta_2": _scalar(inner.beta_2),
            "epsilon": _scalar(inner.epsilon),
            "initial_beta_1": (float(initial_beta_1) if initial_beta_1 is not None
                               else _scalar(inner.beta_1)),
        }
    return adam


def fit_probe(
    model: keras.Model,
    steps: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    epochs: int = 1,
    steps_per_execution: int | None = None,
    iterations: Mapping[int, int] | None = None,
    measure: str | None = None,
    run: ProbeRun | None = None,
    initial_beta_1: float | None = None,
) -> ProbeRun:
    """Train a rate probe ``steps`` steps per epoch and recover every applied rate.

    Args:
        model: from ``rate_probe_model``.
        steps: steps per epoch (batch size 1).
        callbacks: the callbacks under test (e.g. a clrplug ``CyclicLR``).
        epochs: number of epochs.
        steps_per_execution: recompile the probe with this value first (the optimizer,
            and its state, are kept). ``None`` keeps the compiled value.
        iterations: ``{epoch: value}``: assign ``optimizer.iterations`` at the start of
            those epochs (e.g. ``{1: 10**8}``), before the callbacks under test see the
            epoch begin.
        measure: ``"sgd"``, ``"momentum"`` or ``"adam"``; by default from the optimizer
            (SGD, SGD with momentum, Adam; a ``LossScaleOptimizer`` is looked through).
        run: a previous ``ProbeRun`` of the same model to continue: the result covers
            both, so momentum and Adam state carry over. The model must not have been
            trained in between.
        initial_beta_1: Adam only: the beta_1 of the first update of a fresh optimizer,
            which the updates cannot reveal. Default: the optimizer's ``beta_1`` now.

    Returns:
        A ``ProbeRun`` covering ``run`` (if given) and this fit.
    """
    if steps_per_execution is not None and steps_per_execution != model.steps_per_execution:
        _compile_probe(model, model.optimizer, steps_per_execution, model.jit_compile)
    optimizer = model.optimizer
    kind = measure or (run.measure if run is not None else _measure_of(optimizer))
    start = int(_scalar(optimizer.iterations))
    recorder = ProbeRecorder(getattr(model, "probe_slots", 1))
    moves = dict(iterations or {})
    x = np.zeros((steps, 1), dtype="float32")
    y = probe_gradients(steps).astype("float32")
    adam = adam_constants(optimizer, kind, run, initial_beta_1)
    model.fit(x, y, batch_size=1, epochs=epochs, verbose=0, shuffle=False,
              callbacks=[SetIterations(moves), *callbacks, recorder])

    counters, counter = [], start
    for epoch, length in enumerate(recorder.epoch_lengths):
        counter = moves.get(epoch, counter)
        counters.append(counter + np.arange(length, dtype=np.int64))
        counter += length
    end = int(_scalar(optimizer.iterations))
    if end != counter:
        raise AssertionError(
            f"optimizer.iterations ended at {end}, but one update per step from {start} "
            f"(with the moves {moves}) ends at {counter}"
        )
    assert recorder.final is not None
    biases = np.vstack([np.asarray(recorder.rows), recorder.final[None, :]])
    gradients = np.vstack([probe_gradients(length) for length in recorder.epoch_lengths])
    iteration_array = np.concatenate(counters)
    if run is not None:
        if not np.array_equal(run.biases[-1], biases[0]):
            raise AssertionError(
                "the probe's biases changed between the two runs: it was trained outside "
                "fit_probe, so the run cannot be continued"
            )
        biases = np.vstack([run.biases[:-1], biases])
        gradients = np.vstack([run.gradients, gradients])
        iteration_array = np.concatenate([run.iterations, iteration_array])
    return recover(biases, gradients, iteration_array, kind, **adam)


def recover(biases: np.ndarray, gradients: np.ndarray, iterations: np.ndarray, measure: str,
            beta_2: float = 0.999, epsilon: float = 1e-7,
            initial_beta_1: float = 0.9) -> ProbeRun:
    """Recover rates (and momenta) from biases; see the module docstring."""
    biases = np.asarray(biases, dtype=np.float64)
    gradients = np.asarray(gradients, dtype=np.float64)
    iterations = np.asarray(iterations, dtype=np.int64)
    if measure == "sgd":
        rates, rate_atol = recover_sgd(biases, gradients)
        return ProbeRun(biases, gradients, iterations, measure, rates, rate_atol)
    if measure == "momentum":
        rates, rate_atol, momenta, momentum_atol = recover_momentum(biases, gradients)
        return ProbeRun(biases, gradients, iterations, measure, rates, rate_atol, momenta,
                        momentum_atol)
    if measure == "adam":
        rates, rate_atol, momenta, momentum_atol = recover_adam(
            biases, gradients, iterations, beta_2, epsilon, initial_beta_1
        )
        return ProbeRun(biases, gradients, iterations, measure, rates, rate_atol, momenta,
                        momentum_atol,
                        {"beta_2": beta_2, "epsilon": epsilon, "initial_beta_1": initial_beta_1})
    raise ValueError(f"measure must be 'sgd', 'momentum' or 'adam', not {measure!r}")


def _weighted_solve(a: np.ndarray, b: np.ndarray, y: np.ndarray,
                    sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per step, least squares for ``y = s a + r b`` over the units, weights ``1/sigma²``.

    Returns ``s, r`` and first-order bounds ``sum |∂s/∂y_i| sigma_i`` (same for ``r``).
    ``s`` is NaN (and ``r`` solved alone) where ``a`` is 0 for every unit.
    """
    sigma = np.maximum(sigma, _TINY)
    w = 1.0 / np.square(sigma)
    saa, sab, sbb = (w * a * a).sum(1), (w * a * b).sum(1), (w * b * b).sum(1)
    det = saa * sbb - sab * sab
    both = (saa > 0) & (det > 1e-12 * saa * sbb)
    with np.errstate(divide="ignore", invalid="ignore"):
        # rows of the pseudo-inverse: s = sum ps_i y_i, r = sum pr_i y_i
        ps = np.where(both[:, None], w * (sbb[:, None] * a - sab[:, None] * b) / det[:, None],
                      np.nan)
        pr = np.where(both[:, None], w * (saa[:, None] * b - sab[:, None] * a) / det[:, None],
                      w * b / sbb[:, None])
    s = np.where(both, (ps * y).sum(1), np.nan)
    r = (pr * y).sum(1)
    return s, r, np.where(both, (np.abs(ps) * sigma).sum(1), np.nan), (np.abs(pr) * sigma).sum(1)


def recover_sgd(biases: np.ndarray, gradients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain SGD: ``Δb = -lr g``. Returns ``(rates, rate_atol)``."""
    d = np.diff(biases, axis=0)
    if np.any(d[gradients == 0]):
        raise ValueError("a bias with zero gradient moved: the optimizer is not plain SGD")
    # fl(b - lr g) rounds once: |error| <= u |b_after|.
    sigma = _U * np.abs(biases[1:])
    _, rates, _, bound = _weighted_solve(np.zeros_like(d), -gradients, d, sigma)
    return rates, 2 * bound


def recover_momentum(biases: np.ndarray, gradients: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SGD with momentum: ``Δb_t = m_t Δb_{t-1} - lr_t g_t``, velocity 0 before step 0
    if every coasting unit stays put at step 0 (a fresh optimizer); otherwise step 0 is NaN.

    Returns ``(rates, rate_atol, momenta, momentum_atol)``.
    """
    d = np.diff(biases, axis=0)
    previous = np.vstack([np.zeros((1, d.shape[1])), d[:-1]])
    fresh = bool(np.all(d[0][gradients[0] == 0] == 0))
    w = np.abs(biases)
    sigma = _U * (w[1:] + w[:-1] + 2 * np.abs(d) + 2 * np.abs(previous))
    momenta, rates, m_bound, r_bound = _weighted_solve(previous, -gradients, d, sigma)
    if not fresh:
        rates[0] = m_bound[0] = r_bound[0] = np.nan
    momenta[0] = m_bound[0] = np.nan  # the first update does not depend on it
    return rates, 2 * r_bound, momenta, 2 * m_bound


def recover_adam(biases: np.ndarray, gradients: np.ndarray, iterations: np.ndarray,
                 beta_2: float, epsilon: float, initial_beta_1: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Adam (Keras' update, no amsgrad) from a fresh optimizer: see the module docstring.

    Returns ``(rates, rate_atol, beta_1s, beta_1_atol)``.
    """
    d = np.diff(biases, axis=0)
    n, units = d.shape
    if not np.all(d[0][gradients[0] == 0] == 0):
        raise ValueError("the Adam probe needs a fresh optimizer (or run=previous ProbeRun)")
    f32 = np.float32
    b2 = float(f32(beta_2))
    eps = float(f32(epsilon))
    one_minus_b2 = float(f32(1 - beta_2))
    m = np.zeros(units)
    v = np.zeros(units)
    rates, rate_atol = np.full(n, np.nan), np.full(n, np.nan)
    beta1s, beta1_atol = np.full(n, np.nan), np.full(n, np.nan)
    w = np.abs(biases)
    beta_previous = float(initial_beta_1)
    for t in range(n):
        g = gradients[t]
        v = v + (g * g - v) * one_minus_b2
        root = np.sqrt(v) + eps
        step = -d[t]
        y = step * root
        # float32 rounding of the bias and ~6 roundings inside the update, plus the
        # drift of Keras' float32 m from this float64 copy (contracting, ~u/(1-beta_1)).
        drift = 20 * _U / max(1e-3, 1 - beta_previous) * np.abs(m) * np.abs(y).max()
        sigma = _U * (w[t + 1] + 6 * np.abs(step)) * root + drift
        if not np.any(m):
            beta = float(initial_beta_1)
            _, q, _, q_bound = _weighted_solve(m[None, :], (g * (1 - beta))[None, :],
                                               y[None, :], sigma[None, :])
            alpha, alpha_bound, beta_bound = float(q[0]), float(q_bound[0]), np.nan
        else:
            p, q, p_bound, q_bound = _weighted_solve(m[None, :], g[None, :], y[None, :],
                                                     sigma[None, :])
            p, q, p_bound, q_bound = float(p[0]), float(q[0]), float(p_bound[0]), float(q_bound[0])
            alpha = p + q
            beta = p / alpha
            alpha_bound = p_bound + q_bound
            beta_bound = (abs(q) * p_bound + abs(p) * q_bound) / alpha**2
            beta1s[t], beta1_atol[t] = beta, 2 * beta_bound
        k = f32(iterations[t] + 1)
        correction_1 = f32(1) - np.power(f32(beta), k)
        correction_2 = np.sqrt(f32(1) - np.power(f32(b2), k))
        rates[t] = alpha * float(correction_1) / float(correction_2)
        relative = alpha_bound / abs(alpha) + 8 * _U
        relative += _U * (float(np.power(f32(b2), k)) / float(correction_2) ** 2)
        if not np.isnan(beta_bound):
            relative += float(k) * beta ** (float(k) - 1) * beta_bound / float(correction_1)
        rate_atol[t] = 2 * relative * abs(rates[t])
        m = beta * m + (1 - beta) * g
        beta_previous = beta
    return rates, rate_atol, beta1s, beta1_atol
