"""A rule's suggestion, and the rule it came from resolved by name.

:class:`Suggestion` is what :meth:`~clrplug.range_test.result.RangeTestResult.suggest`
returns; :func:`rule_record` turns a rule's registered name (or a
:class:`~clrplug.records.SuggestionRule` given as it is) into its record, through the
registry, so that built-in and plugin rules are looked up alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clrplug.records import SuggestionRule
from clrplug.registry import resolve

__all__ = ["Suggestion", "rule_record"]


@dataclass(frozen=True)
class Suggestion:
    """A rule's suggested bounds.

    Attributes:
        rule: the rule's registered name.
        base_lr: the rule's own lower bound, else ``max_lr / base_div``.
        max_lr: the suggested upper bound (a 1cycle's peak).
        reason: one line saying what the rule found.
        index: the step of the record the suggestion marks (for plots).
        caveat: None, or one line saying why the curve does not support a
            confident suggestion and what to try
            (:func:`~clrplug.range_test.rules.ambiguity`); :meth:`RangeTestResult.suggest`
            also issues it as an :class:`~clrplug.range_test.rules.AmbiguousCurveWarning`.
    """

    rule: str
    base_lr: float
    max_lr: float
    reason: str
    index: int
    caveat: str | None = None


def rule_record(rule: Any) -> SuggestionRule:
    """A rule given by name (resolved through the registry) or as a record."""
    record: SuggestionRule = resolve(rule, "rule", "rule")
    return record
