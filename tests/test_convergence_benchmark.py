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


def test_generalise_scores_a_candidate_on_the_ladder_and_chooses_the_safest_on_the_others(
        monkeypatch):
    g = _generalise()
    unit = _unit({"a": 0.1, "none": None}, 90.0, {0.01: 80.0, 0.1: 90.0, 1.0: 60.0})
    # On a ladder run, its accuracy; between two, linear in log(rate); off the ladder, None.
    assert g.gap([unit], "a", 1.0) == 0.0
    assert g.gap([unit], "a", 10 ** -0.5) == pytest.approx(-5.0)  # halfway 0.01..0.1: 85
    assert g.gap([unit], "a", 100.0) is None
    assert g.gap([unit], "none", 1.0) == -100.0  # no suggestion: a failure
    # Both rules within 0.5 on both tasks. "bold" is above the grid (+1, +0.4) but its peak
    # doubled collapses on t2; "safe" holds with its peak halved and doubled. Gains above
    # the grid earn nothing, so robustness decides (the old choice, the best worst gap,
    # took "bold").
    monkeypatch.setattr(g, "FACTORS", (1.0,))
    rates = (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4)
    t1 = _unit({"bold": 0.1, "safe": 0.05}, 90.0, dict(zip(rates, (85, 90, 90, 91, 90, 10), strict=True)))
    t2 = _unit({"bold": 0.1, "safe": 0.05}, 90.0, dict(zip(rates, (85, 90, 90, 90.4, 10, 10), strict=True)))
    units = {"t1": [t1], "t2": [t2]}
    assert g.score(units, ["t1", "t2"], ("bold", 1.0))[:3] == (2, 0.0, 1)
    assert g.score(units, ["t1", "t2"], ("safe", 1.0))[:3] == (2, 0.0, 2)
    assert g.choose(units, ["t1", "t2"]) == ("safe", 1.0)
    # Chosen on t1 alone, both hold: the full tie goes to the rule's name.
    assert g.choose(units, ["t1"]) == ("bold", 1.0)


def test_generalise_widens_a_grid_whose_best_rate_sits_at_its_edge(monkeypatch):
    import math

    g = _generalise()
    task = g.Task("t", "dense", "sgd", 32, 1, (0.01, 0.1), None, None)

    def peaked_at(peak):
        # accuracy falls off linearly in log10(rate) either side of ``peak``
        return lambda task, data, seed, lr, schedule: 90.0 - 10 * abs(math.log10(lr / peak))

    monkeypatch.setattr(g, "train", peaked_at(0.3))
    fixed = {"0.01": 75.2, "0.1": 85.2}
    assert g.extend_grid(task, None, 0, fixed) == [0.316228, 1.0]  # 1.0 is worse: inside now
    assert g.best_rate(fixed) == "0.316228" and not g.at_edge(fixed)
    # A best rate that keeps rising stops EXTEND half-decades past the grid, still at its edge.
    monkeypatch.setattr(g, "train", peaked_at(100.0))
    fixed = {"0.01": 50.0, "0.1": 60.0}
    assert g.extend_grid(task, None, 0, fixed) == [0.316228, 1.0]
    assert g.at_edge(fixed) and len(fixed) == 2 + g.EXTEND
    # The low edge widens downwards; a best inside the grid adds nothing.
    monkeypatch.setattr(g, "train", peaked_at(0.004))
    fixed = {"0.01": 86.0, "0.1": 76.0}
    assert g.extend_grid(task, None, 0, fixed) == [0.00316228, 0.001]
    assert g.best_rate(fixed) == "0.00316228"
    assert g.extend_grid(task, None, 0, {"0.01": 1.0, "0.03": 2.0, "0.1": 1.0}) == []


def test_unseen_reports_the_default_against_the_grid():
    _generalise()  # unseen.py imports it by name
    import importlib.util

    spec = importlib.util.spec_from_file_location("unseen", SCRIPT.parent / "unseen.py")
    unseen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unseen)

    def unit(seed, one_cycle, cyclic, fixed):
        return {"seed": seed, "iterations": 100, "peak": 0.3, "one_cycle": one_cycle,
                "cyclic": cyclic, "fixed": fixed, "range_test": {"steps": 50, "max_lr": {}}}

    units = [unit(0, 90.0, 80.0, {"0.01": 85.0, "0.1": 91.0, "1.0": 10.0}),
             unit(1, 92.0, None, {"0.01": 89.0, "0.1": 88.0, "1.0": 10.0}),
             unit(2, 95.0, 85.0, {"0.01": 80.0, "0.1": 93.0, "1.0": 10.0})]
    text = unseen.report({"rule": "r", "factor": 3.0, "seeds": [0, 1, 2],
                          "units": {"digits_cnn_sgd": units}})
    row = next(line for line in text.splitlines() if line.startswith("| digits_cnn_sgd"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # 1cycle median 92.0; the grid's best per seed 91, 89, 93: median 91.0; CLR has a
    # missing run: no median; cost (50 + 100) / (3 * 100).
    assert cells[3:8] == ["92.0", "-", "91.0 (0.1/0.01/0.1)", "+1.0", "-"]
    assert cells[8] == "50 + 100 = 0.50 of 300"
    assert text.endswith("1cycle within 0.5 points of the grid's best: 1 of 1 (digits_cnn_sgd).")
