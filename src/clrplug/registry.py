"""The registry: policies, waveforms and range-test rules from built-ins, plugins and runtime.

Loaded on the first lookup or listing, never at import: first
:mod:`clrplug.builtin` through the pluggy hook like any plugin, then the
``clrplug`` entry points (hook modules), then the ``clrplug.policies`` entry
points (each names one record). A plugin that fails is skipped with a
:class:`PluginLoadWarning` and none of its records are kept. docs/how-it-works.md
describes the switches ``CLRPLUG_DISABLE_PLUGIN_AUTOLOAD`` and ``CLRPLUG_PLUGINS``.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from types import MappingProxyType
from typing import Any, cast

import pluggy

from clrplug import hookspecs
from clrplug.errors import (
    InvalidArgumentError,
    InvalidPolicyError,
    NameConflictError,
    PolicyConflictError,
    UnknownNameError,
    UnknownPolicyError,
)
from clrplug.records import BUILTIN, RECORD_TYPES, RUNTIME, Policy, PolicySource, Record, name_key

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "POLICY_ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginLoadWarning",
    "Registry",
    "allowed_distributions",
    "canonical_distribution_name",
    "default_registry",
    "plugins_switched_off",
    "resolve",
]

ENTRY_POINT_GROUP = "clrplug"
POLICY_ENTRY_POINT_GROUP = "clrplug.policies"
DISABLE_AUTOLOAD_ENV = "CLRPLUG_DISABLE_PLUGIN_AUTOLOAD"
PLUGINS_ENV = "CLRPLUG_PLUGINS"

# A plugin calling sys.exit() while loading is skipped like one that raises.
_PLUGIN_ERRORS = (Exception, SystemExit)


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded and was skipped."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that was skipped, and why."""

    source: PolicySource
    error: str

    def __str__(self) -> str:
        return f"{self.source} ({self.source.entry_point}): {self.error}"


