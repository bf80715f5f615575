"""Draw every figure in docs/ from the library's own functions, into docs/img/.

    python docs/gen_figures.py            # all figures (about half a minute)
    python docs/gen_figures.py policies   # only the policy figures (no Keras needed)

The policy figures are :func:`clrplug.plot_schedule`, i.e. :func:`clrplug.learning_rates`
itself, with the seed's parameters. The range-test, history and convergence figures
come from one run of :func:`clrplug.demo.compare` (the ``clrplug demo`` job) on
scikit-learn's digits, seed 0, on the installed Keras backend. Nothing is drawn by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import clrplug

IMG = Path(__file__).resolve().parent / "img"

#: The seed's examples: (file name, plot_schedule arguments).
POLICY_FIGURES = [
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
]


def policy_figures() -> list[Path]:
    written = []
    for name, kwargs in POLICY_FIGURES:
        clrplug.plot_schedule(**kwargs, path=IMG / name)
        written.append(IMG / name)
    return written


def linear_range_test() -> clrplug.RangeTestResult:
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
    from clrplug.demo import compare, plot_accuracy
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
        "clr_history.png": lambda p: comparison.clr_callback.plot_history(path=p),
        "convergence_accuracy.png": lambda p: plot_accuracy(comparison, p),
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
