"""clrplug's pytest plugin (entry point ``pytest11``): the conformance fixture and option.

Loaded by every pytest run wherever clrplug is installed, so it imports only pytest
and, when a check runs, the kit: never Keras at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def clrplug_policy_check() -> Callable[..., None]:
    """:func:`clrplug.testing.check_policy`: call it with a policy name (or Policy)."""
    from clrplug.testing.kit import check_policy

    return check_policy


@pytest.fixture
def clrplug_waveform_check() -> Callable[..., None]:
    """:func:`clrplug.testing.check_waveform`: call it with a waveform name (or Waveform)."""
    from clrplug.testing.kit import check_waveform

    return check_waveform

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clrplug", "clrplug policy conformance")
    group.addoption(
        "--clrplug-policy",
        action="append",
        default=[],
        metavar="NAME",
        help="run clrplug's conformance check on the policy NAME (repeatable); "
        "'dist:DISTRIBUTION' checks every policy of an installed distribution.",
    )

class PolicyConformanceItem(pytest.Item):
    """A test item that runs :func:`check_policy` on one policy (``--clrplug-policy``)."""

    def __init__(self, *, policy: str, error: Exception | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        self.error = error

    def runtest(self) -> None:
        from clrplug.testing.kit import check_policy

        if self.error is not None:
            raise self.error
        check_policy(self.policy)

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        from clrplug.testing.kit import PolicyConformanceError

        if isinstance(excinfo.value, (PolicyConformanceError, LookupError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"clrplug conformance of policy {self.policy!r}"

def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    requested: list[str] = config.getoption("clrplug_policy", default=[]) or []
    if not requested:
        return
    from clrplug.testing.kit import policies_of

    checks: dict[str, Exception | None] = {}
    for entry in requested:
        if not entry.startswith("dist:"):
            checks.setdefault(entry, None)
            continue
        try:
            checks.update(dict.fromkeys(policies_of(entry[len("dist:") :])))
        except LookupError as exc:
            checks[entry] = exc
    for name, error in checks.items():
        items.append(
            PolicyConformanceItem.from_parent(
                session, name=f"clrplug-conformance[{name}]", policy=name, error=error
            )
        )
