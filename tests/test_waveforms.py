"""Waveforms: the built-ins against their formulas, plugin waveforms by name, the kit.

Each waveform maps the cycle's linear rise ``t`` (0 at the cycle's ends, 1 at its
peak) to the height used: ``lr = base_lr + (max_lr - base_lr) * shape(t) * scale``.
The formulas and the cycle's geometry (PyTorch's rise over ``step_size`` and fall
over ``step_size_down``) are written out in this file; applied rates are read from real
weight updates by the rate probe (tests/probe.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from probe import fit_probe, rate_probe_model
from recording import assert_applied

import clrplug
from clrplug import CyclicalSchedule, CyclicLR, Waveform
from clrplug.cli import main as cli_main
from clrplug.errors import PolicyEvaluationError, UnknownNameError
from clrplug.registry import Registry
from clrplug.testing import PROPERTIES, PolicyConformanceError, check_waveform, waveforms_of

BACKEND = keras.backend.backend()

#: Each built-in waveform's formula, as its description states it.
FORMULAS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "triangular": lambda t: t,
    "cosine": lambda t: (1.0 - np.cos(np.pi * t)) / 2.0,  # Hann window
    "welch": lambda t: 1.0 - (1.0 - t) ** 2,  # parabolic
}


def rise(k: Any, up: float, down: float) -> tuple[np.ndarray, np.ndarray]:
    """Cycle number and linear rise at cycle iterations ``k``, one iteration at a time."""
    cycles, ts = [], []
    for it in np.asarray(k, dtype=np.float64).ravel():
        cycle = math.floor(1 + it / (up + down))
        position = it - (cycle - 1) * (up + down)  # iterations into this cycle
        ts.append(position / up if position <= up else (up + down - position) / down)
        cycles.append(cycle)
    return np.array(cycles, dtype=np.float64), np.array(ts)


def transcribed(k: Any, base: float, top: float, up: float, down: float,
                shape: Callable[[np.ndarray], np.ndarray],
                scale: Callable[[np.ndarray], np.ndarray] = lambda c: np.ones_like(c)) -> np.ndarray:
    cycle, t = rise(k, up, down)
    return base + (top - base) * shape(t) * scale(cycle)


def halving(cycle: np.ndarray) -> np.ndarray:
    """triangular2's amplitude, 1 / 2**(cycle - 1)."""
    return 0.5 ** (cycle - 1)


# -- the built-ins against their formulas ------------------------------------------------------

T = np.concatenate([np.linspace(0.0, 1.0, 1001), np.geomspace(1e-9, 1e-2, 50)])


@pytest.mark.parametrize("name", list(FORMULAS))
def test_builtin_shape_is_its_formula(name: str) -> None:
    waveform = clrplug.get_waveform(name)
    assert waveform.source.kind == "builtin"
    np.testing.assert_allclose(waveform.shape(T), FORMULAS[name](T), rtol=1e-12, atol=1e-15)
    assert waveform.shape(np.array([0.0, 1.0])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("name", list(FORMULAS))
def test_builtin_keras_twin_is_its_formula_on_this_backend(name: str) -> None:
    waveform = clrplug.get_waveform(name)
    t32 = T.astype(np.float32)
    got = np.asarray(keras.ops.convert_to_numpy(waveform.ops_fn(keras.ops.convert_to_tensor(t32))),
                     dtype=np.float64)
    np.testing.assert_allclose(got, FORMULAS[name](t32.astype(np.float64)), rtol=2e-6, atol=1e-12)


@pytest.mark.parametrize("down", [None, 3.0], ids=["symmetric", "asymmetric"])
@pytest.mark.parametrize("name", list(FORMULAS))
def test_learning_rates_with_a_waveform_is_the_formula(name: str, down: float | None) -> None:
    k = np.arange(60)
    got = clrplug.learning_rates(k, 0.001, 0.006, 5, "triangular2", step_size_down=down,
                                 waveform=name)
    expected = transcribed(k, 0.001, 0.006, 5, down or 5, FORMULAS[name], halving)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", list(FORMULAS))
def test_applied_rates_follow_the_waveform(name: str) -> None:
    clr = CyclicLR(0.01, 0.05, 4, mode="triangular2", step_size_down=3, waveform=name)
    assert clr.waveform == name
    run = fit_probe(rate_probe_model(), 10, [clr], epochs=2)
    expected = transcribed(np.arange(20), 0.01, 0.05, 4, 3, FORMULAS[name], halving)
    assert_applied(run, expected, nan_ok=0)
    np.testing.assert_allclose(clr.history["lr"], expected, rtol=1e-12)


@pytest.mark.parametrize("name", list(FORMULAS))
def test_standalone_schedule_with_a_waveform_is_exact_at_huge_steps(name: str) -> None:
    schedule = CyclicalSchedule(0.001, 0.006, 2000, step_size_down=1500, waveform=name)
    steps = [0, 1, 1999, 2000, 2001, 3499, 3500, 3501, 10**6 + 17, 10**8 + 1234, 2**31 - 100]
    got = np.array([float(keras.ops.convert_to_numpy(schedule(s))) for s in steps])
    expected = transcribed(steps, 0.001, 0.006, 2000, 1500, FORMULAS[name])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-12 * 0.006)


