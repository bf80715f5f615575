"""Write a new policy plugin distribution: what ``clrplug new-plugin`` runs.

:func:`new_plugin` writes a complete, installable distribution with one working
example policy (numpy, no Keras), a README, an MIT LICENSE and tests that run
clrplug's conformance kit (:mod:`clrplug.testing`). It registers either through
the pluggy hook (entry-point group ``clrplug``) or through a direct entry point
(group ``clrplug.policies``), the two routes of docs/writing-a-plugin.md.

Every argument is checked before anything is written; an existing directory is
never touched. The templates live here, as strings, so the generator needs no
package data (hence the module's length). Nothing here imports Keras.
"""

from __future__ import annotations

import datetime
import keyword
import re
import shutil
import sys
from pathlib import Path
from string import Template

from clrplug.errors import InvalidArgumentError
from clrplug.records import normalise_name as _normalise_name

__all__ = ["AUTHOR_PLACEHOLDER", "BUILTIN_POLICY_NAMES", "ROUTES", "new_plugin"]

#: ``route`` values: the entry-point group each one registers through.
ROUTES = {"hook": "clrplug", "entry-point": "clrplug.policies"}
#: The author written into pyproject.toml and LICENSE, to be replaced.
AUTHOR_PLACEHOLDER = "Your Name"

# PEP 508 names (PEP 503 compares them case-insensitively, '-_.' alike).
_DIST_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
_DIST_NAME_RULE = (
    "a distribution name (PEP 508) is made of ASCII letters, digits, '.', '_' and '-', "
    "and starts and ends with a letter or digit, e.g. 'clrplug-mine'"
)
# Import packages a plugin must not shadow: the host and what the generated code imports.
_RESERVED_MODULES = frozenset({"clrplug", "numpy", "keras", "pluggy", "pytest"})
# clrplug's built-in policies (the seed's three): a plugin registering one always conflicts.
# Written out so that writing a plugin loads no registry; tests/test_scaffold.py keeps it true.
BUILTIN_POLICY_NAMES = ("exp_range", "triangular", "triangular2")


def _module_name(name: str) -> str:
    """The import package of distribution ``name``: lower-cased, '-' and '.' -> '_'."""
    return re.sub(r"[-.]", "_", name).lower()


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidArgumentError(f"name must be a str, got {type(name).__name__} {name!r}.")
    if not _DIST_NAME_RE.fullmatch(name):
        raise InvalidArgumentError(f"name {name!r} is not valid: {_DIST_NAME_RULE}.")
    module = _module_name(name)
    problem = None
    if not module.isidentifier():
        problem = "not a Python identifier"
    elif keyword.iskeyword(module):
        problem = "a Python keyword"
    if problem:
        raise InvalidArgumentError(
            f"name {name!r} gives the import package {module!r}, which is {problem}: the "
            "import package is the name lower-cased with '-' and '.' turned into '_', and "
            "must be an identifier that is not a keyword (e.g. 'clrplug-mine' gives "
            "'clrplug_mine')."
        )
    if module in _RESERVED_MODULES or module in sys.stdlib_module_names:
        example = "clrplug-mine" if module == "clrplug" else f"clrplug-{name}"
        raise InvalidArgumentError(
            f"name {name!r} gives the import package {module!r}, which would shadow the "
            f"module {module!r} when installed; choose another name, e.g. {example!r}."
        )
    return module


def _check_policy(policy: object, name: str) -> str:
    if policy is None:
        derived = re.sub(r"^clrplug[-_.]+", "", name, flags=re.IGNORECASE)
        try:
            normalised = _normalise_name(derived)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"policy: none given, and the one derived from name {name!r} (the name "
                f"without its 'clrplug-' prefix), {derived!r}, is not valid: {exc} "
                "Give one with policy= (--policy)."
            ) from None
        where = f"policy {derived!r} (derived from name {name!r}; give another with --policy)"
    else:
        try:
            normalised = _normalise_name(policy)
        except ValueError as exc:
            raise InvalidArgumentError(f"policy (--policy): {exc}") from None
        where = f"policy (--policy) {policy!r}"
    if normalised in BUILTIN_POLICY_NAMES:
        raise InvalidArgumentError(
            f"{where} is a built-in policy of clrplug ({', '.join(BUILTIN_POLICY_NAMES)}); a "
            "plugin's policy needs a name of its own."
        )
    return normalised


