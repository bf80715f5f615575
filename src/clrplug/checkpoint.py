"""Keeps a cycle's state (bounds and start, i.e. resets) in Keras weight files.

``keras.callbacks.BackupAndRestore`` and ``ModelCheckpoint(save_weights_only=True)``
save weights and optimizer variables only, not the schedule's config, so a reset
made before a crash would be forgotten on resume. ``CyclicLR`` therefore hangs a
small saveable object on the model (attribute ``_clrplug_cycle_state``); Keras'
weight saving visits it like any other attribute of the model and stores four
numbers; loading weights hands them back to the schedule. A checkpoint without
them (saved before clrplug was attached) loads as before and changes nothing.

This uses Keras' saving protocol (``KerasSaveable``, ``save_own_variables`` /
``load_own_variables``), which Keras does not export; where it is missing the
object is inert and only ``model.save()`` (which stores the schedule's config)
carries resets across a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from clrplug.errors import ClrplugError
from clrplug.formula import Cycle

__all__ = ["ATTRIBUTE", "CycleState", "attach_cycle_state"]

ATTRIBUTE = "_clrplug_cycle_state"
_OBJ_TYPE = "ClrplugCycleState"
_KEYS = ("cycle_start", "base_lr", "max_lr", "step_size")

try:  # Keras' (unexported) saving protocol
    from keras.src.backend.common import global_state
    from keras.src.saving.keras_saveable import KerasSaveable
except ImportError:  # pragma: no cover - depends on the Keras version
    global_state = None
    KerasSaveable = None

_Saveable: Any = KerasSaveable or object


class CycleState(_Saveable):
    """The four numbers that define the current cycle, as Keras saves weights."""

    def __init__(
        self, read: Callable[[], tuple[int, Cycle]], restore: Callable[[int, Cycle], None]
    ) -> None:
        self._read = read
        self._restore = restore

    def _obj_type(self) -> str:
        # Nothing below this object is walked by Keras' saver.
        if global_state is not None:
            global_state.set_global_attribute(
                f"saving_attr_skiplist_{_OBJ_TYPE}", set(dir(self))
            )
        return _OBJ_TYPE

    def save_own_variables(self, store: Any) -> None:
        self._obj_type()
        cycle_start, cycle = self._read()
        store["cycle_start"] = np.asarray(cycle_start, dtype=np.int64)
        store["base_lr"] = np.asarray(cycle.base_lr, dtype=np.float64)
        store["max_lr"] = np.asarray(cycle.max_lr, dtype=np.float64)
        store["step_size"] = np.asarray(cycle.step_size, dtype=np.float64)

    def load_own_variables(self, store: Any) -> None:
        self._obj_type()
        keys = set(store.keys())
        if not keys:
            return  # saved without clrplug: nothing to restore
        if keys != set(_KEYS):
            raise ClrplugError(
                f"clrplug cycle state in this checkpoint has keys {sorted(keys)}, expected "
                f"{list(_KEYS)}; the file is damaged or from an incompatible clrplug version."
            )
        values = {key: np.asarray(store[key]) for key in _KEYS}
        self._restore(
            int(values["cycle_start"]),
            Cycle(float(values["base_lr"]), float(values["max_lr"]), float(values["step_size"])),
        )


def attach_cycle_state(
    model: Any, read: Callable[[], tuple[int, Cycle]], restore: Callable[[int, Cycle], None]
) -> None:
    """Hang a :class:`CycleState` on ``model`` so its weight files carry the cycle."""
    if _Saveable is object:  # pragma: no cover
        return
    # object.__setattr__: not a layer or variable, so Keras must not track it as one.
    object.__setattr__(model, ATTRIBUTE, CycleState(read, restore))
