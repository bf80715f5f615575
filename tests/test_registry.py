"""The registry: built-ins through the hook, both entry-point groups, failures, switches."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import clrplug
from clrplug import Policy
from clrplug.cli import main as cli_main
from clrplug.errors import InvalidPolicyError, PolicyConflictError, UnknownPolicyError
from clrplug.registry import PluginLoadWarning, Registry

HOOK_PLUGIN = """
import numpy as np
import clrplug

@clrplug.hookimpl
def clrplug_register_policies(register):
    register(clrplug.Policy("wave", lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0))))
    register(clrplug.Policy("flat_half", lambda x, level=0.5: np.full_like(x, level),
                            params={"level": 0.5}, scale_mode="iterations"))
"""

DIRECT_PLUGIN = """
import clrplug
POLICY = clrplug.Policy("slow_decay", lambda x, base=5.0, rate=1e-4: 1 / (base ** (x * rate)),
                        scale_mode="iterations", params={"base": 5.0, "rate": 1e-4})
"""


def install_both(fake_dist: Callable[..., Path]) -> None:
    fake_dist("clrplug-wave", "1.2", {"wave_plugin": HOOK_PLUGIN},
              {"clrplug": {"wave": "wave_plugin"}})
    fake_dist("clrplug-slow", "0.3", {"slow_plugin": DIRECT_PLUGIN},
              {"clrplug.policies": {"slow_decay": "slow_plugin:POLICY"}})


def test_builtins_register_through_the_hook(fresh_registry: Registry) -> None:
    names = {p.name: p for p in clrplug.list_policies()}
    assert {"triangular", "triangular2", "exp_range"} <= set(names)
    assert names["triangular"].scale_mode == "cycle"
    assert names["triangular2"].scale_mode == "cycle"
    assert names["exp_range"].scale_mode == "iterations"
    assert dict(names["exp_range"].params) == {"gamma": 1.0}
    assert all(str(names[n].source) == "built-in" for n in ("triangular", "exp_range"))
    # The built-in module is an ordinary pluggy plugin.
    assert "clrplug.builtin" in [n for n, _ in fresh_registry.plugin_manager.list_name_plugin()]


def test_both_entry_point_groups_are_listed_with_their_distribution(
    fresh_registry: Registry, fake_dist: Callable[..., Path]
) -> None:
    install_both(fake_dist)
    wave = clrplug.get_policy("wave")
    assert (wave.source.distribution, wave.source.version) == ("clrplug-wave", "1.2")
    assert wave.source.entry_point == "clrplug:wave"
    slow = clrplug.get_policy("slow_decay")
    assert str(slow.source) == "clrplug-slow 0.3"
    assert clrplug.get_policy("flat_half").scale_mode == "iterations"
    np.testing.assert_allclose(
        clrplug.learning_rates([0, 1, 2], step_size=2, mode="slow_decay", policy_params={"rate": 0.5}),
        [0.001, 0.001 + 0.005 * 0.5 * 5**-0.5, 0.001 + 0.005 * 5**-1.0],
    )


def test_entry_points_load_lazily(fresh_registry: Registry, fake_dist: Callable[..., Path]) -> None:
    install_both(fake_dist)
    assert "wave_plugin" not in sys.modules
    clrplug.get_policy("triangular")
    assert "wave_plugin" in sys.modules


def test_import_loads_neither_keras_nor_plugins() -> None:
    code = "import sys, clrplug; print('keras' in sys.modules, clrplug.registry._default is None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_unknown_name_lists_every_name_and_suggests(fresh_registry: Registry) -> None:
    with pytest.raises(UnknownPolicyError) as info:
        clrplug.get_policy("triangle2")
    message = str(info.value)
    listed = message.split("Choose one of: ")[1].split(".")[0].split(", ")
    assert {"exp_range", "triangular", "triangular2"} <= set(listed) and listed == sorted(listed)
    assert "Did you mean 'triangular2'?" in message


def test_conflict_names_both_sources_and_spares_other_names(
    fresh_registry: Registry, fake_dist: Callable[..., Path]
) -> None:
    fake_dist("clrplug-a", "1.0", {"conf_a": HOOK_PLUGIN}, {"clrplug": {"a": "conf_a"}})
    fake_dist("clrplug-b", "2.0", {"conf_b": HOOK_PLUGIN.replace("flat_half", "other")},
              {"clrplug": {"b": "conf_b"}})
    with pytest.raises(PolicyConflictError, match=r"'wave': provided by clrplug-a 1\.0, clrplug-b 2\.0"):
        clrplug.get_policy("wave")
    assert clrplug.get_policy("flat_half").source.distribution == "clrplug-a"
    assert clrplug.get_policy("other").source.distribution == "clrplug-b"
    assert clrplug.get_policy("triangular2").name == "triangular2"


def test_a_plugin_shadowing_a_builtin_is_a_conflict(
    fresh_registry: Registry, fake_dist: Callable[..., Path]
) -> None:
    source = "import clrplug\nPOLICY = clrplug.Policy('triangular', lambda x: x * 0 + 1)\n"
    fake_dist("clrplug-evil", "1.0", {"evil": source},
              {"clrplug.policies": {"triangular": "evil:POLICY"}})
    with pytest.raises(PolicyConflictError, match=r"built-in, clrplug-evil 1\.0"):
        clrplug.get_policy("triangular")


@pytest.mark.parametrize(
    ("module", "error"),
    [
        ("import does_not_exist_anywhere\n", "ModuleNotFoundError"),
        ("import clrplug\n@clrplug.hookimpl\ndef clrplug_register_policies(register):\n"
         "    register(clrplug.Policy('half_done', lambda x: x * 0))\n"
         "    raise RuntimeError('hook broke')\n", "RuntimeError: hook broke"),
        ("import clrplug\n@clrplug.hookimpl\ndef clrplug_register_policies(register):\n"
         "    register('not a policy')\n", "InvalidPolicyError"),
        ("import clrplug\n@clrplug.hookimpl\ndef clrplug_register_policies(register, extra):\n"
         "    pass\n", "PluginValidationError"),
    ],
)
def test_a_broken_plugin_is_skipped_with_a_warning(
    fresh_registry: Registry, fake_dist: Callable[..., Path], module: str, error: str
) -> None:
    fake_dist("clrplug-broken", "0.1", {"broken_plugin": module},
              {"clrplug": {"broken": "broken_plugin"}})
    install_both(fake_dist)
    with pytest.warns(PluginLoadWarning, match=f"clrplug-broken 0.1 .*{error}"):
        names = [p.name for p in clrplug.list_policies()]
    assert "wave" in names and "slow_decay" in names and "triangular" in names
    assert "half_done" not in names  # nothing half-applied
    [failure] = clrplug.list_plugin_failures()
    assert failure.source.distribution == "clrplug-broken" and error in failure.error
    with pytest.raises(UnknownPolicyError, match="failed to load"):
        clrplug.get_policy("half_done")


def test_a_direct_entry_point_must_name_a_policy_of_that_name(
    fresh_registry: Registry, fake_dist: Callable[..., Path]
) -> None:
    source = "import clrplug\nPOLICY = clrplug.Policy('real_name', lambda x: x * 0)\nNOT = 3\n"
    fake_dist("clrplug-odd", "1.0", {"odd": source},
              {"clrplug.policies": {"other_name": "odd:POLICY", "three": "odd:NOT"}})
    with pytest.warns(PluginLoadWarning):
        fresh_registry.load()
    errors = {f.source.entry_point: f.error for f in clrplug.list_plugin_failures()}
    assert "differs from the policy's name 'real_name'" in errors["clrplug.policies:other_name"]
    assert "is a int, not a clrplug.Policy" in errors["clrplug.policies:three"]


def test_disable_autoload_keeps_builtins(
    fresh_registry: Registry, fake_dist: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    install_both(fake_dist)
    monkeypatch.setenv("CLRPLUG_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert [p.name for p in clrplug.list_policies()] == ["exp_range", "triangular", "triangular2"]


@pytest.mark.parametrize(("allow", "expected"), [
    ("clrplug_slow", {"slow_decay"}),
    ("clrplug-wave, Clrplug-Slow", {"slow_decay", "wave", "flat_half"}),
    ("", set()),
])
def test_allowlist_loads_only_named_distributions(
    fresh_registry: Registry, fake_dist: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch, allow: str, expected: set[str],
) -> None:
    install_both(fake_dist)
    monkeypatch.setenv("CLRPLUG_PLUGINS", allow)
    builtins = {"exp_range", "triangular", "triangular2"}
    assert {p.name for p in clrplug.list_policies()} == builtins | expected


def test_runtime_registration_call_and_decorator(fresh_registry: Registry) -> None:
    policy = clrplug.register_policy(Policy("Half-Way", lambda x: np.full_like(x, 0.5)))
    assert policy.name == "half_way" and str(policy.source) == "runtime"
    assert clrplug.get_policy("half_way") is policy

    @clrplug.register_policy(scale_mode="iterations", params={"k": 2.0})
    def inverse(x: np.ndarray, k: float = 2.0) -> np.ndarray:
        """Decays like 1/(1 + x/k)."""
        return 1.0 / (1.0 + x / k)

    got = clrplug.get_policy("inverse")
    assert got.scale_mode == "iterations" and got.description == "Decays like 1/(1 + x/k)."
    with pytest.raises(PolicyConflictError, match="'triangular': provided by built-in, runtime"):
        clrplug.register_policy(Policy("triangular", lambda x: x * 0))
    with pytest.raises(PolicyConflictError):
        clrplug.register_policy(Policy("half_way", lambda x: x * 0))
    clrplug.register_policy(Policy("half_way", lambda x: x * 0 + 0.25), replace=True)
    assert clrplug.get_policy("half_way").scale(np.array([1.0]))[0] == 0.25
    with pytest.raises(InvalidPolicyError, match=r"takes a clrplug\.Policy"):
        clrplug.register_policy("half_way")  # type: ignore[call-overload]
    clrplug.unregister_policy("half_way")
    with pytest.raises(UnknownPolicyError):
        clrplug.get_policy("half_way")
    with pytest.raises(InvalidPolicyError, match="only runtime registrations can be removed; policy 'triangular'"):
        clrplug.unregister_policy("triangular")


def test_cli_lists_policies_sources_and_failures(
    fresh_registry: Registry, fake_dist: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    install_both(fake_dist)
    fake_dist("clrplug-broken", "0.1", {"broken2": "raise ImportError('nope')\n"},
              {"clrplug": {"broken": "broken2"}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the table shows the failure; no warning on top
        assert cli_main(["policies", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["exp_range"]["params"] == {"gamma": 1.0}
    assert by_name["exp_range"]["scale_mode"] == "iterations"
    assert by_name["wave"]["distribution"] == "clrplug-wave"
    assert by_name["slow_decay"]["source"] == "clrplug-slow 0.3"
    [failed] = [r for r in rows if r["status"].startswith("failed")]
    assert failed["distribution"] == "clrplug-broken" and "ImportError: nope" in failed["status"]
    assert cli_main(["policies"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "TYPE", "NAME", "SCALE", "MODE", "PARAMETERS", "IN", "STEP", "SOURCE", "STATUS"
    ]
    assert any(line.split()[:4] == ["policy", "slow_decay", "iterations", "base=5,"] for line in table)


def test_unregister_normalises_names_and_names_a_missing_one(fresh_registry: Registry) -> None:
    clrplug.register_policy(Policy("My-Pol", lambda x: x * 0))
    clrplug.unregister_policy("My-Pol")
    with pytest.raises(UnknownPolicyError, match="unknown policy 'my_pol'"):
        clrplug.unregister_policy("my_pol")
    with pytest.raises(clrplug.errors.InvalidArgumentError, match="a policy name must be a str, got int 3"):
        clrplug.get_policy(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind, record", [("waveform", "cosine"), ("rule", "valley")])
def test_resolve_takes_a_name_or_the_record_and_names_the_argument(kind, record):
    from clrplug.errors import InvalidArgumentError, UnknownNameError
    from clrplug.registry import default_registry, resolve

    found = resolve(record, kind, "arg")
    assert found is default_registry().get(record, kind)
    assert resolve(found, kind, "arg") is found  # a record is taken as it is
    with pytest.raises(InvalidArgumentError,
                       match=rf"^arg must be a registered {kind}'s name or a clrplug\.\w+, got int 3\.$"):
        resolve(3, kind, "arg")
    with pytest.raises(UnknownNameError, match=rf"^arg: unknown {kind} 'nope'\. Choose one of: "):
        resolve("nope", kind, "arg")
