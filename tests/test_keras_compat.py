"""clrplug leaves Keras as it found it, and reads Keras internals in one module only.

* Importing and using clrplug (every module, a fit with momentum cycling, a 1cycle fit,
  a range test) replaces no attribute of any Keras class (the optimizers, schedules and
  callbacks, the model and trainer classes, and every Keras class they inherit from) or
  function of the Keras modules it relies on, installs no import hook, and defines no
  subclass of ``keras.Variable``.
* Each Keras behaviour ``compat`` relies on (the rate setter, saving walking an
  optimizer's attributes, ``fit`` calling the train function it finds) is tried here,
  failing with a message that names what changed.
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
from typing import Any

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
        "them (checked on Keras 3.15 and each newer release CI ran): adapt compat to this Keras."
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
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        for cls in (keras.Model, keras.Sequential, keras.Variable, keras.layers.Layer,
                    keras.metrics.Metric, base_optimizer.BaseOptimizer, type(model),
                    type(keras.optimizers.SGD(0.1)), type(keras.optimizers.Adam(0.1)),
                    type(model.layers[0].kernel)):
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
        for cls in list(found.values()):  # and every Keras class they inherit from
            for base in cls.__mro__:
                if base.__module__.startswith("keras"):
                    found[f"{base.__module__}.{base.__qualname__}"] = base
        return found

    # The module-level functions of the Keras modules whose behaviour clrplug relies on.
    MODULES = ["keras.src.saving.saving_lib", "keras.src.saving.serialization_lib",
               "keras.src.optimizers.base_optimizer", "keras.src.callbacks.callback_list",
               "keras.src.trainers.trainer", "keras.src.utils.tracking",
               f"keras.src.backend.{keras.backend.backend()}.trainer"]

    def snapshot():
        table = {name: {k: id(v) for k, v in vars(cls).items()} for name, cls in classes().items()}
        for name in MODULES:
            module = importlib.import_module(name)
            table[name] = {k: id(v) for k, v in vars(module).items() if callable(v)}
        return table, [type(h).__name__ for h in sys.meta_path], len(sys.path_hooks)

    def variable_subclasses(cls=keras.Variable):
        for sub in cls.__subclasses__():
            yield sub
            yield from variable_subclasses(sub)

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
    changed = sorted(f"{name}.{key}" for name in before[0]
                     for key in set(before[0][name]) | set(after[0].get(name, {}))
                     if before[0][name].get(key) != after[0].get(name, {}).get(key))
    ours = sorted(f"{c.__module__}.{c.__qualname__}" for c in variable_subclasses()
                  if c.__module__.startswith("clrplug"))
    print(json.dumps({"changed": changed, "hooks": [before[1], after[1]],
                      "path_hooks": [before[2], after[2]], "variable_subclasses": ours,
                      "classes": len(before[0])}))
    """
)


def test_importing_and_using_clrplug_patches_nothing() -> None:
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    done = subprocess.run([sys.executable, "-c", _PATCH_CHECK], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["classes"] > 50  # the optimizers, callbacks, their bases, the trainers
    assert result["changed"] == [], (
        f"clrplug replaced attributes of Keras classes or module functions: {result['changed']}")
    assert result["hooks"][0] == result["hooks"][1], "clrplug installed an import hook"
    assert result["path_hooks"][0] == result["path_hooks"][1]
    assert result["variable_subclasses"] == [], (
        f"clrplug subclasses keras.Variable: {result['variable_subclasses']}")


# -- the Keras behaviours clrplug relies on, each with a message saying what broke --------


def _compiled(optimizer: keras.optimizers.Optimizer) -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_the_rate_setter_sets_the_rate_variable_aside_and_assigns_through_a_callable() -> None:
    """``compat.install_rate``: Keras' public setter stores a callable as the rate and
    untracks the rate Variable (so the optimizer's variables are a scheduled optimizer's),
    and a later ``optimizer.learning_rate = x`` calls the callable's ``assign``."""
    optimizer = _compiled(keras.optimizers.SGD(0.1)).optimizer
    variable = compat.installed_rate(optimizer)
    assigned: list[float] = []

    class Rate:
        def __call__(self) -> float:
            return 0.5

        def assign(self, value: float) -> None:
            assigned.append(float(value))

    rate = Rate()
    compat.install_rate(optimizer, rate)
    broke = f"Keras {keras.__version__}'s optimizer.learning_rate setter changed: clrplug.engine.compat.install_rate relies on it"
    assert compat.installed_rate(optimizer) is rate, broke
    assert all(v is not variable for v in optimizer.variables), broke + " (the rate Variable is still tracked)"
    optimizer.learning_rate = 0.25
    assert assigned == [0.25], broke + " (assigning a plain rate no longer reaches the callable)"
    compat.restore_rate_variable(optimizer, variable, 1, 0.125)
    assert optimizer.variables[1] is variable and compat.installed_rate(optimizer) is variable
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == 0.125


def test_saving_walks_a_saveable_attribute_of_the_optimizer(tmp_path: Path) -> None:
    """``compat.carry_state``: Keras' saving walks an optimizer attribute holding a Metric,
    saves its variables under the attribute's name, loads them into an optimizer that has
    the attribute, and ignores them for one that does not."""

    class Carried(keras.metrics.Metric):  # as clrplug's CycleState: numbers, no variable
        def __init__(self, value: float) -> None:
            super().__init__(name="carried")
            self.value = value

        def update_state(self, *args: Any, **kwargs: Any) -> None:
            pass

        def result(self) -> Any:
            return self.value

        def save_own_variables(self, store: Any) -> None:
            store["value"] = np.asarray(self.value, dtype=np.float64)

        def load_own_variables(self, store: Any) -> None:
            self.value = float(np.asarray(store["value"]))

    model = _compiled(keras.optimizers.SGD(0.1))
    compat.carry_state(model.optimizer, Carried(7.0))
    model.save_weights(tmp_path / "w.weights.h5")
    broke = (f"Keras {keras.__version__}'s saving no longer walks an optimizer's own attributes: "
             "clrplug.engine.compat.carry_state relies on it to checkpoint the cycle's numbers")
    into = _compiled(keras.optimizers.SGD(0.1))
    carried = Carried(0.0)
    compat.carry_state(into.optimizer, carried)
    into.load_weights(tmp_path / "w.weights.h5")
    assert carried.value == 7.0, broke
    plain = _compiled(keras.optimizers.SGD(0.1))
    plain.load_weights(tmp_path / "w.weights.h5")  # no such attribute: ignored
    compat.carry_state(into.optimizer, None)
    assert compat.carried_state(into.optimizer) is None


def test_fit_calls_the_train_function_it_finds_on_the_model() -> None:
    """``compat.guard_train_function``: ``fit`` keeps a train function already on the model
    and calls it for every step, so a guarded one sees every step (and its exceptions)."""
    model = _compiled(keras.optimizers.SGD(0.1))
    failed: list[bool] = []
    compat.guard_train_function(model, lambda: failed.append(True))
    guarded = model.train_function
    calls = []
    wrapped = guarded.__wrapped__

    def counting(*args, **kwargs):
        calls.append(1)
        return wrapped(*args, **kwargs)

    guarded.__wrapped__ = counting
    model.fit(np.ones((8, 3)), np.ones((8, 2)), batch_size=2, epochs=1, verbose=0)
    assert len(calls) == 4 and not failed, (
        f"Keras {keras.__version__}'s fit no longer calls the train function found on the "
        "model for each step: clrplug.engine.compat.guard_train_function relies on it")
