"""The per-step rate (and momentum) reach TensorBoard at the steps of the batch loss.

Keras' TensorBoard callback writes every batch log as a scalar; CyclicLR adds the
step's rate to the batch logs from the host-side formula, so the event files hold
one value per logged step, read back here and compared with PyTorch's CyclicLR.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from oracles import torch_cyclic_at
from probe import fit_steps, probe_model

from clrplug import CyclicLR

pytest.importorskip("tensorflow", reason="Keras' TensorBoard callback writes with tf.summary")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(logdir: Path, tag: str) -> dict[int, float]:
    """Every value of scalar ``tag`` in the training run's event files, by step."""
    values: dict[int, float] = {}
    for run in (logdir / "train",):
        accumulator = event_accumulator.EventAccumulator(
            str(run), size_guidance={event_accumulator.TENSORS: 0, event_accumulator.SCALARS: 0}
        )
        accumulator.Reload()
        if tag in accumulator.Tags().get("tensors", []):
            for event in accumulator.Tensors(tag):
                values[event.step] = float(keras.ops.convert_to_numpy(
                    np.frombuffer(event.tensor_proto.tensor_content, dtype=np.float32)[0]
                    if event.tensor_proto.tensor_content else event.tensor_proto.float_val[0]
                ))
        if tag in accumulator.Tags().get("scalars", []):
            values.update({e.step: e.value for e in accumulator.Scalars(tag)})
    return values


@pytest.mark.parametrize("order", ["clr-first", "tensorboard-first"])
@pytest.mark.parametrize("update_freq", ["batch", 3])
def test_tensorboard_gets_the_rate_of_every_logged_step(
    tmp_path: Path, update_freq: str | int, order: str
) -> None:
    clr = CyclicLR(0.001, 0.006, 4, mode="triangular2")
    board = keras.callbacks.TensorBoard(str(tmp_path), update_freq=update_freq)
    callbacks = [clr, board] if order == "clr-first" else [board, clr]
    fit_steps(probe_model(), 10, callbacks, epochs=2)
    rates = scalars(tmp_path, "batch_learning_rate")
    losses = scalars(tmp_path, "batch_loss")
    if order == "tensorboard-first":
        # TensorBoard wrote the batch logs before CyclicLR added the rate: documented.
        assert not rates and losses
        return
    every = 1 if update_freq == "batch" else update_freq
    assert sorted(rates) == sorted(losses) and sorted(rates) == list(range(every, 21, every))
    expected, _ = torch_cyclic_at(np.arange(20), 0.001, 0.006, 4, mode="triangular2")
    # TensorBoard's step b counts batches from 1: the rate of the b-th step.
    np.testing.assert_allclose([rates[b] for b in sorted(rates)],
                               expected[np.array(sorted(rates)) - 1], rtol=1e-6)


def test_tensorboard_epoch_rate_is_the_optimizers(tmp_path: Path) -> None:
    """At epoch level Keras' TensorBoard writes the optimizer's rate when the epoch ends:
    the next step's, which the optimizer computes from its counter."""
    clr = CyclicLR(0.001, 0.006, 4, mode="triangular2")
    board = keras.callbacks.TensorBoard(str(tmp_path), update_freq="batch")
    fit_steps(probe_model(), 10, [clr, board], epochs=2)
    epoch_rates = scalars(tmp_path, "epoch_learning_rate")
    following, _ = torch_cyclic_at([10, 20], 0.001, 0.006, 4, mode="triangular2")
    np.testing.assert_allclose([epoch_rates[0], epoch_rates[1]], following, rtol=1e-6)


def test_momentum_reaches_tensorboard_when_it_cycles(tmp_path: Path) -> None:
    clr = CyclicLR(0.001, 0.006, 4, cycle_momentum=True)
    board = keras.callbacks.TensorBoard(str(tmp_path), update_freq="batch")
    fit_steps(probe_model(keras.optimizers.SGD(0.1, momentum=0.9)), 8, [clr, board])
    momenta = scalars(tmp_path, "batch_momentum")
    _, expected = torch_cyclic_at(np.arange(8), 0.001, 0.006, 4, cycle_momentum=True)
    np.testing.assert_allclose([momenta[b] for b in range(1, 9)], expected, rtol=1e-6)


def test_csv_logger_and_history_keep_epoch_values(tmp_path: Path) -> None:
    clr = CyclicLR(0.001, 0.006, 4)
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    model = probe_model()
    fit_steps(model, 5, [clr, csv], epochs=2)
    expected, _ = torch_cyclic_at(np.arange(10), 0.001, 0.006, 4)
    rows = (tmp_path / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    logged = [float(r.split(",")[header.index("learning_rate")]) for r in rows[1:]]
    np.testing.assert_allclose(logged, expected[[4, 9]], rtol=1e-6)
    np.testing.assert_allclose(model.history.history["learning_rate"], expected[[4, 9]], rtol=1e-6)
    assert "learning_rate" not in clr.history or len(clr.history["lr"]) == 10
