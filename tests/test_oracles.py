"""The oracles of tests/oracles.py: against values worked out by hand, and against each other.

This module imports torch: it runs in the PyTorch run only (tests/conftest.py). It checks
PyTorch's schedulers as tests/torch_oracle.py drives them, and that the values stored in
tests/torch_oracle.json, which every other run reads, are what torch computes now.

The seed transcriptions and PyTorch's schedulers are written by different people in
different ways; where they agree to float64 rounding, either can serve as the expected
value in the engine tests. Disagreements allowed here are explained where they are allowed.
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any

import numpy as np
import oracles
import pytest
import torch
import torch_oracle
from oracles import seed_momenta, seed_rates, seed_rates_asymmetric
from torch_oracle import torch_cyclic, torch_cyclic_at, torch_one_cycle, torch_one_cycle_at

EPS = float(np.finfo(np.float64).eps)
MODES = [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.999)]
SEED_SCALE_FNS = {  # the seed README's two custom policies
    "sine-cycle": (lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0)), "cycle"),
    "decay-iterations": (lambda x: 1 / (5 ** (x * 0.0001)), "iterations"),
}
HUGE = [10**6, 4_200_001, 10**8, 2**31 - 100]


def assert_agree(got: np.ndarray, expected: np.ndarray, amplitude: float,
                 its: np.ndarray, cycle_length: float) -> None:
    """Equal to float64 rounding: 1e-15 relative, plus the one place the two formulas round
    differently, the position in the cycle (``it / step_size`` against
    ``it / (up + down)``), whose rounding grows with ``it / cycle_length``."""
    allowed = 1e-15 * np.abs(expected) + 4 * EPS * amplitude * (1 + its / cycle_length)
    error = np.abs(np.asarray(got) - np.asarray(expected))
    bad = np.flatnonzero(error > allowed)
    assert bad.size == 0, f"iterations {its[bad[:5]]}: {got[bad[:5]]} != {expected[bad[:5]]}"


# ----------------------------------------------------------------------------- by hand


def test_the_three_modes_by_hand() -> None:
    # base 1, max 3, step 2: the triangle 1 2 3 2 | 1 2 3 2 | ...
    assert seed_rates(12, 1, 3, 2).tolist() == [1, 2, 3, 2] * 3
    assert torch_cyclic(12, 1, 3, 2)[0].tolist() == [1, 2, 3, 2] * 3
    # triangular2 halves the amplitude every cycle.
    halving = [1, 2, 3, 2, 1, 1.5, 2, 1.5, 1, 1.25, 1.5, 1.25]
    assert seed_rates(12, 1, 3, 2, "triangular2").tolist() == halving
    assert torch_cyclic(12, 1, 3, 2, mode="triangular2")[0].tolist() == halving
    # exp_range scales by gamma ** iteration: 1 + 2 * height * 0.5 ** it.
    decaying = [1, 1.5, 1.5, 1.125, 1]
    assert seed_rates(5, 1, 3, 2, "exp_range", gamma=0.5).tolist() == decaying
    assert torch_cyclic(5, 1, 3, 2, mode="exp_range", gamma=0.5)[0].tolist() == decaying


def test_asymmetric_cycle_and_momentum_by_hand() -> None:
    # One step up, three down: 1 4 3 2 | 1 4 3 2.
    assert seed_rates_asymmetric(8, 1, 4, 1, 3).tolist() == [1, 4, 3, 2] * 2
    lr, momentum = torch_cyclic(8, 1, 4, 1, 3, cycle_momentum=True, base_momentum=0.25,
                                max_momentum=1.0)
    assert lr.tolist() == [1, 4, 3, 2] * 2
    # Momentum moves against the rate: max where the rate is base, base at the peak.
    assert momentum.tolist() == [1, 0.25, 0.5, 0.75] * 2
    assert seed_momenta(8, 0.25, 1.0, 1, 3).tolist() == [1, 0.25, 0.5, 0.75] * 2


def test_huge_iterations_by_hand() -> None:
    # Step 2000: iteration 10**8 is the start of cycle 25001 (base), + 2000 its peak.
    its = [10**8, 10**8 + 1000, 10**8 + 2000, 10**8 + 3000]
    by_hand = [0.001, 0.0035, 0.006, 0.0035]
    np.testing.assert_allclose(seed_rates(its, 0.001, 0.006, 2000), by_hand, rtol=1e-12)
    np.testing.assert_allclose(torch_cyclic_at(its, 0.001, 0.006, 2000)[0], by_hand, rtol=1e-12)


# ------------------------------------------------------------ seed against torch CyclicLR


@pytest.mark.parametrize(("mode", "gamma"), MODES)
@pytest.mark.parametrize("step_size", [4, 7, 2.5, 7.5])
def test_seed_transcription_agrees_with_torch(mode: str, gamma: float, step_size: float) -> None:
    n = int(20 * step_size) + 3  # ten cycles and a bit
    its = np.arange(n, dtype=float)
    seed = seed_rates(n, 0.001, 0.006, step_size, mode, gamma)
    lr, momentum = torch_cyclic(n, 0.001, 0.006, step_size, mode=mode, gamma=gamma)
    assert momentum is None
    assert_agree(lr, seed, 0.005, its, 2 * step_size)
    if step_size == 4:  # every division exact: the two formulas round identically
        np.testing.assert_array_equal(lr, seed)
    assert seed.min() == 0.001 and seed.max() <= 0.006
    if mode == "triangular" and step_size == int(step_size):
        assert seed.max() == 0.006  # the peak is an iteration


@pytest.mark.parametrize("name", sorted(SEED_SCALE_FNS))
def test_seed_custom_policies_agree_with_torch(name: str) -> None:
    fn, scale_mode = SEED_SCALE_FNS[name]
    seed = seed_rates(300, 0.001, 0.006, 20, scale_fn=fn, scale_mode=scale_mode)
    lr, _ = torch_cyclic(300, 0.001, 0.006, 20, scale_fn=fn, scale_mode=scale_mode)
    assert_agree(lr, seed, 0.005, np.arange(300.0), 40)
    plain = seed_rates(300, 0.001, 0.006, 20)
    assert not np.allclose(seed, plain, rtol=1e-3)  # the scale function took effect


@pytest.mark.parametrize(("mode", "gamma"), MODES)
@pytest.mark.parametrize(("up", "down"), [(3, 5), (2.5, 6), (10, 2), (4, 4)])
def test_asymmetric_transcription_agrees_with_torch(mode: str, gamma: float, up: float,
                                                    down: float) -> None:
    n = int(6 * (up + down)) + 1
    its = np.arange(n, dtype=float)
    mine = seed_rates_asymmetric(n, 0.001, 0.006, up, down, mode, gamma)
    lr, _ = torch_cyclic(n, 0.001, 0.006, up, down, mode=mode, gamma=gamma)
    assert_agree(lr, mine, 0.005, its, up + down)
    if up == down:  # both transcriptions of the seed say the same
        assert_agree(seed_rates(n, 0.001, 0.006, up, mode, gamma), mine, 0.005, its, up + down)
    else:
        symmetric = seed_rates(n, 0.001, 0.006, (up + down) / 2, mode, gamma)
        assert not np.allclose(mine, symmetric, rtol=1e-3)  # step_size_down took effect


@pytest.mark.parametrize(("mode", "gamma"), MODES)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_momentum_cycles_inversely_and_agrees_with_torch(mode: str, gamma: float,
                                                         optimizer: str) -> None:
    n = 61
    its = np.arange(n, dtype=float)
    lr, momentum = torch_cyclic(n, 0.001, 0.006, 3, 7, mode=mode, gamma=gamma,
                                cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                                optimizer=optimizer)
    assert momentum is not None
    mine = seed_momenta(n, 0.85, 0.95, 3, 7, mode, gamma)
    assert_agree(momentum, mine, 0.1, its, 10)
    # Inversely: the momentum's fall from its max mirrors the rate's rise from its base.
    np.testing.assert_allclose((lr - 0.001) / 0.005, (0.95 - momentum) / 0.1, atol=1e-13)
    assert momentum[0] == 0.95
    if mode != "exp_range":
        assert momentum[3] == pytest.approx(0.85) and momentum[13] == pytest.approx(
            0.95 - 0.1 * (0.5 if mode == "triangular2" else 1.0))


def test_torch_cycles_adams_beta_1_and_leaves_beta_2() -> None:
    param = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([param], lr=0.001, betas=(0.5, 0.99))
    scheduler = torch.optim.lr_scheduler.CyclicLR(adam, 0.001, 0.006, step_size_up=4,
                                                  base_momentum=0.8, max_momentum=0.9)
    seen = []
    for _ in range(9):
        seen.append(adam.param_groups[0]["betas"])
        param.grad = torch.ones_like(param)
        adam.step()
        scheduler.step()
    assert [b[1] for b in seen] == [0.99] * 9
    sgd_momentum = torch_cyclic(9, 0.001, 0.006, 4, cycle_momentum=True)[1]
    assert [b[0] for b in seen] == sgd_momentum.tolist()
    assert torch_cyclic(9, 0.001, 0.006, 4, cycle_momentum=True, optimizer="adam")[1].tolist() \
        == sgd_momentum.tolist()


# ------------------------------------------------------------------- jumping to iterations


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "triangular2"},
        {"mode": "exp_range", "gamma": 0.99},
        {"step_size_down": 9, "cycle_momentum": True},
        {"scale_fn": SEED_SCALE_FNS["sine-cycle"][0], "cycle_momentum": True,
         "optimizer": "adam"},
        {"step_size_up": 2.5, "step_size_down": 3.5, "mode": "triangular2"},
    ],
)
def test_torch_cyclic_at_is_what_stepping_gives(kwargs: dict[str, Any]) -> None:
    kwargs = {"step_size_up": 5, **kwargs}
    stepped = torch_cyclic(150, 0.001, 0.006, **kwargs)
    jumped = torch_cyclic_at(range(150), 0.001, 0.006, **kwargs)
    np.testing.assert_array_equal(jumped[0], stepped[0])
    if kwargs.get("cycle_momentum"):
        np.testing.assert_array_equal(jumped[1], stepped[1])
    # Order does not matter: no state is carried from one jump to the next.
    backwards = torch_cyclic_at(range(149, -1, -1), 0.001, 0.006, **kwargs)
    np.testing.assert_array_equal(backwards[0][::-1], stepped[0])


@pytest.mark.parametrize(("mode", "gamma"), [*MODES, ("exp_range", 0.9999999)])
@pytest.mark.parametrize("step_size", [2000, 2048])
def test_huge_iterations_agree(mode: str, gamma: float, step_size: int) -> None:
    its = np.array([i + d for i in HUGE for d in (0, 1, step_size // 2 + 1, step_size)],
                   dtype=np.int64)
    its = its[its < 2**31]
    if mode == "triangular2":
        # torch's 2.0 ** (cycle - 1) overflows from cycle 1026; the seed's numpy gives inf,
        # so an amplitude of 0 and exactly base_lr.
        late = its[its >= 2050 * step_size]
        assert late.size and np.all(seed_rates(late, 0.001, 0.006, step_size, mode) == 0.001)
        with pytest.raises(OverflowError):
            torch_cyclic_at(late[:1], 0.001, 0.006, step_size, mode=mode)
        its = its[its < 2050 * step_size]
    lr, momentum = torch_cyclic_at(its, 0.001, 0.006, step_size, mode=mode, gamma=gamma,
                                   cycle_momentum=True)
    seed = seed_rates(its, 0.001, 0.006, step_size, mode, gamma)
    assert_agree(lr, seed, 0.005, its.astype(float), 2 * step_size)
    assert_agree(momentum, seed_momenta(its, 0.8, 0.9, step_size, None, mode, gamma), 0.1,
                 its.astype(float), 2 * step_size)
    if step_size == 2048:  # exact positions: identical
        np.testing.assert_array_equal(lr, seed)
    if mode == "triangular":
        assert len(set(np.round(lr, 12))) > 2  # the points are spread over the cycle


# ------------------------------------------------------------------------------- 1cycle


def one_cycle_by_hand(t: int, max_lr: float, total: int, pct: float, strategy: str,
                      div: float, final_div: float, three_phase: bool,
                      base_m: float, max_m: float) -> tuple[float, float]:
    """Smith's 1cycle as torch documents it, phase by phase."""
    initial = max_lr / div
    low = initial / final_div
    up_end = pct * total - 1
    if three_phase:
        phases = [(up_end, initial, max_lr, max_m, base_m),
                  (2 * pct * total - 2, max_lr, initial, base_m, max_m),
                  (total - 1, initial, low, max_m, max_m)]
    else:
        phases = [(up_end, initial, max_lr, max_m, base_m), (total - 1, max_lr, low, base_m, max_m)]

    def anneal(a: float, b: float, f: float) -> float:
        if strategy == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * f) + 1)
        return (b - a) * f + a

    start = 0.0
    for i, (end, lr_a, lr_b, m_a, m_b) in enumerate(phases):
        if t <= end or i == len(phases) - 1:
            f = (t - start) / (end - start)
            return anneal(lr_a, lr_b, f), anneal(m_a, m_b, f)
        start = end
    raise AssertionError


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize(("total", "pct"), [(100, 0.3), (37, 0.25), (1000, 0.45)])
def test_one_cycle_by_hand(strategy: str, three_phase: bool, total: int, pct: float) -> None:
    args = {"pct_start": pct, "anneal_strategy": strategy, "div_factor": 25.0,
            "final_div_factor": 1e4, "three_phase": three_phase}
    lr, momentum = torch_one_cycle(total, 0.1, total, **args)
    assert momentum is not None
    hand = np.array([one_cycle_by_hand(t, 0.1, total, pct, strategy, 25.0, 1e4, three_phase,
                                       0.85, 0.95) for t in range(total)])
    np.testing.assert_allclose(lr, hand[:, 0], rtol=1e-14, atol=1e-18)
    np.testing.assert_allclose(momentum, hand[:, 1], rtol=1e-14)
    # The landmarks: start, peak, end.
    assert lr[0] == pytest.approx(0.1 / 25.0, rel=1e-15)
    assert momentum[0] == 0.95
    peak = pct * total - 1
    if peak == int(peak):
        assert lr[int(peak)] == pytest.approx(0.1, rel=1e-15)
        assert momentum[int(peak)] == pytest.approx(0.85, rel=1e-15)
        assert lr.argmax() == int(peak)
    assert lr[-1] == pytest.approx(0.1 / 25.0 / 1e4, rel=1e-12)
    assert momentum[-1] == pytest.approx(0.95, rel=1e-15)


