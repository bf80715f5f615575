"""fastai's rules of the same names give fastai's answers; the ambiguity check speaks up.

Two kinds of evidence, neither taken from the code under test:

- fastai 2.8.12's own outputs (``valley``, ``steep``, ``minimum``, ``slide`` applied as
  ``Learner.lr_find`` applies them, on its ``AvgSmoothLoss``), stored with the script
  that made them (``tests/data/make_fastai_suggestions.py``) for 73 curves: synthetic
  (noiseless and noisy, exponential and linear sweeps of 50 to 500 steps, with
  fastai's stop rule) and recorded by Keras range tests; the rates and steps must be
  equal, not close;
- each branch of fastai's functions on curves small enough to work out by hand.

No torch here: ``tests/test_fastai_parity_data.py`` reruns the script in a
subprocess where fastai is installed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from clrplug.range_test.curve import RangeCurve
from clrplug.range_test.fastai_rules import fastai_record, minimum, slide, steep, valley
from clrplug.range_test.result import RangeTestResult
from clrplug.range_test.rules import AmbiguousCurveWarning, ambiguity

DATA = json.loads((Path(__file__).parent / "data" / "fastai_suggestions.json").read_text())
RULES = {"valley": valley, "steep": steep, "minimum": minimum, "slide": slide}
# Curves whose smoothed loss is given as it is (fastai's corner cases, built on it).
AS_GIVEN = {"rising", "two_step_start", "flat_noisy"}


def stored_curve(entry: dict) -> RangeCurve:
    lr, loss = np.array(entry["lr"]), np.array(entry["loss"])
    diverged = len(lr) - 1 if len(lr) < entry["steps"] else None
    smooth = np.array(entry["smoothed_loss"]) if entry["name"] in AS_GIVEN else None
    return RangeCurve(lr, loss, diverged_at=diverged, smooth_loss=smooth,
                      planned_steps=entry["steps"])


CURVES = {entry["name"]: entry for entry in DATA["curves"]}


def test_the_stored_data_covers_both_step_modes_and_50_to_500_steps():
    assert DATA["fastai"].startswith("2.8.")
    modes = {(e["step_mode"], e["steps"]) for e in DATA["curves"]}
    for mode in ("exp", "linear"):
        assert {steps for m, steps in modes if m == mode} >= {50, 100, 200, 500} - (
            set() if mode == "exp" else {500} - {s for m, s in modes if m == mode}
        )
    assert sum(1 for e in DATA["curves"] if e.get("recorded")) >= 6
    assert any(len(e["lr"]) < e["steps"] for e in DATA["curves"])  # stopped early


@pytest.mark.parametrize("name", sorted(CURVES))
def test_same_answer_and_step_as_fastai(name):
    entry = CURVES[name]
    curve = stored_curve(entry)
    if name not in AS_GIVEN:  # the recorder's average is fastai's AvgSmoothLoss, bit for bit
        assert np.array_equal(curve.smooth_loss, np.array(entry["smoothed_loss"]), equal_nan=True)
    for rule, fn in RULES.items():
        expected, found = entry["fastai"][rule], fn(curve)
        if "error" in expected:  # fastai raises; clrplug says it found nothing
            assert found is None, (rule, found)
            continue
        assert found is not None, rule
        assert (found.index, found.max_lr) == (expected["index"], expected["lr"]), (rule, found)


@pytest.mark.parametrize("name", sorted(n for n, e in CURVES.items() if e.get("recorded")))
def test_range_test_result_suggests_fastai_answers(name):
    """Through RangeTestResult: its recorded moving average and planned steps reach the rules."""
    entry = CURVES[name]
    lr, loss = np.array(entry["lr"]), np.array(entry["loss"])
    result = RangeTestResult(
        lr=lr, iterations=np.arange(1, len(lr) + 1), loss=loss,
        smoothed_loss=np.array(entry["smoothed_loss_clrplug"]), metrics={},
        min_lr=float(lr[0]), max_lr=float(lr[-1]), steps=entry["steps"],
        step_mode=entry["step_mode"], steps_per_epoch=None,
        stop_reason="completed" if len(lr) == entry["steps"] else "diverged",
        stop_factor=4.0, smoothing=0.98,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AmbiguousCurveWarning)
        for rule in RULES:
            found = result.suggest(rule)
            assert (found.index, found.max_lr) == (
                entry["fastai"][rule]["index"], entry["fastai"][rule]["lr"]
            )


def test_lr_finds_float32_differs_only_on_near_ties_of_noiseless_curves():
    """``lr_find`` hands fastai's rules float32 tensors; clrplug's rules read the float64
    record (as fastai's functions do given float64). Rounding to float32 can turn a strict
    descent into a tie: on noiseless synthetic curves ``valley`` then ends its descent a
    step or few later, and ``steep`` on the all-rising corner case picks another step. On
    every curve with noise, and every curve a Keras range test recorded, float32 changes
    nothing: clrplug's step is the one ``lr_find`` itself would pick."""
    differ = []
    for name, entry in CURVES.items():
        curve = stored_curve(entry)
        for rule, fn in RULES.items():
            wide, narrow = entry["fastai"][rule], entry["fastai_float32"][rule]
            if wide.get("index") == narrow.get("index"):
                continue
            differ.append((name, rule))
            assert fn(curve).index == wide["index"]  # clrplug: fastai's float64 answer
            assert (entry.get("recorded") is None and "noise0.0" in name) or name in AS_GIVEN
            if rule == "valley":
                assert 0 < narrow["index"] - wide["index"] <= 4
    assert len(differ) == 15 and {rule for _, rule in differ} == {"valley", "steep"}


# -- each branch, by hand -------------------------------------------------------------------


def given(loss, steps=None, lr=None, **kwargs):
    loss = np.asarray(loss, dtype=np.float64)
    lr = np.geomspace(1e-6, 1.0, len(loss)) if lr is None else lr
    return RangeCurve(lr, loss, smooth_loss=loss, planned_steps=steps, **kwargs)


def test_fastai_record_trims_like_lr_find():
    loss = np.arange(100, 0, -1.0)
    record = fastai_record(given(loss))
    assert record.offset == 10 and len(record.loss) == 100 - 10 - 5
    # num_it is the planned length, not the recorded one; the stop step is kept.
    record = fastai_record(given(loss[:50], steps=200, diverged_at=49))
    assert record.offset == 20 and len(record.loss) == 50 - 20 - 5
    loss[40] = np.inf  # fastai's moving average turns it into NaN; lr_find cuts there
    assert len(fastai_record(given(loss)).loss) == 30


def test_valley_counts_back_from_the_end_by_the_descents_length():
    # Steps 10..59 fall (L = 50), max_end = 59: max_start = 59 - 50 = 9 (fastai's, not 10),
    # and 9 + int(50/3) + int(50/3/2) = 9 + 16 + 8 = 33.
    loss = np.r_[np.linspace(3.0, 1.0, 60), np.linspace(1.1, 5.0, 40)]
    assert valley(given(loss)).index == 33


def test_valley_descent_may_start_at_the_first_kept_step():
    # The descent starts at the first step lr_find keeps (step 10) and runs 30 steps:
    # max_start = 39 - 30 = 9, 9 + 10 + 5 = 24.
    loss = np.r_[np.full(10, 9.0), np.linspace(3.0, 1.0, 30), np.linspace(1.5, 4.0, 60)]
    assert valley(given(loss)).index == 24


def test_valley_without_a_descent_is_the_first_step():
    assert valley(given(np.linspace(1.0, 3.0, 60))).index == 6


def test_valley_two_step_descent_at_the_start_reads_the_last_step():
    loss = np.linspace(1.0, 3.0, 60)
    loss[6] = 5.0  # positions 0 and 1 fall: L = 2, max_start = -1, index -1 (the last)
    assert valley(given(loss)).index == 54


def test_valley_takes_the_first_of_equally_long_descents():
    down = np.linspace(3.0, 2.0, 20)
    loss = np.r_[np.full(10, 9.0), down, down + 2.0, np.full(55, 9.0)]
    # Both descents have 20 steps and no longer subsequence spans them; the first ends at 29.
    assert valley(given(loss)).index == 29 - 20 + 6 + 3


def test_steep_is_per_log_lr_and_takes_the_left_step():
    lr = np.linspace(0.0, 1.0, 101)
    loss = 2.0 - np.tanh(6 * (lr - 0.3))
    # -lr * dloss/dlr peaks at tanh(6 (lr - 0.3)) = 1 / (12 lr), lr = 0.342; per step it
    # would be the tanh's centre, 0.30.
    assert steep(given(loss, lr=lr)).max_lr == lr[34]
    assert steep(given(np.full(6, 1.0))) is None  # lr_find keeps one step: no pair


def test_minimum_is_a_tenth_of_the_first_lowest_step_even_below_the_sweep():
    loss = np.r_[np.full(10, 5.0), [0.5, 2.0, 0.5], np.full(87, 3.0)]
    found = minimum(given(loss))
    assert found.index == 10 and found.max_lr == given(loss).lr[10] / 10
    assert found.max_lr < given(loss).lr[0] * 10  # not clipped to the sweep


def test_slide_branches():
    lr = np.geomspace(1e-7, 10.0, 100)
    steady = np.r_[np.full(40, 2.0), np.linspace(2.0, 0.5, 60)]
    # The first window (79..94) is steady at once: lr[-1 - lr_diff] of the record, step 79.
    assert slide(given(steady, lr=lr)).index == 79
    # A straight descent of 0.02 per step that levels off at step 80. Windows whose right
    # end is past 79 see 0 or -0.01 there against -0.02: they slide on. The window 64..79
    # is the first steady one, and fastai reports the left end of the window before it:
    # step 65.
    steps = np.arange(100)
    level = 3.0 - 0.02 * (np.minimum(steps, 80) - 10)
    assert slide(given(level, lr=lr)).index == 65
    # No window qualifies (the slope grows by 0.02 a step, 0.3 across any window): fastai
    # falls back to the first rate it was given.
    assert slide(given(0.01 * steps**2.0, lr=lr)).index == 10
    # Fewer steps than the window: fastai's lrs[-16] raises; clrplug finds nothing.
    assert slide(given(np.linspace(2.0, 1.0, 20))) is None  # 13 steps kept
    assert slide(given(steady, lr=lr), adjust_value=0.5).max_lr == lr[79] * 0.5


# -- saying when it does not know ----------------------------------------------------------


def sweep_curve(loss, **kwargs):
    return RangeCurve(np.geomspace(1e-6, 10.0, len(loss)), loss, **kwargs)


def test_ambiguity_names_what_to_try():
    u = np.log10(np.geomspace(1e-6, 10.0, 300))
    rng = np.random.default_rng(1)
    flat = 2.3 + 0.05 * rng.standard_normal(300)
    assert ambiguity(sweep_curve(flat)).startswith("no clear descent")
    assert "widen min_lr..max_lr" in ambiguity(sweep_curve(flat))
    # The loss blows up 20 steps in (of 300 planned): the sweep started too high.
    early = np.r_[np.linspace(2.3, 2.2, 20), np.full(280, np.nan)]
    line = ambiguity(sweep_curve(early, diverged_at=20))
    assert line.startswith("diverged right after the start") and "lower min_lr" in line
    # A descent over five decades, lowest at 1e-1: minimum reads 1e-2, valley the middle,
    # 10**-3.5: the rules are 1.5 decades apart.
    t = np.clip((u + 6.0) / 5.0, 0, 1)
    wide = 2.5 - (1 - np.cos(np.pi * t)) + 2.0 * np.clip(u + 1.0, 0, None) ** 2
    assert ambiguity(sweep_curve(wide)).startswith("the rules disagree")
    # A clear descent over two and a half decades: nothing to say.
    t = np.clip((u + 4.5) / 2.5, 0, 1)
    clear = 2.5 - (1 - np.cos(np.pi * t)) + 2.0 * np.clip(u + 2.0, 0, None) ** 2
    assert ambiguity(sweep_curve(clear + 0.03 * rng.standard_normal(300))) is None
    for line in (ambiguity(sweep_curve(flat)), ambiguity(sweep_curve(wide))):
        assert "\n" not in line


def test_suggest_warns_once_and_keeps_the_caveat():
    u = np.log10(np.geomspace(1e-6, 10.0, 300))
    t = np.clip((u + 6.0) / 5.0, 0, 1)
    wide = 2.5 - (1 - np.cos(np.pi * t)) + 2.0 * np.clip(u + 1.0, 0, None) ** 2
    lr = np.geomspace(1e-6, 10.0, 300)
    result = RangeTestResult(
        lr=lr, iterations=np.arange(1, 301), loss=wide, smoothed_loss=wide, metrics={},
        min_lr=1e-6, max_lr=10.0, steps=300, step_mode="exp", steps_per_epoch=None,
        stop_reason="completed", stop_factor=4.0, smoothing=0.98,
    )
    with pytest.warns(AmbiguousCurveWarning, match="the rules disagree") as caught:
        found = result.suggest()
        result.suggest()
    assert len(caught) == 1
    assert found.caveat == result.ambiguity() and found.caveat.startswith("the rules disagree")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AmbiguousCurveWarning)
        everything = result.suggestions()  # side by side: no warning per rule
    assert all(s is None or s.caveat == found.caveat for s in everything.values())


def test_the_demo_prints_the_caveat_under_its_rule_table():
    from clrplug.demo import rule_table

    u = np.log10(np.geomspace(1e-6, 10.0, 300))
    lr = np.geomspace(1e-6, 10.0, 300)
    rng = np.random.default_rng(1)

    def result_of(loss):
        return RangeTestResult(
            lr=lr, iterations=np.arange(1, 301), loss=loss, smoothed_loss=loss, metrics={},
            min_lr=1e-6, max_lr=10.0, steps=300, step_mode="exp", steps_per_epoch=None,
            stop_reason="completed", stop_factor=4.0, smoothing=0.98,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AmbiguousCurveWarning)
        flat = rule_table(result_of(2.3 + 0.05 * rng.standard_normal(300))).splitlines()
        t = np.clip((u + 4.5) / 2.5, 0, 1)
        clear = 2.5 - (1 - np.cos(np.pi * t)) + 2.0 * np.clip(u + 2.0, 0, None) ** 2
        confident = rule_table(result_of(clear + 0.03 * rng.standard_normal(300)))
    assert flat[-1].startswith("not confident: no clear descent of the loss")
    assert sum(line.startswith("not confident: ") for line in flat) == 1
    assert "not confident" not in confident and "robust_slide (default)" in confident
