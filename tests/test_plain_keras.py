"""A model trained with clrplug's callbacks is a plain Keras model once the fit is over.

When a fit with ``CyclicLR`` or ``OneCycleLR`` ends (normally, stopped early, or by an
exception or ``KeyboardInterrupt`` in a training step), the optimizer is what a plain
Keras optimizer compiled alike would be: the same variables in the same order, a plain
rate and momentum equal to what the schedule gives the next step, nothing of clrplug in
its config or attributes. Its ``.keras`` file loads and trains in a process where
clrplug cannot be imported. The expected rates are the seed's formula (tests/oracles.py)
and the variable list of a freshly compiled plain model, both independent of clrplug.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from oracles import seed_momenta, seed_rates, torch_cyclic, torch_one_cycle
from probe import fit_probe, rate_probe_model
from recording import assert_applied

from clrplug import CyclicLR, OneCycleLR

BACKEND = keras.backend.backend()
BASE, TOP, STEP = 0.01, 0.05, 4


def _compiled(optimizer: keras.optimizers.Optimizer, run_eagerly: bool = False) -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse", run_eagerly=run_eagerly)
    return model


def _data(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


KINDS = {
    "cyclic": (lambda: keras.optimizers.SGD(0.1), lambda: CyclicLR(BASE, TOP, STEP)),
    "cyclic-momentum": (
        lambda: keras.optimizers.SGD(0.1, momentum=0.9),
        lambda: CyclicLR(BASE, TOP, STEP, cycle_momentum=True, base_momentum=0.8, max_momentum=0.9),
    ),
    "one-cycle-adam": (lambda: keras.optimizers.Adam(0.1), lambda: OneCycleLR(0.05, total_steps=32)),
}


def _assert_plain(model: keras.Model, optimizer_factory: Any, rate: float, momentum: float | None) -> None:
    optimizer = model.optimizer
    reference = _compiled(optimizer_factory())
    reference.optimizer.build(reference.trainable_variables)
    def names(o: Any) -> list[tuple[Any, ...]]:  # without the (numbered) object names
        return [(tuple(v.shape), str(v.dtype), v.path.rsplit("/", 1)[-1].rsplit("_", 1)[-1]) for v in o.variables]

    assert names(optimizer) == names(reference.optimizer)
    assert isinstance(optimizer._learning_rate, keras.Variable)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(rate, rel=1e-6)
    config = optimizer.get_config()
    text = json.dumps(keras.saving.serialize_keras_object(optimizer))
    assert "clrplug" not in text and "OptimizerRate" not in text
    assert config.keys() == reference.optimizer.get_config().keys()
    assert not [name for name in vars(optimizer) if "clrplug" in name]
    assert "get_config" not in vars(optimizer)
    if momentum is not None:
        attribute = "momentum" if isinstance(optimizer, keras.optimizers.SGD) else "beta_1"
        value = getattr(optimizer, attribute)
        assert type(value) is float and value == pytest.approx(momentum, rel=1e-12)


def _expected(kind: str, count: int) -> tuple[float, float | None]:
    """The schedule's rate (and momentum) at update ``count``: the seed / PyTorch formulas."""
    if kind == "one-cycle-adam":
        lr, momentum = torch_one_cycle(32, 0.05, 32, optimizer="adam")
        assert momentum is not None
        return float(lr[count]), float(momentum[count])
    rate = float(seed_rates([count], BASE, TOP, STEP)[0])
    if kind != "cyclic-momentum":
        return rate, None
    return rate, float(seed_momenta([count], 0.8, 0.9, STEP)[0])


@pytest.mark.parametrize("kind", list(KINDS))
def test_after_a_fit_the_optimizer_is_plain(kind: str) -> None:
    optimizer_factory, callback_factory = KINDS[kind]
    model, callback = _compiled(optimizer_factory()), callback_factory()
    x, y = _data()
    model.fit(x, y, batch_size=2, epochs=2, callbacks=[callback], verbose=0)
    _assert_plain(model, optimizer_factory, *_expected(kind, 12))


@pytest.mark.parametrize("kind", list(KINDS))
def test_after_early_stopping_the_optimizer_is_plain(kind: str) -> None:
    optimizer_factory, callback_factory = KINDS[kind]
    model, callback = _compiled(optimizer_factory()), callback_factory()

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.model.stop_training = True

    x, y = _data()
    model.fit(x, y, batch_size=2, epochs=5, callbacks=[callback, StopAfterFirstEpoch()], verbose=0)
    _assert_plain(model, optimizer_factory, *_expected(kind, 6))


