"""The range test's suggestion rules on synthetic curves with known answers.

The loss curves are closed forms of ``u = log10(lr)`` on a geometric sweep of 300
steps from 1e-6 to 10 (0.023 decades a step): a plateau (or a slow rise) until
``10**start``, a cosine descent of 2.0 to the minimum at ``10**lowest`` (the descent
warped by ``t**warp``), a parabolic rise after it, and NaN from the first step at
which the noiseless loss exceeds 4 times its running best (the range test's stop
rule), with ``diverged_at`` set there. Expected answers come from the closed form
alone, on a fine grid, never from the code under test:

- ``valley``: halfway along the descent, ``10**((start + lowest) / 2)``;
- ``steep``: where the closed form's derivative in ``u`` is most negative;
- ``minimum``: ``10**lowest / 10``;
- ``slide``: fastai's window scan on the closed form's exact per-step slope;
- ``accuracy_rise``: a logistic accuracy ``1 / (1 + exp(-(u - c) / s))`` reaches 10 %
  and 90 % of its rise at ``c -+ s ln 9``.

Tolerance: a factor of 1.5 (0.18 decades, 7.5 sweep steps). The rules read the
curve through a running median and a centred moving average over a tenth of the
points (27 steps, 0.63 decades here); Gaussian noise of 0.03 (per step, on a
descent of 2.0) moves a feature of the smoothed curve by a fraction of half that
window, which a factor 1.5 covers, while the two curves used per rule have answers
a factor of 10 or more apart, so no constant passes. Where a rule errs towards the
cautious side by design (``valley`` on a noisy plateau, whose wiggles can join the
descent at its start) the tolerance is one-sided: up to 1.5 above, 2.5 below.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clrplug.errors import InvalidArgumentError
from clrplug.range_test import curve as curve_module
from clrplug.range_test import fastai_rules, robust_rules, rules
from clrplug.range_test.rules import (
    BUILTIN_RULES,
    RangeCurve,
    RuleResult,
    accuracy_rise,
    robust_minimum,
    robust_slide,
    robust_steep,
    robust_valley,
)

LO, HI, STEPS = -6.0, 1.0, 300
FACTOR = 1.5
LOSS_RULES = {
    "robust_valley": robust_valley,
    "robust_steep": robust_steep,
    "robust_minimum": robust_minimum,
    "robust_slide": robust_slide,
}
ALL_RULES = {**LOSS_RULES, "accuracy_rise": accuracy_rise}
FASTAI_RULES = {
    "valley": fastai_rules.valley,
    "steep": fastai_rules.steep,
    "minimum": fastai_rules.minimum,
    "slide": fastai_rules.slide,
}

# (start, lowest, warp): two shapes per rule whose answers differ by a factor >= 10.
SHAPE_A = (-4.5, -2.0, 1.0)
SHAPE_B = (-2.5, 0.0, 2.0)  # warped: steepest late in the descent, not at its middle
SHAPE_C = (-3.5, -1.0, 1.0)


# -- synthetic curves ---------------------------------------------------------------------------


def loss_shape(u, start, lowest, warp=1.0, pre_slope=0.0, top=2.5, bottom=0.5):
    """Plateau (rising by ``pre_slope`` per decade towards ``start``), descent, parabola."""
    u = np.asarray(u, dtype=np.float64)
    t = np.clip((u - start) / (lowest - start), 0.0, 1.0)
    loss = top - (top - bottom) * (1.0 - np.cos(np.pi * t**warp)) / 2.0
    loss = loss - pre_slope * np.clip(start - u, 0.0, None)
    curvature = (top - bottom) * np.pi**2 / (2.0 * (lowest - start) ** 2) * max(warp, 1.0)
    return loss + 0.5 * curvature * np.clip(u - lowest, 0.0, None) ** 2


def sweep(steps=STEPS, lo=LO, hi=HI):
    lr = np.geomspace(10.0**lo, 10.0**hi, steps)
    return lr, np.log10(lr)


def with_stop_rule(lr, clean, loss, metrics=None):
    """NaN from the step after the noiseless loss first exceeds 4x its running best."""
    over = np.flatnonzero(clean > 4.0 * np.minimum.accumulate(clean))
    diverged = int(over[0]) if len(over) else None
    loss = loss.copy()
    if diverged is not None:
        loss[diverged + 1 :] = np.nan
    return RangeCurve(lr, loss, metrics or {}, diverged_at=diverged)


def loss_curve(shape, *, noise=0.0, seed=0, pre_slope=0.0, spike=None, noisy_start=0.0):
    lr, u = sweep()
    clean = loss_shape(u, *shape, pre_slope=pre_slope)
    rng = np.random.default_rng(seed)
    loss = clean + noise * rng.normal(size=len(u))
    if noisy_start:
        quarter = len(u) // 4
        loss[:quarter] += noisy_start * rng.normal(size=quarter)
    if spike is not None:
        first, height, width = spike
        loss[first : first + width] += height
    return with_stop_rule(lr, clean, loss)


def expected_valley(shape):
    start, lowest, _ = shape
    return 10.0 ** ((start + lowest) / 2.0)


def expected_steep(shape):
    start, lowest, warp = shape
    u = np.linspace(start, lowest, 200_001)
    return 10.0 ** u[int(np.argmin(np.gradient(loss_shape(u, start, lowest, warp), u)))]


def expected_minimum(shape):
    return 10.0 ** shape[1] / 10.0


def fastai_slide(u, loss_fn, first_right, lr_diff=15, thresh=0.005):
    """fastai's scan on the exact per-step slope, its window's right end from ``first_right``."""
    fine = np.linspace(u[0], u[-1], (len(u) - 1) * 64 + 1)
    slope = np.interp(u, fine, np.gradient(loss_fn(fine), fine)) * (u[1] - u[0])
    for right in range(first_right, lr_diff - 1, -1):
        if abs(slope[right] - slope[right - lr_diff]) <= thresh:
            return 10.0 ** u[right - lr_diff]
    return None


def expected_slide(shape):
    _, u = sweep()
    lowest = int(np.argmin(loss_shape(u, *shape)))
    return fastai_slide(u, lambda x: loss_shape(x, *shape), lowest)


EXPECTED = {
    "robust_valley": expected_valley,
    "robust_steep": expected_steep,
    "robust_minimum": expected_minimum,
    "robust_slide": expected_slide,
}


def decades(a, b):
    return abs(math.log10(a / b))


def assert_near(result, expected, factor=FACTOR, below=None):
    """``result.max_lr`` within ``factor`` of ``expected`` (``below`` on the cautious side)."""
    assert result is not None
    low = expected / (below or factor)
    assert low <= result.max_lr <= expected * factor, (result.reason, expected)


def assert_valid(name, result, curve):
    """What every result must be: in the sweep, finite, one line naming its rule."""
    if result is None:
        return
    assert isinstance(result, RuleResult)
    lr = curve.lr
    for value in (result.max_lr, result.base_lr):
        if value is not None:
            assert math.isfinite(value) and lr.min() <= value <= lr.max(), result
    if result.base_lr is not None:
        assert result.base_lr <= result.max_lr
    assert 0 <= result.index < len(lr)
    assert "\n" not in result.reason and result.reason.startswith(f"{name}:"), result.reason
    positive = lr > 0
    nearest = np.flatnonzero(positive)[
        np.argmin(np.abs(np.log(lr[positive]) - math.log(result.max_lr)))
    ]
    assert result.index == nearest or lr[result.index] == result.max_lr


def run_all(curve):
    results = {name: fn(curve) for name, fn in ALL_RULES.items()}
    for name, result in results.items():
        assert_valid(name, result, curve)
    return results


# -- known answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, 0.03], ids=["clean", "noisy"])
@pytest.mark.parametrize(
    ("name", "shape", "pre_slope"),
    [
        # valley needs a crisp start: a loss that rises slowly before the descent.
        pytest.param("robust_valley", SHAPE_A, 0.1, id="robust_valley-A"),
        pytest.param("robust_valley", SHAPE_C, 0.1, id="robust_valley-C"),
        pytest.param("robust_steep", SHAPE_A, 0.0, id="robust_steep-A"),
        pytest.param("robust_steep", SHAPE_B, 0.0, id="robust_steep-B"),
        pytest.param("robust_minimum", SHAPE_A, 0.0, id="robust_minimum-A"),
        pytest.param("robust_minimum", SHAPE_B, 0.0, id="robust_minimum-B"),
        pytest.param("robust_slide", SHAPE_A, 0.0, id="robust_slide-A"),
        pytest.param("robust_slide", SHAPE_B, 0.0, id="robust_slide-B"),
    ],
)
def test_each_loss_rule_finds_the_known_answer(name, shape, pre_slope, noise):
    expected = EXPECTED[name](shape)
    for seed in range(4 if noise else 1):
        curve = loss_curve(shape, noise=noise, seed=seed, pre_slope=pre_slope)
        result = LOSS_RULES[name](curve)
        assert_valid(name, result, curve)
        assert_near(result, expected)


def test_the_two_shapes_per_rule_have_answers_a_decade_apart():
    pairs = {
        "robust_valley": (SHAPE_A, SHAPE_C),
        "robust_steep": (SHAPE_A, SHAPE_B),
        "robust_minimum": (SHAPE_A, SHAPE_B),
        "robust_slide": (SHAPE_A, SHAPE_B),
    }
    for name, (first, second) in pairs.items():
        assert decades(EXPECTED[name](first), EXPECTED[name](second)) >= 1.0, name


def test_steep_and_valley_differ_on_a_warped_descent():
    # Warped, the descent is steepest well past its middle: the two rules must see it.
    curve = loss_curve(SHAPE_B, noise=0.03, seed=1)
    assert decades(expected_steep(SHAPE_B), expected_valley(SHAPE_B)) > 0.6
    assert_near(robust_steep(curve), expected_steep(SHAPE_B))
    assert robust_steep(curve).max_lr > 2.0 * robust_valley(curve).max_lr


# -- noise, plateaus, spikes --------------------------------------------------------------------


@pytest.mark.parametrize("shape", [SHAPE_A, SHAPE_C], ids=["A", "C"])
def test_valley_on_a_noisy_plateau_errs_on_the_cautious_side(shape):
    for seed in range(5):
        curve = loss_curve(shape, noise=0.03, seed=seed)
        assert_near(robust_valley(curve), expected_valley(shape), below=2.5)


def test_early_spikes_are_neither_the_valley_start_nor_the_minimum():
    shape = SHAPE_A
    for seed in range(3):
        clean = loss_curve(shape, noise=0.03, seed=seed, pre_slope=0.1)
        for spike in [(2, 5.0, 4), (31, 8.0, 3), (40, -2.4, 2)]:  # in the trimmed tenth, after it,
            spiked = loss_curve(shape, noise=0.03, seed=seed, pre_slope=0.1, spike=spike)  # a dip
            results = run_all(spiked)
            assert_near(results["robust_valley"], expected_valley(shape))
            assert_near(results["robust_minimum"], expected_minimum(shape))
            assert_near(results["robust_steep"], expected_steep(shape))
            # A spike that became the valley's start would move it half the way to the spike.
            assert decades(results["robust_valley"].max_lr, robust_valley(clean).max_lr) < 0.1


def test_a_noisy_start_does_not_move_the_suggestions():
    for shape in (SHAPE_A, SHAPE_B):
        for seed in range(3):
            curve = loss_curve(shape, noise=0.02, seed=seed, noisy_start=0.3)
            results = run_all(curve)
            for name in ("robust_steep", "robust_minimum", "robust_slide"):
                assert_near(results[name], EXPECTED[name](shape))
            assert_near(results["robust_valley"], expected_valley(shape), below=2.5)


def test_heavy_noise_still_gives_a_suggestion_in_the_descent():
    for seed in range(3):
        curve = loss_curve(SHAPE_C, noise=0.1, seed=seed)
        results = run_all(curve)
        start, lowest, _ = SHAPE_C
        for name in ("robust_valley", "robust_steep", "robust_slide"):
            assert 10 ** (start - 0.5) <= results[name].max_lr <= 10**lowest, results[name]
        assert_near(results["robust_minimum"], expected_minimum(SHAPE_C))


# -- divergence and NaN tails -------------------------------------------------------------------


def test_a_nan_tail_is_cut_off():
    curve = loss_curve(SHAPE_A, noise=0.03, seed=2)
    first_nan = int(np.flatnonzero(np.isnan(curve.loss))[0])
    cut = RangeCurve(curve.lr[:first_nan], curve.loss[:first_nan])
    # Without diverged_at, the first NaN cuts the curve; infinities count as NaN; after
    # diverged_at nothing is read, even finite values (the step that tripped the stop rule).
    no_mark = RangeCurve(curve.lr, curve.loss)
    inf_tail = RangeCurve(curve.lr, np.where(np.isnan(curve.loss), np.inf, curve.loss))
    junk = curve.loss.copy()
    junk[first_nan:] = 0.0
    marked = RangeCurve(curve.lr, junk, diverged_at=first_nan)
    assert no_mark.valid_length == inf_tail.valid_length == marked.valid_length == first_nan
    for name, fn in ALL_RULES.items():
        reference = fn(cut)
        assert reference is not None, name
        for variant in (no_mark, inf_tail, marked):
            assert fn(variant) == reference, name


def test_a_loss_that_falls_until_it_blows_up_is_read_before_the_blow_up():
    lr, u = sweep()
    # Falling faster and faster until the step that gives NaN: no minimum is seen.
    loss = 2.5 - np.exp((u + 1.0) / 0.6)
    blow_up = int(np.searchsorted(u, -1.0))
    loss[blow_up:] = np.nan
    curve = RangeCurve(lr, loss)
    results = run_all(curve)
    # fastai's trimming keeps 5 steps away; the slope window keeps more.
    assert results["robust_steep"].index < blow_up - 5
    assert results["robust_minimum"].max_lr <= lr[blow_up - 5] / 10
    assert results["robust_valley"].index < blow_up - 5


def test_slide_does_not_stop_on_a_steady_rise_after_the_minimum():
    lr, u = sweep()
    start, lowest = -4.0, -2.5

    def shape(x):
        t = np.clip((x - start) / (lowest - start), 0.0, 1.0)
        return 2.5 - (1.0 - np.cos(np.pi * t)) + 0.4 * np.clip(x - lowest, 0.0, None)

    curve = with_stop_rule(lr, shape(u), shape(u))
    result = robust_slide(curve)
    assert_valid("robust_slide", result, curve)
    assert result.max_lr < 10**lowest
    # fastai's scan from the end would stop on the straight rise, past the minimum.
    last = curve.valid_length - 1
    assert fastai_slide(u, shape, last) > 10**lowest
    assert_near(result, fastai_slide(u, shape, int(np.argmin(shape(u)))))


def test_minimum_below_the_sweep_suggests_its_lowest_rate():
    lr, u = sweep(lo=-6.0, hi=-3.0)
    clean = loss_shape(u, -5.5, -5.25)
    curve = with_stop_rule(lr, clean, clean)
    result = robust_minimum(curve)
    assert_valid("robust_minimum", result, curve)
    assert result.max_lr == lr[0] and result.index == 0


# -- nothing to read ----------------------------------------------------------------------------


def _flat_curves():
    lr, _ = sweep()
    yield "constant", RangeCurve(lr, np.full(STEPS, 2.3))
    for steps in (100, 300, 1000):
        lr_n, _ = sweep(steps)
        for seed in range(5):
            noise = np.random.default_rng(seed).normal(size=steps)
            yield f"noise{steps}-{seed}", RangeCurve(lr_n, 2.3 + 0.1 * noise)
            accuracy = 0.1 + 0.02 * np.random.default_rng(seed + 100).normal(size=steps)
            yield (
                f"flat-accuracy{steps}-{seed}",
                RangeCurve(lr_n, 2.3 + 0.1 * noise, {"accuracy": accuracy}),
            )
    noisy = 2.3 + 0.05 * np.random.default_rng(7).normal(size=STEPS)
    tail = noisy.copy()
    tail[250:] = np.nan
    yield "nan-tail", RangeCurve(lr, tail)
    spiked = noisy.copy()
    spiked[40:43] += 5.0
    yield "spike", RangeCurve(lr, spiked)
    yield "all-nan", RangeCurve(lr, np.full(STEPS, np.nan))
    yield "all-inf", RangeCurve(lr, np.full(STEPS, np.inf))
    yield "diverged-at-0", RangeCurve(lr, loss_shape(np.log10(lr), *SHAPE_A), diverged_at=0)


@pytest.mark.parametrize(("label", "curve"), list(_flat_curves()), ids=lambda v: str(v)[:20])
def test_a_flat_curve_gives_no_suggestion(label, curve):
    for name, fn in ALL_RULES.items():
        assert fn(curve) is None, (label, name, fn(curve))


@pytest.mark.parametrize("steps", [0, 1, 2, 8, 10, 20])
def test_short_curves(steps):
    lr = np.geomspace(1e-5, 1.0, steps)
    u = np.log10(lr)
    loss = 2.5 - np.tanh(u + 2.5)
    accuracy = 0.5 + 0.4 * np.tanh(u + 2.5)
    curve = RangeCurve(lr, loss, {"accuracy": accuracy})
    results = run_all(curve)
    if steps <= 10:  # 10 % and 5 steps trimmed leave fewer than 8 points to read
        assert all(results[name] is None for name in LOSS_RULES)
    if steps < 8:
        assert results["accuracy_rise"] is None


def test_a_linear_sweep_from_zero():
    lr = np.linspace(0.0, 1.0, 300)
    z = (lr - 0.3) / 0.05
    curve = RangeCurve(lr, 2.5 - 2.0 / (1.0 + np.exp(-z)) + np.clip(lr - 0.6, 0, None) * 20)
    results = run_all(curve)
    assert all(result is not None for result in results.values())
    assert 0.2 < results["robust_steep"].max_lr < 0.4


# -- accuracy_rise ------------------------------------------------------------------------------


def _logistic(u, centre, scale):
    return 1.0 / (1.0 + np.exp(-(u - centre) / scale))


def _rise_points(centre, scale):
    return 10 ** (centre - scale * math.log(9)), 10 ** (centre + scale * math.log(9))


@pytest.mark.parametrize(("centre", "scale"), [(-2.0, 0.25), (-4.0, 0.3)])
@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_accuracy_rise_reads_the_validation_accuracy(centre, scale, noise):
    lr, u = sweep()
    base, top = _rise_points(centre, scale)
    for seed in range(3 if noise else 1):
        rng = np.random.default_rng(seed)
        val = 0.1 + 0.8 * _logistic(u, centre, scale) + noise * rng.normal(size=STEPS)
        val[np.arange(STEPS) % 3 != 0] = np.nan  # evaluated every third step
        train = 0.1 + 0.8 * _logistic(u, centre + 1.5, scale)  # another curve: to be ignored
        loss = 2.5 - 2.0 * _logistic(u, centre - 1.0, scale)
        curve = RangeCurve(lr, loss, {"accuracy": train, "val_accuracy": val})
        assert curve.accuracy_key() == "val_accuracy"
        result = accuracy_rise(curve)
        assert_valid("accuracy_rise", result, curve)
        assert base / FACTOR <= result.base_lr <= base * FACTOR, result.reason
        assert top / FACTOR <= result.max_lr <= top * FACTOR, result.reason
        assert np.isfinite(val[result.index])  # a measured step


@pytest.mark.parametrize(("centre", "scale"), [(-2.0, 0.25), (-4.0, 0.3)])
def test_accuracy_rise_falls_back_to_training_accuracy_then_to_the_loss(centre, scale):
    lr, u = sweep()
    rising = _logistic(u, centre, scale)
    never_measured = np.full(STEPS, np.nan)
    base, top = _rise_points(centre, scale)
    for curve, key in [
        (
            RangeCurve(
                lr,
                np.full(STEPS, 1.0),
                {"accuracy": 0.1 + 0.8 * rising, "val_accuracy": never_measured},
            ),
            "accuracy",
        ),
        (RangeCurve(lr, 2.5 - 2.0 * rising, {"val_loss": 2.5 - 2.0 * rising}), None),
    ]:
        assert curve.accuracy_key() == key
        result = accuracy_rise(curve)
        assert_valid("accuracy_rise", result, curve)
        assert base / FACTOR <= result.base_lr <= base * FACTOR
        assert top / FACTOR <= result.max_lr <= top * FACTOR


def test_accuracy_rise_ignores_an_early_dip_and_the_diverged_step():
    lr, u = sweep()
    accuracy = 0.1 + 0.8 * _logistic(u, -2.0, 0.25)
    accuracy[:3] = 0.0  # a dip at the very start must not set the level of the rise
    accuracy[250] = 5.0  # the step that tripped the stop rule
    loss = 2.5 - 2.0 * _logistic(u, -2.0, 0.25)
    loss[251:] = np.nan
    curve = RangeCurve(lr, loss, {"accuracy": accuracy}, diverged_at=250)
    result = accuracy_rise(curve)
    base, top = _rise_points(-2.0, 0.25)
    assert base / FACTOR <= result.base_lr <= base * FACTOR
    assert top / FACTOR <= result.max_lr <= top * FACTOR
    assert result.index < 250


def test_accuracy_rise_peak_then_fall_reads_the_elbow_before_the_peak():
    lr, u = sweep()
    accuracy = 0.1 + 0.8 * _logistic(u, -3.0, 0.2) - 0.7 * _logistic(u, -0.5, 0.1)
    result = accuracy_rise(RangeCurve(lr, 2.3 - accuracy, {"accuracy": accuracy}))
    base, top = _rise_points(-3.0, 0.2)
    assert base / FACTOR <= result.base_lr <= base * FACTOR
    assert top / FACTOR <= result.max_lr <= top * FACTOR


# -- the data types -----------------------------------------------------------------------------


def test_range_curve_normalises_and_refuses_bad_input():
    curve = RangeCurve([1e-3, 1e-2, 1e-1], [3, 2, 1], {"accuracy": [0.1, 0.5, 0.9]})
    assert curve.lr.dtype == np.float64 and not curve.lr.flags.writeable
    assert curve.metrics["accuracy"].dtype == np.float64 and len(curve) == 3
    with pytest.raises(TypeError):
        curve.metrics["x"] = np.zeros(3)  # read-only mapping
    bad = [
        (dict(lr=[1e-3, 1e-2], loss=[1.0]), "loss has 1 values"),
        (dict(lr=[1e-2, 1e-3], loss=[1.0, 1.0]), "must not decrease"),
        (dict(lr=[1e-3, np.nan], loss=[1.0, 1.0]), "finite rates"),
        (dict(lr=[[1e-3]], loss=[[1.0]]), "one-dimensional"),
        (dict(lr=[1e-3, 1e-2], loss=[1.0, 1.0], metrics={"acc": [1.0]}), r"metrics\['acc'\]"),
        (dict(lr=[1e-3, 1e-2], loss=[1.0, 1.0], diverged_at=-1), "diverged_at"),
        (dict(lr=[1e-3, 1e-2], loss=[1.0, 1.0], diverged_at=1.5), "diverged_at"),
    ]
    for kwargs, message in bad:
        with pytest.raises(InvalidArgumentError, match=message):
            RangeCurve(**kwargs)


def test_range_curve_helpers():
    curve = loss_curve(SHAPE_A, noise=0.03)
    valid = curve.valid()
    assert len(valid) == curve.valid_length == curve.diverged_at
    assert np.all(np.isfinite(valid.loss))
    lr, smooth = curve.smoothed_loss()
    assert len(lr) == len(smooth) > 150 and np.all(np.isfinite(smooth))
    assert lr[0] > curve.lr[STEPS // 10] and lr[-1] < curve.lr[curve.valid_length - 5]
    assert np.std(smooth - loss_shape(np.log10(lr), *SHAPE_A)) < 0.03  # smoother than the raw
    _, flat = RangeCurve(curve.lr, np.full(STEPS, 2.0)).smoothed_loss()
    assert len(flat) and np.allclose(flat, 2.0)  # shown even when no rule reads anything
    assert RangeCurve(curve.lr[:5], curve.loss[:5]).smoothed_loss()[0].size == 0


def test_rule_result_refuses_bad_values():
    ok = RuleResult(max_lr=1e-2, base_lr=1e-3, reason="mine: fine", index=np.int64(3))
    assert ok.index == 3 and isinstance(ok.max_lr, float)
    for kwargs, message in [
        (dict(max_lr=math.nan), "finite rate"),
        (dict(max_lr=-1.0), "finite rate"),
        (dict(max_lr="0.1"), "must be a number"),
        (dict(base_lr=1.0), "must not exceed"),
        (dict(reason="two\nlines"), "one line"),
        (dict(index=-1), "index"),
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            RuleResult(**{"max_lr": 1e-2, "base_lr": None, "reason": "x: y", "index": 0, **kwargs})


def test_slide_refuses_bad_parameters():
    curve = loss_curve(SHAPE_A)
    for kwargs in (
        dict(lr_diff=0),
        dict(lr_diff=2.5),
        dict(thresh=-1.0),
        dict(thresh=math.nan),
        dict(adjust_value=0.0),
    ):
        with pytest.raises(InvalidArgumentError):
            robust_slide(curve, **kwargs)
    adjusted = robust_slide(curve, adjust_value=0.5)
    assert adjusted.max_lr == pytest.approx(robust_slide(curve).max_lr * 0.5)


def test_builtin_rules_are_listed_in_a_stable_order():
    assert list(BUILTIN_RULES) == [
        "valley", "steep", "minimum", "slide",
        "robust_valley", "robust_steep", "robust_minimum", "robust_slide", "accuracy_rise",
    ]
    for name, (fn, description) in BUILTIN_RULES.items():
        assert fn is {**ALL_RULES, **FASTAI_RULES}[name]
        assert description and "\n" not in description
        assert next(iter(inspect.signature(fn).parameters)) == "curve"
    with pytest.raises(TypeError):
        BUILTIN_RULES["mine"] = (robust_valley, "")  # read-only


def test_longest_descent_lengths_match_the_quadratic_definition():
    def brute(values: np.ndarray) -> list[int]:
        out = [1] * len(values)
        for i in range(len(values)):
            for j in range(i):
                if values[j] > values[i]:
                    out[i] = max(out[i], out[j] + 1)
        return out

    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 50):
        for values in (rng.normal(size=size), rng.integers(0, 4, size=size).astype(float)):
            assert list(fastai_rules.longest_descent_lengths(values)) == brute(values)


# -- the module ---------------------------------------------------------------------------------


RULE_MODULES = [rules, curve_module, fastai_rules, robust_rules]


@pytest.mark.parametrize("module", RULE_MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_the_rules_modules_need_only_numpy(module):
    tree = ast.parse(Path(module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert imported <= {
        "clrplug.range_test.curve",
        "clrplug.range_test.fastai_rules",
        "clrplug.range_test.robust_rules",
        "fractions",
        "__future__",
        "bisect",
        "math",
        "collections.abc",
        "dataclasses",
        "types",
        "numpy",
        "clrplug.errors",
    }, imported


def _docstring_examples() -> list[tuple[str, str]]:
    examples = []
    for module in RULE_MODULES:
        for name, obj in [("module", module), *inspect.getmembers(module, callable)]:
            doc = inspect.getdoc(obj) or ""
            if getattr(obj, "__module__", module.__name__) != module.__name__:
                continue
            examples += [(name, code) for code in re.findall(r"```python\n(.*?)```", doc, re.S)]
    return examples


@pytest.mark.parametrize(("name", "code"), _docstring_examples(), ids=lambda v: v[:30])
def test_docstring_examples_run(name, code):
    exec(compile(code, f"<{name} docstring>", "exec"), {})


def test_every_rule_has_a_runnable_example():
    names = {name for name, _ in _docstring_examples()}
    assert names >= set(ALL_RULES) | set(FASTAI_RULES) | {"RangeCurve", "ambiguity"}


def test_rule_signatures_are_typed():
    hints: dict[str, Callable[..., object]] = {**ALL_RULES, **FASTAI_RULES}
    for name, fn in hints.items():
        annotations = inspect.get_annotations(fn)
        assert annotations.get("return") == "RuleResult | None", name
        assert annotations.get("curve") == "RangeCurve", name
