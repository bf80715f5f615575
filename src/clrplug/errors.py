"""The exceptions clrplug raises.

Every error derives from :class:`ClrplugError`, so ``except clrplug.errors.ClrplugError``
catches anything the library refuses. Errors about a bad argument (its value or
its type alike) also derive from ``ValueError``, as Keras' own argument checks do.
Messages name the argument, the value received and what would have been accepted.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ClrplugError",
    "InvalidArgumentError",
    "InvalidPolicyError",
    "NameConflictError",
    "PolicyConflictError",
    "PolicyEvaluationError",
    "UnknownNameError",
    "UnknownPolicyError",
]


class ClrplugError(Exception):
    """Base class of every error raised by clrplug."""


class InvalidArgumentError(ClrplugError, ValueError):
    """An argument of a clrplug function or class has a value it cannot use."""


class InvalidPolicyError(ClrplugError, ValueError):
    """A :class:`~clrplug.Policy` (or something offered as one) is malformed."""


class UnknownNameError(ClrplugError, ValueError, LookupError):
    """No registered record (policy, waveform or rule) has the requested name."""

    def __init__(
        self,
        name: str,
        available: Iterable[str],
        hint: str = "",
        argument: str | None = None,
        kind: str = "policy",
    ) -> None:
        names = sorted(available)
        self.name = name
        self.available = names
        self.hint = hint
        self.kind = kind
        close = difflib.get_close_matches(name, names, n=1)
        where = f"{argument}: " if argument else ""
        message = f"{where}unknown {kind} {name!r}. Choose one of: {', '.join(names) or '(none)'}."
        if close:
            message += f" Did you mean {close[0]!r}?"
        if hint:
            message += f" {hint}"
        super().__init__(message)


class UnknownPolicyError(UnknownNameError):
    """No registered policy has the requested name."""


class NameConflictError(ClrplugError, ValueError):
    """Two sources registered a record of one kind under the same name."""

    def __init__(self, name: str, sources: Iterable[str], kind: str = "policy") -> None:
        self.name = name
        self.sources = list(sources)
        self.kind = kind
        super().__init__(
            f"Conflicting plugins found for {kind} {name!r}: provided by "
            f"{', '.join(self.sources)}. Uninstall one of them, or restrict loading "
            "with CLRPLUG_PLUGINS=dist-a,dist-b."
        )


class PolicyConflictError(NameConflictError):
    """Two sources registered a policy under the same name."""


class PolicyEvaluationError(ClrplugError, ValueError):
    """A scale or shape function raised, returned values outside [0, 1], or its
    ``keras.ops`` form disagrees with its numpy form."""
