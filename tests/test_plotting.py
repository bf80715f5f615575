"""Plots draw the library's own numbers: the data on every line is checked, not the pixels."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import clrplug
from clrplug.plotting import MissingExtraError, plot_history, plot_schedule
from clrplug.range_test import RangeTestResult
from clrplug.range_test.plot import plot_range_test

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def range_result() -> RangeTestResult:
    lr = np.geomspace(1e-4, 10.0, 150)
    z = (np.log10(lr) + 2.0) / 0.3
    accuracy = 0.1 + 0.8 * _sigmoid(z) - 0.7 * _sigmoid((np.log10(lr) - 0.5) / 0.1)
    loss = 2.3 - 2.0 * _sigmoid(z) + 3.0 * _sigmoid((np.log10(lr) - 0.5) / 0.1)
    val = np.full(150, np.nan)
    val[::5] = accuracy[::5]
    return RangeTestResult(
        lr=lr, iterations=np.arange(1, 151), loss=loss, smoothed_loss=loss,
        metrics={"accuracy": accuracy, "val_accuracy": val}, min_lr=1e-4, max_lr=10.0,
        steps=150, step_mode="exp", steps_per_epoch=30, stop_reason="completed",
        stop_factor=4.0, smoothing=0.98,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "triangular"},
        {"mode": "triangular2", "base_lr": 0.01, "max_lr": 0.1, "step_size": 50},
        {"mode": "exp_range", "gamma": 0.99994, "steps": 30000},
        {"mode": "triangular", "scale_fn": lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0))},
        {"mode": "triangular", "scale_fn": lambda x: 1 / (5 ** (x * 0.0001)),
         "scale_mode": "iterations"},
    ],
    ids=["triangular", "triangular2", "exp_range", "seed-sine-cycle", "seed-decay-iterations"],
)
def test_plot_schedule_draws_learning_rates_exactly(kwargs, tmp_path):
    path = tmp_path / "sub" / "schedule.png"
    figure = plot_schedule(**kwargs, path=path)
    line = figure.axes[0].lines[0]
    x, y = line.get_xdata(), line.get_ydata()
    args = {k: v for k, v in kwargs.items() if k != "steps"}
    expected = clrplug.learning_rates(np.arange(len(x)), **args)
    np.testing.assert_array_equal(x, np.arange(len(x)))
    assert np.array_equal(y, expected)  # the float64 formula itself, not an approximation
    step_size = kwargs.get("step_size", 2000)
    assert len(x) == kwargs.get("steps", 6 * step_size) + 1
    axis = figure.axes[0]
    assert axis.get_xlabel() == "training iterations" and axis.get_ylabel() == "learning rate"
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_plot_schedule_is_exported_lazily_and_draws_into_given_axes():
    from matplotlib.figure import Figure

    figure = Figure()
    axis = figure.add_subplot()
    returned = clrplug.plot_schedule("triangular", step_size=10, ax=axis)
    assert returned is figure and len(axis.lines) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, r"steps must be an integer >= 1, got 0"),
        ({"step_size": -1}, r"step_size must be a finite number >= 0.5"),
        ({"mode": "nope"}, r"unknown policy 'nope'"),
    ],
)
def test_plot_schedule_refuses_bad_input(kwargs, match):
    with pytest.raises(clrplug.errors.ClrplugError, match=match):
        plot_schedule(**kwargs)


def test_plot_history_against_iterations_and_lr():
    history = {
        "lr": np.array([0.1, 0.2, 0.3, 0.4]),
        "iterations": np.array([1, 2, 3, 4]),
        "loss": np.array([2.0, np.nan, 1.0, 0.5]),
        "accuracy": np.array([0.1, 0.2, 0.6, 0.7]),
    }
    figure = plot_history(history)
    labels = [axis.get_ylabel() for axis in figure.axes]
    assert labels == ["learning rate", "loss", "accuracy"]
    assert figure.axes[-1].get_xlabel() == "training iterations"
    np.testing.assert_array_equal(figure.axes[0].lines[0].get_ydata(), history["lr"])
    np.testing.assert_array_equal(figure.axes[1].lines[0].get_xdata(), [1, 3, 4])  # NaN dropped
    by_lr = plot_history(history, against="lr")
    (axis,) = by_lr.axes
    assert axis.get_xlabel() == "learning rate" and axis.get_ylabel() == "accuracy"
    assert axis.get_xscale() == "linear"  # 0.1 .. 0.4: not worth a log axis
    np.testing.assert_array_equal(axis.lines[0].get_xdata(), history["lr"])
    np.testing.assert_array_equal(axis.lines[0].get_ydata(), history["accuracy"])
    swept = dict(history, lr=np.geomspace(1e-4, 1.0, 4))
    assert plot_history(swept, against="lr").axes[0].get_xscale() == "log"
    assert plot_history(swept).axes[0].get_yscale() == "log"
    with pytest.raises(clrplug.errors.InvalidArgumentError, match="against must be 'iterations' or 'lr'"):
        plot_history(history, against="epochs")
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=r"keys: \['acc'\] not in the history"):
        plot_history(history, ["acc"])


def test_plot_history_of_a_callbacks_history(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    clr = clrplug.CyclicLR(base_lr=0.001, max_lr=0.006, step_size=2)
    model.fit(np.ones((16, 2)), np.ones((16, 1)), batch_size=4, epochs=1, callbacks=[clr],
              verbose=0)
    figure = plot_history(clr.history, path=tmp_path / "history.png")
    np.testing.assert_allclose(figure.axes[0].lines[0].get_ydata(), clr.history["lr"])
    assert (tmp_path / "history.png").read_bytes()[:8] == PNG_SIGNATURE


def _rule_marks(axis) -> dict[str, float]:
    """Rule name -> x of its labelled vertical line, read back from the axes."""
    marks = {}
    for line in axis.lines:
        name, _, rest = line.get_label().partition(": max_lr = ")
        if rest:
            x = line.get_xdata()
            assert x[0] == x[1]
            marks[name] = float(x[0])
    return marks


def _bands(axis) -> dict[str, tuple[float, float]]:
    """Rule name -> (left, right) of its shaded band."""
    out = {}
    for patch in axis.patches:
        name, _, rest = patch.get_label().partition(": base_lr..max_lr = ")
        if rest:
            out[name] = (patch.get_x(), patch.get_x() + patch.get_width())
    return out


def test_range_test_plot_marks_every_rule(range_result, tmp_path):
    from clrplug.range_test import DEFAULT_RULE

    figure = range_result.plot(tmp_path / "range.png")
    assert (tmp_path / "range.png").read_bytes()[:8] == PNG_SIGNATURE
    loss_axis, acc_axis = figure.axes
    suggestions = range_result.suggestions()
    found = {name: s for name, s in suggestions.items() if s is not None}
    assert {"valley", "steep", "minimum", "accuracy_rise"} <= set(found)
    # Each rule's max_lr is a line with the rule's name in the legend, on the loss panel.
    assert _rule_marks(loss_axis) == {name: s.max_lr for name, s in found.items()}
    legend = [text.get_text() for text in loss_axis.get_legend().get_texts()]
    for name, suggestion in found.items():
        assert f"{name}: max_lr = {suggestion.max_lr:.3g}" in legend
    # The default rule's band, base_lr to max_lr, is shaded on both panels.
    default = suggestions[DEFAULT_RULE]
    assert _bands(loss_axis) == {DEFAULT_RULE: (default.base_lr, default.max_lr)}
    assert [(p.get_x(), p.get_x() + p.get_width()) for p in acc_axis.patches] == [
        (default.base_lr, default.max_lr)
    ]
    # The accuracy panel repeats the lines, without repeating the legend.
    acc_x = sorted(line.get_xdata()[0] for line in acc_axis.lines
                   if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1])
    assert acc_x == sorted(s.max_lr for s in found.values())
    missing = sorted(set(suggestions) - set(found))
    notes = " ".join(text.get_text() for text in loss_axis.texts)
    assert all(name in notes for name in missing)
    for axis in (loss_axis, acc_axis):
        assert axis.get_xscale() == "log"
    assert loss_axis.get_ylabel() == "training loss" and acc_axis.get_ylabel() == "accuracy"
    assert acc_axis.get_xlabel() == "learning rate (log scale)"
    # The bold curves are what the rules read.
    curve = next(line for line in acc_axis.lines if "smoothed" in line.get_label())
    x, y = range_result.smoothed("val_accuracy")
    np.testing.assert_array_equal(curve.get_xdata(), x)
    np.testing.assert_array_equal(curve.get_ydata(), y)
    curve = next(line for line in loss_axis.lines if "smoothed" in line.get_label())
    x, y = range_result.smoothed("loss")
    np.testing.assert_array_equal(curve.get_xdata(), x)
    np.testing.assert_array_equal(curve.get_ydata(), y)


def test_range_test_plot_shades_the_rule_asked_for(range_result):
    figure = plot_range_test(range_result, rule="accuracy_rise")
    rise = range_result.suggest("accuracy_rise")
    assert _bands(figure.axes[0]) == {"accuracy_rise": (rise.base_lr, rise.max_lr)}
    assert "shaded: accuracy_rise" in figure.axes[0].get_title()


def test_range_test_plot_says_when_no_rule_found_a_range():
    lr = np.geomspace(1e-5, 1e-3, 60)
    flat = RangeTestResult(
        lr=lr, iterations=np.arange(1, 61), loss=np.full(60, 2.3), smoothed_loss=np.full(60, 2.3),
        metrics={}, min_lr=1e-5, max_lr=1e-3, steps=60, step_mode="exp", steps_per_epoch=None,
        stop_reason="completed", stop_factor=4.0, smoothing=0.98,
    )
    figure = flat.plot()
    (axis,) = figure.axes
    # fastai's rules always answer (as fastai does); clrplug's find nothing, nor a band.
    assert set(_rule_marks(axis)) == {"valley", "steep", "minimum", "slide"}
    assert _bands(axis) == {}
    assert any(text.get_text().startswith("no range found: ") for text in axis.texts)
    assert "not confident: no clear descent" in axis.get_title()


def test_range_test_plot_on_one_axes_uses_a_twin_for_accuracy(range_result):
    from matplotlib.figure import Figure

    figure = Figure()
    axis = figure.add_subplot()
    plot_range_test(range_result, ax=axis)
    assert len(figure.axes) == 2  # the loss axes and its twin
    assert figure.axes[1].get_ylabel() == "accuracy"


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an uninstalled package looks like
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'clrplug\[plot\]'"):
        plot_schedule("triangular")
    with pytest.raises(ImportError):  # also catchable as what it is
        plot_schedule("triangular")
