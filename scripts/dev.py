#!/usr/bin/env python3
"""Developer entry point: creates ./.venv with everything needed, then runs a task.

    python3 scripts/dev.py demo [clrplug demo options]   # the project's main job
    python3 scripts/dev.py test [pytest options]         # the suite, once per Keras backend

Only the standard library is used here, so this works on a fresh clone with
nothing but Python 3.10+ and pip. Environment variables:

    CLRPLUG_BACKENDS  backends to test, comma-separated (default: jax,tensorflow,torch)
    CLRPLUG_VENV      where the virtual environment lives (default: .venv)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("CLRPLUG_VENV", ROOT / ".venv"))
BACKENDS = [b for b in os.environ.get("CLRPLUG_BACKENDS", "jax,tensorflow,torch").split(",") if b]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())

# The three Keras backends. torch is pinned to a release this project's machines hold
# as a CPU build on local disk (an unpinned torch pulls a multi-GB CUDA build there).
# Elsewhere on Linux, PyPI's torch==2.13.0 is a CUDA build: install a CPU build of it
# into .venv first (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)
# and this pin is already satisfied.
BACKEND_PACKAGES = ["jax>=0.4.30", "tensorflow-cpu>=2.16", "torch==2.13.0"]


def _bin(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def _run(*cmd: object, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=env)


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


def task_test(args: list[str]) -> int:
    """Lint, type-check, build the docs strictly, then pytest once per backend."""
    python = ensure_venv()
    failed = []
    checks = {
        "ruff": [str(_bin("ruff")), "check", "src", "tests", "plugins", "benchmarks", "scripts"],
        "mypy": [str(_bin("mypy"))],
        "mkdocs": [str(_bin("mkdocs")), "build", "--strict", "--quiet",
                   "--site-dir", str(VENV / "site")],
    }
    for name, cmd in checks.items():
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend)
        print(f"\n=== KERAS_BACKEND={backend} ===", flush=True)
        paths = ["tests", *(str(p / "tests") for p in PLUGINS)]
        result = subprocess.run([str(python), "-m", "pytest", *paths, *args], cwd=ROOT, env=env)
        if result.returncode != 0:
            failed.append(backend)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", flush=True)
        return 1
    print(f"\nall tests passed on: {', '.join(BACKENDS)}", flush=True)
    return 0


def task_demo(args: list[str]) -> int:
    ensure_venv()
    return subprocess.run([str(_bin("clrplug")), "demo", *args], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    tasks = {"test": task_test, "demo": task_demo}
    if not argv or argv[0] not in tasks:
        print(__doc__)
        return 2
    return tasks[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
