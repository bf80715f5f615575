"""Fuzzing the two entry points that take untrusted input.

``CyclicalSchedule.from_config`` reads configs out of saved files and ``CyclicLR``
takes whatever a user script passes. Every input must either work or raise a
:class:`ClrplugError` (which is also a ``ValueError``) with a message; nothing else
may escape (``AttributeError``, ``KeyError``, ``OverflowError``, ``ZeroDivisionError``...).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clrplug import CyclicalSchedule, CyclicLR
from clrplug.errors import ClrplugError

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

REAL_CONFIG = CyclicalSchedule(0.001, 0.006, 2000, mode="exp_range", gamma=0.99).get_config()
KEYS = sorted({*REAL_CONFIG, "gamma", "scale_mode", "scale_fn", "__lambda__", "config"})
NAMES = ["triangular", "triangular2", "exp_range", "cycle", "iterations", "gamma", "clrplug",
         "base_lr", "__lambda__", "Exp-Range", ""]

# Numbers at the edges; ints beyond the float range are in test_numbers_beyond_float_range.
numbers = st.one_of(
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 1e308, 5e-324, -0.0, 1e-300, 3.5e38,
                     math.nan, math.inf, -math.inf]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=10), st.sampled_from(NAMES))
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8))
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=8,
)


def exercise(schedule: CyclicalSchedule) -> None:
    """What a loaded or new schedule goes through before training (host side)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schedule.values_at(np.arange(3) + max(schedule.cycle_start, 0))
    again = CyclicalSchedule.from_config(schedule.get_config())
    assert again.get_config() == schedule.get_config()


def refused_cleanly(exc: Exception) -> None:
    event(f"refused: {type(exc).__name__}")
    assert isinstance(exc, ClrplugError) and isinstance(exc, ValueError), repr(exc)
    assert str(exc).strip()


# Values a tampered or corrupted file plausibly holds: the right type under each real key
# (so the checks past the type check are reached), and sometimes anything.
ints = st.one_of(st.integers(-5, 10**7), st.integers(), st.sampled_from([2**31, 2**63, 2**64]))
bounds = st.fixed_dictionaries({"base_lr": numbers, "max_lr": numbers, "step_size": numbers})
TYPED = {
    "base_lr": numbers, "max_lr": numbers, "step_size": numbers, "gamma": numbers,
    "mode": st.one_of(st.sampled_from(NAMES), st.text(max_size=10)),
    "scale_mode": st.sampled_from(["cycle", "iterations", None, "epochs"]),
    "policy_params": st.one_of(st.none(), st.dictionaries(
        st.sampled_from(["gamma", "level", "", "0"]), numbers, max_size=2)),
    "cycle_start": ints, "accumulation_steps": ints,
    "step_size_down": st.one_of(st.none(), numbers), "waveform": st.one_of(st.sampled_from(["cosine", "welch", "triangular"]), st.text(max_size=6)),
    "hold": st.booleans(), "held_lr": numbers, "held_momentum": numbers, "cycle_momentum": st.booleans(),
    "distribution": st.one_of(st.none(), st.sampled_from(["clrplug", "clrplug-x", ""])),
    "origin": st.one_of(st.none(), bounds,
                        st.dictionaries(st.sampled_from(["base_lr", "max_lr", "x"]), numbers)),
    "name": st.text(max_size=10),
}
changes = st.one_of(
    st.fixed_dictionaries({}, optional=TYPED),
    st.fixed_dictionaries({}, optional={k: st.one_of(v, json_like) for k, v in TYPED.items()}),
    st.dictionaries(keys, json_like, max_size=6),
)


@FUZZ
@given(changes=changes, start_from_real=st.booleans())
def test_from_config_works_or_refuses_cleanly(
    changes: dict[str, Any], start_from_real: bool
) -> None:
    config = {**REAL_CONFIG, **changes} if start_from_real else changes
    try:
        schedule = CyclicalSchedule.from_config(config)
        exercise(schedule)
        event("accepted")
    except ClrplugError as exc:
        refused_cleanly(exc)


