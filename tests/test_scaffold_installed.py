"""The plugins ``clrplug new-plugin`` generates pass their own generated tests, installed by
pip, in a fresh process as a user would run them: those tests train, so they run on each
backend (the generator itself is tested once, in tests/test_scaffold.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from test_scaffold import install_generated, run_installed


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return install_generated(tmp_path_factory)


@pytest.mark.slow
def test_installed_plugins_pass_their_generated_tests(installed: dict[str, Any]) -> None:
    tests = [str(path / "tests") for path in installed["projects"].values()]
    run = run_installed(installed, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests)
    assert re.search(r"\b10 passed\b", run.stdout), run.stdout