class _FailingStep(keras.Sequential):
    """A model whose training step raises ``error`` on its ``at``-th call (run eagerly, so
    that the step's Python runs at every step, inside Keras' train function)."""

    def __init__(self, *args: Any, at: int, error: BaseException, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.at, self.error = 0, at, error

    def train_step(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return super().train_step(*args, **kwargs)


@pytest.mark.parametrize("error", [KeyboardInterrupt("stop"), FloatingPointError("nan")],
                         ids=["KeyboardInterrupt", "error"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_fit_a_step_of_which_raised_leaves_a_plain_optimizer(kind: str, error: BaseException) -> None:
    optimizer_factory, callback_factory = KINDS[kind]
    model = _FailingStep([keras.Input((3,)), keras.layers.Dense(2)], at=5, error=error)
    model.compile(optimizer=optimizer_factory(), loss="mse", run_eagerly=True)
    callback = callback_factory()
    x, y = _data()
    with pytest.raises(type(error)):
        model.fit(x, y, batch_size=2, epochs=2, callbacks=[callback], verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4
    _assert_plain(model, optimizer_factory, *_expected(kind, 4))  # the failed step's rate


class _FailingValidation(keras.Sequential):
    """A model whose evaluation step raises ``KeyboardInterrupt`` on its ``at``-th call."""

    def __init__(self, *args: Any, at: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.at = 0, at

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt("stop")
        return super().test_step(*args, **kwargs)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_fit_interrupted_in_its_validation_leaves_a_plain_optimizer(kind: str) -> None:
    optimizer_factory, callback_factory = KINDS[kind]
    model = _FailingValidation([keras.Input((3,)), keras.layers.Dense(2)], at=2)
    model.compile(optimizer=optimizer_factory(), loss="mse", run_eagerly=True)
    x, y = _data()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=2, epochs=2, validation_data=(x, y), validation_batch_size=4,
                  callbacks=[callback_factory()], verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 6  # one epoch
    _assert_plain(model, optimizer_factory, *_expected(kind, 6))
    # The model's own test function is back: evaluate() runs as before the fit.
    assert "clrplug" not in type(model.test_function).__module__
    model.at = -1
    model.evaluate(x, y, verbose=0)


class _FailingBatches(keras.utils.PyDataset):
    """Validation batches of ``(x, y)``, 4 rows each; fetching batch ``at`` raises."""

    def __init__(self, x: np.ndarray, y: np.ndarray, at: int) -> None:
        super().__init__()
        self.x, self.y, self.at = x, y, at

    def __len__(self) -> int:
        return len(self.x) // 4

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index == self.at:
            raise KeyboardInterrupt("stop")
        return self.x[4 * index:4 * index + 4], self.y[4 * index:4 * index + 4]


@pytest.mark.skipif(BACKEND != "jax", reason="on JAX the next batch is fetched inside Keras' "
                    "step function; on TensorFlow and PyTorch outside it (a documented limit)")
@pytest.mark.parametrize("at", [0, 1], ids=["first-step", "second-step"])
def test_a_compiled_validation_interrupted_in_a_step_leaves_a_plain_optimizer(at: int) -> None:
    optimizer_factory, callback_factory = KINDS["cyclic-momentum"]
    model = _compiled(optimizer_factory())
    x, y = _data()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=2, epochs=2, validation_data=_FailingBatches(x, y, at),
                  callbacks=[callback_factory()], verbose=0)
    _assert_plain(model, optimizer_factory, *_expected("cyclic-momentum", 6))
    assert "clrplug" not in type(model.test_function).__module__


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_callback_given_to_evaluate_and_predict_leaves_the_optimizer_as_found(kind: str) -> None:
    """The same callbacks list passed to fit, evaluate and predict (Keras calls set_model,
    which installs the rate, for each): outside a fit the optimizer is left as found."""
    optimizer_factory, callback_factory = KINDS[kind]
    model, callback = _compiled(optimizer_factory()), callback_factory()
    x, y = _data()
    own = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    model.evaluate(x, y, callbacks=[callback], verbose=0)
    model.predict(x, callbacks=[callback], verbose=0)
    _assert_plain(model, optimizer_factory, own, None)
    model.fit(x, y, batch_size=2, epochs=1, validation_data=(x, y), callbacks=[callback], verbose=0)
    for evaluate in (True, False):  # the rate the fit left stays
        if evaluate:
            model.evaluate(x, y, callbacks=[callback], verbose=0)
        else:
            model.predict(x, callbacks=[callback], verbose=0)
        _assert_plain(model, optimizer_factory, *_expected(kind, 6))
        assert "clrplug" not in type(model.test_function).__module__
        assert "clrplug" not in type(model.train_function).__module__
    # And the next fit continues the cycle where the last one left it.
    model.fit(x, y, batch_size=2, epochs=1, callbacks=[callback], verbose=0)
    _assert_plain(model, optimizer_factory, *_expected(kind, 12))


def test_an_exception_outside_the_steps_leaves_the_rate_until_detach() -> None:
    """No Keras hook runs when another callback raises: the cycle's rate stays installed
    (training on with the callback continues it); ``detach()`` makes the optimizer plain."""
    optimizer_factory, callback_factory = KINDS["cyclic-momentum"]
    model, callback = _compiled(optimizer_factory()), callback_factory()

    class Raise(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            raise KeyboardInterrupt("stop")

    x, y = _data()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=2, epochs=2, callbacks=[callback, Raise()], verbose=0)
    assert callback.attached
    callback.detach()
    assert not callback.attached
    _assert_plain(model, optimizer_factory, *_expected("cyclic-momentum", 6))


def test_the_next_fit_continues_the_cycle_and_a_fit_without_it_applies_the_plain_rate() -> None:
    model, clr = rate_probe_model(), CyclicLR(BASE, TOP, STEP)
    first = fit_probe(model, 6, [clr])
    later = fit_probe(model, 5, [], run=first)  # no callback: the plain rate the cycle reached
    np.testing.assert_allclose(later.rates[6:], seed_rates([6], BASE, TOP, STEP)[0], rtol=1e-6)
    model.optimizer.learning_rate = 0.02  # e.g. ReduceLROnPlateau between fits
    plain = fit_probe(model, 3, [], run=later)
    np.testing.assert_allclose(plain.rates[11:], 0.02, rtol=1e-6)
    again = fit_probe(model, 8, [clr], run=plain)  # the cycle goes on at the optimizer's count
    assert_applied(again, seed_rates(np.arange(14, 22), BASE, TOP, STEP), start=14)


def test_a_plain_rate_set_during_the_fit_applies_from_the_next_step() -> None:
    """``optimizer.learning_rate = x`` from another callback (as ReduceLROnPlateau does) holds
    ``x`` from the next step to the fit's end; the next fit with the callback cycles again."""
    model, clr = rate_probe_model(), CyclicLR(BASE, TOP, STEP)

    class Plateau(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 4:
                self.model.optimizer.learning_rate = 0.003

    run = fit_probe(model, 10, [clr, Plateau()])
    expected = np.concatenate([seed_rates(np.arange(5), BASE, TOP, STEP), np.full(5, 0.003)])
    assert_applied(run, expected)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.003)
    again = fit_probe(model, 6, [clr], run=run)
    assert_applied(again, seed_rates(np.arange(10, 16), BASE, TOP, STEP), start=10)


def test_a_reset_in_the_middle_of_an_epoch_takes_effect_at_the_next_step() -> None:
    clr = CyclicLR(BASE, TOP, 10)

    class ResetAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 150:
                clr.reset(new_max_lr=0.03, new_step_size=7)

    run = fit_probe(rate_probe_model(), 300, [clr, ResetAt()])
    before, _ = torch_cyclic(151, BASE, TOP, 10)
    after, _ = torch_cyclic(149, BASE, 0.03, 7)
    assert_applied(run, np.concatenate([before, after]))


_LOAD_WITHOUT_CLRPLUG = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoClrplug(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "clrplug" or name.startswith("clrplug."):
                raise ImportError("clrplug is not installed here")

    sys.meta_path.insert(0, NoClrplug())
    import keras
    import numpy as np

    model = keras.models.load_model(sys.argv[1])
    before = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    x = np.ones((4, 3), "float32")
    model.fit(x, np.zeros((4, 2), "float32"), batch_size=2, epochs=1, verbose=0)
    print(json.dumps({
        "iterations": [before, int(keras.ops.convert_to_numpy(model.optimizer.iterations))],
        "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        "clrplug": [m for m in sys.modules if m.startswith("clrplug")],
    }))
    """
)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_model_saved_after_the_fit_loads_and_trains_where_clrplug_cannot_be_imported(
    tmp_path: Path, kind: str
) -> None:
    optimizer_factory, callback_factory = KINDS[kind]
    model, callback = _compiled(optimizer_factory()), callback_factory()
    x, y = _data()
    model.fit(x, y, batch_size=2, epochs=1, callbacks=[callback], verbose=0)
    path = tmp_path / "trained.keras"
    model.save(path)
    script = tmp_path / "load.py"
    script.write_text(_LOAD_WITHOUT_CLRPLUG)
    done = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["iterations"] == [6, 8] and result["clrplug"] == []
    assert result["learning_rate"] == pytest.approx(_expected(kind, 6)[0], rel=1e-6)
