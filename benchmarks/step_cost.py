"""What the rate costs in the train step on PyTorch and JAX, per variant, on CPU.

Why a second benchmark: ``step_overhead.py`` times whole ``fit()`` calls, and there a
model's step time moves by several percent from fit to fit (on PyTorch a plain
``LearningRateSchedule`` returning a constant read 0.94, quartiles 0.86 to 1.00, against a
constant rate in one such run); a cost of a percent or two cannot be resolved that way.
Here the train function Keras built for each model is called directly, one step per call
as ``fit()`` makes it (PyTorch: ``model.train_function([batch])``, the eager step, where
the rate is computed in Python in the optimizer's ``apply``; JAX: the jitted
``model.train_function(state, iterator)`` on the trainer's state, which this script
takes and threads through with ``Trainer._get_jax_state``, a private method: benchmark
only), in short blocks that alternate between the variants, so that every variant sees
the same machine from one block to the next. No callback hook runs: ``fit()`` adds those
on top (``step_overhead.py`` splits them out). TensorFlow's compiled step has its own
script, ``graph_cost.py``.

What it runs: the variants of ``step_overhead.py`` (same models, data shapes, arguments and
callbacks; ``--variants``, ``--model``), ``--models`` models each (a model's step time
carries a bias of its own, which several models average out). Each model first trains
one short ``fit()`` with its variant's callbacks; a clrplug callback's rate is then
attached again (``attach``: the model is plain when a fit ends) so that the timed step is
the one a fit runs. Then ``--rounds`` rounds each time one block of ``--block`` calls of
every model, in an order that rotates by one model per round, with Python's garbage
collector off while timing.

How to read the output: per variant, the median over rounds of its step time, and the
median (and quartiles) over rounds of its extra time per step against ``fixed`` in the
same round (each round's value is the mean over that variant's models), in microseconds
and as a fraction of ``fixed``'s step. Timings are not asserted anywhere;
docs/performance.md quotes runs.

Run from the repository root (about four minutes with the CNN)::

    .venv/bin/python benchmarks/step_cost.py --backend torch --model cnn
    .venv/bin/python benchmarks/step_cost.py --backend jax --model mlp --rounds 60
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_overhead import (
    BATCH,
    MODELS,
    THREAD_ENV,
    VARIANTS,
    XLA_SINGLE_THREAD,
    _quartiles,
    _version,
    add_direct_call_options,
    build_model,
    direct_call_setup,
)

DEFAULT_VARIANTS = "restarts,schedule,builtin,momentum,onecycle"
INSTALL_STEPS = 20  # the short fit() each model trains first


class Step:
    """Calls a model's train function as ``fit()`` does on ``backend``, on one batch."""

    def __init__(self, backend: str, x: Any, y: Any) -> None:
        self.backend = backend
        self.states: dict[int, Any] = {}
        if backend == "torch":
            import torch

            self.data: Any = (torch.from_numpy(x), torch.from_numpy(y))
        else:
            import jax.numpy as jnp

            self.data = (jnp.asarray(x), jnp.asarray(y))

    def prepare(self, model: Any) -> None:
        if self.backend == "jax":  # the trainer's state, as fit() takes it (private)
            self.states[id(model)] = model._get_jax_state(
                trainable_variables=True, non_trainable_variables=True,
                optimizer_variables=True, metrics_variables=True, purge_model_variables=False)

    def block(self, model: Any, calls: int) -> None:
        """``calls`` steps, finished (on JAX, the state computed) before it returns."""
        function = model.train_function
        if self.backend == "torch":
            for _ in range(calls):
                function([self.data])
            return
        import jax

        state = self.states[id(model)]
        for _ in range(calls):
            _, state = function(state, iter([self.data]))
        self.states[id(model)] = jax.block_until_ready(state)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="The train step called directly, per variant (see the docstring)."
    )
    parser.add_argument("--backend", choices=["torch", "jax"], default="torch",
                        help="the Keras backend (default torch)")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help=f"comma-separated, among {', '.join(VARIANTS)} "
                             f"(default {DEFAULT_VARIANTS}); fixed is always timed")
    parser.add_argument("--model", choices=list(MODELS), default="cnn",
                        help="the model (default cnn: the realistic one)")
    add_direct_call_options(parser, rounds=30, block=10)
    args = parser.parse_args()
    names, skipped, pin = direct_call_setup(parser, args)

    os.environ.update(THREAD_ENV, KERAS_BACKEND=args.backend)
    if args.backend == "jax":
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_SINGLE_THREAD}"
    import numpy as np

    if args.backend == "torch":
        import torch

        torch.set_num_threads(1)

    print(f"step_cost: the train step called directly, per variant ({args.backend})")
    print(f"command:  {' '.join([sys.executable, *sys.argv])}")
    print(f"versions: keras {_version('keras')}, {args.backend} {_version(args.backend)}, "
          f"clrplug {_version('clrplug')}")
    print(f"run:      {pin}, one thread; model {args.model}: {MODELS[args.model][1]}; batch "
          f"{BATCH}; {args.models} models per variant; {args.rounds} rounds of {args.block} "
          "calls per model, order rotating")
    for name, why in skipped.items():
        print(f"skipped:  {name}: {why}")

    rng = np.random.default_rng(0)
    shape = MODELS[args.model][0]
    x = rng.normal(size=(BATCH * INSTALL_STEPS, *shape)).astype("float32")
    y = rng.integers(0, 10, size=BATCH * INSTALL_STEPS)
    step = Step(args.backend, x[:BATCH], y[:BATCH])

    models: list[tuple[str, Any]] = []
    keep: list[Any] = []  # the callbacks stay alive while their rate is attached
    for name in names:
        spec = VARIANTS[name]
        for _ in range(args.models):
            model = build_model(spec, args.model)
            callbacks = spec.factory()
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
            for callback in callbacks:
                if hasattr(callback, "attach"):
                    callback.attach(model)  # as during a fit: the rate installed
            model.make_train_function()
            step.prepare(model)
            keep.append(callbacks)
            models.append((name, model))

    per_round: dict[str, list[float]] = {name: [] for name in names}
    extra: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(2):  # warm-up rounds
        for _, model in models:
            step.block(model, 1)
    gc.disable()
    try:
        for round_ in range(args.rounds):
            times: dict[str, list[float]] = {name: [] for name in names}
            shift = round_ % len(models)
            for name, model in models[shift:] + models[:shift]:
                start = time.perf_counter()
                step.block(model, args.block)
                times[name].append((time.perf_counter() - start) / args.block)
            means = {name: statistics.fmean(values) for name, values in times.items()}
            for name in names:
                per_round[name].append(means[name])
                extra[name].append(means[name] - means["fixed"])
    finally:
        gc.enable()

    fixed = statistics.median(per_round["fixed"])
    print(f"\nfixed step, median over rounds: {fixed * 1e6:.0f} us")
    print(f"{'variant':<9} {'step (us)':>10} {'extra (us)':>11} {'quartiles (us)':>18} "
          f"{'extra / step':>13}")
    for name in names[1:]:
        q1, median, q3 = _quartiles(extra[name])
        print(f"{name:<9} {statistics.median(per_round[name]) * 1e6:>10.0f} {median * 1e6:>11.1f} "
              f"{q1 * 1e6:>8.1f} to {q3 * 1e6:>6.1f} {median / fixed:>13.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
