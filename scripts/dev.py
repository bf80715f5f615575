#!/usr/bin/env python3
"""Developer entry point: creates ./.venv with everything needed, then runs a task.

    python3 scripts/dev.py demo [clrplug demo options]   # the project's main job
    python3 scripts/dev.py test [pytest options]         # everything CI checks
    python3 scripts/dev.py dist                          # build, check, install, smoke-test
    python3 scripts/dev.py list [pytest options]         # which tests each pytest run holds

``test`` runs ruff, mypy, a strict mkdocs build and ``dist``, then pytest: once on the
backend-independent test modules of ``tests/`` (listed in tests/conftest.py,
``BACKEND_INDEPENDENT``; under the first backend selected), then once per Keras backend
on the rest of ``tests/`` and every plugin's ``tests/``. The part a run holds reaches
tests/conftest.py as ``CLRPLUG_TEST_PART``. torch is imported only in the PyTorch run
(PyTorch's schedulers reach the other runs as stored data, tests/torch_oracle.json), so
the public index's CUDA torch wheel works as well as a CPU build. Its arguments are
passed to pytest unchanged, after those paths, in every run: ``-x``, ``-q``,
``-k EXPR``, ``--lf`` and so on. A path given there is collected in addition to the
default ones, not instead of them (select with ``-k``). When no run collects a test at
all (exit code 5 everywhere, e.g. a ``-k`` that matches nothing) that counts as a
failure; one run collecting nothing (a ``-k`` matching only backend tests) does not.

``list [pytest options]`` shows that split without running anything: each run's
environment and how many tests it collects from each module.

``dist`` builds the sdist and wheel of clrplug and of each plugin under plugins/
(``python -m build``, into a temporary directory), checks them (``twine check
--strict``; each wheel's entry points, ``py.typed``, and the README as its long
description), then installs the wheels with jax and pytest into a fresh virtual
environment and runs there: ``clrplug policies --json`` (every plugin's policies
listed), ``clrplug new-plugin`` for both routes with ``pip install -e`` and the
generated tests, and a short ``fit`` with ``CyclicLR(mode="sinusoidal")``. It needs
the package index for the fresh environment (pip's cache makes later runs fast) and
prints how long each step took.

Only the standard library is used here, so this works on a fresh clone with
nothing but Python 3.10+ and pip. Exit status: 0 all passed, 1 something failed,
2 a usage error (nothing was run). Environment variables:

    CLRPLUG_BACKENDS  backends to test, comma-separated, among jax, tensorflow, torch
                      (default: all three); an empty list or another name is refused;
                      the backend-independent run uses the first
    CLRPLUG_TEST_JOBS how many pytest runs ``test`` runs at once (default: 2 on a machine
                      with 2 cores or more, else 1); with more than one, each run's
                      output is printed whole when it ends
    CLRPLUG_VENV      where the virtual environment lives (default: .venv)
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import email.parser
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("CLRPLUG_VENV", ROOT / ".venv"))
KNOWN_BACKENDS = ("jax", "tensorflow", "torch")
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())

# The three Keras backends. torch is pinned to a release this project's machines hold
# as a CPU build on local disk. Elsewhere on Linux, PyPI's torch==2.13.0 is a CUDA build
# (with triton): that works, since torch is imported only in the PyTorch run; a CPU build
# installed into .venv first is a smaller download and satisfies the pin as well
# (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu).
BACKEND_PACKAGES = ["jax>=0.4.30", "tensorflow-cpu>=2.16", "torch==2.13.0"]

# The `dist` smoke test: JAX is the lightest backend to install into a fresh environment.
SMOKE_PACKAGES = [BACKEND_PACKAGES[0], "pytest>=8"]
SMOKE_FIT = """
import keras
import numpy as np

from clrplug import CyclicLR, learning_rates