def canonical_distribution_name(dist_name: str) -> str:
    """A distribution name in PEP 503 form, as the allowlist compares them."""
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def plugins_switched_off(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``CLRPLUG_DISABLE_PLUGIN_AUTOLOAD`` turns third-party plugins off."""
    value = _env(environ).get(DISABLE_AUTOLOAD_ENV) or ""
    return value.strip().lower() in {"1", "true", "yes", "on"}


def allowed_distributions(environ: Mapping[str, str] | None = None) -> set[str] | None:
    """The canonical names ``CLRPLUG_PLUGINS`` allows, or None when it is unset (all)."""
    allowlist = _env(environ).get(PLUGINS_ENV)
    if allowlist is None:
        return None
    return {canonical_distribution_name(n.strip()) for n in allowlist.split(",") if n.strip()}


def _is_record(value: object) -> bool:
    return isinstance(value, tuple(RECORD_TYPES.values()))


def _errors_for(kind: str) -> tuple[type[UnknownNameError], type[NameConflictError]]:
    if kind == "policy":
        return UnknownPolicyError, PolicyConflictError
    return UnknownNameError, NameConflictError


class Registry:
    """Records (policies, waveforms, rules) from built-ins, plugins and runtime registrations.

    Most code uses the process-wide instance through :func:`clrplug.get_policy`,
    :func:`clrplug.list_policies` and :func:`clrplug.register_policy`; tests make
    a fresh one.

    Args:
        autoload: whether third-party entry points are loaded at all (the
            environment switches apply on top).
        environ: where the switches are read from (default ``os.environ``).
    """

    def __init__(self, *, autoload: bool = True, environ: Mapping[str, str] | None = None) -> None:
        self._autoload = autoload
        self._environ = environ
        self._lock = threading.RLock()
        self._loaded = False
        self._candidates: dict[tuple[str, str], list[Record]] = {}
        self._failures: list[PluginFailure] = []
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)

    # -- loading ---------------------------------------------------------------------

    def _allowed(self, dist: str | None) -> bool:
        if not self._autoload or plugins_switched_off(self._environ):
            return False
        names = allowed_distributions(self._environ)
        return names is None or (dist is not None and canonical_distribution_name(dist) in names)

    def _entry_points(self, group: str) -> Iterable[tuple[metadata.EntryPoint, PolicySource]]:
        seen: set[tuple[str, str, str]] = set()
        for ep in metadata.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            key = (canonical_distribution_name(dist_name or ""), ep.name, ep.value)
            if key in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(key)
            if not self._allowed(dist_name):
                continue
            version = dist.version if dist is not None else None
            yield ep, PolicySource("plugin", dist_name, version, f"{group}:{ep.name}")

    def _fail(self, source: PolicySource, exc: BaseException) -> None:
        try:
            text = str(exc)
        except Exception:  # a plugin's exception whose message itself fails
            text = "<the exception's message could not be printed>"
        failure = PluginFailure(source, f"{type(exc).__name__}: {text}")
        self._failures.append(failure)
        warnings.warn(f"clrplug: skipping plugin {failure}", PluginLoadWarning, stacklevel=4)

    def _add(self, records: Iterable[Record]) -> None:
        for record in records:
            self._candidates.setdefault((record.kind, record.name), []).append(record)

    def _call_hook(self, plugin: object, source: PolicySource) -> None:
        """Run one plugin's hook; keep its records only if it completes."""
        collected: list[Record] = []

        def register(record: Record) -> None:
            if not _is_record(record):
                raise InvalidPolicyError(
                    "register() takes a clrplug.Policy, Waveform or SuggestionRule, got "
                    f"{type(record).__name__} {record!r}."
                )
            collected.append(replace(cast(Any, record), source=source))

        caller = self.plugin_manager.subset_hook_caller(
            "clrplug_register_policies",
            remove_plugins=[p for p in self.plugin_manager.get_plugins() if p is not plugin],
        )
        try:
            caller(register=register)
        except _PLUGIN_ERRORS as exc:
            self._fail(source, exc)
            return
        self._add(collected)

    def _load_hook_plugin(self, plugin: object, name: str, source: PolicySource) -> None:
        try:
            self.plugin_manager.register(plugin, name=name)
        except _PLUGIN_ERRORS as exc:  # pluggy validation of the hookimpl's signature
            self._fail(source, exc)
            return
        self._call_hook(plugin, source)

    def _load_record_entry_point(self, ep: metadata.EntryPoint, source: PolicySource) -> None:
        try:
            record: Any = ep.load()
            if not _is_record(record):
                raise InvalidPolicyError(
                    f"entry point {ep.value!r} is a {type(record).__name__}, not a "
                    "clrplug.Policy, Waveform or SuggestionRule."
                )
            if record.name != ep.name:
                raise InvalidPolicyError(
                    f"entry point name {ep.name!r} differs from the {record.kind}'s name "
                    f"{record.name!r}; they must be equal."
                )
        except _PLUGIN_ERRORS as exc:
            self._fail(source, exc)
            return
        self._add([replace(record, source=source)])

    def load(self) -> None:
        """Load built-ins and entry points, once. Called by every lookup."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            from clrplug import builtin

            self._load_hook_plugin(builtin, "clrplug.builtin", BUILTIN)
            for ep, source in self._entry_points(ENTRY_POINT_GROUP):
                try:
                    plugin = ep.load()
                except _PLUGIN_ERRORS as exc:
                    self._fail(source, exc)
                    continue
                self._load_hook_plugin(plugin, f"{source.distribution}:{ep.name}", source)
            for ep, source in self._entry_points(POLICY_ENTRY_POINT_GROUP):
                self._load_record_entry_point(ep, source)

    # -- queries ---------------------------------------------------------------------

    @staticmethod
    def _kind(kind: str) -> str:
        if kind not in RECORD_TYPES:
            raise InvalidArgumentError(f"kind must be one of {list(RECORD_TYPES)}, got {kind!r}.")
        return kind

    def get(self, name: str, kind: str = "policy") -> Any:
        """The record of ``kind`` registered as ``name``.

        Raises:
            UnknownNameError: no such record (the message lists every name of that kind);
                :class:`UnknownPolicyError` for policies.
            NameConflictError: more than one source registered it;
                :class:`PolicyConflictError` for policies.
        """
        kind = self._kind(kind)
        if not isinstance(name, str):
            raise InvalidArgumentError(f"a {kind} name must be a str, got {type(name).__name__} {name!r}.")
        self.load()
        key = name_key(name)
        unknown, conflict = _errors_for(kind)
        with self._lock:
            candidates = self._candidates.get((kind, key))
            if not candidates:
                raise unknown(name, self.names(kind), self._failure_hint(), kind=kind)
            if len(candidates) > 1:
                raise conflict(key, [str(r.source) for r in candidates], kind=kind)
            return candidates[0]

    def _failure_hint(self) -> str:
        if not self._failures:
            return ""
        failed = ", ".join(str(f.source) for f in self._failures)
        return f"(Some plugins failed to load and may provide it: {failed}; see `clrplug policies`.)"

    def names(self, kind: str = "policy") -> list[str]:
        """Every registered name of ``kind``, conflicting ones included, sorted."""
        kind = self._kind(kind)
        self.load()
        with self._lock:
            return sorted(name for k, name in self._candidates if k == kind)

    def records(self, kind: str = "policy") -> list[Any]:
        """Every record of ``kind``, sorted by name; a conflicting name appears once per source."""
        return [r for name in self.names(kind) for r in self._candidates[(kind, name)]]

    def policies(self) -> list[Policy]:
        """Every registered policy (see :meth:`records`)."""
        return self.records("policy")

    def conflicts(self, kind: str = "policy") -> Mapping[str, list[Any]]:
        """Names of ``kind`` registered by more than one source."""
        kind = self._kind(kind)
        self.load()
        with self._lock:
            return MappingProxyType(
                {n: list(c) for (k, n), c in self._candidates.items() if k == kind and len(c) > 1}
            )

    def failures(self) -> list[PluginFailure]:
        """Plugins that were skipped, with the reason."""
        self.load()
        with self._lock:
            return list(self._failures)

    def find_by_scale_fn(self, scale_fn: Callable[..., Any]) -> Policy | None:
        """The unique registered policy whose ``scale_fn`` is this very function, if any."""
        self.load()
        with self._lock:
            matches: list[Any] = [
                c[0]
                for (kind, _), c in self._candidates.items()
                if kind == "policy" and len(c) == 1 and getattr(c[0], "scale_fn", None) is scale_fn
            ]
        return matches[0] if len(matches) == 1 else None

    # -- runtime registration ----------------------------------------------------------

    def register(self, record: Record, *, replace_existing: bool = False) -> Any:
        """Register ``record`` in this process (source: runtime).

        Raises:
            InvalidPolicyError: ``record`` is not a Policy, Waveform or SuggestionRule.
            NameConflictError: the name is taken for that kind (by a built-in, a plugin, or
                an earlier runtime registration unless ``replace_existing``).
        """
        if not _is_record(record):
            raise InvalidPolicyError(
                "register_policy() takes a clrplug.Policy, Waveform or SuggestionRule, got "
                f"{type(record).__name__} {record!r}."
            )
        self.load()
        record = replace(cast(Any, record), source=RUNTIME)
        key = (record.kind, record.name)
        with self._lock:
            existing = self._candidates.get(key, [])
            if existing and not (
                replace_existing and all(r.source.kind == "runtime" for r in existing)
            ):
                _, conflict = _errors_for(record.kind)
                raise conflict(
                    record.name, [str(r.source) for r in existing] + ["runtime"], kind=record.kind
                )
            self._candidates[key] = [record]
        return record

    def unregister(self, name: str, kind: str = "policy") -> None:
        """Remove a runtime registration (plugins and built-ins cannot be removed)."""
        kind = self._kind(kind)
        if not isinstance(name, str):
            raise InvalidArgumentError(f"a {kind} name must be a str, got {type(name).__name__} {name!r}.")
        self.load()
        key = name_key(name)
        unknown, _ = _errors_for(kind)
        with self._lock:
            candidates = self._candidates.get((kind, key), [])
            if not candidates:
                raise unknown(name, self.names(kind), kind=kind)
            if any(r.source.kind != "runtime" for r in candidates):
                raise InvalidPolicyError(
                    f"unregister({name!r}): only runtime registrations can be removed; {kind} "
                    f"{key!r} comes from {', '.join(str(r.source) for r in candidates)}."
                )
            del self._candidates[(kind, key)]


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def resolve(value: Any, kind: str, argument: str) -> Any:
    """``value`` itself when it is a record of ``kind`` (a ``Waveform``, ``SuggestionRule``,
    ...), else the record of that kind the default registry holds under the name ``value``.

    Raises:
        InvalidArgumentError: ``value`` is neither a name nor such a record.
        UnknownNameError: no record of ``kind`` has that name; both name ``argument``.
    """
    record_type = RECORD_TYPES[kind]
    if isinstance(value, record_type):
        return value
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{argument} must be a registered {kind}'s name or a clrplug.{record_type.__name__}, "
            f"got {type(value).__name__} {value!r}."
        )
    try:
        return default_registry().get(value, kind)
    except UnknownNameError as exc:
        raise UnknownNameError(exc.name, exc.available, exc.hint, argument, kind) from None


def set_default_registry(registry: Registry | None) -> Registry | None:
    """Swap the process-wide registry (tests); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, registry
        return previous
