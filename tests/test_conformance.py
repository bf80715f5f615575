"""The conformance kit (``clrplug.testing``): built-ins pass it, bad policies fail it clearly."""

from __future__ import annotations

import math
import subprocess
import sys

# Imported before pytester snapshots sys.modules: TensorFlow cannot be imported twice.
import keras  # noqa: F401
import numpy as np
import pytest
from oracles import seed_rates

import clrplug
from clrplug.schedule import CyclicalSchedule
from clrplug.testing import (
    PROPERTIES,
    PolicyConformanceError,
    applied_rates,
    check_policy,
    policies_of,
    sample_x,
)

pytest_plugins = ["pytester"]

BUILTINS = ["exp_range", "triangular", "triangular2"]


# -- the built-ins ------------------------------------------------------------------


def test_policies_of_clrplug_are_the_builtins():
    assert policies_of("clrplug") == BUILTINS


@pytest.mark.parametrize("name", policies_of("clrplug"))
def test_builtin_conforms(name, clrplug_policy_check):
    clrplug_policy_check(name)


@pytest.mark.parametrize("gamma", [0.5, 0.99994, 1.0])
def test_exp_range_conforms_with_other_gammas(gamma, clrplug_policy_check):
    clrplug_policy_check("exp_range", params={"gamma": gamma})


def test_sample_covers_the_long_range():
    cycles = sample_x("cycle")
    assert cycles[0] == 1 and cycles[-1] == 10**4 and len(cycles) == 10**4
    iterations = sample_x("iterations")
    assert iterations[0] == 0 and iterations[-1] == 10**7
    np.testing.assert_array_equal(iterations[:10_001], np.arange(10_001))
    assert np.all(np.diff(iterations) > 0) and len(iterations) < 20_000


def test_applied_rates_measures_the_rate_of_each_step():
    clr = clrplug.CyclicLR(base_lr=0.001, max_lr=0.006, step_size=4, mode="triangular2")
    lr = applied_rates(clr, steps=12, epochs=2)
    expected = seed_rates(24, 0.001, 0.006, 4, mode="triangular2")
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)


# -- failures name the policy, its source, the property and an x ---------------------


def _counter():
    calls = [0]

    def scale(x):
        calls[0] += 1
        return np.full_like(x, 1.0 / (1 + calls[0]))

    return scale


def _writes_into_x(x):
    x *= 0.5
    return x


def _cached():
    cache = {}

    def scale(x):  # remembers its first answer per shape
        return cache.setdefault(x.shape, 0.5 * (1 + np.sin(x)))

    return scale


def _decay(x, rate=1e-3):
    return np.exp(-rate * x)


def _needs_k(x, k):
    return np.exp(-k * x)


BAD = [
    # name, scale_fn, scale_mode, params, property, x, text in the message
    ("too_big", lambda x: x / 3.0, "cycle", None, "range", 4.0, "scale(4.0) = 1.3333333333333333"),
    ("negative", lambda x: 0.5 - x * 1e-6, "iterations", None, "range", None, ") = -"),
    ("nan_late", lambda x: np.where(x > 5e6, np.nan, 0.5), "iterations", None, "range", None,
     "= nan"),
    ("inf_first", lambda x: 1.0 / (x - 1.0), "cycle", None, "range", 1.0, "scale(1.0) = inf"),
    ("raises_at_zero", lambda x: np.sqrt(x) if np.all(x > 0) else 1 / 0, "iterations", None,
     "range", 0.0, "scale(0.0) raised ZeroDivisionError"),
    ("uses_math", lambda x: 0.5 * (1 + math.sin(x)), "cycle", None, "vectorised", None,
     "raised TypeError"),
    ("normalises", lambda x: x / np.max(x), "cycle", None, "vectorised", 1.0,
     "scale(1.0) = 1.0 alone, but 0.0001 within an array of 10000 x"),
    ("column", lambda x: np.ones((*np.shape(x), 1)), "cycle", None, "vectorised", None,
     "returned shape (10000, 1)"),
    ("counter", _counter(), "cycle", None, "deterministic", 1.0,
     "scale(1.0) = 0.5, then 0.3333333333333333 when called again"),
    ("cached", _cached(), "cycle", None, "stateless", None, "with the x in reverse order"),
    ("mutates", _writes_into_x, "cycle", None, "input", 1.0, "x[0] was 1.0 and became 0.5"),
    ("decay", _decay, "iterations", {"rate": 1e-4}, "parameters", None,
     "declares rate=0.0001 but scale_fn's signature defaults it to 0.001"),
    ("needs_k", _needs_k, "iterations", None, "parameters", None,
     "scale_fn requires argument 'k'"),
]