x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
clr = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=4, mode="sinusoidal")
model.fit(x, x.sum(axis=1), batch_size=8, epochs=2, callbacks=[clr], verbose=0)
lr = clr.history["lr"]
print(f"fit on {keras.backend.backend()}, {len(lr)} steps, learning rates:")
print(" ".join(f"{v:.5f}" for v in lr))
expected = learning_rates(np.arange(16), 0.001, 0.006, 4, mode="sinusoidal")
assert np.allclose(lr, expected, rtol=1e-6, atol=0), (lr, expected)
"""


class UsageError(Exception):
    """The command line or the environment asks for something this script cannot do."""


class CheckFailed(Exception):
    """A ``dist`` check found a problem; the message says which."""


def backends(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The Keras backends ``test`` runs, from CLRPLUG_BACKENDS (default: all)."""
    raw = environ.get("CLRPLUG_BACKENDS")
    if raw is None:
        return list(KNOWN_BACKENDS)
    names = [name.strip() for name in raw.split(",") if name.strip()]
    choices = ", ".join(KNOWN_BACKENDS)
    if not names:
        raise UsageError(
            f"CLRPLUG_BACKENDS={raw!r} names no backend: give a comma-separated list "
            f"among {choices}, or unset it to test all three."
        )
    unknown = [name for name in names if name not in KNOWN_BACKENDS]
    if unknown:
        raise UsageError(
            f"CLRPLUG_BACKENDS={raw!r}: unknown backend(s) {', '.join(map(repr, unknown))}; "
            f"the backends are {choices}."
        )
    return list(dict.fromkeys(names))


def _bin(name: str, root: Path = VENV) -> Path:
    return root / ("Scripts" if os.name == "nt" else "bin") / name


def _run(
    *cmd: object, env: dict[str, str] | None = None, cwd: Path = ROOT, capture: bool = False
) -> str:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run(
        [str(c) for c in cmd], check=True, cwd=cwd, env=env,
        stdout=subprocess.PIPE if capture else None, text=True,
    )
    return result.stdout or ""


