"""Hostile or broken plugins and saved files: refused loudly, nothing half-applied.

Complements tests/test_registry.py (import errors, a raising hook, a plain non-policy,
conflicts, switches): here plugins that impersonate policies, fail in unusual ways,
are slow to import or register hundreds of names, policies that fail only at run
time, and ``.keras`` files that name a missing policy or smuggle code.
"""

from __future__ import annotations

import base64
import json
import marshal
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from probe import fit_steps, probe_model

import clrplug
from clrplug import CyclicalSchedule, CyclicLR, Policy
from clrplug import registry as registry_module
from clrplug.cli import main as cli_main
from clrplug.errors import InvalidArgumentError, PolicyEvaluationError, UnknownPolicyError
from clrplug.registry import PluginLoadWarning, Registry

GOOD_PLUGIN = """
import numpy as np
import clrplug

@clrplug.hookimpl
def clrplug_register_policies(register):
    register(clrplug.Policy("good_wave", lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0))))
"""


def install_good(fake_dist: Callable[..., Path]) -> None:
    fake_dist("clrplug-good", "1.0", {"good_plugin": GOOD_PLUGIN},
              {"clrplug": {"good": "good_plugin"}})


def hook_plugin(body: str, prelude: str = "") -> str:
    return (
        f"import numpy as np\nimport clrplug\n{prelude}\n@clrplug.hookimpl\n"
        f"def clrplug_register_policies(register):\n{textwrap.indent(body, '    ')}\n"
    )


def assert_good_plugin_works() -> None:
    assert clrplug.get_policy("good_wave").source.distribution == "clrplug-good"
    clr = CyclicLR(0.001, 0.006, 2, mode="good_wave")
    np.testing.assert_allclose(
        clr.schedule.values_at(np.arange(12))[0],
        clrplug.learning_rates(np.arange(12), 0.001, 0.006, 2,
                               scale_fn=lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0))),
    )


# -- plugins that register something that is not a policy -------------------------------

IMPOSTORS = {
    # Has every field a Policy has, but skips its validation.
    "look-alike": ("class Fake:\n    name = 'impostor'\n    scale_mode = 'cycle'\n"
                   "    params = {}\n    description = ''\n"
                   "    def scale_fn(self, x):\n        return x * 0 + 5.0\n",
                   "register(Fake())"),
    "the-class": ("", "register(clrplug.Policy)"),
    "a-dict": ("", "register({'name': 'impostor', 'scale_fn': lambda x: x * 0 + 1})"),
    "none": ("", "register(None)"),
    "a-function": ("", "register(lambda x: x * 0 + 1)"),
}


@pytest.mark.parametrize("name", list(IMPOSTORS))
def test_a_plugin_registering_a_non_policy_is_skipped_and_others_work(
    fresh_registry: Registry, fake_dist: Callable[..., Path], name: str
) -> None:
    prelude, body = IMPOSTORS[name]
    source = hook_plugin(
        "register(clrplug.Policy('before_impostor', lambda x: x * 0 + 1))\n" + body, prelude
    )
    fake_dist("clrplug-impostor", "6.6", {"impostor_plugin": source},
              {"clrplug": {"impostor": "impostor_plugin"}})
    install_good(fake_dist)
    with pytest.warns(PluginLoadWarning, match=r"clrplug-impostor 6\.6 .*register\(\) takes a "
                      r"clrplug\.Policy"):
        names = clrplug.registry.default_registry().names()
    assert "good_wave" in names and "triangular2" in names
    assert "impostor" not in names and "before_impostor" not in names  # nothing half-applied
    assert_good_plugin_works()
    with pytest.raises(UnknownPolicyError, match=r"unknown policy 'impostor'.*failed to load.*"
                       r"clrplug-impostor 6\.6"):
        CyclicLR(mode="impostor")


# -- plugins that fail in unusual ways ----------------------------------------------------