def test_one_cycle_jumps_prefixes_and_limits() -> None:
    full = torch_one_cycle(500, 0.05, 500, pct_start=0.2, optimizer="adam")
    part = torch_one_cycle(123, 0.05, 500, pct_start=0.2, optimizer="adam")
    np.testing.assert_array_equal(part[0], full[0][:123])
    jumped = torch_one_cycle_at([0, 99, 250, 499], 0.05, 500, pct_start=0.2, optimizer="adam")
    np.testing.assert_array_equal(jumped[0], full[0][[0, 99, 250, 499]])
    np.testing.assert_array_equal(jumped[1], full[1][[0, 99, 250, 499]])
    assert full[0][99] == pytest.approx(0.05) and full[1][99] == pytest.approx(0.85)
    assert torch_one_cycle(10, 0.05, 10, cycle_momentum=False)[1] is None
    with pytest.raises(ValueError, match="total_steps"):
        torch_one_cycle(11, 0.05, 10)
    with pytest.raises(ValueError, match="total_steps"):
        torch_one_cycle_at([11], 0.05, 10)


# ------------------------------------------------------------------- the stored values


def test_the_stored_values_are_what_torch_computes_now() -> None:
    """tests/torch_oracle.json, read by every run, is what the script writes today."""
    text = oracles.DATA.read_text(encoding="utf-8")
    stored = json.loads(text)
    fresh = torch_oracle.generate({"function": case["function"], "args": case["args"]}
                                  for case in stored["cases"])
    problems = torch_oracle.differences(stored, fresh)
    assert not problems, f"{len(problems)} stored cases differ from torch's values now: " \
        f"{problems[:3]}; rerun python tests/torch_oracle.py"
    fresh["torch"] = stored["torch"]  # the build (+cpu or not) does not change the numbers
    assert torch_oracle.dumps(fresh) == text, "rerun python tests/torch_oracle.py"


