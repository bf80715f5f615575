"""Step-time overhead of CyclicLR, per Keras backend (issue: no cost per step).

For each backend (one subprocess each, since KERAS_BACKEND is fixed at import)
a small MLP (64 -> 32 -> 32 -> 10, batch 64, SGD) is trained for one epoch of
``--steps`` steps, and each *pair* times, in rotating order on warm models:

- ``fixed``      : no callback (the reference);
- ``builtin``    : ``CyclicLR(mode="triangular2")``;
- ``plugin``     : ``CyclicLR(mode="sinusoidal")`` from the clrplug-sinusoidal plugin
                   (a runtime-registered copy if the plugin is not installed);
- ``lambda``     : ``CyclicLR(scale_fn=lambda x: 1/(5**(x*0.0001)), scale_mode="iterations")``;
- ``setter``     : the direct port of the seed's callback, setting the optimizer's rate from
                   Python in every ``on_train_batch_begin`` (the baseline clrplug avoids).

It prints, per backend and variant, the median and quartiles over pairs of
``step time(variant) / step time(fixed)``. Pin it to one core with single-threaded
backends for figures within a few percent::

    taskset -c 0 .venv/bin/python benchmarks/step_overhead.py --pairs 15

Timings are not asserted anywhere; docs/performance.md quotes a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = ("fixed", "builtin", "plugin", "lambda", "setter")


def _single_threaded_env(backend: str) -> dict[str, str]:
    env = dict(os.environ, KERAS_BACKEND=backend, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                        "intra_op_parallelism_threads=1").strip()
    return env


def worker(pairs: int, steps: int) -> dict[str, list[float]]:
    import keras
    import numpy as np

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif backend == "torch":
        import torch

        torch.set_num_threads(1)

    import clrplug
    from clrplug import CyclicLR

    try:
        clrplug.get_policy("sinusoidal")
    except clrplug.UnknownPolicyError:
        clrplug.register_policy(
            clrplug.Policy("sinusoidal", lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0)))
        )

    class SeedSetter(keras.callbacks.Callback):
        """The seed's approach: set the rate from Python before every batch."""

        def __init__(self) -> None:
            super().__init__()
            self.iterations = 0

        def on_train_batch_begin(self, batch: int, logs: object = None) -> None:
            rate = clrplug.learning_rates([self.iterations], 0.001, 0.006, 100,
                                          mode="triangular2")[0]
            self.model.optimizer.learning_rate = float(rate)
            self.iterations += 1

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64 * steps, 64)).astype("float32")
    y = rng.integers(0, 10, size=(64 * steps,))

    def make_model() -> keras.Model:
        keras.utils.set_random_seed(1)
        model = keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10),
        ])
        model.compile(optimizer=keras.optimizers.SGD(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    callbacks = {
        "fixed": [],
        "builtin": [CyclicLR(0.001, 0.006, 100, mode="triangular2")],
        "plugin": [CyclicLR(0.001, 0.006, 100, mode="sinusoidal")],
        "lambda": [CyclicLR(0.001, 0.006, 100, scale_fn=lambda v: 1 / (5 ** (v * 0.0001)),
                            scale_mode="iterations")],
        "setter": [SeedSetter()],
    }
    models = {name: make_model() for name in VARIANTS}

    def run(name: str) -> float:
        start = time.perf_counter()
        models[name].fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False,
                         callbacks=callbacks[name])
        return (time.perf_counter() - start) / steps

    for name in VARIANTS:  # warm up: trace/compile every model
        run(name)
        run(name)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for pair in range(pairs):
        order = VARIANTS[pair % len(VARIANTS):] + VARIANTS[:pair % len(VARIANTS)]
        for name in order:
            times[name].append(run(name))
    return times


def summarise(backend: str, times: dict[str, list[float]]) -> list[str]:
    import numpy as np

    fixed = np.asarray(times["fixed"])
    lines = [f"{backend}: fixed-rate step median {np.median(fixed) * 1e6:.0f} us "
             f"over {len(fixed)} pairs"]
    for name in VARIANTS[1:]:
        ratio = np.asarray(times[name]) / fixed
        q1, med, q3 = np.percentile(ratio, [25, 50, 75])
        lines.append(f"  {name:8s} step-time ratio median {med:.3f}  (quartiles {q1:.3f}-{q3:.3f})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed fit")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.pairs, args.steps)))
        return 0
    for backend in args.backends.split(","):
        cmd = [sys.executable, __file__, "--worker", "--pairs", str(args.pairs),
               "--steps", str(args.steps)]
        out = subprocess.run(cmd, env=_single_threaded_env(backend), capture_output=True,
                             text=True, check=False)
        if out.returncode != 0:
            print(f"{backend}: failed\n{out.stderr[-2000:]}")
            continue
        times = json.loads(out.stdout.strip().splitlines()[-1])
        print("\n".join(summarise(backend, times)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
