"""The stored fastai answers are what fastai gives now (only where fastai is installed).

The script imports torch and fastai, so it runs in a subprocess of its own: no test
process that runs JAX or TensorFlow imports torch. Skipped where fastai is not
importable (it is not part of the test environment); to run it, install fastai 2.8
somewhere on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "data" / "make_fastai_suggestions.py"


@pytest.mark.skipif(importlib.util.find_spec("fastai") is None, reason="fastai is not installed")
def test_stored_fastai_suggestions_are_current():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
