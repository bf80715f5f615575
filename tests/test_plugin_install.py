"""The whole ``pip install`` a policy plugin path, not mocked.

A throwaway distribution is written to a temporary folder, built and installed by
pip (``--target`` a temporary directory put on ``sys.path``, so the running
environment is left alone), then used by name: resolved, listed by
``clrplug policies``, checked with the conformance kit, and trained with
``CyclicLR`` on the current Keras backend at exactly :func:`clrplug.learning_rates`.
It provides one policy through each route: the pluggy hook (group ``clrplug``)
and a direct entry point (group ``clrplug.policies``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import clrplug
from clrplug.registry import Registry
from clrplug.testing import applied_rates, check_policy, policies_of

DIST, VERSION, MODULE = "clrplug-throwaway", "0.0.1", "clrplug_throwaway"

PYPROJECT = f"""
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST}"
version = "{VERSION}"
dependencies = ["clrplug"]

[project.entry-points.clrplug]
throwaway = "{MODULE}.hook"

[project.entry-points."clrplug.policies"]
throwaway_decay = "{MODULE}.direct:throwaway_decay"

[tool.setuptools]
packages = ["{MODULE}"]
"""

HOOK = """
import numpy as np
import clrplug


def wave(x, period=4.0):
    return 0.5 * (1 + np.cos(2 * np.pi * (x - 1) / period))


@clrplug.hookimpl
def clrplug_register_policies(register):
    register(clrplug.Policy("throwaway_wave", wave, "cycle", params={"period": 4.0},
                            description="cosine amplitude over the cycles"))
"""

DIRECT = """
import clrplug


def decay(x, halflife=1000.0):
    return 1 / (1 + x / halflife)


throwaway_decay = clrplug.Policy("throwaway_decay", decay, "iterations",
                                 params={"halflife": 1000.0})
"""


def _wave(cycle, period):
    return 0.5 * (1 + np.cos(2 * np.pi * (cycle - 1) / period))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The throwaway distribution, built and installed by pip into a fresh directory."""
    root = tmp_path_factory.mktemp("throwaway")
    project = root / DIST
    package = project / MODULE
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (package / "__init__.py").write_text("")
    (package / "hook.py").write_text(textwrap.dedent(HOOK))
    (package / "direct.py").write_text(textwrap.dedent(DIRECT))
    target = root / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
            "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
            str(project),
        ],
        check=True,
    )
    yield target
    for name in [m for m in sys.modules if m == MODULE or m.startswith(MODULE + ".")]:
        del sys.modules[name]


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: Registry) -> Path:
    """The install directory on ``sys.path`` and a registry that has not loaded yet."""
    monkeypatch.syspath_prepend(str(site))
    return site


def test_pip_installed_the_distribution(site):
    infos = sorted(p.name for p in site.glob("*.dist-info"))
    assert infos == [f"{MODULE}-{VERSION}.dist-info"]
    assert (site / MODULE / "hook.py").exists()


def test_both_routes_resolve_by_name_with_their_source(installed):
    assert policies_of(DIST) == ["throwaway_decay", "throwaway_wave"]
    wave = clrplug.get_policy("throwaway_wave")
    decay = clrplug.get_policy("throwaway-decay")  # names normalise as on registration
    assert (wave.scale_mode, dict(wave.params)) == ("cycle", {"period": 4.0})
    assert (decay.scale_mode, dict(decay.params)) == ("iterations", {"halflife": 1000.0})
    for policy, entry_point in ((wave, "clrplug:throwaway"),
                                (decay, "clrplug.policies:throwaway_decay")):
        assert policy.source.kind == "plugin"
        assert (policy.source.distribution, policy.source.version) == (DIST, VERSION)
        assert policy.source.entry_point == entry_point
        assert str(policy.source) == f"{DIST} {VERSION}"
    assert clrplug.list_plugin_failures() == []


@pytest.mark.parametrize("name", ["throwaway_wave", "throwaway_decay"])
def test_passes_the_conformance_kit(installed, name):
    check_policy(name)


def test_conformance_kit_with_parameters(installed):
    check_policy("throwaway_wave", params={"period": 3.0})
    check_policy("throwaway_decay", params={"halflife": 1.0})


def test_clrplug_policies_lists_them_with_the_distribution(installed):
    env = dict(os.environ, PYTHONPATH=str(installed))
    for key in ("CLRPLUG_DISABLE_PLUGIN_AUTOLOAD", "CLRPLUG_PLUGINS"):
        env.pop(key, None)
    run = subprocess.run(
        [sys.executable, "-m", "clrplug", "policies", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )
    rows = {row["name"]: row for row in json.loads(run.stdout)}
    for name in ("throwaway_wave", "throwaway_decay"):
        assert rows[name]["distribution"] == DIST
        assert rows[name]["version"] == VERSION
        assert rows[name]["source"] == f"{DIST} {VERSION}"
        assert rows[name]["status"] == "ok"
    table = subprocess.run(
        [sys.executable, "-m", "clrplug", "policies"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    line = next(row for row in table.splitlines() if row.split()[:2] == ["policy", "throwaway_wave"])
    assert f"{DIST} {VERSION}" in line and "period=4" in line


def test_switches_turn_it_off(installed):
    assert "throwaway_wave" in Registry(environ={"CLRPLUG_PLUGINS": DIST}).names()
    for environ in (
        {"CLRPLUG_PLUGINS": ""},
        {"CLRPLUG_PLUGINS": "clrplug-other"},
        {"CLRPLUG_DISABLE_PLUGIN_AUTOLOAD": "1"},
    ):
        names = Registry(environ=environ).names()
        assert "throwaway_wave" not in names and "throwaway_decay" not in names
        assert "triangular" in names


def test_cyclic_lr_trains_by_name_through_the_hook(installed):
    clr = clrplug.CyclicLR(
        base_lr=0.001, max_lr=0.006, step_size=5, mode="throwaway_wave",
        policy_params={"period": 3.0},
    )
    lr = applied_rates(clr, steps=30)
    steps = np.arange(30)
    expected = clrplug.learning_rates(
        steps, 0.001, 0.006, 5, mode="throwaway_wave", policy_params={"period": 3.0}
    )
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)
    # and the formula is the plugin's: amplitudes 1, 0.25, 0.25, 1 over cycles 1..4
    cycle = np.floor(1 + steps / 10)
    triangle = np.maximum(0, 1 - np.abs(steps / 5 - 2 * cycle + 1))
    np.testing.assert_allclose(expected, 0.001 + 0.005 * triangle * _wave(cycle, 3.0), rtol=1e-12)


def test_cyclic_lr_trains_by_name_through_the_direct_entry_point(installed):
    clr = clrplug.CyclicLR(base_lr=0.001, max_lr=0.006, step_size=5, mode="throwaway_decay",
                           policy_params={"halflife": 10.0})
    lr = applied_rates(clr, steps=30)
    steps = np.arange(30)
    expected = clrplug.learning_rates(
        steps, 0.001, 0.006, 5, mode="throwaway_decay", policy_params={"halflife": 10.0}
    )
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)
    cycle = np.floor(1 + steps / 10)
    triangle = np.maximum(0, 1 - np.abs(steps / 5 - 2 * cycle + 1))
    np.testing.assert_allclose(expected, 0.001 + 0.005 * triangle / (1 + steps / 10.0),
                               rtol=1e-12)