def _check_route(route: object) -> str:
    if route not in ROUTES:
        raise InvalidArgumentError(
            f"route (--route) {route!r} is not valid: expected 'hook' (a module implementing "
            "the pluggy hook, entry-point group 'clrplug') or 'entry-point' (one "
            "clrplug.Policy object, entry-point group 'clrplug.policies')."
        )
    return str(route)


def _check_directory(directory: object, name: str) -> Path:
    if directory is None:
        directory = name  # ./NAME
    if not isinstance(directory, (str, Path)) or not str(directory):
        raise InvalidArgumentError(f"directory (--dir) must be a path, got {directory!r}.")
    path = Path(directory).expanduser().absolute()
    if path.exists() or path.is_symlink():
        raise InvalidArgumentError(
            f"directory (--dir) {str(directory)!r} already exists: new-plugin writes a new "
            "directory and never overwrites one; choose another --dir or remove it."
        )
    return path


# -- the templates -------------------------------------------------------------------

_PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "The '$policy' cyclical learning-rate policy for clrplug (Keras 3)"
readme = "README.md"
requires-python = ">=3.10"
license = "MIT"
authors = [{ name = "$author" }]
keywords = ["keras", "learning-rate", "cyclical-learning-rate", "clr", "clrplug"]
classifiers = [
    "Programming Language :: Python :: 3",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
    "Typing :: Typed",
]
dependencies = [
    "clrplug",
    "numpy>=1.24",
]

[project.optional-dependencies]
test = ["pytest>=8"]

