"""Draw every figure in docs/ from the library's own functions, into docs/img/.

    python docs/gen_figures.py            # all figures (minutes: it trains the demo's runs)
    python docs/gen_figures.py policies   # only the schedule figures (no Keras needed)

The schedule figures (policies.md, one-cycle.md) are :func:`clrplug.plot_schedule`, i.e.
:func:`clrplug.learning_rates` and :func:`clrplug.one_cycle_rates` themselves, with the
parameters the pages use. The range-test, history and convergence figures come from one
run of :func:`clrplug.demo.compare` (the ``clrplug demo`` job) on scikit-learn's digits,
seed 0, on the installed Keras backend. Nothing is drawn by hand, and the same inputs give
the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

import clrplug

IMG = Path(__file__).resolve().parent / "img"

#: The 1cycle of docs/one-cycle.md's worked example: 5 epochs of 30 steps on the digits.
ONE_CYCLE_EXAMPLE = {"max_lr": 0.2, "steps": 150}

#: (file name, plot_schedule arguments); the seed's parameters unless given.
SCHEDULE_FIGURES: list[tuple[str, dict[str, Any]]] = [
    ("policy_triangular.png", {"mode": "triangular"}),
    ("policy_triangular2.png", {"mode": "triangular2"}),
    ("policy_exp_range.png", {"mode": "exp_range", "gamma": 0.99994, "steps": 24000}),
    (
        "policy_seed_sine_cycle.png",
        {
            "scale_fn": lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0)),
            "scale_mode": "cycle",
            "title": "scale_fn = 0.5 * (1 + sin(cycle * pi / 2)), scale_mode='cycle'",
        },
    ),
    (
        "policy_seed_decay_iterations.png",
        {
            "scale_fn": lambda x: 1 / (5 ** (x * 0.0001)),
            "scale_mode": "iterations",
            "title": "scale_fn = 1 / 5**(iterations * 0.0001), scale_mode='iterations'",
        },
    ),
    ("policy_asymmetric.png", {"mode": "triangular", "step_size": 1000, "step_size_down": 3000}),
    (
        "waveform_triangular.png",
        {
            "mode": "triangular",
            "waveform": "triangular",
            "title": "triangular: base_lr=0.001, max_lr=0.006, step_size=2000, waveform=triangular",
        },
    ),
    ("waveform_cosine.png", {"mode": "triangular", "waveform": "cosine"}),
    ("waveform_welch.png", {"mode": "triangular", "waveform": "welch"}),
    ("cyclic_momentum.png", {"mode": "triangular2", "cycle_momentum": True}),
    ("one_cycle.png", {"mode": "one_cycle", **ONE_CYCLE_EXAMPLE}),
    (
        "one_cycle_three_phase.png",
        {
            "mode": "one_cycle",
            **ONE_CYCLE_EXAMPLE,
            "three_phase": True,
            "anneal_strategy": "linear",
            "pct_start": 0.45,
            "title": "1cycle, three_phase=True, linear: max_lr=0.2, total_steps=150, pct_start=0.45",
        },
    ),
]


def waveforms_figure(path: Path) -> Path:
    """The three built-in waveforms over one cycle, on one axes."""
    from clrplug.plotting import new_figure, save_figure

    figure, [ax] = new_figure()
    names = ["triangular", "cosine", "welch"]
    colors = {"triangular": "tab:blue", "cosine": "tab:orange", "welch": "tab:green"}
    for name in names:
        clrplug.plot_schedule("triangular", step_size=2000, steps=4000, waveform=name, ax=ax)
    for line, name, style in zip(ax.lines, names, ["-", "--", ":"], strict=True):
        line.set_label(name)
        line.set_linestyle(style)
        line.set_color(colors[name])
    ax.legend(title="waveform")
    ax.set_title(
        "One cycle of each waveform: base_lr=0.001, max_lr=0.006, step_size=2000", fontsize=10
    )
    return save_figure(figure, path)


def policy_figures() -> list[Path]:
    """Every schedule figure (no Keras needed)."""
    written = []
    for name, kwargs in SCHEDULE_FIGURES:
        clrplug.plot_schedule(**kwargs, path=IMG / name)
        written.append(IMG / name)
    written.append(waveforms_figure(IMG / "waveforms.png"))
    return written


def linear_range_test() -> clrplug.range_test.RangeTestResult:
    """The seed's recipe: a linear sweep (the triangular policy's rising half) over 4 epochs."""
    from clrplug.demo import BATCH_SIZE, build_model, load_digits_data

    data = load_digits_data(0)
    held_out = len(data.x_train) // 5
    return clrplug.lr_range_test(
        build_model(0), data.x_train[held_out:], data.y_train[held_out:],
        min_lr=0.0, max_lr=1.0, step_mode="linear", epochs=4, batch_size=BATCH_SIZE,
        validation_data=(data.x_train[:held_out], data.y_train[:held_out]),
        validation_every=4, validation_batch_size=held_out, verbose=0,
    )


def training_figures() -> list[Path]:
    from clrplug.demo import compare
    from clrplug.plotting import plot_history

    comparison = compare(seed=0, verbose=0)
    result = comparison.range_test
    linear = linear_range_test()
    paths = {
        "range_test.png": lambda p: result.plot(p),
        "range_test_accuracy_vs_lr.png": lambda p: plot_history(
            result.history, ["accuracy", "val_accuracy"], against="lr", path=p
        ),
        "range_test_linear.png": lambda p: linear.plot(p),
    }
    for name, draw in paths.items():
        draw(IMG / name)
    print(comparison.table())
    print(f"linear sweep: {linear}")
    return [IMG / name for name in paths]


def main(argv: list[str]) -> int:
    IMG.mkdir(parents=True, exist_ok=True)
    written = policy_figures()
    if "policies" not in argv:
        written += training_figures()
    for path in written:
        print(f"wrote {path.relative_to(IMG.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