def _fingerprint() -> str:
    digest = hashlib.sha256(" ".join(BACKEND_PACKAGES).encode())
    for path in [ROOT / "pyproject.toml", *(p / "pyproject.toml" for p in PLUGINS)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv() -> Path:
    """Create the venv and install clrplug, its plugins, test tools and backends (once)."""
    python = _bin("python")
    stamp = VENV / ".clrplug-installed"
    if stamp.exists() and stamp.read_text() == _fingerprint() and python.exists():
        return python
    if not python.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(
        python, "-m", "pip", "install", "--quiet",
        "-e", f"{ROOT}[test,plot,demo,docs,dev]",
        *BACKEND_PACKAGES,
        *(arg for plugin in PLUGINS for arg in ("-e", str(plugin))),
    )
    stamp.write_text(_fingerprint())
    return python


# -- dist ----------------------------------------------------------------------------


@contextlib.contextmanager
def _timed(label: str, timings: list[tuple[str, float]]) -> Iterator[None]:
    print(f"\n--- dist: {label} ---", flush=True)
    start = time.perf_counter()
    try:
        yield
    finally:
        timings.append((label, time.perf_counter() - start))


def _declared_entry_points(project: Path) -> dict[str, dict[str, str]] | None:
    """The entry points pyproject.toml declares, or None where tomllib is missing (3.10)."""
    try:
        import tomllib
    except ModuleNotFoundError:
        return None
    table = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    groups = {group: dict(eps) for group, eps in table.get("entry-points", {}).items()}
    if table.get("scripts"):
        groups["console_scripts"] = dict(table["scripts"])
    return groups


def _check_wheel(wheel: Path, project: Path) -> str:
    """Check a wheel's entry points, py.typed and long description; return its name."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        tops = {name.split("/", 1)[0] for name in names if "/" in name}
        info = next((top for top in tops if top.endswith(".dist-info")), None)
        if info is None:
            raise CheckFailed(f"{wheel.name}: no .dist-info directory")

        def read(member: str) -> str | None:
            path = f"{info}/{member}"
            return archive.read(path).decode("utf-8") if path in names else None

        metadata, entry_text = read("METADATA"), read("entry_points.txt")
    problems = []
    message = email.parser.Parser().parsestr(metadata or "")
    dist = message["Name"] or wheel.name
    if entry_text is None:
        problems.append("no entry_points.txt")
        entry_points: dict[str, dict[str, str]] = {}
    else:
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # entry point names are case-sensitive
        parser.read_string(entry_text)
        entry_points = {group: dict(parser[group]) for group in parser.sections()}
    declared = _declared_entry_points(project)
    if declared is not None and entry_points != declared:
        problems.append(f"entry points {entry_points}, but pyproject.toml declares {declared}")
    if project == ROOT:
        if entry_points.get("pytest11", {}).get("clrplug") != "clrplug.testing.pytest_plugin":
            problems.append("no pytest11 entry point 'clrplug = clrplug.testing.pytest_plugin'")
    elif not (entry_points.get("clrplug") or entry_points.get("clrplug.policies")):
        problems.append("no entry point in the groups 'clrplug' or 'clrplug.policies'")
    packages = sorted(t for t in tops if not t.endswith((".dist-info", ".data")))
    if not packages:
        problems.append("no package")
    problems += [f"no {p}/py.typed" for p in packages if f"{p}/py.typed" not in names]
    readme = (project / "README.md").read_text(encoding="utf-8")
    if (message.get_payload() or "").strip() != readme.strip():
        problems.append("the long description is not README.md")
    if not (message["Description-Content-Type"] or "").startswith("text/markdown"):
        problems.append(
            f"Description-Content-Type is {message['Description-Content-Type']!r}, "
            "not text/markdown"
        )
    if problems:
        raise CheckFailed(f"{wheel.name}: " + "; ".join(problems))
    print(f"{wheel.name}: entry points {sorted(entry_points)}, py.typed in {packages}, "
          "README as long description", flush=True)
    return dist


def _smoke_env() -> dict[str, str]:
    """The fresh environment's variables: nothing of this checkout leaks in."""
    env = {
        key: value for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CLRPLUG_PLUGINS",
                       "CLRPLUG_DISABLE_PLUGIN_AUTOLOAD"}
    }
    env.update(KERAS_BACKEND="jax", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def run_dist(python: Path) -> bool:
    """Build, check and smoke-test the distributions; print timings; True if all passed."""
    timings: list[tuple[str, float]] = []
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="clrplug-dist-") as tmp:
            _dist(python, Path(tmp), timings)
    except (CheckFailed, subprocess.CalledProcessError) as exc:
        print(f"\ndist FAILED: {exc}", flush=True)
        return False
    finally:
        summary = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in timings)
        print(f"\ndist timings: {summary}; total {time.perf_counter() - start:.1f} s",
              flush=True)
    return True