# -- plugin waveforms ------------------------------------------------------------------------------

ENTRY_POINT_PLUGIN = """
import clrplug

def smoothstep(t):
    return t * t * (3.0 - 2.0 * t)

SMOOTHSTEP = clrplug.Waveform("smoothstep", smoothstep, smoothstep,
                              description="Hermite smoothstep 3t^2 - 2t^3.")
"""

HOOK_PLUGIN = """
import numpy as np
import clrplug

def quarter_sine(t):
    return np.sin(t * (np.pi / 2.0))

def quarter_sine_ops(t):
    from keras import ops  # only when a schedule uses it
    return ops.sin(t * (np.pi / 2.0))

@clrplug.hookimpl
def clrplug_register_policies(register):
    register(clrplug.Waveform("quarter_sine", quarter_sine, quarter_sine_ops,
                              description="sin(pi t / 2)."))
"""

PLUGIN_FORMULAS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "smoothstep": lambda t: 3 * t**2 - 2 * t**3,
    "quarter_sine": lambda t: np.sin(np.pi * t / 2),
}


def install_plugins(fake_dist: Callable[..., Path]) -> None:
    fake_dist("clrplug-smooth", "1.4", {"smooth_wave": ENTRY_POINT_PLUGIN},
              {"clrplug.policies": {"smoothstep": "smooth_wave:SMOOTHSTEP"}})
    fake_dist("clrplug-sines", "0.2", {"sine_wave": HOOK_PLUGIN},
              {"clrplug": {"sines": "sine_wave"}})


@pytest.mark.parametrize(("name", "distribution", "version", "entry_point"), [
    ("smoothstep", "clrplug-smooth", "1.4", "clrplug.policies:smoothstep"),
    ("quarter_sine", "clrplug-sines", "0.2", "clrplug:sines"),
])
def test_a_plugin_waveform_is_used_by_name(
    fresh_registry: Registry, fake_dist: Callable[..., Path], name: str, distribution: str,
    version: str, entry_point: str,
) -> None:
    install_plugins(fake_dist)
    waveform = clrplug.get_waveform(name)
    assert (waveform.source.distribution, waveform.source.version) == (distribution, version)
    assert waveform.source.entry_point == entry_point
    assert name in [w.name for w in clrplug.list_waveforms()]
    assert waveforms_of(distribution) == [name]
    clr = CyclicLR(0.01, 0.05, 3, step_size_down=4, waveform=name)
    run = fit_probe(rate_probe_model(), 7, [clr], epochs=3)
    expected = transcribed(np.arange(21), 0.01, 0.05, 3, 4, PLUGIN_FORMULAS[name])
    assert_applied(run, expected, nan_ok=0)
    check_waveform(name)  # a good plugin waveform passes the kit