$entry_points
[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
$module = ["py.typed"]

[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.ruff]
line-length = 100

[tool.ruff.lint]
select = ["E", "F", "W", "I", "B", "UP", "RUF"]
''')

_ENTRY_POINTS = {
    "hook": Template('''\
# The pluggy route: clrplug imports this module and calls its clrplug_register_policies.
[project.entry-points.clrplug]
$policy = "$module"
'''),
    "entry-point": Template('''\
# The direct route: one entry point per policy, named after it, naming a clrplug.Policy.
[project.entry-points."clrplug.policies"]
$policy = "$module:POLICY"
'''),
}

_MODULE = Template('''\
"""The '$policy' cyclical learning-rate policy for clrplug.

The amplitude of cycle ``c`` (1, 2, 3, ...) is scaled by ``1 / (1 + (c - 1) / k)``:
the first cycle peaks at ``max_lr``, cycle ``k + 1`` half way between ``base_lr`` and
``max_lr``, and every later peak is lower. Replace :func:`scale` with your own policy:
a numpy function of a float64 array ``x`` returning values in [0, 1], without state,
with its parameters as keyword arguments whose defaults the policy's ``params`` repeat
(see clrplug's guide docs/writing-a-plugin.md).

$registration
"""

from __future__ import annotations
$imports
from typing import Any

import clrplug
import numpy as np

__version__ = "0.1.0"
__all__ = $all


def scale(x: np.ndarray, k: float = 4.0) -> np.ndarray:
    """``1 / (1 + (x - 1) / k)`` on the cycle number ``x``.

    Within (0, 1] for every cycle ``x >= 1`` when ``k > 0``; clrplug refuses other
    values of ``k`` when the policy is used with them.
    """
    return 1.0 / (1.0 + (x - 1.0) / k)


def scale_ops(x: Any, k: float = 4.0) -> Any:
    """:func:`scale` with ``keras.ops``, run inside the compiled train step.

    ``x`` is an integer tensor. Optional: without it clrplug's CyclicLR tabulates
    :func:`scale` as training goes; with it the policy also works in a stand-alone
    ``CyclicalSchedule``. clrplug checks it against :func:`scale` before using it.
    """
    from keras import ops  # imported only when a schedule uses the policy

    return 1.0 / (1.0 + (ops.cast(x, "float32") - 1.0) / k)


POLICY = clrplug.Policy(
    "$policy",
    scale,
    scale_mode="cycle",
    params={"k": 4.0},
    description="Triangular cycle whose amplitude is 1/(1 + (cycle - 1)/k).",
    ops_fn=scale_ops,
)
$hook''')

_REGISTRATION = {
    "hook": (
        "clrplug finds it through this distribution's ``clrplug`` entry point, which names\n"
        "this module: clrplug calls :func:`clrplug_register_policies` once per process, the\n"
        "first time a policy is looked up or listed."
    ),
    "entry-point": (
        "clrplug finds :data:`POLICY` through this distribution's ``clrplug.policies`` entry\n"
        "point, named after the policy: no hook, no code runs but this module's import."
    ),
}

_HOOK = '''

@clrplug.hookimpl
def clrplug_register_policies(register: Callable[[clrplug.Policy], None]) -> None:
    """Register :data:`POLICY` (clrplug's pluggy hook)."""
    register(POLICY)
'''

_TESTS = Template('''\
"""Tests of $name: clrplug's conformance kit, and the scale function written out.

They test the installed distribution (``pip install -e .``), on the Keras backend
chosen by ``KERAS_BACKEND``.
"""

from __future__ import annotations

import clrplug
import numpy as np
import pytest
from clrplug.testing import policies_of

DIST = "$name"
POLICY = "$policy"


def transcription(cycle: np.ndarray, k: float = 4.0) -> np.ndarray:
    """The policy's amplitude scale, written out again: cycle c reaches 1/(1 + (c-1)/k)."""
    return k / (k + cycle - 1.0)


# One test per policy the distribution registers: clrplug's conformance check.
@pytest.mark.parametrize("name", policies_of(DIST))
def test_policy_conforms(name, clrplug_policy_check):
    clrplug_policy_check(name)


@pytest.mark.parametrize("k", [0.5, 1.0, 100.0])
def test_policy_conforms_with_other_k(k, clrplug_policy_check):
    clrplug_policy_check(POLICY, params={"k": k})


def test_resolves_by_name_with_its_scale_function():
    assert policies_of(DIST) == [POLICY]
    policy = clrplug.get_policy(POLICY)
    assert policy.source.entry_point == "$group:$policy"
    assert (policy.scale_mode, dict(policy.params)) == ("cycle", {"k": 4.0})
    cycles = np.arange(1.0, 10_001.0)
    np.testing.assert_allclose(policy.scale(cycles), transcription(cycles), rtol=1e-12)
    np.testing.assert_allclose(
        policy.scale(cycles, k=0.5), transcription(cycles, k=0.5), rtol=1e-12
    )
    np.testing.assert_allclose(policy.scale([1.0, 5.0, 13.0]), [1.0, 0.5, 0.25], rtol=1e-12)

    # The learning rates of the seed's formula, with this amplitude.
    steps = np.arange(60)
    cycle = np.floor(1 + steps / 10)
    triangle = np.maximum(0, 1 - np.abs(steps / 5 - 2 * cycle + 1))
    np.testing.assert_allclose(
        clrplug.learning_rates(steps, 0.001, 0.006, 5, mode=POLICY),
        0.001 + 0.005 * triangle * transcription(cycle),
        rtol=1e-12,
    )
''')

_README = Template('''\
# $name

The `$policy` cyclical learning-rate policy for [clrplug](https://pypi.org/project/clrplug/),
cyclical learning rates (Smith, arXiv:1506.01186) for Keras 3.

| policy | scale mode | amplitude scale | parameters |
|---|---|---|---|
| `$policy` | cycle | `1 / (1 + (cycle - 1) / k)` | `k=4` |

Cycle `c` reaches `1 / (1 + (c - 1) / k)` of the amplitude `max_lr - base_lr`: the first
cycle peaks at `max_lr`, cycle `k + 1` half way between `base_lr` and `max_lr`, and every
later peak is lower. $registration

## Install

```bash
pip install $name                 # once published
pip install -e path/to/$name      # from a checkout, while you work on it
```

`clrplug policies` then lists `$policy` with the source `$name 0.1.0`.

## Use

```python
from clrplug import CyclicLR

clr = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=2000, mode="$policy")
clr = CyclicLR(mode="$policy", policy_params={"k": 8.0})  # peaks fall more slowly
# model.fit(x, y, callbacks=[clr])
```

## Test

```bash
pip install -e "path/to/$name[test]"
pytest path/to/$name
```

The tests run clrplug's conformance kit (`clrplug.testing`) on `$policy` and compare its
scale function and learning rates with the formula written out. They use the Keras
backend named by `KERAS_BACKEND` (JAX, TensorFlow or PyTorch).
''')

_README_ROUTE = {
    "hook": "It registers through clrplug's pluggy hook (entry-point group `clrplug`).",
    "entry-point": (
        "It registers through clrplug's direct entry-point group `clrplug.policies` (an "
        "entry point named `$policy` pointing at the `clrplug.Policy` object "
        "`$module.POLICY`)."
    ),
}

_LICENSE = Template('''\
MIT License

Copyright (c) $year $author

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
''')


def _files(name: str, module: str, policy: str, route: str) -> dict[str, str]:
    """The distribution's files, by path relative to its directory."""
    values = {
        "name": name,
        "module": module,
        "policy": policy,
        "author": AUTHOR_PLACEHOLDER,
        "year": str(datetime.date.today().year),
        "group": ROUTES[route],
    }
    hook = route == "hook"
    source = _MODULE.substitute(
        values,
        registration=_REGISTRATION[route],
        imports="\nfrom collections.abc import Callable" if hook else "",
        all=(
            '["POLICY", "clrplug_register_policies", "scale", "scale_ops"]'
            if hook else '["POLICY", "scale", "scale_ops"]'
        ),
        hook=_HOOK if hook else "",
    )
    return {
        "pyproject.toml": _PYPROJECT.substitute(
            values, entry_points=_ENTRY_POINTS[route].substitute(values)
        ),
        "README.md": _README.substitute(
            values, registration=Template(_README_ROUTE[route]).substitute(values)
        ),
        "LICENSE": _LICENSE.substitute(values),
        f"src/{module}/__init__.py": source,
        f"src/{module}/py.typed": "",
        f"tests/test_{module}.py": _TESTS.substitute(values),
    }


def new_plugin(
    name: str,
    *,
    policy: str | None = None,
    route: str = "hook",
    directory: str | Path | None = None,
) -> Path:
    """Write a new policy plugin distribution, ready to ``pip install -e``.

    Args:
        name: the distribution's name (PEP 508), e.g. ``"clrplug-mine"``. Its import
            package is the name lower-cased with ``-`` and ``.`` turned into ``_``
            (``clrplug_mine``), which must be an identifier, not a keyword, and not
            shadow the standard library or clrplug and its dependencies.
        policy: the policy's name, normalised as :class:`~clrplug.Policy` does
            (lower-case identifier). Default: ``name`` without a leading ``clrplug-``
            (``"mine"``). clrplug's built-in names are refused.
        route: ``"hook"`` (a module implementing the pluggy hook, entry-point group
            ``clrplug``) or ``"entry-point"`` (a :class:`~clrplug.Policy` object
            named by an entry point of group ``clrplug.policies``).
        directory: where to write it; must not exist. Default: ``./<name>``.

    Returns:
        The absolute path of the new directory, holding ``pyproject.toml``,
        ``README.md``, ``LICENSE``, ``src/<package>/__init__.py`` (the policy),
        ``src/<package>/py.typed`` and ``tests/test_<package>.py``.

    Raises:
        InvalidArgumentError: an argument is refused (the message names it, its
            value and the rule). Nothing is written then.

    Example:

    ```python
    import tempfile
    from pathlib import Path
    from clrplug.scaffold import new_plugin

    root = new_plugin("clrplug-mine", directory=Path(tempfile.mkdtemp()) / "mine")
    assert (root / "src" / "clrplug_mine" / "__init__.py").exists()
    ```
    """
    module = _check_name(name)
    policy_name = _check_policy(policy, name)
    route = _check_route(route)
    path = _check_directory(directory, name)
    files = _files(name, module, policy_name, route)

    path.mkdir(parents=True)  # raises if it appeared since the check: never overwrite
    try:
        for relative, text in files.items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)  # no half-written plugin left behind
        raise
    return path
