"""Record a rate probe through any ``fit`` and recover the applied rates and momenta.

``probe.fit_probe`` assumes every epoch runs all its steps and that the optimizer's
counter only moves by one per step from where it was before ``fit``. The behaviours
tested with this module break both assumptions on purpose: ``BackupAndRestore``
restores the counter inside ``fit``, ``stop_training`` ends an epoch early, a model
comes back from a file. :func:`fit_recorded` reads the same probe (``ProbeRecorder``,
the batch logs only) and takes the updates' counts from the optimizer's counter at
the end, which holds whenever the steps of this ``fit`` were consecutive updates. The
gradients of a partial epoch are the first rows of the full epoch's (what was fed).
Imports nothing from clrplug.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
from probe import (
    ProbeRecorder,
    ProbeRun,
    _measure_of,
    _scalar,
    adam_constants,
    probe_gradients,
    recover,
)

__all__ = ["SaveAt", "assert_applied", "fit_recorded", "probe_data", "record_biases"]


def probe_data(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The inputs and targets of one epoch of ``steps`` probe steps."""
    return np.zeros((steps, 1), dtype="float32"), probe_gradients(steps).astype("float32")


def record_biases(
    model: keras.Model,
    steps: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    epochs: int = 1,
    *,
    initial_epoch: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``model.fit`` on the probe's data; the biases before each update and after the last
    ``(N + 1, 5)``, the gradients ``(N, 5)`` and each update's optimizer count ``(N,)``."""
    recorder = ProbeRecorder(getattr(model, "probe_slots", 1))
    x, y = probe_data(steps)
    model.fit(x, y, batch_size=1, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
              shuffle=False, callbacks=[*callbacks, recorder])
    lengths = recorder.epoch_lengths
    total = int(sum(lengths))
    assert recorder.final is not None and total == len(recorder.rows)
    rows = np.asarray(recorder.rows, dtype=np.float64).reshape(total, -1)
    biases = np.vstack([rows, recorder.final[None, :]])
    gradients = (np.vstack([probe_gradients(steps)[:n] for n in lengths if n])
                 if total else np.zeros((0, rows.shape[1])))
    end = int(_scalar(model.optimizer.iterations))
    return biases, gradients, end - total + np.arange(total, dtype=np.int64)


def fit_recorded(
    model: keras.Model,
    steps: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    epochs: int = 1,
    *,
    initial_epoch: int = 0,
    run: ProbeRun | None = None,
    measure: str | None = None,
    initial_beta_1: float | None = None,
) -> ProbeRun:
    """``model.fit`` on the probe's data, ``steps`` per epoch; the recovered ``ProbeRun``.

    ``run`` continues an earlier run of the same model (momentum and Adam state carry
    over); the model must not have been trained in between.
    """
    optimizer = model.optimizer
    kind = measure or (run.measure if run is not None else _measure_of(optimizer))
    adam = adam_constants(optimizer, kind, run, initial_beta_1)
    biases, gradients, iterations = record_biases(model, steps, callbacks, epochs,
                                                  initial_epoch=initial_epoch)
    if run is not None:
        if not np.array_equal(run.biases[-1], biases[0]):
            raise AssertionError("the probe was trained outside fit_recorded between the runs")
        biases = np.vstack([run.biases[:-1], biases])
        gradients = np.vstack([run.gradients, gradients])
        iterations = np.concatenate([run.iterations, iterations])
    return recover(biases, gradients, iterations, kind, **adam)


def _assert_within(what: str, got: np.ndarray, atol: np.ndarray, expected: Any,
                   rtol: float, nan_ok: int) -> None:
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: {got.shape} recovered, {expected.shape} expected"
    known = ~np.isnan(got)
    assert (~known).sum() <= nan_ok, f"{what}: {(~known).sum()} updates could not be measured"
    bound = rtol * np.abs(expected) + np.where(np.isnan(atol), 0.0, atol)
    bad = known & ~(np.abs(got - expected) <= bound)
    if bad.any():
        index = np.flatnonzero(bad)
        raise AssertionError(
            f"{what} differ at {len(index)} of {len(got)} updates, first at index "
            f"{index[:8].tolist()}: applied {got[index[:8]].tolist()}, expected "
            f"{expected[index[:8]].tolist()}, allowed {bound[index[:8]].tolist()}"
        )


def assert_applied(run: ProbeRun, rates: Any, momenta: Any = None, *, start: int = 0,
                   rtol: float = 1e-5, momentum_rtol: float = 1e-6, nan_ok: int = 1) -> None:
    """The rates (and momenta) ``run`` recovered from update ``start`` on are the expected
    ones, within ``rtol`` plus the probe's own first-order bound on each value.

    ``nan_ok`` updates may be unmeasurable (a momentum probe's first update).
    """
    _assert_within("rates", run.rates[start:], run.rate_atol[start:], rates, rtol, nan_ok)
    if momenta is not None:
        assert run.momenta is not None and run.momentum_atol is not None
        _assert_within("momenta", run.momenta[start:], run.momentum_atol[start:], momenta,
                       momentum_rtol, nan_ok)



def assert_loaded_run(result: dict[str, Any], lr: np.ndarray, momentum: np.ndarray,
                      first: int) -> None:
    """Check what a new process printed after training a loaded model: the rates and momenta
    it applied (``fit_recorded`` columns) and its ``history``, from update ``first`` on."""
    run = SimpleNamespace(**{key: np.array(result[key], dtype=np.float64)
                             for key in ("rates", "rate_atol", "momenta", "momentum_atol")})
    assert_applied(run, lr[first:], momentum[first:])  # type: ignore[arg-type]
    np.testing.assert_allclose(result["history_lr"], lr[first:], rtol=1e-12)
    np.testing.assert_allclose(result["history_momentum"], momentum[first:], rtol=1e-12)
    assert result["history_iterations"] == list(range(first + 1, len(lr) + 1))

class ResetAfterEpoch(keras.callbacks.Callback):
    """``clr.reset(**new)`` at the end of epoch ``epoch``."""

    def __init__(self, clr: Any, epoch: int, **new: float) -> None:
        super().__init__()
        self.clr, self.epoch, self.new = clr, epoch, new

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.epoch:
            self.clr.reset(**self.new)


class Crash(keras.callbacks.Callback):
    """A simulated crash (``KeyboardInterrupt``) at the end of epoch ``epoch``, or after its
    batch ``batch``."""

    def __init__(self, epoch: int, batch: int | None = None) -> None:
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.current = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.batch is not None and (self.current, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt("simulated crash")

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.batch is None and epoch == self.epoch:
            raise KeyboardInterrupt("simulated crash")


class SaveAt(keras.callbacks.Callback):
    """A checkpoint written during the fit, as ``ModelCheckpoint`` writes them: at the end
    of epoch ``epoch``, ``model.save(path)`` (``save_weights`` when ``weights_only``)."""

    def __init__(self, path: Any, epoch: int, weights_only: bool = False) -> None:
        super().__init__()
        self.path, self.epoch, self.weights_only = path, epoch, weights_only

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.epoch:
            if self.weights_only:
                self.model.save_weights(self.path)
            else:
                self.model.save(self.path)