def test_the_stored_oracles_give_torchs_values() -> None:
    """The data-backed oracles of tests/oracles.py against torch itself, for calls the
    suite makes: a custom scale_fn (stored as its values), jumps and 1cycle."""

    def decay(x: Any) -> Any:  # as tests/test_xla.py calls it
        return 1 / (5.0 ** (np.float64(x) * 0.05))

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("torch_cyclic", (24, 0.01, 0.05, 3), {"scale_fn": decay, "scale_mode": "iterations"}),
        ("torch_cyclic_at", ([10, 20], 0.001, 0.006, 4), {"mode": "triangular2"}),
        ("torch_one_cycle", (12, 0.05, 12), {}),
        ("torch_one_cycle_at", ([998, 999], 0.1, 1000),
         {"cycle_momentum": False, "three_phase": True}),
    ]
    for name, args, kwargs in calls:
        stored = getattr(oracles, name)(*args, **kwargs)
        live = getattr(torch_oracle, name)(*args, **kwargs)
        np.testing.assert_array_equal(stored[0], live[0])
        assert (stored[1] is None) == (live[1] is None)
        if live[1] is not None:
            np.testing.assert_array_equal(stored[1], live[1])


def test_a_call_not_stored_says_how_to_add_it() -> None:
    with pytest.raises(LookupError, match=r"torch_oracle\.py --add"):
        oracles.torch_cyclic(5, 0.123, 0.456, 7)


def test_the_stored_signature_is_one_cycle_lrs() -> None:
    theirs = inspect.signature(torch.optim.lr_scheduler.OneCycleLR).parameters
    stored = oracles.torch_one_cycle_parameters()
    assert list(stored) == list(theirs)
    assert all(stored[name].default == theirs[name].default for name in theirs)