@pytest.mark.parametrize(
    ("name", "scale_fn", "scale_mode", "params", "prop", "x", "text"),
    BAD,
    ids=[row[0] for row in BAD],
)
def test_bad_policy_fails_with_a_clear_message(name, scale_fn, scale_mode, params, prop, x, text):
    policy = clrplug.Policy(name, scale_fn, scale_mode, params)
    with pytest.raises(PolicyConformanceError) as info:
        check_policy(policy)
    error = info.value
    assert isinstance(error, AssertionError)
    assert (error.policy, error.property, error.source) == (name, prop, None)
    message = str(error)
    assert message.startswith(f"policy {name!r} (not registered): {PROPERTIES[prop]}: ")
    assert text in message
    if x is not None:
        assert error.x == x


def test_unknown_parameter_override_fails_on_parameters():
    with pytest.raises(PolicyConformanceError, match="has no parameter 'gama'") as info:
        check_policy("exp_range", params={"gama": 0.9})
    assert info.value.property == "parameters"
    assert str(info.value).startswith("policy 'exp_range' (from built-in): parameters must")


def test_out_of_range_parameter_is_reported_with_the_call():
    with pytest.raises(PolicyConformanceError) as info:
        check_policy("exp_range", params={"gamma": 1.5})
    assert str(info.value) == (
        "policy 'exp_range' (from built-in): scale values must be finite and within [0, 1]: "
        "scale(1.0, gamma=1.5) = 1.5"
    )
    assert info.value.x == 1.0


def test_unknown_name_fails_on_resolves(fresh_registry):
    with pytest.raises(PolicyConformanceError, match="unknown policy 'nope'") as info:
        check_policy("nope")
    assert info.value.property == "resolves"
    assert str(info.value).startswith(
        "policy 'nope' (not registered): must register and resolve by name: "
    )


def test_policy_object_shadowed_by_another_registration_fails_on_resolves():
    impostor = clrplug.Policy("triangular", lambda x: np.full_like(x, 0.5))
    with pytest.raises(PolicyConformanceError, match="different policy, from built-in"):
        check_policy(impostor)


def test_registered_policy_object_is_checked_as_registered():
    check_policy(clrplug.get_policy("triangular2"))


def test_unregistered_policy_object_is_registered_only_for_the_check(fresh_registry):
    policy = clrplug.Policy("half", lambda x: np.full_like(x, 0.5), "iterations")
    check_policy(policy)
    assert "half" not in fresh_registry.names()


def test_runtime_registration_is_checked_by_name(fresh_registry):
    clrplug.register_policy(clrplug.Policy("quarter", lambda x: np.full_like(x, 0.25)))
    check_policy("quarter")


def test_plugin_policy_by_name_and_an_impostor_object(fresh_registry, fake_dist):
    fake_dist(
        "clrplug-overshoot",
        "2.1",
        modules={
            "overshoot_plugin": """
                import numpy as np
                import clrplug

                overshoot = clrplug.Policy("overshoot", lambda x: 1.0 + 0.0 * x, "iterations")
                """
        },
        entry_points={"clrplug.policies": {"overshoot": "overshoot_plugin:overshoot"}},
    )
    assert policies_of("clrplug-overshoot") == ["overshoot"]
    assert policies_of("clrplug_Overshoot") == ["overshoot"]
    check_policy("overshoot")  # 1.0 is within [0, 1]
    with pytest.raises(PolicyConformanceError) as info:
        check_policy(
            clrplug.Policy("overshoot", lambda x: 1.0 + x, "iterations"),
        )
    assert info.value.property == "resolves"
    assert "(from runtime)" in str(info.value)


def test_plugin_out_of_range_names_distribution_and_version(fresh_registry, fake_dist):
    fake_dist(
        "clrplug-growing",
        "0.3",
        modules={
            "growing_plugin": """
                import numpy as np
                import clrplug

                @clrplug.hookimpl
                def clrplug_register_policies(register):
                    register(clrplug.Policy("growing", lambda x: np.minimum(x / 1e6, 2.0),
                                            "iterations"))
                """
        },
        entry_points={"clrplug": {"growing": "growing_plugin"}},
    )
    with pytest.raises(PolicyConformanceError) as info:
        check_policy("growing")
    assert str(info.value).startswith(
        "policy 'growing' (from clrplug-growing 0.3): scale values must be finite and "
        "within [0, 1]: scale(100"
    )
    assert info.value.source == "clrplug-growing 0.3"
    assert 1e6 < info.value.x <= 1.1e6


