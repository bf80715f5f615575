"""History rows written in bulk: what each row holds, whatever the shape of the logs.

The batch end only queues Keras' logs; the rows are written per column when the queue is
drained, in bulk when every row logged the same numbers and name by name otherwise. Both
ways must give the same columns, checked here against values written out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from clrplug.history import Recorder, StepHistory


def _rows(history: StepHistory) -> tuple[list[int], list[int], dict[str, list[float]]]:
    iterations, batches, columns = history.snapshot()
    return iterations.tolist(), batches.tolist(), {k: v.tolist() for k, v in columns.items()}


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


def test_rows_logging_the_same_numbers_are_written_as_logged() -> None:
    history = StepHistory(capacity=2)  # grows while writing
    logs = [{"loss": 0.5 + i, "accuracy": 0.25 * i, "learning_rate": 9.0} for i in range(5)]
    history.write_many([0, 1, 2, 3, 4], [11, 12, 13, 14, 15], [0, 1, 2, 3, 4], logs)
    iterations, batches, columns = _rows(history)
    assert iterations == [11, 12, 13, 14, 15] and batches == [0, 1, 2, 3, 4]
    # The rates the callbacks add to the logs come from the formula: not kept as logged.
    assert set(columns) == {"loss", "accuracy"}
    assert columns["loss"] == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert columns["accuracy"] == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(
    "logs, expected",
    [
        # a name missing from one row: NaN there
        (
            [{"loss": 1.0, "auc": 0.5}, {"loss": 2.0}, {"loss": 3.0, "auc": 0.7}],
            {"loss": [1.0, 2.0, 3.0], "auc": [0.5, math.nan, 0.7]},
        ),
        # a name only a later row logs
        ([{"loss": 1.0}, {"loss": 2.0, "extra": 4.0}], {"loss": [1.0, 2.0], "extra": [math.nan, 4.0]}),
        # a row without logs, a value that is not a number, a bool
        (
            [{"loss": 1.0, "note": "x"}, None, {"loss": 3.0, "flag": True, "note": "y"}],
            {"loss": [1.0, math.nan, 3.0]},
        ),
        # numpy and int values are numbers
        ([{"loss": np.float32(1.5)}, {"loss": 2}], {"loss": [1.5, 2.0]}),
        # every row logs only the rate the callback added: no value columns
        ([{"learning_rate": 0.1}, {"learning_rate": 0.2}], {}),
    ],
)
def test_rows_logging_different_names_or_values_keep_each_number(
    logs: list[dict[str, object] | None], expected: dict[str, list[float]]
) -> None:
    history = StepHistory()
    n = len(logs)
    history.write_many(list(range(n)), list(range(1, n + 1)), list(range(n)), logs)
    _, _, columns = _rows(history)
    assert set(columns) == set(expected)
    for key, values in expected.items():
        assert _same(columns[key], values), (key, columns[key], values)


def test_later_writes_of_a_row_win_and_repeated_rows_in_one_write_take_the_last() -> None:
    history = StepHistory()
    history.write_many([0, 1], [1, 2], [0, 1], [{"loss": 1.0}, {"loss": 2.0}])
    history.write_many([1, 1, 2], [2, 2, 3], [1, 1, 2], [{"loss": 5.0}, {"loss": 6.0}, {"loss": 7.0}])
    _, _, columns = _rows(history)
    assert columns["loss"] == [1.0, 6.0, 7.0]


def test_a_recorder_writes_each_batch_end_queued_in_any_order() -> None:
    recorder = Recorder()
    recorder.queue((0, {"loss": 1.0}))  # before any epoch: discarded
    recorder.epoch_begin(100, 1)
    for batch in (2, 0, 1, 3):  # Keras' worker threads may finish out of order
        recorder.queue((batch, {"loss": float(batch + 1)}))
    assert recorder.epoch_seen == 4
    iterations, batches, columns = _rows(recorder.rows)
    assert iterations == [101, 102, 103, 104] and batches == [0, 1, 2, 3]
    assert columns["loss"] == [1.0, 2.0, 3.0, 4.0]


def test_a_recorder_keeping_every_second_step_writes_the_last_of_each_block() -> None:
    recorder = Recorder(every=2)
    recorder.epoch_begin(0, 1)
    for batch in range(5):
        recorder.queue((batch, {"loss": float(batch)}))
    assert recorder.epoch_seen == 5
    iterations, batches, columns = _rows(recorder.rows)
    # rows hold steps 2, 4 and (the epoch's last so far) 5
    assert iterations == [2, 4, 5] and batches == [1, 3, 4]
    assert columns["loss"] == [1.0, 3.0, 4.0]
