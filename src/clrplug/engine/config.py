"""What every clrplug schedule's saved config shares, and its checks on loading.

Configs hold plain numbers and registered names only: loading a file never runs code from
it. :class:`ScheduleConfig` is a base of :class:`~clrplug.engine.base.EngineSchedule`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from clrplug.errors import InvalidArgumentError

__all__ = ["NO_HOLD", "Hold", "ScheduleConfig"]


@dataclass(frozen=True)
class Hold:
    """A plain rate (and momentum) in force instead of the schedule's, when ``on``."""

    on: bool = False
    rate: float = 0.0
    momentum: float = 0.0



#: No plain rate held: the schedule drives.
NO_HOLD = Hold()


class ScheduleConfig:
    """The config keys every schedule has (momentum, accumulation, hold, name), checked."""

    name: str
    _momentum: Any
    _accumulation: int
    _hold: Any

    def _common_config(self) -> dict[str, Any]:
        return {
            "cycle_momentum": self._momentum is not None,
            "base_momentum": self._momentum.base_momentum if self._momentum else 0.85,
            "max_momentum": self._momentum.max_momentum if self._momentum else 0.95,
            "accumulation_steps": self._accumulation,
            "hold": self._hold.on,
            "held_lr": self._hold.rate,
            "held_momentum": self._hold.momentum,
            "name": self.name,
        }

    _COMMON_TYPES: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "cycle_momentum": (bool,),
        "base_momentum": (int, float),
        "max_momentum": (int, float),
        "accumulation_steps": (int,),
        "hold": (bool,),
        "held_lr": (int, float),
        "held_momentum": (int, float),
        "name": (str,),
        # Written by clrplug 0.2's variable-backed engine; read and ignored.
        "bound": (bool,),
        "window": (int,),
    }
    _CONFIG_TYPES: ClassVar[Mapping[str, tuple[type, ...]]]

    @classmethod
    def _checked_config(cls, config: Any) -> dict[str, Any]:
        """Only plain values of known keys: loading a file never runs code from it."""
        kind = cls.__name__
        if not isinstance(config, Mapping):
            raise InvalidArgumentError(f"{kind} config must be a dict, got {config!r}.")
        allowed = {**cls._COMMON_TYPES, **cls._CONFIG_TYPES}
        unknown = sorted(set(config) - set(allowed))
        if unknown:
            raise InvalidArgumentError(
                f"{kind} config has unsupported key(s) {unknown}; allowed: {sorted(allowed)}. "
                "Policies are stored by name, never as code."
            )
        for key, value in config.items():
            types = allowed[key]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise InvalidArgumentError(
                    f"{kind} config[{key!r}] must be {' or '.join(t.__name__ for t in types)}, "
                    f"got {type(value).__name__} {value!r}."
                )
        return dict(config)

    @staticmethod
    def _pop_common(kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.pop("bound", None)
        kwargs.pop("window", None)
        return {
            "_hold": Hold(
                kwargs.pop("hold", False),
                float(kwargs.pop("held_lr", 0.0)),
                float(kwargs.pop("held_momentum", 0.0)),
            )
        }
