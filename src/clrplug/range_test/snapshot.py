"""Save a model's training state before the range test and put it back exactly afterwards.

Values of every variable (weights, optimizer variables with the counter, metric
variables) as numpy copies, the optimizer's rate object, and the model attributes
``fit`` changes (the compiled train function included, as the same object).
Nothing is cleared or recompiled: once the sweep's variables are gone, the
optimizer's variables are the original ones, so a cached trace of the original
step is correct to reuse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from clrplug.engine import compat

__all__ = ["Snapshot"]


class Snapshot:
    """Everything a ``fit`` changes on ``model``, saved as numpy copies and object references.

    Take it after the optimizer is built (its slots then exist and are saved too).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.optimizer = compat.inner_optimizer(model.optimizer)
        self.rate = compat.installed_rate(self.optimizer)
        self.optimizer_variables = list(self.optimizer.variables)
        variables: dict[int, Any] = {}
        for variable in [*model.variables, *model.optimizer.variables, *model.metrics_variables]:
            variables.setdefault(id(variable), variable)
        self.values = [
            (variable, np.array(ops.convert_to_numpy(variable.value), copy=True))
            for variable in variables.values()
        ]
        self.trainer = compat.save_trainer_state(model)

    def restore(self) -> None:
        """Put everything back; variables added to the optimizer since are removed."""
        compat.set_rate_object(self.optimizer, self.rate)
        known = {id(v) for v in self.optimizer_variables}
        added = [v for v in self.optimizer.variables if id(v) not in known]
        if added:
            compat.untrack_variables(self.optimizer, added)
        compat.restore_trainer_state(self.model, self.trainer)
        # The model's own train function, put back, must not reuse the sweep's trace (on
        # JAX equal jitted functions share one cache, and the variables are alike).
        compat.clear_trace_cache(getattr(self.model, "train_function", None))
        # Metric variables created meanwhile (compile metrics build lazily) go back to
        # their empty state; every variable that existed gets its saved value.
        for metric in getattr(self.model, "metrics", []):
            metric.reset_state()
        for variable, value in self.values:
            variable.assign(value)