def _dist(python: Path, tmp: Path, timings: list[tuple[str, float]]) -> None:
    projects = [ROOT, *PLUGINS]
    built: dict[Path, tuple[Path, Path]] = {}
    with _timed("build sdists and wheels", timings):
        for project in projects:
            out = tmp / "dist" / ("clrplug" if project == ROOT else project.name)
            # --no-isolation: .venv already holds the build backend (setuptools); the
            # wheel is built from the sdist, which proves the sdist complete.
            _run(python, "-m", "build", "--quiet", "--no-isolation", "--outdir", out, project)
            sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
            if len(sdists) != 1 or len(wheels) != 1:
                raise CheckFailed(f"{project}: expected one sdist and one wheel, got "
                                  f"{[p.name for p in out.iterdir()]}")
            built[project] = (sdists[0], wheels[0])
    with _timed("twine check --strict", timings):
        _run(_bin("twine"), "--no-color", "check", "--strict",
             *(p for pair in built.values() for p in pair))
    with _timed("wheel contents", timings):
        dists = {project: _check_wheel(wheel, project) for project, (_, wheel) in built.items()}

    fresh = tmp / "venv"
    fresh_python, env = _bin("python", fresh), _smoke_env()
    # pip of .venv installs into the fresh environment (--python): no ensurepip needed.
    pip = [python, "-m", "pip", "--python", fresh_python, "install", "--quiet"]
    with _timed("fresh venv + pip install wheels, jax, pytest", timings):
        venv.EnvBuilder(with_pip=False).create(fresh)
        _run(*pip, "--no-compile", *(wheel for _, wheel in built.values()), *SMOKE_PACKAGES,
             env=env)

    with _timed("clrplug policies --json", timings):
        rows = json.loads(_run(_bin("clrplug", fresh), "policies", "--json", env=env,
                               capture=True))
        failed = [row for row in rows if row["status"] != "ok"]
        if failed:
            raise CheckFailed(f"clrplug policies lists problems: {failed}")
        for project in PLUGINS:
            names = [row["name"] for row in rows if row["distribution"] == dists[project]]
            if not names:
                raise CheckFailed(f"clrplug policies lists no policy of {dists[project]}")
            print(f"{dists[project]}: {', '.join(names)}", flush=True)

    with _timed("clrplug new-plugin (both routes)", timings):
        generated = []
        for route, name in (("hook", "clrplug-smoke-hook"), ("entry-point", "clrplug-smoke-ep")):
            _run(_bin("clrplug", fresh), "new-plugin", name, "--route", route, env=env, cwd=tmp)
            generated.append(tmp / name)
    with _timed("pip install -e the generated plugins", timings):
        _run(*pip, *(arg for directory in generated for arg in ("-e", directory)), env=env)
    with _timed("pytest the generated plugins", timings):
        _run(fresh_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *generated,
             env=env, cwd=tmp)

    with _timed("fit with CyclicLR(mode='sinusoidal')", timings):
        script = tmp / "smoke_fit.py"
        script.write_text(SMOKE_FIT)
        _run(fresh_python, script, env=env, cwd=tmp)


# -- tasks -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PytestRun:
    """One pytest process of ``test``: a label, its backend, its part, its paths."""

    label: str
    backend: str
    part: str
    paths: tuple[str, ...]

    def env(self) -> dict[str, str]:
        return dict(os.environ, KERAS_BACKEND=self.backend, CLRPLUG_TEST_PART=self.part)


def pytest_runs(selected: list[str]) -> list[PytestRun]:
    """The backend-independent modules once, then the rest once per selected backend."""
    everything = ("tests", *(str(p.relative_to(ROOT) / "tests") for p in PLUGINS))
    return [
        PytestRun(f"backend-independent tests (KERAS_BACKEND={selected[0]})", selected[0],
                  "independent", ("tests",)),
        *(PytestRun(f"KERAS_BACKEND={b}", b, "backend", everything) for b in selected),
    ]


def _jobs() -> int:
    """How many pytest runs ``test`` runs at once (CLRPLUG_TEST_JOBS; default: 2 where
    there are 2 cores or more, else 1)."""
    raw = os.environ.get("CLRPLUG_TEST_JOBS")
    if raw is None:
        return 2 if (os.cpu_count() or 1) >= 2 else 1
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"CLRPLUG_TEST_JOBS={raw!r}: expected a positive integer")
    return int(raw)


def _pytest(
    python: Path, runs: list[PytestRun], args: list[str], jobs: int
) -> list[tuple[PytestRun, int, float]]:
    """Run the pytest runs, ``jobs`` at a time: ``(run, exit status, seconds)`` each.

    One at a time, a run's output streams to the terminal; several at a time, each run
    writes to a file of its own, printed whole when the run ends.
    """
    results = []
    if jobs == 1:
        for run in runs:
            print(f"\n=== {run.label} ===", flush=True)
            start = time.perf_counter()
            done = subprocess.run([str(python), "-m", "pytest", *run.paths, *args], cwd=ROOT,
                                  env=run.env())
            results.append((run, done.returncode, time.perf_counter() - start))
        return results
    print(f"\n=== pytest: {len(runs)} runs, {jobs} at a time (CLRPLUG_TEST_JOBS) ===",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="clrplug-pytest-") as tmp:
        waiting = list(enumerate(runs))
        running: list[tuple[PytestRun, subprocess.Popen[bytes], Path, float]] = []
        while waiting or running:
            while waiting and len(running) < jobs:
                index, run = waiting.pop(0)
                log = Path(tmp) / f"{index}.log"
                with log.open("wb") as out:
                    process = subprocess.Popen(
                        [str(python), "-m", "pytest", *run.paths, *args], cwd=ROOT,
                        env=run.env(), stdout=out, stderr=subprocess.STDOUT,
                    )
                print(f"started: {run.label}", flush=True)
                running.append((run, process, log, time.perf_counter()))
            time.sleep(0.5)
            for entry in [e for e in running if e[1].poll() is not None]:
                running.remove(entry)
                run, process, log, start = entry
                seconds = time.perf_counter() - start
                print(f"\n=== {run.label} ({seconds:.0f} s) ===", flush=True)
                sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
                sys.stdout.flush()
                results.append((run, process.returncode, seconds))
    return results


