"""``clrplug new-plugin`` / :func:`clrplug.scaffold.new_plugin`: the plugin generator.

Bad arguments are refused with the rule, before anything is written; both routes
generate a complete distribution; and each one, built and installed by pip, is listed by
``clrplug policies`` and resolves in ``CyclicLR(mode=...)``, in a fresh process as a user
would run them. No backend computation: this module runs once; the generated plugins'
own tests, which train, run on each backend (tests/test_scaffold_installed.py).
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import clrplug
from clrplug.cli import main as clrplug_cli
from clrplug.errors import InvalidArgumentError
from clrplug.scaffold import AUTHOR_PLACEHOLDER, BUILTIN_POLICY_NAMES, new_plugin

ROUTES = ("hook", "entry-point")
GROUPS = {"hook": "clrplug", "entry-point": "clrplug.policies"}


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _expected_files(module: str) -> list[str]:
    return sorted(
        [
            "LICENSE",
            "README.md",
            "pyproject.toml",
            f"src/{module}/__init__.py",
            f"src/{module}/py.typed",
            f"tests/test_{module}.py",
        ]
    )


def _refused(tmp_path: Path, match: str, name: object = "clrplug-ok", **kwargs: object) -> str:
    """Call new_plugin expecting a refusal; check nothing was written; return the message."""
    before = _files(tmp_path)
    kwargs.setdefault("directory", tmp_path / "out")
    with pytest.raises(InvalidArgumentError, match=match) as info:
        new_plugin(name, **kwargs)  # type: ignore[arg-type]
    assert _files(tmp_path) == before
    assert not (tmp_path / "out").exists()
    return str(info.value)


# -- refusals --------------------------------------------------------------------------

PEP_508 = re.escape(
    "is not valid: a distribution name (PEP 508) is made of ASCII letters, digits, '.', '_' "
    "and '-', and starts and ends with a letter or digit, e.g. 'clrplug-mine'."
)


@pytest.mark.parametrize(
    "name", ["", "-foo", "foo-", ".foo", "foo_", "foo bar", "foo/bar", "föo", "foo\n", "a+b"]
)
def test_invalid_distribution_names_are_refused_with_the_rule(tmp_path, name):
    message = _refused(tmp_path, PEP_508, name)
    assert message.startswith(f"name {name!r} ")


@pytest.mark.parametrize(
    ("name", "module", "problem"),
    [
        ("1abc", "1abc", "not a Python identifier"),
        ("3-d", "3_d", "not a Python identifier"),
        ("class", "class", "a Python keyword"),
        ("Lambda", "lambda", "a Python keyword"),
    ],
)
def test_names_whose_import_package_is_unusable_are_refused(tmp_path, name, module, problem):
    message = _refused(tmp_path, "must be an identifier that is not a keyword", name)
    assert message.startswith(
        f"name {name!r} gives the import package {module!r}, which is {problem}: the import "
        "package is the name lower-cased with '-' and '.' turned into '_'"
    )


@pytest.mark.parametrize(
    ("name", "module", "example"),
    [
        ("json", "json", "clrplug-json"),
        ("Collections", "collections", "clrplug-Collections"),
        ("clrplug", "clrplug", "clrplug-mine"),
        ("NumPy", "numpy", "clrplug-NumPy"),
    ],
)
def test_names_that_would_shadow_a_module_are_refused(tmp_path, name, module, example):
    message = _refused(tmp_path, "would shadow", name)
    assert message == (
        f"name {name!r} gives the import package {module!r}, which would shadow the module "
        f"{module!r} when installed; choose another name, e.g. {example!r}."
    )


@pytest.mark.parametrize("name", [None, 3, b"clrplug-foo", ["clrplug-foo"]])
def test_a_name_that_is_not_a_string_is_refused(tmp_path, name):
    _refused(tmp_path, rf"^name must be a str, got {type(name).__name__} ", name)


POLICY_RULE = re.escape(
    "names are identifiers made of lower-case letters, digits and '_' that do not start "
    "with a digit (e.g. 'exp_range')."
)


@pytest.mark.parametrize("policy", ["Foo Bar!", "2x", "", "a/b", "naïve?"])
def test_invalid_policy_names_are_refused_with_the_policy_rule(tmp_path, policy):
    message = _refused(tmp_path, POLICY_RULE, policy=policy)
    assert message.startswith(f"policy (--policy): Invalid policy name {policy!r}: ")


def test_a_policy_name_that_is_not_a_string_is_refused(tmp_path):
    _refused(tmp_path, r"(?i)^policy \(--policy\): policy name must be a string, got int 3", policy=3)


def test_an_invalid_derived_policy_name_asks_for_one(tmp_path):
    message = _refused(tmp_path, POLICY_RULE, "clrplug-2fast")
    assert message.startswith(
        "policy: none given, and the one derived from name 'clrplug-2fast' (the name without "
        "its 'clrplug-' prefix), '2fast', is not valid: Invalid policy name '2fast'"
    )
    assert message.endswith("Give one with policy= (--policy).")


@pytest.mark.parametrize("policy", ["triangular", "Exp-Range", "triangular2"])
def test_builtin_policy_names_are_refused(tmp_path, policy):
    message = _refused(tmp_path, "is a built-in policy of clrplug", policy=policy)
    assert message == (
        f"policy (--policy) {policy!r} is a built-in policy of clrplug (exp_range, triangular, "
        "triangular2); a plugin's policy needs a name of its own."
    )


def test_a_derived_builtin_policy_name_is_refused(tmp_path):
    message = _refused(tmp_path, "is a built-in policy", "clrplug-triangular2")
    assert message.startswith(
        "policy 'triangular2' (derived from name 'clrplug-triangular2'; give another with "
        "--policy) is a built-in policy of clrplug"
    )


def test_the_builtin_names_are_clrplugs_builtins(fresh_registry):
    builtins = {p.name for p in clrplug.list_policies() if p.source.kind == "builtin"}
    assert builtins == set(BUILTIN_POLICY_NAMES)


@pytest.mark.parametrize("route", ["hooks", "entry_point", "", None, 1])
def test_unknown_routes_are_refused_naming_both(tmp_path, route):
    message = _refused(tmp_path, "expected 'hook'", route=route)
    assert message == (
        f"route (--route) {route!r} is not valid: expected 'hook' (a module implementing the "
        "pluggy hook, entry-point group 'clrplug') or 'entry-point' (one clrplug.Policy "
        "object, entry-point group 'clrplug.policies')."
    )


@pytest.mark.parametrize("kind", ["empty directory", "directory", "file", "broken link"])
def test_an_existing_path_is_never_overwritten(tmp_path, kind):
    target = tmp_path / "clrplug-foo"
    if kind == "file":
        target.write_text("mine")
    elif kind == "broken link":
        target.symlink_to(tmp_path / "nowhere")
    else:
        target.mkdir()
        if kind == "directory":
            (target / "pyproject.toml").write_text("mine")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(InvalidArgumentError) as info:
        new_plugin("clrplug-foo", directory=target)
    assert str(info.value) == (
        f"directory (--dir) {str(target)!r} already exists: new-plugin writes a new directory "
        "and never overwrites one; choose another --dir or remove it."
    )
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert sorted(tmp_path.iterdir()) == [target]


def test_the_default_directory_is_refused_when_it_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clrplug-foo").mkdir()
    with pytest.raises(InvalidArgumentError, match=r"^directory \(--dir\) 'clrplug-foo' already"):
        new_plugin("clrplug-foo")
    assert list((tmp_path / "clrplug-foo").iterdir()) == []


@pytest.mark.parametrize("directory", [3, ""])
def test_a_directory_that_is_not_a_path_is_refused(tmp_path, directory):
    _refused(tmp_path, r"^directory \(--dir\) must be a path, got ", directory=directory)


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []
    write_text = Path.write_text

    def failing(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 3:
            raise OSError("disk full")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError, match="disk full"):
        new_plugin("clrplug-foo", directory=tmp_path / "parent" / "clrplug-foo")
    assert len(calls) == 3
    assert list((tmp_path / "parent").iterdir()) == []


# -- what it writes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "module", "policy"),
    [
        ("clrplug-foo", "clrplug_foo", "foo"),
        ("CLRPLUG_Bar-baz", "clrplug_bar_baz", "bar_baz"),
        ("clrplug.sawtooth", "clrplug_sawtooth", "sawtooth"),
        ("My.Plugin", "my_plugin", "my_plugin"),
        ("warmup", "warmup", "warmup"),
        ("x", "x", "x"),
    ],
)
def test_default_module_and_policy_names(tmp_path, name, module, policy):
    root = new_plugin(name, directory=tmp_path / "p")
    assert root == tmp_path / "p"
    assert _files(root) == _expected_files(module)
    source = (root / "src" / module / "__init__.py").read_text()
    assert f'clrplug.Policy(\n    "{policy}",' in source
    assert f'DIST = "{name}"\nPOLICY = "{policy}"\n' in (root / f"tests/test_{module}.py").read_text()


def test_a_given_policy_name_is_normalised_as_clrplug_does(tmp_path):
    root = new_plugin("clrplug-foo", policy="Fancy-Wave", directory=tmp_path / "p")
    assert 'clrplug.Policy(\n    "fancy_wave",' in (root / "src/clrplug_foo/__init__.py").read_text()
    assert 'fancy_wave = "clrplug_foo"' in (root / "pyproject.toml").read_text()


def test_the_default_directory_is_the_name_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = new_plugin("clrplug-foo", route="entry-point")
    assert root == tmp_path / "clrplug-foo" and root.is_absolute()
    assert _files(root) == _expected_files("clrplug_foo")


@pytest.mark.parametrize("route", ROUTES)
def test_generates_a_complete_distribution(tmp_path, route, monkeypatch):
    tomllib = pytest.importorskip("tomllib")
    module = f"clrplug_gen_{route.replace('-', '_')}"
    name = module.replace("_", "-")
    policy = f"gen_{route.replace('-', '_')}"
    root = new_plugin(name, policy=policy, route=route, directory=tmp_path / name)
    assert _files(root) == _expected_files(module)

    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert (project["name"], project["version"], project["readme"]) == (name, "0.1.0", "README.md")
    assert project["license"] == "MIT"
    assert project["authors"] == [{"name": AUTHOR_PLACEHOLDER}]
    assert "clrplug" in project["dependencies"]
    assert project["optional-dependencies"] == {"test": ["pytest>=8"]}
    expected_entry_point = module if route == "hook" else f"{module}:POLICY"
    assert project["entry-points"] == {GROUPS[route]: {policy: expected_entry_point}}
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
    assert pyproject["tool"]["setuptools"]["packages"]["find"] == {"where": ["src"]}
    assert pyproject["tool"]["setuptools"]["package-data"] == {module: ["py.typed"]}
    assert pyproject["tool"]["ruff"]["line-length"] == 100

    assert (root / "src" / module / "py.typed").read_text() == ""
    license_text = (root / "LICENSE").read_text()
    assert license_text.startswith(
        f"MIT License\n\nCopyright (c) {datetime.date.today().year} {AUTHOR_PLACEHOLDER}\n"
    )
    readme = (root / "README.md").read_text()
    for needle in (f"# {name}\n", f'CyclicLR(base_lr=0.001, max_lr=0.006, step_size=2000, '
                   f'mode="{policy}")', f"pip install -e path/to/{name}", f"pytest path/to/{name}",
                   f"`{GROUPS[route]}`"):
        assert needle in readme
    tests = (root / "tests" / f"test_{module}.py").read_text()
    assert '@pytest.mark.parametrize("name", policies_of(DIST))' in tests
    assert "clrplug_policy_check(name)" in tests
    assert f'policy.source.entry_point == "{GROUPS[route]}:{policy}"' in tests
    compile(tests, "test.py", "exec")

    # The package imports without being installed, and holds a working policy.
    monkeypatch.syspath_prepend(str(root / "src"))
    try:
        package = importlib.import_module(module)
        assert package.POLICY == clrplug.Policy(
            policy, package.scale, "cycle", params={"k": 4.0},
            description=package.POLICY.description, ops_fn=package.scale_ops,
        )
        cycles = np.arange(1.0, 10_001.0)
        values = package.POLICY.scale(cycles)
        np.testing.assert_allclose(values, 4.0 / (3.0 + cycles), rtol=1e-12)
        assert values[0] == 1.0 and np.all(np.diff(values) < 0) and values[-1] > 0
        registered: list[clrplug.Policy] = []
        if route == "hook":
            package.clrplug_register_policies(register=registered.append)
            assert registered == [package.POLICY]
        else:
            assert not hasattr(package, "clrplug_register_policies")
    finally:
        sys.modules.pop(module, None)


def _ruff() -> str | None:
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else shutil.which("ruff")


def test_generated_code_is_ruff_clean(tmp_path):
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e .[dev])")
    for route in ROUTES:
        root = new_plugin(f"clrplug-{route}", route=route, directory=tmp_path / route)
        for command in (["check"], ["format", "--check"]):
            run = subprocess.run(
                [ruff, *command, "--no-cache", "."], cwd=root, capture_output=True, text=True
            )
            assert run.returncode == 0, f"ruff {' '.join(command)} on {route}:\n{run.stdout}"


TEMPLATES = Path(__file__).resolve().parent.parent / "src" / "clrplug" / "templates"


def test_every_template_ships_in_the_wheel_and_is_used(tmp_path, monkeypatch):
    """pyproject's package-data names every template file (the wheel carries what its globs
    match; ``scripts/dev.py dist`` checks the built wheel), and each one is read."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((TEMPLATES.parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["clrplug"]
    shipped = {p for pattern in globs for p in TEMPLATES.parent.glob(pattern) if p.is_file()}
    files = {p for p in TEMPLATES.rglob("*") if p.is_file()}
    assert files and files <= shipped, sorted(map(str, files - shipped))

    scaffold = importlib.import_module("clrplug.scaffold")
    read: list[str] = []
    template = scaffold._template
    monkeypatch.setattr(scaffold, "_template", lambda relative: read.append(relative) or template(relative))
    for route in ROUTES:
        new_plugin("clrplug-foo", route=route, directory=tmp_path / route)
    used = {TEMPLATES / "plugin" / relative for relative in read}
    assert used == files, sorted(map(str, files ^ used))


