"""``clrplug plot`` and ``clrplug demo``: files written, values plotted, table printed."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import clrplug
from clrplug import cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["iteration", "lr"]
    return (np.array([int(r[0]) for r in rows[1:]]),
            np.array([float(r[1]) for r in rows[1:]], dtype=np.float64))


def test_plot_writes_a_png_of_learning_rates(tmp_path, capsys):
    png, table = tmp_path / "out" / "schedule.png", tmp_path / "schedule.csv"
    code = cli.main([
        "plot", "triangular2", "--base-lr", "0.001", "--max-lr", "0.006", "--step-size", "500",
        "--steps", "4000", "-o", str(png), "--csv", str(table),
    ])
    assert code == 0
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert f"wrote {png}" in capsys.readouterr().out
    iterations, lr = _read_csv(table)
    np.testing.assert_array_equal(iterations, np.arange(4001))
    expected = clrplug.learning_rates(iterations, 0.001, 0.006, 500, "triangular2")
    assert np.array_equal(lr, expected)  # what was plotted is the float64 formula, exactly


def test_plot_passes_gamma_and_policy_params(tmp_path):
    table = tmp_path / "exp.csv"
    assert cli.main(["plot", "exp_range", "--param", "gamma=0.999", "--step-size", "100",
                     "-o", str(tmp_path / "exp.png"), "--csv", str(table)]) == 0
    iterations, lr = _read_csv(table)
    assert len(iterations) == 601
    expected = clrplug.learning_rates(iterations, 0.001, 0.006, 100, "exp_range", gamma=0.999)
    assert np.array_equal(lr, expected)
    assert cli.main(["plot", "exp_range", "--gamma", "0.999", "--step-size", "100",
                     "-o", str(tmp_path / "exp2.png"), "--csv", str(table)]) == 0
    assert np.array_equal(_read_csv(table)[1], expected)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "nope"], "unknown policy 'nope'"),
        (["plot", "exp_range", "--param", "gamma"], "--param 'gamma': expected NAME=NUMBER"),
        (["plot", "triangular", "--max-lr", "0.0001"], "max_lr (0.0001) must be >= base_lr"),
        (["plot", "triangular", "--steps", "0"], "steps must be an integer >= 1, got 0"),
        (["demo", "--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["demo", "--fixed-lrs", "a,b"], "--fixed-lrs 'a,b': expected comma-separated numbers"),
    ],
)
def test_bad_input_is_an_error_message_and_exit_code_2(argv, message, tmp_path, capsys):
    code = cli.main([*argv, "-o", str(tmp_path / "x.png")] if argv[0] == "plot" else argv)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_plot_runs_as_a_command(tmp_path):
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-m", "clrplug", "plot", "triangular", "--step-size", "20",
         "-o", "s.png"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG_SIGNATURE


def test_demo_prints_a_line_per_run_the_table_the_verdict_and_writes_the_plots(tmp_path, capsys):
    # A short run of the real thing (the default is 48 epochs and a grid of five rates).
    out = tmp_path / "demo"
    code = cli.main(["demo", "--out", str(out), "--epochs", "1", "--fixed-lrs", "0.03,0.1"])
    assert code == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    # One line per run, no Keras progress output.
    assert [line.split()[:3] for line in lines if line.startswith("grid ")] == [
        ["grid", "1/2", "fixed"], ["grid", "2/2", "fixed"]]
    assert sum(line.startswith("range test") for line in lines) == 1
    assert sum(line.startswith("workflow") for line in lines) == 1
    assert "/step" not in printed and "Epoch 1/1" not in printed
    # The rule table: one row per registered rule, the default marked.
    from clrplug.range_test import DEFAULT_RULE

    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["rule", "base_lr", "max_lr"])
    end = lines.index("", header)
    rows = [line.split()[0] for line in lines[header + 2 : end]
            if not line.startswith("not confident: ")]
    assert rows == sorted(r.name for r in clrplug.registry.default_registry().records("rule"))
    assert f"{DEFAULT_RULE} (default)" in printed
    # The table, the verdict, the figures.
    assert "final acc" in printed and "iters to " in printed
    assert "(workflow)" in printed and "(grid's best)" in printed
    assert sum(line.startswith("Range test + ") for line in lines) == 1
    assert "plots: " in printed
    for name in ("accuracy.png", "range_test.png", "workflow_history.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE, name


@pytest.mark.parametrize(("argv", "verbose"), [([], 0), (["--verbose"], 1), (["--verbose", "2"], 2)])
def test_demo_verbose_restores_keras_output(argv, verbose):
    assert cli.build_parser().parse_args(["demo", *argv]).verbose == verbose


def test_demo_workflow_follows_the_default_rule():
    # The workflow's one run is result.one_cycle(): it peaks at DEFAULT_RULE's max_lr
    # times DEFAULT_PEAK_FACTOR.
    from clrplug import demo
    from clrplug.range_test import DEFAULT_RULE
    from clrplug.range_test.defaults import DEFAULT_PEAK_FACTOR

    result = demo._range_test(demo.load_digits_data(0), 0)
    found = result.suggest()
    assert found is not None and found.rule == DEFAULT_RULE
    assert result.one_cycle(total_steps=500).max_lr == pytest.approx(found.max_lr * DEFAULT_PEAK_FACTOR)


def test_the_demo_is_not_the_benchmark_harness():
    # benchmarks/harness.py holds the benchmark's tasks and plans; the package's demo does
    # not import it, and the benchmark does not import the demo.
    import ast

    def imported(path: Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        return names

    root = Path(__file__).resolve().parent.parent
    assert not {n for n in imported(root / "src" / "clrplug" / "demo.py") if "harness" in n}
    for name in ("convergence.py", "harness.py"):
        assert "clrplug.demo" not in imported(root / "benchmarks" / name), name