def task_test(args: list[str]) -> int:
    """Lint, type-check, build the docs, check the packages, then the pytest runs."""
    selected = backends()  # refused before anything runs
    jobs = _jobs()
    python = ensure_venv()
    failed = []
    checks = {
        "ruff": [str(_bin("ruff")), "check", "src", "tests", "plugins", "benchmarks", "scripts"],
        "mypy": [str(_bin("mypy"))],
        "mkdocs": [str(_bin("mkdocs")), "build", "--strict", "--quiet",
                   "--site-dir", str(VENV / "site")],
    }
    timings: list[tuple[str, float]] = []
    for name, cmd in checks.items():
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
        timings.append((name, time.perf_counter() - start))
    print("\n=== dist ===", flush=True)
    start = time.perf_counter()
    if not run_dist(python):
        failed.append("dist")
    timings.append(("dist", time.perf_counter() - start))
    empty = []
    for run, returncode, seconds in _pytest(python, pytest_runs(selected), args, jobs):
        timings.append((run.label, seconds))
        if returncode == 5:
            print(f"\n{run.label}: pytest collected no test (exit code 5)", flush=True)
            empty.append(run.label)
        elif returncode != 0:
            failed.append(run.label)
    if len(empty) == len(selected) + 1:
        print(f"\nno run collected a test; check the arguments given to pytest: {args}",
              flush=True)
        failed.append("pytest (no test collected)")
    print("\ntimings: " + ", ".join(f"{label} {seconds:.0f} s" for label, seconds in timings),
          flush=True)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", flush=True)
        return 1
    print(f"\nall tests passed on: {', '.join(selected)}", flush=True)
    return 0


def task_list(args: list[str]) -> int:
    """Show each pytest run of ``test`` and how many tests it collects from each module."""
    selected = backends()
    python = ensure_venv()
    for run in pytest_runs(selected):
        result = subprocess.run(
            [str(python), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
             *run.paths, *args],
            cwd=ROOT, env=run.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        per_module: dict[str, int] = {}
        for line in result.stdout.splitlines():
            if "::" in line and not line.startswith(" "):
                module = line.split("::", 1)[0]
                per_module[module] = per_module.get(module, 0) + 1
        print(f"\n=== {run.label} (CLRPLUG_TEST_PART={run.part}): "
              f"{sum(per_module.values())} tests in {len(per_module)} modules", flush=True)
        for module, count in per_module.items():
            print(f"  {count:5d}  {module}")
        if result.returncode not in (0, 5):
            print(result.stdout[-3000:], flush=True)
            return 1
    return 0


def task_dist(args: list[str]) -> int:
    """Build and check the distributions, then smoke-test them in a fresh environment."""
    if args:
        raise UsageError(f"dist takes no arguments, got {' '.join(args)}")
    return 0 if run_dist(ensure_venv()) else 1


def task_demo(args: list[str]) -> int:
    ensure_venv()
    return subprocess.run([str(_bin("clrplug")), "demo", *args], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    tasks = {"test": task_test, "list": task_list, "dist": task_dist, "demo": task_demo}
    if not argv or argv[0] not in tasks:
        print(__doc__)
        return 2
    try:
        return tasks[argv[0]](argv[1:])
    except UsageError as exc:
        print(f"dev.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