def test_conflicting_plugins_fail_on_resolves(fresh_registry, fake_dist):
    source = """
        import numpy as np
        import clrplug

        twin = clrplug.Policy("twin", lambda x: np.full_like(x, 0.5))
        """
    fake_dist("clrplug-twin-a", modules={"twin_a": source},
              entry_points={"clrplug.policies": {"twin": "twin_a:twin"}})
    fake_dist("clrplug-twin-b", modules={"twin_b": source},
              entry_points={"clrplug.policies": {"twin": "twin_b:twin"}})
    with pytest.raises(PolicyConformanceError, match="Conflicting plugins") as info:
        check_policy("twin")
    assert "clrplug-twin-a 1.0" in str(info.value) and "clrplug-twin-b 1.0" in str(info.value)


def test_serialisation_failure_is_reported(monkeypatch):
    original = CyclicalSchedule.get_config

    def forgetful(self):
        config = original(self)
        config["policy_params"] = {}
        return config

    monkeypatch.setattr(CyclicalSchedule, "get_config", forgetful)
    with pytest.raises(PolicyConformanceError) as info:
        check_policy("exp_range", params={"gamma": 0.5})
    assert info.value.property == "serialisation"
    assert "came back with mode='exp_range', policy_params={'gamma': 1.0}" in str(info.value)


# -- policies_of explains an empty answer ------------------------------------------------


def test_policies_of_a_missing_distribution(fresh_registry):
    with pytest.raises(LookupError, match="'clrplug-absent' registers no clrplug policy: "
                                          "it is not installed"):
        policies_of("clrplug-absent")


def test_policies_of_a_broken_plugin(fresh_registry, fake_dist):
    fake_dist("clrplug-broken", modules={"broken_plugin": "import not_a_module_anywhere\n"},
              entry_points={"clrplug": {"broken": "broken_plugin"}})
    with pytest.warns(clrplug.registry.PluginLoadWarning), pytest.raises(
        LookupError, match="it failed to load: ModuleNotFoundError"
    ):
        policies_of("clrplug-broken")


def test_policies_of_when_switched_off(fresh_registry, fake_dist, monkeypatch):
    fake_dist("clrplug-quiet", modules={"quiet": "import clrplug\nq = clrplug.Policy('q', abs)\n"},
              entry_points={"clrplug.policies": {"q": "quiet:q"}})
    monkeypatch.setenv("CLRPLUG_DISABLE_PLUGIN_AUTOLOAD", "1")
    with pytest.raises(LookupError, match="switched off by CLRPLUG_DISABLE_PLUGIN_AUTOLOAD"):
        policies_of("clrplug-quiet")


def test_policies_of_when_not_allowed(fresh_registry, fake_dist, monkeypatch):
    fake_dist("clrplug-quiet", modules={"quiet": "import clrplug\nq = clrplug.Policy('q', abs)\n"},
              entry_points={"clrplug.policies": {"q": "quiet:q"}})
    monkeypatch.setenv("CLRPLUG_PLUGINS", "clrplug-other")
    with pytest.raises(LookupError, match="CLRPLUG_PLUGINS='clrplug-other' does not include"):
        policies_of("clrplug-quiet")


def test_policies_of_a_distribution_without_entry_points(fresh_registry):
    with pytest.raises(LookupError, match="no entry point in the groups"):
        policies_of("pluggy")


# -- the pytest plugin ---------------------------------------------------------------


def test_import_is_cheap_and_does_not_import_keras():
    code = (
        "import sys, clrplug.testing\n"
        "heavy = {'keras', 'tensorflow', 'jax', 'torch'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert clrplug.registry.default_registry()._loaded is False\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_pytest_plugin_imports_nothing_heavy_at_start_up():
    code = (
        "import sys, clrplug.testing.pytest_plugin\n"
        "heavy = {'numpy', 'keras', 'tensorflow', 'jax', 'torch', 'matplotlib'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pytest_plugin_is_registered(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("clrplug")
    assert plugin is sys.modules["clrplug.testing.pytest_plugin"]


def test_fixture_and_option_in_a_plugin_authors_suite(pytester):
    pytester.makepyfile(
        test_author="""
            import pytest
            from clrplug.testing import policies_of

            @pytest.mark.parametrize("name", policies_of("clrplug"))
            def test_conforms(name, clrplug_policy_check):
                clrplug_policy_check(name)
            """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)

    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-v", "--clrplug-policy", "triangular2",
        "--clrplug-policy", "dist:clrplug", "--clrplug-policy", "nope",
        "--clrplug-policy", "dist:clrplug-absent",
    )
    result.assert_outcomes(passed=6, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*clrplug-conformance?triangular2? PASSED*",
            "*clrplug-conformance?exp_range? PASSED*",
            "*policy 'nope' (not registered): must register and resolve by name: *",
            "*'clrplug-absent' registers no clrplug policy: it is not installed*",
        ]
    )