def test_the_docstring_example_runs():
    example = re.search(r"```python\n(.*?)```", new_plugin.__doc__ or "", re.S)
    assert example is not None
    exec(textwrap.dedent(example.group(1)), {})


# -- the command line --------------------------------------------------------------------


def test_cli_writes_the_plugin_and_prints_the_files_and_next_steps(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert clrplug_cli(["new-plugin", "clrplug-foo", "--route", "entry-point",
                        "--policy", "foo_wave"]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "clrplug-foo"
    assert 'foo_wave = "clrplug_foo:POLICY"' in (root / "pyproject.toml").read_text()
    lines = out.splitlines()
    assert lines[0] == f"wrote clrplug-foo{os.sep}:"
    listed = [line.strip() for line in lines[1:7]]
    assert listed == [str(Path("clrplug-foo", f)) for f in _expected_files("clrplug_foo")]
    steps = out[out.index("next steps:"):]
    for command in ("pip install -e clrplug-foo ", "clrplug policies ", "pytest clrplug-foo "):
        assert f"\n  {command}" in steps


def test_cli_dir_option_and_quoting(tmp_path, capsys):
    target = tmp_path / "with space" / "plugin"
    assert clrplug_cli(["new-plugin", "clrplug-foo", "--dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert _files(target) == _expected_files("clrplug_foo")
    assert f"pip install -e '{target}'" in out  # outside the working directory: absolute


def test_cli_refusals_exit_2_with_the_message(tmp_path, capsys):
    target = tmp_path / "p"
    assert clrplug_cli(["new-plugin", "bad name", "--dir", str(target)]) == 2
    assert re.search(PEP_508, capsys.readouterr().err)
    target.mkdir()
    assert clrplug_cli(["new-plugin", "clrplug-foo", "--dir", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert list(target.iterdir()) == []
    with pytest.raises(SystemExit) as info:
        clrplug_cli(["new-plugin", "clrplug-foo", "--route", "hooks"])
    assert info.value.code == 2
    assert "invalid choice: 'hooks'" in capsys.readouterr().err


def test_new_plugin_imports_no_keras(tmp_path):
    code = (
        "import sys\nfrom clrplug.cli import main\n"
        f"assert main(['new-plugin', 'clrplug-foo', '--dir', {str(tmp_path / 'p')!r}]) == 0\n"
        "assert 'keras' not in sys.modules, 'keras was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# -- installed with pip: listed, resolves, passes its own tests ----------------------------

# Building and pip-installing two distributions, then three fresh interpreters (one runs
# the generated test suites, importing Keras): tens of seconds. It runs in CI.
slow = pytest.mark.slow

INSTALLED = {  # route: (distribution, policy)
    "hook": ("clrplug-gen-hook", "gen_hook"),
    "entry-point": ("clrplug-gen-direct", "gen_direct"),
}


def install_generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both routes generated, built and pip-installed (not editable) into one directory."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed in this environment")
    root = tmp_path_factory.mktemp("generated")
    projects = {
        route: new_plugin(dist, policy=policy, route=route, directory=root / dist)
        for route, (dist, policy) in INSTALLED.items()
    }
    site = root / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
            "--no-build-isolation", "--disable-pip-version-check", "--target", str(site),
            *map(str, projects.values()),
        ],
        check=True,
    )
    env = dict(os.environ)
    for key in ("CLRPLUG_DISABLE_PLUGIN_AUTOLOAD", "CLRPLUG_PLUGINS"):
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return {"projects": projects, "env": env, "site": site}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return install_generated(tmp_path_factory)


def run_installed(installed: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` where the generated plugins are installed; it must succeed."""
    run = subprocess.run(
        [sys.executable, *args], env=installed["env"], capture_output=True, text=True,
        cwd=installed["site"],
    )
    assert run.returncode == 0, f"{' '.join(args)} failed:\n{run.stdout}\n{run.stderr}"
    return run


@slow
def test_installed_plugins_are_listed_by_clrplug_policies(installed):
    rows = json.loads(run_installed(installed, "-m", "clrplug", "policies", "--json").stdout)
    by_name = {row["name"]: row for row in rows}
    for dist, policy in INSTALLED.values():
        row = by_name[policy]
        assert (row["distribution"], row["version"], row["status"]) == (dist, "0.1.0", "ok")
        assert (row["scale_mode"], row["params"]) == ("cycle", {"k": 4.0})


@slow
def test_installed_policies_resolve_in_cyclic_lr(installed):
    code = textwrap.dedent(
        f"""
        import numpy as np
        import clrplug

        for dist, policy in {list(INSTALLED.values())!r}:
            clr = clrplug.CyclicLR(base_lr=0.001, max_lr=0.006, step_size=5, mode=policy)
            source = clrplug.get_policy(policy).source
            assert (source.kind, source.distribution) == ("plugin", dist), source
            lr = clrplug.learning_rates(np.arange(60), 0.001, 0.006, 5, mode=policy)
            assert abs(lr[5] - 0.006) < 1e-12  # cycle 1 peaks at max_lr
            assert abs(lr[45] - (0.001 + 0.005 / 2)) < 1e-12  # cycle 5: 4 / (4 + 4)
            print(policy, "ok")
        """
    )
    out = run_installed(installed, "-c", code).stdout
    assert out.split() == ["gen_hook", "ok", "gen_direct", "ok"]