def test_clrplug_policies_lists_plugin_waveforms(
    fresh_registry: Registry, fake_dist: Callable[..., Path], capsys: pytest.CaptureFixture[str],
) -> None:
    install_plugins(fake_dist)
    assert cli_main(["policies", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for name, distribution, version in [("smoothstep", "clrplug-smooth", "1.4"),
                                        ("quarter_sine", "clrplug-sines", "0.2")]:
        [row] = [r for r in rows if r["name"] == name]
        assert row["record"] == "waveform" and row["status"] == "ok"
        assert (row["distribution"], row["version"]) == (distribution, version)
        assert row["source"] == f"{distribution} {version}" and row["kind"] == "plugin"
    builtin = {r["name"] for r in rows if r["record"] == "waveform" and r["kind"] == "builtin"}
    assert builtin == set(FORMULAS)
    assert cli_main(["policies"]) == 0
    table = capsys.readouterr().out.splitlines()
    [line] = [line for line in table if " smoothstep " in line]
    assert line.split()[0] == "waveform" and "clrplug-smooth 1.4" in line and line.endswith("ok")


def test_an_unknown_waveform_lists_the_known_ones(fresh_registry: Registry) -> None:
    with pytest.raises(UnknownNameError, match=r"cosine, triangular, welch"):
        CyclicLR(waveform="sawtooth")


def test_a_waveform_whose_twin_disagrees_is_refused_by_the_schedule(fresh_registry: Registry) -> None:
    clrplug.register_policy(Waveform("skewed", lambda t: t * t, lambda t: t * t * (1 + 1e-3 * (1 - t))))
    with pytest.raises(PolicyEvaluationError, match=r"keras\.ops twin \(ops_fn\) of waveform 'skewed'"):
        CyclicLR(waveform="skewed")


# -- the conformance kit -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMULAS))
def test_builtin_waveforms_pass_the_kit(name: str) -> None:
    check_waveform(name)


def _ops_sin(t: Any) -> Any:
    return keras.ops.sin(t * math.pi)


BAD_WAVEFORMS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any], str, str]] = {
    "not-0-at-0": (lambda t: 0.1 + 0.9 * t, lambda t: 0.1 + 0.9 * t, "ends", "shape(0) = "),
    "not-1-at-1": (lambda t: 0.5 * t, lambda t: 0.5 * t, "ends", "shape(1) = "),
    "above-1": (lambda t: t + 0.5 * np.sin(np.pi * t), lambda t: t + 0.5 * _ops_sin(t), "range",
                "within [0, 1]"),
    "below-0": (lambda t: t - 0.5 * np.sin(np.pi * t), lambda t: t - 0.5 * _ops_sin(t), "range",
                "within [0, 1]"),
    "twin-disagrees": (lambda t: t * t, lambda t: t * t * (1 + 1e-3 * (1 - t)), "twin",
                       "keras.ops twin"),
}


@pytest.mark.parametrize("case", list(BAD_WAVEFORMS))
def test_the_kit_rejects_a_bad_waveform_naming_the_property(case: str) -> None:
    shape, twin, prop, evidence = BAD_WAVEFORMS[case]
    name = case.replace("-", "_")
    with pytest.raises(PolicyConformanceError) as info:
        check_waveform(Waveform(name, shape, twin))
    error = info.value
    assert error.property == prop and error.kind == "waveform" and error.policy == name
    message = str(error)
    assert message.startswith(f"waveform {name!r} ")
    assert PROPERTIES[prop] in message and evidence in message


def test_the_kits_ends_evidence_shows_plain_numbers() -> None:
    with pytest.raises(PolicyConformanceError) as info:
        check_waveform(Waveform("lifted", lambda t: 0.1 + 0.9 * t, lambda t: 0.1 + 0.9 * t))
    assert str(info.value).endswith("shape(0) = 0.1, shape(1) = 1.0")


def test_the_schedules_ends_message_shows_plain_numbers(fresh_registry: Registry) -> None:
    clrplug.register_policy(Waveform("lifted", lambda t: 0.1 + 0.9 * t, lambda t: 0.1 + 0.9 * t))
    with pytest.raises(PolicyEvaluationError, match=r"gives 0\.1 at t=0 and 1\.0 at t=1"):
        CyclicLR(waveform="lifted")


def test_the_kit_names_the_plugin_that_provides_a_bad_waveform(
    fresh_registry: Registry, fake_dist: Callable[..., Path]
) -> None:
    source = ("import clrplug\n"
              "HALF = clrplug.Waveform('half_height', lambda t: 0.5 * t, lambda t: 0.5 * t)\n")
    fake_dist("clrplug-half", "0.9", {"half_wave": source},
              {"clrplug.policies": {"half_height": "half_wave:HALF"}})
    with pytest.raises(PolicyConformanceError, match=r"waveform 'half_height' \(from clrplug-half "
                       r"0\.9\): must be 0 at the cycle's ends \(t=0\) and 1 at its peak"):
        check_waveform("half_height")