FAILURES = {
    "recursion": (hook_plugin("def deeper(n):\n    return deeper(n + 1)\ndeeper(0)"),
                  "RecursionError"),
    "key-error-at-import": ("raise KeyError('CLRPLUG_HOME')\n", "KeyError: 'CLRPLUG_HOME'"),
    "huge-message": (hook_plugin("raise ValueError('x' * 100_000)"), "ValueError: xxxx"),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_a_failing_plugin_is_skipped_and_others_work(
    fresh_registry: Registry, fake_dist: Callable[..., Path], name: str
) -> None:
    source, error = FAILURES[name]
    fake_dist("clrplug-failing", "0.1", {"failing_plugin": source},
              {"clrplug": {"failing": "failing_plugin"}})
    install_good(fake_dist)
    with pytest.warns(PluginLoadWarning, match="clrplug-failing 0.1"):
        fresh_registry.load()
    [failure] = clrplug.list_plugin_failures()
    assert failure.source.distribution == "clrplug-failing" and error in failure.error
    assert_good_plugin_works()


UNPRINTABLE = """
import clrplug

class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("even the message is broken")

@clrplug.hookimpl
def clrplug_register_policies(register):
    raise Unprintable()
"""


@pytest.mark.parametrize(
    "source", [UNPRINTABLE, "import sys\nsys.exit(3)\n"], ids=["unprintable-error", "sys-exit"]
)
def test_a_plugin_failing_without_an_exception_message_is_skipped(
    fresh_registry: Registry, fake_dist: Callable[..., Path], source: str
) -> None:
    fake_dist("clrplug-rude", "0.1", {"rude_plugin": source}, {"clrplug": {"rude": "rude_plugin"}})
    install_good(fake_dist)
    with pytest.warns(PluginLoadWarning, match="clrplug-rude 0.1"):
        assert clrplug.get_policy("triangular").name == "triangular"
    assert_good_plugin_works()
    [failure] = clrplug.list_plugin_failures()
    assert failure.source.distribution == "clrplug-rude"


# -- a plugin that is slow to import -----------------------------------------------------

SLOW_PLUGIN = """
import time
time.sleep(1.5)  # a heavy import (a framework, a compiled extension...)
import clrplug
POLICY = clrplug.Policy("slow_half", lambda x: x * 0 + 0.5)
"""


def test_a_slow_plugin_is_imported_only_when_a_lookup_needs_plugins(
    fresh_registry: Registry, fake_dist: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = fake_dist("clrplug-slow-import", "1.0", {"slow_import_plugin": SLOW_PLUGIN},
                     {"clrplug.policies": {"slow_half": "slow_import_plugin:POLICY"}})
    # `import clrplug` in a new process that sees the distribution: nothing is loaded.
    code = "import sys, clrplug; print('slow_import_plugin' in sys.modules)"
    path = os.pathsep.join(p for p in (str(info.parent), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["False"]

    # Lookups with autoload disabled, or with an allowlist that excludes it, never import it.
    for switch, value in (("CLRPLUG_DISABLE_PLUGIN_AUTOLOAD", "1"), ("CLRPLUG_PLUGINS", "x")):
        monkeypatch.setenv(switch, value)
        registry_module.set_default_registry(Registry())
        assert clrplug.get_policy("triangular").name == "triangular"
        assert "slow_half" not in {p.name for p in clrplug.list_policies()}
        CyclicLR(mode="exp_range", gamma=0.99)
        clrplug.learning_rates(np.arange(10), mode="triangular2")
        with pytest.raises(UnknownPolicyError, match="unknown policy 'slow_half'"):
            CyclicLR(mode="slow_half")
        monkeypatch.delenv(switch)
        assert "slow_import_plugin" not in sys.modules

    # Once allowed, the first lookup loads it, and later lookups reuse it.
    registry_module.set_default_registry(fresh_registry)
    assert clrplug.get_policy("slow_half").source.distribution == "clrplug-slow-import"
    module = sys.modules["slow_import_plugin"]
    clr = CyclicLR(0.001, 0.003, 2, mode="slow_half")
    np.testing.assert_allclose(clr.schedule.values_at([0, 1, 2])[0], [0.001, 0.0015, 0.002])
    assert clrplug.get_policy("slow_half") is clrplug.get_policy("slow_half")
    assert sys.modules["slow_import_plugin"] is module


# -- a plugin with hundreds of policies ------------------------------------------------------

MANY_PLUGIN = hook_plugin(
    "for i in range(500):\n"
    "    register(clrplug.Policy(f'many_{i:03d}', lambda x, level=(i + 1) / 500: x * 0 + level,\n"
    "                            params={'level': (i + 1) / 500}))"
)


def test_a_plugin_with_500_policies_lists_and_resolves_them_all(
    fresh_registry: Registry, fake_dist: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_dist("clrplug-many", "5.0", {"many_plugin": MANY_PLUGIN},
              {"clrplug": {"many": "many_plugin"}})
    names = [f"many_{i:03d}" for i in range(500)]
    assert set(names) <= set(fresh_registry.names())
    assert clrplug.get_policy("many_499").source.distribution == "clrplug-many"
    for name in ("many_000", "many_249", "many_499"):
        level = (int(name[-3:]) + 1) / 500
        clr = CyclicLR(0.0, 1.0, 1, mode=name)
        assert clr.schedule.values_at([1])[0][0] == pytest.approx(level, rel=1e-12)
    with pytest.raises(UnknownPolicyError, match="Did you mean 'many_"):
        clrplug.get_policy("many_5000")
    assert cli_main(["policies", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    listed = {r["name"]: r for r in rows if r["distribution"] == "clrplug-many"}
    assert sorted(listed) == names
    assert listed["many_123"]["params"] == {"level": 124 / 500}
    assert all(r["status"] == "ok" for r in listed.values())


# -- a policy that fails when evaluated ----------------------------------------------------

FAILING_PLUGIN = """
import numpy as np
import clrplug

def failing_beyond(limit):
    def scale(x):
        if np.any(x > limit):
            raise ArithmeticError(f"no value beyond iteration {limit:g}")
        return x * 0 + 1
    return scale

def drifting_beyond(limit):
    return lambda x: np.where(x > limit, 1.5, 1.0)

EARLY_FAIL = clrplug.Policy("early_fail", failing_beyond(100), scale_mode="iterations")
EARLY_DRIFT = clrplug.Policy("early_drift", drifting_beyond(100), scale_mode="iterations")
LATE_FAIL = clrplug.Policy("late_fail", failing_beyond(2e7), scale_mode="iterations")
LATE_DRIFT = clrplug.Policy("late_drift", drifting_beyond(2e7), scale_mode="iterations")
"""
FAILING = {"early_fail": "EARLY_FAIL", "early_drift": "EARLY_DRIFT",
           "late_fail": "LATE_FAIL", "late_drift": "LATE_DRIFT"}


def failure_message(name: str, limit: str) -> str:
    source = rf"policy '{name}' \(from clrplug-failing 2\.0\)"
    if name.endswith("fail"):
        return rf"{source} raised ArithmeticError: no value beyond iteration {limit}"
    return rf"{source} returned 1\.5 at x=\d+\.\d+ \(scale_mode='iterations'\)"


@pytest.fixture
def failing_plugin(fresh_registry: Registry, fake_dist: Callable[..., Path]) -> None:
    fake_dist("clrplug-failing", "2.0", {"failing_plugin": FAILING_PLUGIN},
              {"clrplug.policies": {n: f"failing_plugin:{v}" for n, v in FAILING.items()}})


@pytest.mark.usefixtures("failing_plugin")
@pytest.mark.parametrize("name", ["early_fail", "early_drift"])
def test_a_policy_failing_within_the_probed_range_is_refused_at_construction(name: str) -> None:
    # CyclicLR probes a named policy on iterations up to 10**7 when it is built.
    with pytest.raises(PolicyEvaluationError, match=failure_message(name, "100")):
        CyclicLR(0.001, 0.006, 5, mode=name)
    with pytest.raises(PolicyEvaluationError, match=failure_message(name, "100")):
        clrplug.learning_rates(np.arange(3), mode=name, step_size=5)


@pytest.mark.usefixtures("failing_plugin")
@pytest.mark.parametrize("name", ["late_fail", "late_drift"])
def test_a_policy_failing_at_run_time_names_itself_and_its_distribution(name: str) -> None:
    args = {"base_lr": 0.001, "max_lr": 0.006, "step_size": 5, "mode": name}
    CyclicLR(**args)  # fine as far as the probe sees
    with pytest.raises(PolicyEvaluationError, match=failure_message(name, "2e[+]07")):
        clrplug.learning_rates([3e7], **args)
    # Training moved past the limit: it fails when the scale table is filled, before the
    # first step at those iterations runs.
    model, clr = probe_model(), CyclicLR(**args)
    clr.attach(model)
    model.optimizer.iterations.assign(20_000_000 - 2)
    with pytest.raises(PolicyEvaluationError, match=failure_message(name, "2e[+]07")):
        fit_steps(model, 4, [clr])
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 20_000_000 - 2
    # Used stand-alone, a policy without a keras.ops twin is refused when made.
    with pytest.raises(clrplug.errors.InvalidArgumentError, match=r"has no keras\.ops twin"):
        CyclicalSchedule(**args)


# -- saved models ----------------------------------------------------------------------------

class SaveDuringFit(keras.callbacks.Callback):
    """``model.save(path)`` after the last batch of the first epoch, while the fit runs
    (the file then holds the clrplug rate the callback installed)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == 0:
            self.model.save(self.path)


def save_trained(path: Path, **clr_args: Any) -> Path:
    """A model saved in the middle of a fit with ``CyclicLR(**clr_args)`` (3 steps done)."""
    model = probe_model()
    fit_steps(model, 3, [CyclicLR(0.001, 0.006, 4, **clr_args), SaveDuringFit(path)], epochs=2)
    return path


def test_a_saved_model_whose_plugin_policy_is_not_installed_names_the_distribution(
    fresh_registry: Registry, fake_dist: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    install_good(fake_dist)
    path = save_trained(tmp_path / "wave.keras", mode="good_wave")
    monkeypatch.setenv("CLRPLUG_DISABLE_PLUGIN_AUTOLOAD", "1")  # "uninstalled"
    registry_module.set_default_registry(Registry())
    for safe_mode in (True, False):
        with pytest.raises(UnknownPolicyError,
                           match=r"unknown policy 'good_wave'\. Choose one of: exp_range, "
                           r"triangular, triangular2\. The saved schedule's policy came from the "
                           r"distribution 'clrplug-good': `pip install clrplug-good` to load it"):
            keras.models.load_model(path, safe_mode=safe_mode)


def test_a_saved_model_whose_runtime_policy_is_gone_names_the_policy(
    fresh_registry: Registry, tmp_path: Path
) -> None:
    clrplug.register_policy(Policy("my_flat", lambda x: x * 0 + 0.5))
    path = save_trained(tmp_path / "flat.keras", mode="my_flat")
    registry_module.set_default_registry(Registry())  # a new process, say
    with pytest.raises(UnknownPolicyError, match=r"unknown policy 'my_flat'\. Choose one of") as info:
        keras.models.load_model(path)
    assert "pip install" not in str(info.value)  # no distribution to suggest


class Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def smuggled(marker: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Config additions carrying code, and the message clrplug refuses each with."""
    touch = eval(f"lambda x: open({str(marker)!r}, 'w') and x")  # the code a file might carry
    code = base64.b64encode(marshal.dumps(touch.__code__)).decode()
    lambda_config = {"class_name": "__lambda__",
                     "config": {"code": code, "defaults": None, "closure": None}}
    pickled = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    unsupported = r"CyclicalSchedule config has unsupported key\(s\) \['scale_fn'\]"
    return {
        "scale_fn-lambda": ({"scale_fn": lambda_config}, unsupported),
        "scale_fn-pickle": ({"scale_fn": pickled}, unsupported),
        "scale_fn-source": ({"scale_fn": f"lambda x: open({str(marker)!r}, 'w')"}, unsupported),
        "scale_fn-object": ({"scale_fn": {"module": "builtins", "class_name": "open",
                                          "config": {"file": str(marker), "mode": "w"},
                                          "registered_name": None}}, unsupported),
        "mode-lambda": ({"mode": lambda_config}, r"config\['mode'\] must be str, got dict"),
        "policy_params-lambda": ({"policy_params": {"gamma": lambda_config}},
                                 r"config\['policy_params'\] must map names to numbers"),
        "origin-pickle": ({"origin": {"base_lr": pickled, "max_lr": 0.006, "step_size": 4.0}},
                          r"base_lr must be a finite number >= 0, got str"),
    }


@pytest.mark.parametrize(
    "variant", ["scale_fn-lambda", "scale_fn-pickle", "scale_fn-source", "scale_fn-object",
                "mode-lambda", "policy_params-lambda", "origin-pickle"],
)
def test_a_saved_file_carrying_code_is_refused_and_never_run(tmp_path: Path, variant: str) -> None:
    original = save_trained(tmp_path / "clean.keras", mode="exp_range", gamma=0.9)
    marker = tmp_path / "payload-ran"
    extra, message = smuggled(marker)[variant]
    path = tmp_path / f"{variant}.keras"
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "config.json":
                config = json.loads(data)
                rate = config["compile_config"]["optimizer"]["config"]["learning_rate"]
                assert rate["class_name"] == "OptimizerRate"  # what CyclicLR installs
                schedule = rate["config"]["schedule"]
                assert schedule["class_name"] == "CyclicalSchedule"
                schedule["config"].update(extra)
                data = json.dumps(config).encode()
            dst.writestr(name, data)
    for safe_mode in (True, False):
        with pytest.raises(InvalidArgumentError, match=message):
            keras.models.load_model(path, safe_mode=safe_mode)
    assert not marker.exists()
    keras.models.load_model(original)  # the untouched file loads


@pytest.mark.parametrize(
    ("key", "value"), [("horizon", 2**40), ("cycle_start", 2**64), ("accumulation_steps", 2**64),
                       ("step_size_down", 2**64), ("held_lr", -1.0)]
)
def test_a_saved_config_with_absurd_integers_is_refused_at_load(key: str, value: int) -> None:
    config = CyclicalSchedule(mode="triangular").get_config()
    with pytest.raises(InvalidArgumentError, match=key):
        CyclicalSchedule.from_config({**config, key: value})


LOAD_IN_NEW_PROCESS = """
import sys
import keras
sys.path.insert(0, {tests!r})
import probe  # registers the probe's loss function, and imports no clrplug
import clrplug
model = keras.models.load_model({path!r})
rate = model.optimizer._learning_rate
assert type(rate).__name__ == "OptimizerRate", type(rate)
assert type(rate.schedule).__name__ == "CyclicalSchedule"
assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 3  # the whole state
"""


def test_import_clrplug_is_enough_to_load_a_saved_model_in_a_new_process(tmp_path: Path) -> None:
    path = save_trained(tmp_path / "m.keras", mode="triangular2")
    script = LOAD_IN_NEW_PROCESS.format(path=str(path), tests=str(Path(__file__).parent))
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
