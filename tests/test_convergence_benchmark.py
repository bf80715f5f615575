"""``benchmarks/convergence.py`` runs end to end: a smoke run on the smallest budget.

No assertion on the figures (one epoch says nothing about convergence): only that the
script trains every kind of run, prints its tables and verdict, writes its JSON and
figure, and reports the same again from the JSON without training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from clrplug.range_test import DEFAULT_RULE

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "convergence.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    backend = keras.backend.backend()
    env = dict(os.environ, KERAS_BACKEND=backend)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--backend", backend, *argv],
        cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600,
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("convergence")
    result = _run(
        "--tasks", "digits_mlp", "--seeds", "0", "--optimizers", "sgd", "--epochs", "1",
        "--range-steps", "40", "--rules", DEFAULT_RULE, "--sgd-lrs", "0.03", "0.1",
        "--json", "out.json", "--figure", "out.png", "--jax-cache", str(folder / "cache"),
        cwd=folder,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder, result.stdout


def test_smoke_run_prints_the_tables_and_the_verdict(smoke):
    _, printed = smoke
    assert "### digits_mlp, sgd: 43 iterations per run, 1 seeds" in printed
    assert "| run | final acc % | vs grid's best |" in printed
    for row in ("| fixed 0.03 |", "| fixed 0.1 |", "| grid's best (per seed) |",
                "| ReduceLROnPlateau |", "(recommended) |", f"| {DEFAULT_RULE} tri2/4 |"):
        assert row in printed, row
    assert "## Candidate workflows, ranked" in printed
    assert "Recommended workflow: range test + " in printed
    assert "(not the full benchmark)" in printed


def test_smoke_run_writes_json_and_figure(smoke):
    folder, _ = smoke
    record = json.loads((folder / "out.json").read_text())
    assert record["backend"] == keras.backend.backend() and record["full"] is False
    (unit,) = record["units"]
    assert (unit["task"], unit["seed"], unit["optimizer"], unit["budget"]) == ("digits_mlp", 0, "sgd", 43)
    assert unit["grid"] == ["fixed 0.03", "fixed 0.1"]
    assert 0 < unit["range_test"]["steps"] <= 40
    runs = unit["runs"]
    assert {runs[key]["schedule"] for key in runs} >= {"fixed", "plateau"}
    for run in runs.values():
        assert run["iterations"] == [0, 43] and len(run["accuracy"]) == 2
    for key in unit["candidates"].values():  # every candidate ran, or the rule found no range
        assert key is None or key in runs
    assert (folder / "out.png").read_bytes()[:8] == PNG_SIGNATURE


def test_report_from_json_trains_nothing(smoke):
    folder, printed = smoke
    again = _run("--from-json", "out.json", cwd=folder)
    assert again.returncode == 0, again.stderr[-3000:]
    tables = printed[printed.index("## Per task"):].replace("wrote out.png", "").strip()
    assert again.stdout.strip().endswith(tables)


# -- benchmarks/generalise.py: the leave-one-task-out choice, on hand-made results ---------------


def _generalise():
    import importlib.util

    path = SCRIPT.parent / "generalise.py"
    spec = importlib.util.spec_from_file_location("generalise", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["generalise"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _unit(max_lr, fixed_best, ladder):
    return {"seed": 0, "iterations": 100,
            "range_test": {"steps": 50, "stop_reason": "diverged", "caveat": None,
                           "max_lr": max_lr},
            "fixed": {"0.01": fixed_best - 5.0, "0.1": fixed_best},
            "one_cycle": {str(k): v for k, v in ladder.items()}}


def test_generalise_scores_a_candidate_by_the_nearest_ladder_run_and_chooses_on_the_others():
    g = _generalise()
    ladder = {0.01: 80.0, 0.0316: 88.0, 0.1: 90.0, 0.316: 91.0}
    # Rule "a" suggests 0.03 (1cycle there: 88, 2 points short of the grid's 90); doubled,
    # 0.06 is nearest 0.0316 still; tripled, 0.09 is nearest 0.1 (90: within 0.5).
    unit = _unit({"a": 0.03, "b": 0.1}, 90.0, ladder)
    assert g.gap([unit], "a", 1.0) == -2.0
    assert g.gap([unit], "a", 3.0) == 0.0
    assert g.gap([unit], "b", 1.0) == 0.0
    assert g.gap([unit], "a", 0.1) is None  # 0.003: no ladder run within a factor 1.8
    # "b" x1 is within 0.5 on both tasks, "a" x3 only on the first.
    other = _unit({"a": 0.01, "b": 0.1}, 91.0, {0.0316: 80.0, 0.1: 91.0})
    units = {"t1": [unit], "t2": [other]}
    assert g.choose(units, ["t1", "t2"]) == ("b", 1.0)
    # On t1 alone several are within 0.5; b x2 (0.2, nearest 0.316: 91) is 1 point above.
    assert g.choose(units, ["t1"]) == ("b", 2.0)
    # A rule with no suggestion scores as a failure.
    none = _unit({"a": None, "b": 0.1}, 90.0, ladder)
    assert g.gap([none], "a", 1.0) == -100.0
