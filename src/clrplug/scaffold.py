"""Write a new policy plugin distribution: what ``clrplug new-plugin`` runs.

:func:`new_plugin` writes a complete, installable distribution with one working
example policy (numpy, no Keras), a README, an MIT LICENSE and tests that run
clrplug's conformance kit (:mod:`clrplug.testing`). It registers either through
the pluggy hook (entry-point group ``clrplug``) or through a direct entry point
(group ``clrplug.policies``), the two routes of docs/writing-a-plugin.md.

Every argument is checked before anything is written; an existing directory is
never touched. The files are templates shipped as package data
(``clrplug/templates/plugin/``), read with :mod:`importlib.resources`. Nothing here
imports Keras.
"""

from __future__ import annotations

import datetime
import keyword
import re
import shutil
import sys
from importlib import resources
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

# Package data (clrplug/templates/plugin/), filled in with string.Template: the files of
# the distribution at the top, and in hook/ and entry-point/ the pieces of each route.
_TEMPLATES = "templates/plugin"


def _template(relative: str) -> Template:
    """The template file ``relative`` (to the templates directory), as shipped in the wheel."""
    path = resources.files("clrplug").joinpath(f"{_TEMPLATES}/{relative}")
    return Template(path.read_text(encoding="utf-8"))


def _snippet(route: str, leaf: str, values: dict[str, str]) -> str:
    """A route's piece of a file, filled in, without its file's final newline."""
    return _template(f"{route}/{leaf}").substitute(values).removesuffix("\n")


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
    source = _template("package.py.tmpl").substitute(
        values,
        registration=_snippet(route, "registration.txt", values),
        imports="\nfrom collections.abc import Callable" if hook else "",
        all=(
            '["POLICY", "clrplug_register_policies", "scale", "scale_ops"]'
            if hook else '["POLICY", "scale", "scale_ops"]'
        ),
    )
    if hook:
        source += "\n\n" + _template("hook/hook.py.tmpl").substitute(values)
    return {
        "pyproject.toml": _template("pyproject.toml.tmpl").substitute(
            values, entry_points=_template(f"{route}/entry_points.toml.tmpl").substitute(values)
        ),
        "README.md": _template("README.md.tmpl").substitute(
            values, registration=_snippet(route, "readme.md.tmpl", values)
        ),
        "LICENSE": _template("LICENSE.tmpl").substitute(values),
        f"src/{module}/__init__.py": source,
        f"src/{module}/py.typed": "",
        f"tests/test_{module}.py": _template("test_package.py.tmpl").substitute(values),
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