@FUZZ
@given(config=json_like)
def test_from_config_with_anything_at_all(config: Any) -> None:
    try:
        CyclicalSchedule.from_config(config)
    except ClrplugError as exc:
        refused_cleanly(exc)


SCALE_FNS = [
    lambda x: 0.5, lambda x: x, lambda x: 1 / x, lambda x: np.exp(-x), lambda x: "0.5",
    lambda x: None, lambda x: np.ones(2), lambda x: x * np.nan, lambda: 1.0, lambda x, y: 1.0,
    lambda x: 1 / 0, lambda x: {}[x], lambda x: [[0.5]], lambda x: np.array(["a"]),
    lambda x: 10**400, lambda x: complex(0.5, 0), lambda x: x.astype(object) * 0,
    lambda x: np.full(x.shape, 0.5, dtype=np.float16), np.cos, np.ones_like, abs, len, max, object,
    repr, 3, "lambda x: 1",
]
ARGUMENTS = ("base_lr", "max_lr", "step_size", "mode", "gamma", "scale_fn", "scale_mode",
             "policy_params")


@FUZZ
@given(
    values=st.fixed_dictionaries(
        {name: json_like for name in ARGUMENTS if name != "scale_fn"},
    ),
    sane=st.fixed_dictionaries({
        "base_lr": st.floats(0, 0.01), "max_lr": st.floats(0.01, 1), "step_size": st.integers(1, 10**6),
        "mode": st.sampled_from(["triangular", "triangular2", "exp_range"]),
        "gamma": st.floats(0.5, 1), "scale_mode": st.sampled_from(["cycle", "iterations"]),
        "policy_params": st.sampled_from([{}, {"gamma": 0.9}]),
    }),
    scale_fn=st.sampled_from([None, *SCALE_FNS]),
    wild=st.sets(st.sampled_from(ARGUMENTS)),
    given_=st.sets(st.sampled_from(ARGUMENTS)),
)
def test_cyclic_lr_works_or_refuses_cleanly(
    values: dict[str, Any], sane: dict[str, Any], scale_fn: Any, wild: set[str],
    given_: set[str],
) -> None:
    # Mix wild values into otherwise plausible arguments, so the deeper checks are reached.
    kwargs = {name: values[name] if name in wild else sane[name]
              for name in given_ if name != "scale_fn"}
    if "scale_fn" in given_:
        kwargs["scale_fn"] = scale_fn
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clr = CyclicLR(**kwargs)
            clr.schedule.values_at([0, 1, 7, 10**6])
        event("accepted")
    except ClrplugError as exc:
        refused_cleanly(exc)


HUGE = 10**400  # a JSON integer literal with 401 digits parses to this


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: CyclicLR(base_lr=HUGE), id="CyclicLR-base_lr"),
        pytest.param(lambda: CyclicLR(max_lr=HUGE), id="CyclicLR-max_lr"),
        pytest.param(lambda: CyclicLR(step_size=-HUGE), id="CyclicLR-step_size"),
        pytest.param(lambda: CyclicLR(mode="exp_range", gamma=HUGE), id="CyclicLR-gamma"),
        pytest.param(lambda: CyclicLR(mode="exp_range", policy_params={"gamma": HUGE}),
                     id="CyclicLR-policy_params"),
        pytest.param(lambda: CyclicalSchedule.from_config({**REAL_CONFIG, "max_lr": HUGE}),
                     id="from_config-max_lr"),
        pytest.param(lambda: CyclicalSchedule.from_config(
            {**REAL_CONFIG, "origin": {"base_lr": 0.001, "max_lr": 0.006, "step_size": HUGE}}),
            id="from_config-origin"),
    ],
)
def test_numbers_beyond_float_range_are_refused_cleanly(make: Any) -> None:
    with pytest.raises(ClrplugError) as info:
        make()
    assert isinstance(info.value, ValueError) and str(info.value).strip()
