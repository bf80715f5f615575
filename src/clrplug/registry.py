"""The policy registry: built-ins, installed plugins and runtime registrations.

Sources, in the order they are loaded the first time a name is looked up or the
policies are listed (never at import):

1. :mod:`clrplug.builtin_policies`, registered through the pluggy hook exactly like
   a third-party plugin;
2. entry points in the group ``clrplug``: modules implementing
   ``clrplug_register_policies(register)``;
3. entry points in the group ``clrplug.policies``: each names one
   :class:`~clrplug.Policy` object, the entry point's name being the policy's name.

Runtime registrations (:func:`register_policy`) can happen at any time.

A plugin that fails to import, whose hook raises, or that registers something
that is not a policy is skipped with a :class:`PluginLoadWarning`; none of its
policies are kept and every other policy keeps working. Two sources registering
one name is a conflict reported when that name is resolved.

Switches, read when the plugins are loaded:

- ``CLRPLUG_DISABLE_PLUGIN_AUTOLOAD=1``: load no third-party plugin (built-ins
  still load);
- ``CLRPLUG_PLUGINS=dist-a,dist-b``: load only these distributions (empty: none).
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
from typing import Any

import pluggy

from clrplug import hookspecs
from clrplug.errors import (
    InvalidArgumentError,
    InvalidPolicyError,
    PolicyConflictError,
    UnknownPolicyError,
)
from clrplug.policy import BUILTIN, RUNTIME, Policy, PolicySource

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "POLICY_ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginLoadWarning",
    "PolicyRegistry",
    "canonical_distribution_name",
    "default_registry",
    "plugins_switched_off",
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


def plugins_switched_off(environ: Mapping[str, str] | None = None) -> bool:
    """Whether CLRPLUG_DISABLE_PLUGIN_AUTOLOAD turns third-party plugins off."""
    return _truthy((os.environ if environ is None else environ).get(DISABLE_AUTOLOAD_ENV))


def _key(name: str) -> str:
    """A policy name as the registry stores it (see Policy's name normalisation)."""
    return re.sub(r"[-\s.]+", "_", name.strip()).lower()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class PolicyRegistry:
    """A set of policies from built-ins, plugins and runtime registrations.

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
        self._candidates: dict[str, list[Policy]] = {}
        self._failures: list[PluginFailure] = []
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)

    # -- loading ---------------------------------------------------------------------

    def _env(self, key: str) -> str | None:
        environ = os.environ if self._environ is None else self._environ
        return environ.get(key)

    def _allowed(self, dist: str | None) -> bool:
        if not self._autoload or plugins_switched_off(self._environ):
            return False
        allowlist = self._env(PLUGINS_ENV)
        if allowlist is None:
            return True
        names = {canonical_distribution_name(n.strip()) for n in allowlist.split(",") if n.strip()}
        return dist is not None and canonical_distribution_name(dist) in names

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
            yield ep, PolicySource(
                "plugin",
                dist_name,
                dist.version if dist is not None else None,
                f"{group}:{ep.name}",
            )

    def _fail(self, source: PolicySource, exc: BaseException) -> None:
        try:
            text = str(exc)
        except Exception:  # a plugin's exception whose message itself fails
            text = "<the exception's message could not be printed>"
        failure = PluginFailure(source, f"{type(exc).__name__}: {text}")
        self._failures.append(failure)
        warnings.warn(
            f"clrplug: skipping plugin {failure}", PluginLoadWarning, stacklevel=4
        )

    def _add(self, policies: Iterable[Policy]) -> None:
        for policy in policies:
            self._candidates.setdefault(policy.name, []).append(policy)

    def _call_hook(self, plugin: object, source: PolicySource) -> None:
        """Run one plugin's hook; keep its policies only if it completes."""
        collected: list[Policy] = []

        def register(policy: Policy) -> None:
            if not isinstance(policy, Policy):
                raise InvalidPolicyError(
                    f"register() takes a clrplug.Policy, got {type(policy).__name__} {policy!r}."
                )
            collected.append(replace(policy, source=source))

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

    def load(self) -> None:
        """Load built-ins and entry points, once. Called by every lookup."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            from clrplug import builtin_policies

            self._load_hook_plugin(builtin_policies, "clrplug.builtin", BUILTIN)
            for ep, source in self._entry_points(ENTRY_POINT_GROUP):
                try:
                    plugin = ep.load()
                except _PLUGIN_ERRORS as exc:
                    self._fail(source, exc)
                    continue
                self._load_hook_plugin(plugin, f"{source.distribution}:{ep.name}", source)
            for ep, source in self._entry_points(POLICY_ENTRY_POINT_GROUP):
                try:
                    policy = ep.load()
                    if not isinstance(policy, Policy):
                        raise InvalidPolicyError(
                            f"entry point {ep.value!r} is a {type(policy).__name__}, "
                            "not a clrplug.Policy."
                        )
                    if policy.name != ep.name:
                        raise InvalidPolicyError(
                            f"entry point name {ep.name!r} differs from the policy's "
                            f"name {policy.name!r}; they must be equal."
                        )
                except _PLUGIN_ERRORS as exc:
                    self._fail(source, exc)
                    continue
                self._add([replace(policy, source=source)])

    # -- queries ---------------------------------------------------------------------

    def get(self, name: str) -> Policy:
        """The policy registered as ``name``.

        Raises:
            UnknownPolicyError: no such policy (the message lists every name).
            PolicyConflictError: more than one source registered it.
        """
        if not isinstance(name, str):
            raise InvalidArgumentError(
                f"a policy name must be a str, got {type(name).__name__} {name!r}."
            )
        self.load()
        key = _key(name)
        with self._lock:
            candidates = self._candidates.get(key)
            if not candidates:
                raise UnknownPolicyError(name, self.names(), self._failure_hint())
            if len(candidates) > 1:
                raise PolicyConflictError(key, [str(p.source) for p in candidates])
            return candidates[0]

    def _failure_hint(self) -> str:
        if not self._failures:
            return ""
        failed = ", ".join(str(f.source) for f in self._failures)
        return f"(Some plugins failed to load and may provide it: {failed}; see `clrplug policies`.)"

    def names(self) -> list[str]:
        """Every registered name, conflicting ones included, sorted."""
        self.load()
        with self._lock:
            return sorted(self._candidates)

    def policies(self) -> list[Policy]:
        """Every registered policy, sorted by name; a conflicting name appears once per source."""
        self.load()
        with self._lock:
            return [p for name in sorted(self._candidates) for p in self._candidates[name]]

    def conflicts(self) -> Mapping[str, list[Policy]]:
        """Names registered by more than one source."""
        self.load()
        with self._lock:
            return MappingProxyType(
                {n: list(c) for n, c in self._candidates.items() if len(c) > 1}
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
            matches = [
                c[0] for c in self._candidates.values() if len(c) == 1 and c[0].scale_fn is scale_fn
            ]
        return matches[0] if len(matches) == 1 else None

    # -- runtime registration ----------------------------------------------------------

    def register(self, policy: Policy, *, replace_existing: bool = False) -> Policy:
        """Register ``policy`` in this process (source: runtime).

        Raises:
            InvalidPolicyError: ``policy`` is not a :class:`Policy`.
            PolicyConflictError: the name is taken (by a built-in, a plugin, or an earlier
                runtime registration unless ``replace_existing``).
        """
        if not isinstance(policy, Policy):
            raise InvalidPolicyError(
                f"register_policy() takes a clrplug.Policy, got {type(policy).__name__} {policy!r}."
            )
        self.load()
        policy = replace(policy, source=RUNTIME)
        with self._lock:
            existing = self._candidates.get(policy.name, [])
            if existing:
                if not (replace_existing and all(p.source.kind == "runtime" for p in existing)):
                    raise PolicyConflictError(
                        policy.name, [str(p.source) for p in existing] + ["runtime"]
                    )
            self._candidates[policy.name] = [policy]
        return policy

    def unregister(self, name: str) -> None:
        """Remove a runtime registration (plugins and built-ins cannot be removed)."""
        self.load()
        key = _key(name)
        with self._lock:
            candidates = self._candidates.get(key, [])
            if not candidates:
                raise UnknownPolicyError(name, self.names())
            if any(p.source.kind != "runtime" for p in candidates):
                raise InvalidPolicyError(
                    f"unregister_policy({name!r}): only policies registered at runtime can be "
                    f"removed; {key!r} comes from {', '.join(str(p.source) for p in candidates)}."
                )
            del self._candidates[key]


_default: PolicyRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> PolicyRegistry:
    """The process-wide registry (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PolicyRegistry()
        return _default


def set_default_registry(registry: PolicyRegistry | None) -> PolicyRegistry | None:
    """Swap the process-wide registry (tests); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, registry
        return previous
