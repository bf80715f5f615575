"""clrplug leaves Keras as it found it, and reads Keras internals in one module only.

* Importing and using clrplug (every module, a fit with momentum cycling, a 1cycle fit,
  a range test) replaces no attribute of any Keras class and installs no import hook.
* Outside ``clrplug.engine.compat`` no code reads a private attribute of a Keras object;
  inside it, every private attribute read is listed in ``compat.PRIVATE``, and each one
  listed exists in the Keras installed here: a Keras release that removes one fails here,
  naming it, instead of failing in a user's training run.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from clrplug.engine import compat

SOURCE = Path(__file__).resolve().parents[1] / "src" / "clrplug"
BACKEND = keras.backend.backend()


def _private_reads(path: Path) -> set[tuple[str, str]]:
    """``(owner expression, attribute)`` for each private attribute read: ``x._name`` and
    ``getattr``/``hasattr(x, "_name")`` (on ``self`` too: clrplug subclasses Keras classes)."""
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.add((ast.unparse(node.value), node.attr))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                and node.args[1].value.startswith("_") and not node.args[1].value.startswith("__")):
            found.add((ast.unparse(node.args[0]), node.args[1].value))
    return found


def _defined_by_clrplug() -> set[str]:
    """Private names clrplug's own classes define (``self._x = ...``, ``def _x``)."""
    names: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("_"):
                names.add(node.name)
            if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                    and isinstance(node.value, ast.Name) and node.value.id == "self"):
                names.add(node.attr)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)  # class attributes, dataclass fields
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
                names.update(c.value for c in ast.walk(node.value)
                             if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return names


def test_only_compat_reads_private_keras_attributes() -> None:
    listed = {name for names in compat.PRIVATE.values() for name in names}
    own = _defined_by_clrplug()
    outside, unlisted = [], []
    for path in sorted(SOURCE.rglob("*.py")):
        for owner, name in _private_reads(path):
            if name.startswith("_clrplug") or (name in own and (owner == "self" or name not in listed)):
                continue  # clrplug's own attribute (on self, a name Keras also uses is ours)
            if path.name == "compat.py" and path.parent.name == "engine":
                if name not in listed:
                    unlisted.append(f"{owner}.{name}")
            else:
                outside.append(f"{path.relative_to(SOURCE)}: {owner}.{name}")
    assert not outside, f"private Keras attributes read outside clrplug.engine.compat: {outside}"
    assert not unlisted, f"compat reads private Keras attributes not in compat.PRIVATE: {unlisted}"


def test_every_listed_private_attribute_exists_in_this_keras() -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    callback = keras.callbacks.Callback()
    callback.set_model(model)
    owners = {"optimizer": model.optimizer, "model": model, "callback": callback}
    missing = []
    for owner, names in compat.PRIVATE.items():
        for name, why in names.items():
            if owner == "model" and BACKEND != "jax":
                continue  # the JAX trainer's state
            if name == "_distribution_strategy" and BACKEND != "tensorflow":
                continue
            if not hasattr(owners[owner], name):
                missing.append(f"{owner}.{name} ({why})")
    assert not missing, (
        f"Keras {keras.__version__} no longer has {missing}; clrplug.engine.compat relies on "
        "them (checked on Keras 3.13-3.15): adapt compat to this Keras."
    )


def test_the_jax_train_function_holds_its_jitted_step() -> None:
    """``compat.clear_trace_cache`` finds the jitted step in Keras' train function."""
    if BACKEND != "jax":
        pytest.skip("JAX's trace cache")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.make_train_function()
    cells = [c.cell_contents for c in model.train_function.__closure__ or ()]
    assert any(callable(getattr(c, "clear_cache", None)) for c in cells), (
        f"Keras {keras.__version__}'s JAX train function no longer closes over its jitted "
        "step: clrplug.engine.compat.clear_trace_cache cannot make it trace again."
    )


_PATCH_CHECK = textwrap.dedent(
    """
    import json, sys, importlib, pkgutil
    import keras, numpy as np
    from keras.src.optimizers import base_optimizer

    def classes():
        found = {}
        for module in (keras.optimizers, keras.optimizers.schedules, keras.callbacks):
            for name in dir(module):
                value = getattr(module, name)
                if isinstance(value, type):
                    found[f"{module.__name__}.{name}"] = value
        for cls in (keras.Model, keras.Sequential, keras.Variable, keras.layers.Layer,
                    keras.metrics.Metric, base_optimizer.BaseOptimizer,
                    type(keras.optimizers.SGD(0.1)), type(keras.optimizers.Adam(0.1))):
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
        return found

    def snapshot():
        table = {name: {k: id(v) for k, v in vars(cls).items()} for name, cls in classes().items()}
        return table, [type(h).__name__ for h in sys.meta_path], len(sys.path_hooks)

    # Keras sets some class attributes itself on first use: a plain fit of each kind first.
    x, y = np.random.default_rng(0).normal(size=(64, 3)), np.zeros((64, 2))
    for optimizer in (keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(0.01)):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    before = snapshot()
    import clrplug
    for info in pkgutil.walk_packages(clrplug.__path__, "clrplug."):
        if not info.name.startswith(("clrplug.testing", "clrplug.demo", "clrplug.__main__")):
            importlib.import_module(info.name)
    for optimizer, callback in [
        (keras.optimizers.SGD(0.1, momentum=0.9), clrplug.CyclicLR(cycle_momentum=True, step_size=4)),
        (keras.optimizers.Adam(0.01), clrplug.OneCycleLR(0.05, total_steps=16)),
    ]:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, callbacks=[callback], verbose=0)
        assert "get_config" not in vars(model.optimizer)
    clrplug.lr_range_test(model, x, y, batch_size=8, steps=8, verbose=0)
    after = snapshot()
    changed = sorted(name for name in before[0] if before[0][name] != after[0].get(name))
    print(json.dumps({"changed": changed, "hooks": [before[1], after[1]],
                      "path_hooks": [before[2], after[2]]}))
    """
)


def test_importing_and_using_clrplug_patches_nothing() -> None:
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    done = subprocess.run([sys.executable, "-c", _PATCH_CHECK], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["changed"] == [], f"clrplug replaced attributes of Keras classes: {result['changed']}"
    assert result["hooks"][0] == result["hooks"][1], "clrplug installed an import hook"
    assert result["path_hooks"][0] == result["path_hooks"][1]
