"""The ``clrplug`` command line.

``clrplug policies`` lists the registered policies (``--json`` for scripts).
``clrplug plot MODE ... -o schedule.png`` draws a policy's schedule (needs
``clrplug[plot]``). ``clrplug demo`` runs the recommended workflow on
scikit-learn's digits (a range test, then one 1cycle run from its suggestion) against
a grid of fixed rates.
``clrplug new-plugin NAME`` writes a new policy plugin distribution to start from.
Each subcommand is a function ``cmd_<name>(args) -> int`` with its parser built
in :func:`build_parser`; only ``demo`` imports Keras, and only ``plot`` and ``demo``
import matplotlib.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clrplug import __version__
from clrplug.errors import ClrplugError, InvalidArgumentError
from clrplug.registry import PluginLoadWarning, default_registry

__all__ = ["build_parser", "main"]


def _record_rows() -> list[dict[str, Any]]:
    """One row per registered record (policies, waveforms, rules) and per failed plugin."""
    registry = default_registry()
    rows: list[dict[str, Any]] = []
    for kind in ("policy", "waveform", "rule"):
        conflicts = registry.conflicts(kind)
        for record in registry.records(kind):
            source = record.source
            rows.append(
                {
                    "record": kind,
                    "name": record.name,
                    "scale_mode": getattr(record, "scale_mode", None),
                    "params": dict(getattr(record, "params", None) or {}),
                    "in_step": getattr(record, "ops_fn", None) is not None,
                    "description": record.description,
                    "source": str(source),
                    "distribution": source.distribution,
                    "version": source.version,
                    "kind": source.kind,
                    "status": "conflict" if record.name in conflicts else "ok",
                }
            )
    for failure in registry.failures():
        rows.append(
            {
                "record": None,
                "name": None,
                "scale_mode": None,
                "params": {},
                "in_step": False,
                "description": "",
                "source": str(failure.source),
                "distribution": failure.source.distribution,
                "version": failure.source.version,
                "kind": failure.source.kind,
                "status": f"failed: {failure.error}",
            }
        )
    return rows


def _format_params(params: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in params.items()) or "-"


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as left-aligned columns (the last column is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    )


def cmd_policies(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():  # the listing itself shows every failed plugin
        warnings.simplefilter("ignore", PluginLoadWarning)
        rows = _record_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [("TYPE", "NAME", "SCALE MODE", "PARAMETERS", "IN STEP", "SOURCE", "STATUS")]
    for row in rows:
        table.append(
            (
                row["record"] or "-",
                row["name"] or "-",
                row["scale_mode"] or "-",
                _format_params(row["params"]),
                {"policy": "yes" if row["in_step"] else "table", "waveform": "yes"}.get(
                    row["record"] or "", "-"
                ),
                row["source"],
                row["status"],
            )
        )
    print(format_table(table))
    rules = [row for row in rows if row["record"] == "rule" and row["description"]]
    if rules:  # what each range-test rule reads: fastai's own, or clrplug's and how it differs
        print()
        print(format_table([("RULE", "WHAT IT SUGGESTS"),
                            *((row["name"], row["description"]) for row in rules)]))
        from clrplug.range_test.defaults import DEFAULT_LOWER, DEFAULT_PEAK_FACTOR, DEFAULT_RULE

        factor, base = DEFAULT_PEAK_FACTOR, DEFAULT_PEAK_FACTOR / DEFAULT_LOWER
        print(f"\nDefault: {DEFAULT_RULE} x{factor:g}. result.one_cycle() peaks at {factor:g} "
              f"times {DEFAULT_RULE}'s max_lr; result.cyclic_lr() cycles from {base:g} to "
              f"{factor:g} times it "
              "(chosen by leave-one-task-out: docs/benchmarks-convergence.md).")
    return 0


def _policy_params(pairs: Sequence[str]) -> dict[str, float]:
    params: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            params[name.strip()] = float(value)
        except ValueError:
            raise InvalidArgumentError(
                f"--param {pair!r}: expected NAME=NUMBER, e.g. --param gamma=0.99994."
            ) from None
    return params


def cmd_plot(args: argparse.Namespace) -> int:
    # Imported here: the other subcommands need no matplotlib.
    from clrplug.plotting import ONE_CYCLE, plot_schedule

    params = _policy_params(args.param)
    one_cycle = {
        key: value
        for key, value in (
            ("pct_start", args.pct_start), ("anneal_strategy", args.anneal_strategy),
            ("div_factor", args.div_factor), ("final_div_factor", args.final_div_factor),
            ("three_phase", args.three_phase or None),
        )
        if value is not None
    }
    if one_cycle and args.mode != ONE_CYCLE:
        raise InvalidArgumentError(
            f"--{sorted(one_cycle)[0].replace('_', '-')} only applies to MODE {ONE_CYCLE}, "
            f"not {args.mode!r}."
        )
    figure = plot_schedule(
        args.mode,
        base_lr=args.base_lr,
        max_lr=args.max_lr,
        step_size=args.step_size,
        steps=args.steps,
        gamma=args.gamma,
        policy_params=params or None,
        step_size_down=args.step_size_down,
        waveform=args.waveform,
        cycle_momentum=True if args.cycle_momentum else None,
        base_momentum=args.base_momentum,
        max_momentum=args.max_momentum,
        title=args.title,
        path=args.output,
        **one_cycle,
    )
    print(f"wrote {args.output}")
    if args.csv is not None:
        # Exactly the plotted values (the float64 formulas).
        iterations, rates = figure.axes[0].lines[0].get_xdata(), figure.axes[0].lines[0].get_ydata()
        columns = [("iteration", iterations), ("lr", rates)]
        if len(figure.axes) > 1:
            columns.append(("momentum", figure.axes[1].lines[0].get_ydata()))
        path = Path(args.csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([name for name, _ in columns])
            for i in range(len(iterations)):
                writer.writerow([int(iterations[i]), *(repr(float(c[i])) for _, c in columns[1:])])
        print(f"wrote {args.csv}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.epochs is not None and args.epochs < 1:
        raise InvalidArgumentError(f"--epochs must be >= 1, got {args.epochs}.")
    try:
        fixed_lrs = tuple(float(v) for v in args.fixed_lrs.split(",") if v.strip())
    except ValueError:
        raise InvalidArgumentError(
            f"--fixed-lrs {args.fixed_lrs!r}: expected comma-separated numbers, e.g. 0.03,0.1."
        ) from None
    if not args.verbose:
        # Keras' set_random_seed imports TensorFlow when it is installed, whatever the
        # backend, and TensorFlow logs its start-up to stderr: keep the demo's screen.
        # Under another backend TensorFlow only seeds, so its oneDNN kernels (whose
        # start-up line no log level hides) can be left off.
        import keras

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if keras.backend.backend() != "tensorflow":
            os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    # Imported here: this is the only subcommand that needs Keras and scikit-learn.
    from clrplug.demo import main as demo_main

    return demo_main(
        out=args.out, epochs=args.epochs, seed=args.seed, verbose=args.verbose,
        fixed_lrs=fixed_lrs,
    )


def cmd_new_plugin(args: argparse.Namespace) -> int:
    # Imported here: only this subcommand writes plugins.
    from clrplug.scaffold import new_plugin

    root = new_plugin(args.name, policy=args.policy, route=args.route, directory=args.dir)
    shown = Path(os.path.relpath(root)) if root.is_relative_to(Path.cwd()) else root
    print(f"wrote {shown}{os.sep}:")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        print(f"  {shown / path.relative_to(root)}")
    where = shlex.quote(str(shown))
    steps = [
        (f"pip install -e {where}", "install it in this environment (editable)"),
        ("clrplug policies", "lists its policy, with the distribution"),
        (f"pytest {where}", "runs its tests: clrplug's conformance kit"),
    ]
    width = max(len(command) for command, _ in steps)
    print("\nnext steps:")
    for command, why in steps:
        print(f"  {command.ljust(width)}  # {why}")
    print(
        f"then make the example policy in {shown / 'src'} your own, and replace the author "
        f"'Your Name' in pyproject.toml and LICENSE."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clrplug",
        description="Cyclical learning rates for Keras 3, with policies as plugins.",
    )
    parser.add_argument("--version", action="version", version=f"clrplug {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    policies = commands.add_parser(
        "policies",
        help="list the registered policies, waveforms and range-test rules, and their sources",
        description="List every registered policy, waveform and range-test rule with where "
        "it comes from. IN STEP: 'yes' runs inside the compiled step (it has a keras.ops "
        "twin); 'table' is tabulated by CyclicLR and refused by a stand-alone schedule.",
    )
    policies.add_argument("--json", action="store_true", help="print JSON instead of a table")
    policies.set_defaults(func=cmd_policies)

    plot = commands.add_parser(
        "plot",
        help="plot a policy's learning rate against iterations (needs clrplug[plot])",
        description="Plot the learning rate of policy MODE over training iterations, "
        "computed by clrplug.learning_rates.",
    )
    plot.add_argument(
        "mode", metavar="MODE",
        help="a policy name (see `clrplug policies`), or one_cycle for Smith's 1cycle",
    )
    plot.add_argument("--base-lr", type=float, default=0.001, help="lower boundary (0.001)")
    plot.add_argument("--max-lr", type=float, default=0.006, help="upper boundary (0.006)")
    plot.add_argument(
        "--step-size", type=float, default=2000, help="iterations per half cycle (2000)"
    )
    plot.add_argument(
        "--steps", type=int, default=None,
        help="last iteration plotted (3 cycles); for one_cycle its total_steps (1000)",
    )
    plot.add_argument("--gamma", type=float, default=1.0, help="exp_range constant (1.0)")
    plot.add_argument(
        "--step-size-down", type=float, default=None,
        help="iterations of the falling half (default: symmetric cycles)",
    )
    plot.add_argument("--waveform", default="triangular", help="shape within a cycle (triangular)")
    plot.add_argument(
        "--cycle-momentum", action="store_true",
        help="also draw the momentum, cycled inversely (always drawn for one_cycle)",
    )
    plot.add_argument("--base-momentum", type=float, default=None, help="momentum at the peak rate")
    plot.add_argument("--max-momentum", type=float, default=None, help="momentum at the lowest rate")
    plot.add_argument("--pct-start", type=float, default=None, help="one_cycle: warm-up fraction (0.3)")
    plot.add_argument(
        "--anneal-strategy", choices=("cos", "linear"), default=None,
        help="one_cycle: annealing (cos)",
    )
    plot.add_argument("--div-factor", type=float, default=None, help="one_cycle: max_lr / initial_lr (25)")
    plot.add_argument(
        "--final-div-factor", type=float, default=None, help="one_cycle: initial_lr / min_lr (1e4)"
    )
    plot.add_argument("--three-phase", action="store_true", help="one_cycle: three phases")
    plot.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a policy parameter; repeat for several",
    )
    plot.add_argument("--title", default=None, help="figure title (default: the parameters)")
    plot.add_argument(
        "-o", "--output", default="schedule.png",
        help="image to write; the suffix picks the format (schedule.png)",
    )
    plot.add_argument("--csv", default=None, help="also write the plotted values as CSV")
    plot.set_defaults(func=cmd_plot)

    demo = commands.add_parser(
        "demo",
        help="range test + one run against a grid of fixed rates on scikit-learn's digits",
        description="Train scikit-learn's handwritten digits with each rate of a grid of fixed "
        "learning rates, then with the recommended workflow: one LR range test and one run "
        "from its suggestion (the default rule and schedule). Prints one line per run, a "
        "table, a one-line verdict, and writes the figures.",
    )
    demo.add_argument("--out", default="clrplug-demo", help="folder for the plots (clrplug-demo)")
    demo.add_argument(
        "--epochs", type=int, default=None, help="training epochs of every run (48: 2,064 iterations)"
    )
    demo.add_argument("--seed", type=int, default=0, help="data split, weights, batches (0)")
    demo.add_argument(
        "--fixed-lrs", default="0.01,0.03,0.1,0.3",
        help="the grid of fixed learning rates, comma-separated (0.01,0.03,0.1,0.3)",
    )
    demo.add_argument(
        "--verbose", type=int, nargs="?", const=1, default=0, choices=(0, 1, 2),
        help="Keras' output for every run: --verbose shows its progress bars, --verbose 2 one "
        "line per epoch (default: one line per run)",
    )
    demo.set_defaults(func=cmd_demo)

    new = commands.add_parser(
        "new-plugin",
        help="write a new policy plugin distribution (pyproject, policy, tests) to start from",
        description="Write a complete plugin distribution with one example policy, a README, "
        "an MIT LICENSE and tests that run clrplug's conformance kit. After "
        "`pip install -e DIR` the policy is listed by `clrplug policies` and resolves in "
        "CyclicLR(mode=...). An existing directory is never overwritten.",
    )
    new.add_argument(
        "name", metavar="NAME",
        help="the distribution's name (PEP 508), e.g. clrplug-mine; its import package is "
        "NAME lower-cased with '-' and '.' turned into '_'",
    )
    new.add_argument(
        "--policy", default=None,
        help="the policy's name, a lower-case identifier (default: NAME without 'clrplug-')",
    )
    new.add_argument(
        "--route", choices=("hook", "entry-point"), default="hook",
        help="register through the pluggy hook (entry-point group 'clrplug') or a direct "
        "entry point naming the Policy (group 'clrplug.policies') (hook)",
    )
    new.add_argument(
        "--dir", default=None, metavar="DIR",
        help="the directory to create; must not exist (./NAME)",
    )
    new.set_defaults(func=cmd_new_plugin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ClrplugError as exc:
        print(f"clrplug: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
