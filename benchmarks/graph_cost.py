"""What the rate costs inside TensorFlow's compiled train step, per variant, on CPU.

Why a second benchmark: on TensorFlow ``step_overhead.py`` times whole ``fit()`` calls,
and there one model's step time, pinned to one core, moves by 10 to 30 % from fit to
fit; a few percent of cost cannot be resolved that way. Here the compiled train function
Keras built for each model is called directly (``model.train_function(iterator)``, one
step per call as ``fit()`` makes it), in short blocks that alternate between the
variants, so that every variant sees the same machine from one block to the next; and
each call is split into the graph's own execution (the time spent in TensorFlow's
``execute`` of the function, measured by wrapping ``tensorflow.python.eager.execute.execute``,
a private module: benchmark only) and the Python around it (``tf.function``'s argument
handling). No callback hook runs: ``fit()`` adds those on top (``step_overhead.py``
splits them out on JAX and PyTorch).

What it runs: the variants of ``step_overhead.py`` (same model, data shapes, arguments
and callbacks; ``--variants``), ``--models`` models each (a model's step time carries a
bias of its own, about 2 % here, which several models average out). Each model first
trains one short ``fit()`` with its variant's callbacks, which installs the variant's
rate as it would for a user and traces the train function; then ``--rounds`` rounds
each time one block of ``--block`` calls of every model, in an order that rotates by
one model per round, with Python's garbage collector off while timing.

How to read the output: per variant, the number of graph operations its traced train
step has beyond ``fixed``'s (constants excluded), the median over rounds of its graph time
per step, the median (and quartiles) over rounds of its extra graph time against
``fixed`` in the same round (each round's value is the mean over that variant's
models), and the whole call's time per step as a ratio to ``fixed``'s. Timings are not
asserted anywhere; docs/performance.md quotes runs.

Run from the repository root (about three minutes)::

    .venv/bin/python benchmarks/graph_cost.py
    .venv/bin/python benchmarks/graph_cost.py --variants keras,builtin --rounds 40
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from step_overhead import (  # the sibling script, found through sys.path
    BATCH,
    THREAD_ENV,
    VARIANTS,
    _cpu_model,
    _quartiles,
    _version,
    add_direct_call_options,
    build_model,
    direct_call_setup,
)

DEFAULT_VARIANTS = "keras,restarts,schedule,builtin,plugin,lambda,momentum,onecycle"
INSTALL_STEPS = 20  # the short fit() that installs each variant's rate and traces the step


def _graph_ops(model: Any) -> int:
    """Non-constant operations in the model's train step traced as a graph, the bodies of
    the functions it calls (a ``cond``'s branches) included."""
    import tensorflow as tf

    spec = (tf.TensorSpec([BATCH, 64], tf.float32), tf.TensorSpec([BATCH], tf.int64))
    graph = tf.function(model.train_step).get_concrete_function(spec).graph
    count = sum(1 for op in graph.get_operations() if op.type != "Const")
    # FuncGraph._functions (private): the function definitions the graph holds.
    for function in getattr(graph, "_functions", {}).values():
        definition = getattr(function, "definition", None)
        if definition is not None:
            count += sum(1 for node in definition.node_def if node.op != "Const")
    return count


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"variants: {', '.join(VARIANTS)} (fixed always runs, as the reference)",
    )
    parser.add_argument(
        "--variants",
        default=DEFAULT_VARIANTS,
        help=f"comma-separated variants of step_overhead.py (default: {DEFAULT_VARIANTS})",
    )
    add_direct_call_options(parser, rounds=60, block=25)
    args = parser.parse_args()
    names, skipped, pin = direct_call_setup(parser, args)

    # Before TensorFlow is imported: its thread pools read these once.
    os.environ.update(THREAD_ENV, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.eager import execute

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    print("graph_cost: TensorFlow's compiled train step called directly, per variant")
    print(f"command:  {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"versions: keras {_version('keras')}, tensorflow "
        f"{_version('tensorflow', 'tensorflow-cpu')}, clrplug {_version('clrplug')}"
    )
    print(f"cpu:      {_cpu_model()}, {pin}, single-threaded ({' '.join(THREAD_ENV)} = 1)")
    print(
        f"run:      {args.models} model(s) per variant, {args.rounds} rounds of a block of "
        f"{args.block} one-step calls per model, order rotating; gc off while timing"
    )
    for name, reason in skipped.items():
        print(f"  {name}: SKIPPED: {reason}")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * INSTALL_STEPS, 64)).astype("float32")
    y = rng.integers(0, 10, size=(BATCH * INSTALL_STEPS,))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).repeat()

    units: list[tuple[str, Any, Any]] = []  # (variant, train function, iterator)
    ops: dict[str, int] = {}
    for name in names:
        for _ in range(args.models):
            model = build_model(VARIANTS[name])
            callbacks = VARIANTS[name].factory()
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
            for callback in callbacks:
                # A clrplug callback gives the model back plain when its fit ends: install
                # its rate again, with the step the fit traced (what every step of a fit runs).
                if hasattr(callback, "attach"):
                    callback.attach(model)
            ops.setdefault(name, _graph_ops(model))
            iterator = iter(dataset)
            for _ in range(2 * args.block):  # warm
                model.train_function(iterator)
            units.append((name, model.train_function, iterator))

    spent = [0.0]
    real_execute = execute.execute

    def timed_execute(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        try:
            return real_execute(*a, **k)
        finally:
            spent[0] += time.perf_counter() - start

    graph = {name: np.zeros((args.rounds, args.models)) for name in names}
    call = {name: np.zeros((args.rounds, args.models)) for name in names}
    cpu = {name: np.zeros((args.rounds, args.models)) for name in names}
    seen = dict.fromkeys(names, 0)
    execute.execute = timed_execute
    gc.collect()
    gc.disable()
    try:
        for r in range(args.rounds):
            shift = r % len(units)
            seen = dict.fromkeys(names, 0)
            for name, function, iterator in units[shift:] + units[:shift]:
                spent[0] = 0.0
                cpu_start = time.process_time()
                start = time.perf_counter()
                for _ in range(args.block):
                    function(iterator)
                elapsed = time.perf_counter() - start
                cpu_elapsed = time.process_time() - cpu_start
                j = seen[name]
                seen[name] += 1
                graph[name][r, j] = spent[0] / args.block * 1e6
                call[name][r, j] = elapsed / args.block * 1e6
                cpu[name][r, j] = cpu_elapsed / args.block * 1e6
    finally:
        gc.enable()
        execute.execute = real_execute

    def per_round(table: dict[str, Any], name: str) -> Any:
        return table[name].mean(axis=1)  # each round: the mean over the variant's models

    print(
        f"\nfixed: {ops['fixed']} graph ops; per step, medians over rounds: graph "
        f"{np.median(per_round(graph, 'fixed')):.1f} us, whole call "
        f"{np.median(per_round(call, 'fixed')):.1f} us wall, "
        f"{np.median(per_round(cpu, 'fixed')):.1f} us CPU"
    )
    print(
        "variant   extra  | extra graph time, us    | whole call / fixed's    | extra CPU\n"
        "          ops    | median (quartiles)      | CPU time (quartiles)    | us, median"
    )
    for name in names[1:]:
        e1, em, e3 = _quartiles(list(per_round(graph, name) - per_round(graph, "fixed")))
        r1, rm, r3 = _quartiles(list(per_round(cpu, name) / per_round(cpu, "fixed")))
        extra_cpu = np.median(per_round(cpu, name) - per_round(cpu, "fixed"))
        print(
            f"{name:9s} {ops[name] - ops['fixed']:5d}  | {em:6.1f} ({e1:6.1f} to {e3:6.1f}) "
            f"| {rm:6.3f} ({r1:.3f}-{r3:.3f})  | {extra_cpu:6.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
