"""Step-time overhead of CyclicLR per Keras backend, against the seed's callback and no callback.

What it runs: for each backend (one subprocess each, since KERAS_BACKEND is fixed at
import), a small MLP (64 -> 32 -> 32 -> 10, batch 64, SGD with momentum 0.9, one model
per variant) is trained for one epoch of ``--steps`` steps per ``fit()``. First come
``--warmup-rounds`` untimed rounds of one fit per variant (tracing, compilation, a first
fit's one-off work); then each *pair* times one fit of every variant, in an order that
rotates by one variant per pair. The variants (``VARIANTS``, the one place to add
another):

- ``fixed``  : no callback; the reference every ratio divides by.
- ``builtin``: ``CyclicLR(mode="triangular2")``.
- ``plugin`` : ``CyclicLR(mode="sinusoidal")``, the policy of the installed
  ``clrplug-sinusoidal`` plugin; skipped, with the reason printed, when that plugin
  does not provide it (never replaced by a copy).
- ``lambda`` : ``CyclicLR(scale_fn=lambda x: 1/(5**(x*0.0001)), scale_mode="iterations")``.
- ``keras``  : no callback; the model's SGD has Keras' own ``CosineDecay`` with a warm-up
  (``keras.optimizers.schedules``): what a schedule of Keras itself costs, for scale.
- ``schedule``: no callback; the model's SGD has ``learning_rate=CyclicalSchedule(...)``
  (triangular2): the cost of computing the rate inside the compiled step, alone.
- ``nobatch``: ``CyclicLR`` (as ``builtin``) with its two batch hooks replaced by ones that
  do nothing (so its ``history`` and batch logs stay empty): the callback's cost outside
  its batch hooks; ``builtin`` minus ``nobatch`` is what those hooks cost.
- ``momentum``: ``CyclicLR(mode="triangular2", cycle_momentum=True)``: rate and momentum
  computed in the step.
- ``onecycle``: ``OneCycleLR(max_lr=0.006, total_steps=10**7)``, cosine 1cycle with momentum.
- ``noop``   : a callback that overrides every ``on_*`` hook ``CyclicLR`` overrides (found
  at run time), does nothing in them, and is ``async_safe`` exactly when ``CyclicLR`` is:
  the cost of Keras calling such a callback at all.
- ``setter`` : the seed's callback for triangular2 as the seed wrote it, without its
  per-batch history (which also read the rate back from the optimizer every batch):
  Python counters ``clr_iterations``/``trn_iterations``, ``clr()`` in numpy floats, and
  ``self.model.optimizer.learning_rate = float(self.clr())`` in ``on_train_begin`` (for
  the first batch) and in every ``on_batch_end`` (for the next one). No clrplug code.

All CyclicLR variants and the setter use base_lr=0.001, max_lr=0.006, step_size=100.

Run from the repository root (a few minutes for all three backends)::

    .venv/bin/python benchmarks/step_overhead.py --pairs 15 --steps 400
    .venv/bin/python benchmarks/step_overhead.py --backends jax --variants builtin,noop \\
        --json overhead.json

Each worker pins itself to one core with ``os.sched_setaffinity`` where the platform has
it (``--core N``; default the last core this process may use; ``--no-pin`` to turn it
off) and runs its backend single-threaded; the header says which core, if any.

How to read the output: a header (command line, versions, CPU, pinning, threads, steps,
pairs, and one line per variant saying exactly what it runs), then per backend the
callbacks each variant installed (class, the ``on_*`` hooks it overrides, whether it is
``async_safe``), the median step time of ``fixed`` in absolute terms, and per variant
the median and quartiles over pairs of ``step time(variant) / step time(fixed)``, each
ratio taken within one pair, that variant's median step time, and the median over pairs
of the extra wall time of one ``fit()`` (``(variant - fixed) * steps``: a cost paid once
per ``fit()``, such as a callback's ``on_train_begin``, shows here whatever ``--steps``,
while a per-step cost grows with it); on JAX also how many
timed fits compiled anything (it should say "none": otherwise the models were not warm).
With ``--short-steps N`` each pair also times a fit of ``N`` steps per variant, and a
second table splits each variant's cost into per step (the slope between the two fit
lengths, as a ratio to ``fixed``'s and in microseconds) and per fit (what is left of the
short fit), so that a cost paid once per ``fit()`` does not read as a cost per step.
``--workers N`` runs N worker processes per backend one after another and pools their
pairs (listing each worker's median per-step ratio), and ``--rebuild-every K`` builds new
models and callbacks every K pairs: a model's step time carries a bias of its own (on JAX
about 1 %, from where its buffers landed; on TensorFlow one of two modes about 2x apart),
which more models turn into noise the medians absorb instead of a variant's cost.
A step time is the wall time of one ``fit()`` (``time.perf_counter``) divided by
``--steps``, so it includes ``fit()``'s fixed setup cost spread over the steps. ``--json``
writes the raw per-pair times (seconds per step), the order of each pair and, on JAX, the
compilations per timed fit. Timings are not asserted anywhere; docs/performance.md quotes
runs.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BATCH = 64
BASE_LR, MAX_LR, STEP_SIZE = 0.001, 0.006, 100
CLR_ARGS = f"base_lr={BASE_LR}, max_lr={MAX_LR}, step_size={STEP_SIZE}"
SINUSOIDAL_DIST = "clrplug-sinusoidal"
RESULT_MARK = "STEP_OVERHEAD_RESULT "
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}
XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


# -- the variants -----------------------------------------------------------------------


class Unavailable(Exception):
    """A variant cannot run here; the message says why."""


@dataclass(frozen=True)
class Variant:
    """One timed configuration.

    Attributes:
        name: the name in ``--variants`` and in the output.
        description: one line saying exactly what the variant runs.
        factory: returns the callbacks passed to ``fit()``; called once, in the worker,
            after Keras is imported with the worker's backend.
        probe: optional; returns a note printed after the description, or raises
            :class:`Unavailable`. Runs in the parent (for the header) and again in the
            worker, so it must not import Keras.
        learning_rate: optional; returns the optimizer's ``learning_rate`` (a schedule)
            for this variant's model; otherwise the model's SGD has a fixed 0.01.
        prepare: optional; called with the compiled model before any fit.
    """

    name: str
    description: str
    factory: Callable[[], list[Any]]
    probe: Callable[[], str] | None = None
    learning_rate: Callable[[], Any] | None = None
    prepare: Callable[[Any], None] | None = None


VARIANTS: dict[str, Variant] = {}


def variant(
    name: str,
    description: str,
    probe: Callable[[], str] | None = None,
    learning_rate: Callable[[], Any] | None = None,
    prepare: Callable[[Any], None] | None = None,
) -> Callable[[Callable[[], list[Any]]], Callable[[], list[Any]]]:
    """Register the decorated callback factory as variant ``name`` (in definition order)."""

    def decorator(factory: Callable[[], list[Any]]) -> Callable[[], list[Any]]:
        VARIANTS[name] = Variant(name, description, factory, probe, learning_rate, prepare)
        return factory

    return decorator


def overridden_hooks(cls: type) -> list[str]:
    """The ``on_*`` methods ``cls`` defines differently from keras.callbacks.Callback."""
    import keras

    base = keras.callbacks.Callback
    return sorted(
        name
        for name in dir(cls)
        if name.startswith("on_")
        and callable(getattr(cls, name))
        and getattr(cls, name) is not getattr(base, name, None)
    )


def _sinusoidal_from_plugin() -> str:
    import clrplug
    from clrplug import errors

    install = f"install it with `.venv/bin/pip install -e plugins/{SINUSOIDAL_DIST}`"
    switches = "".join(
        f", or unset {name}={os.environ[name]!r}"
        for name in ("CLRPLUG_DISABLE_PLUGIN_AUTOLOAD", "CLRPLUG_PLUGINS")
        if name in os.environ
    )
    try:
        policy = clrplug.get_policy("sinusoidal")
    except errors.UnknownPolicyError:
        failures = "; ".join(str(f) for f in clrplug.list_plugin_failures())
        raise Unavailable(
            f"no policy 'sinusoidal' is registered ({failures or 'no plugin failed to load'}); "
            f"{install}{switches}"
        ) from None
    except errors.ClrplugError as exc:
        raise Unavailable(f"looking up 'sinusoidal' failed: {exc}") from None
    source = policy.source
    distribution = re.sub(r"[-_.]+", "-", (source.distribution or "").lower())
    if source.kind != "plugin" or distribution != SINUSOIDAL_DIST:
        raise Unavailable(f"'sinusoidal' comes from {source}, not the {SINUSOIDAL_DIST} plugin")
    return f"policy from {source}, entry point {source.entry_point}"


@variant("fixed", "no callback; the reference every ratio divides by")
def _fixed() -> list[Any]:
    return []


@variant("builtin", f'CyclicLR({CLR_ARGS}, mode="triangular2"), a built-in policy')
def _builtin() -> list[Any]:
    from clrplug import CyclicLR

    return [CyclicLR(base_lr=BASE_LR, max_lr=MAX_LR, step_size=STEP_SIZE, mode="triangular2")]


@variant(
    "plugin",
    f'CyclicLR({CLR_ARGS}, mode="sinusoidal") with the {SINUSOIDAL_DIST} plugin\'s policy',
    probe=_sinusoidal_from_plugin,
)
def _plugin() -> list[Any]:
    from clrplug import CyclicLR

    return [CyclicLR(base_lr=BASE_LR, max_lr=MAX_LR, step_size=STEP_SIZE, mode="sinusoidal")]


@variant(
    "lambda",
    f'CyclicLR({CLR_ARGS}, scale_fn=lambda x: 1/(5**(x*0.0001)), scale_mode="iterations")',
)
def _lambda() -> list[Any]:
    from clrplug import CyclicLR

    return [
        CyclicLR(
            base_lr=BASE_LR,
            max_lr=MAX_LR,
            step_size=STEP_SIZE,
            scale_fn=lambda x: 1 / (5 ** (x * 0.0001)),
            scale_mode="iterations",
        )
    ]


def _cyclical_schedule() -> Any:
    from clrplug import CyclicalSchedule

    return CyclicalSchedule(BASE_LR, MAX_LR, STEP_SIZE, mode="triangular2")


def _keras_cosine() -> Any:
    import keras

    return keras.optimizers.schedules.CosineDecay(
        0.0, 10**7, alpha=0.1, warmup_target=MAX_LR, warmup_steps=1000
    )


@variant(
    "keras",
    f"no callback; SGD(learning_rate=keras.optimizers.schedules.CosineDecay(0.0, 10**7, "
    f"alpha=0.1, warmup_target={MAX_LR}, warmup_steps=1000)): Keras' own schedule, for scale",
    learning_rate=_keras_cosine,
)
def _keras() -> list[Any]:
    return []


def _keras_restarts() -> Any:
    import keras

    return keras.optimizers.schedules.CosineDecayRestarts(
        MAX_LR, 2 * STEP_SIZE, t_mul=1.0, m_mul=1.0, alpha=BASE_LR / MAX_LR
    )


@variant(
    "restarts",
    f"no callback; SGD(learning_rate=keras.optimizers.schedules.CosineDecayRestarts({MAX_LR}, "
    f"{2 * STEP_SIZE}, t_mul=1, m_mul=1, alpha={BASE_LR}/{MAX_LR})): Keras' own in-step "
    "cyclical schedule, the reference a CyclicLR variant is held to",
    learning_rate=_keras_restarts,
)
def _restarts() -> list[Any]:
    return []


@variant(
    "schedule",
    f'no callback; SGD(learning_rate=CyclicalSchedule({CLR_ARGS}, mode="triangular2")): '
    "the in-step rate alone",
    learning_rate=_cyclical_schedule,
)
def _schedule() -> list[Any]:
    return []


def _ops_path_schedule() -> Any:
    from clrplug import CyclicalSchedule

    class OpsPath(CyclicalSchedule):
        """The keras.ops computation on every backend: PyTorch's eager path left out."""

        def __call__(self, step: Any) -> Any:
            return self._compiled(step)

    return OpsPath(BASE_LR, MAX_LR, STEP_SIZE, mode="triangular2")


@variant(
    "opspath",
    f'no callback; SGD(learning_rate=CyclicalSchedule({CLR_ARGS}, mode="triangular2")) '
    "computed with keras.ops in the step on every backend: `schedule` without PyTorch's "
    "eager path (the same as `schedule` elsewhere), to measure what that path saves",
    learning_rate=_ops_path_schedule,
)
def _opspath() -> list[Any]:
    return []


@variant(
    "nobatch",
    f'CyclicLR({CLR_ARGS}, mode="triangular2") with on_train_batch_begin/end doing nothing '
    "(no history, no batch logs): its cost outside the batch hooks",
)
def _nobatch() -> list[Any]:
    from clrplug import CyclicLR

    def do_nothing(self: Any, batch: int, logs: Any = None) -> None:
        return None

    hooks = {"on_train_batch_begin": do_nothing, "on_train_batch_end": do_nothing}
    cls = type("CyclicLRWithoutBatchHooks", (CyclicLR,), hooks)
    return [cls(base_lr=BASE_LR, max_lr=MAX_LR, step_size=STEP_SIZE, mode="triangular2")]


@variant(
    "momentum",
    f'CyclicLR({CLR_ARGS}, mode="triangular2", cycle_momentum=True): rate and momentum in the step',
)
def _momentum() -> list[Any]:
    from clrplug import CyclicLR

    return [
        CyclicLR(
            base_lr=BASE_LR,
            max_lr=MAX_LR,
            step_size=STEP_SIZE,
            mode="triangular2",
            cycle_momentum=True,
        )
    ]


@variant(
    "onecycle",
    f"OneCycleLR(max_lr={MAX_LR}, total_steps=10**7): cosine 1cycle with momentum "
    "(total far beyond the run, so every timed fit is inside the cycle)",
)
def _one_cycle() -> list[Any]:
    from clrplug import OneCycleLR

    return [OneCycleLR(max_lr=MAX_LR, total_steps=10**7)]


@variant(
    "noop",
    "a callback doing nothing in every on_* hook CyclicLR overrides, async_safe as CyclicLR",
)
def _noop() -> list[Any]:
    import keras

    from clrplug import CyclicLR

    def do_nothing(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    # Read from an instance, so that an attribute set in __init__ counts too.
    reference = CyclicLR(base_lr=BASE_LR, max_lr=MAX_LR, step_size=STEP_SIZE)
    namespace: dict[str, Any] = dict.fromkeys(overridden_hooks(CyclicLR), do_nothing)
    namespace["async_safe"] = bool(getattr(reference, "async_safe", False))
    namespace["__doc__"] = "Overrides CyclicLR's on_* hooks with empty ones."
    return [type("NoopCallback", (keras.callbacks.Callback,), namespace)()]


@variant(
    "syncnoop",
    "a keras.callbacks.Callback whose on_train_batch_end does nothing and which is not "
    "async_safe: Keras then calls the batch hooks in the training thread instead of a "
    "thread pool (CallbackList._configure_async_dispatch, JAX and PyTorch)",
)
def _syncnoop() -> list[Any]:
    import keras

    class SyncNoop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            return None

    return [SyncNoop()]


@variant(
    "setter",
    "the seed's callback (no clrplug): numpy float formula, optimizer.learning_rate = "
    "float(clr()) in on_train_begin and every on_batch_end (seed's history not kept)",
)
def _setter() -> list[Any]:
    import keras
    import numpy as np

    class SeedSetter(keras.callbacks.Callback):
        """The seed's CyclicLR for triangular2, without its per-batch history."""

        def __init__(self, base_lr: float, max_lr: float, step_size: float) -> None:
            super().__init__()
            self.base_lr = base_lr
            self.max_lr = max_lr
            self.step_size = step_size
            self.scale_fn = lambda x: 1 / (2.0 ** (x - 1))
            self.clr_iterations = 0.0
            self.trn_iterations = 0.0

        def clr(self) -> float:
            cycle = np.floor(1 + self.clr_iterations / (2 * self.step_size))
            x = np.abs(self.clr_iterations / self.step_size - 2 * cycle + 1)
            return self.base_lr + (self.max_lr - self.base_lr) * np.maximum(
                0, (1 - x)
            ) * self.scale_fn(cycle)

        def on_train_begin(self, logs: Any = None) -> None:
            if self.clr_iterations == 0:
                self.model.optimizer.learning_rate = float(self.base_lr)
            else:
                self.model.optimizer.learning_rate = float(self.clr())

        def on_batch_end(self, batch: int, logs: Any = None) -> None:
            self.trn_iterations += 1
            self.clr_iterations += 1
            self.model.optimizer.learning_rate = float(self.clr())

    return [SeedSetter(BASE_LR, MAX_LR, STEP_SIZE)]


# -- the worker (one backend, one process) ------------------------------------------------


#: The models ``--model`` chooses from: (input shape of one example, description).
MODELS: dict[str, tuple[tuple[int, ...], str]] = {
    "mlp": ((64,), "MLP 64-32-32-10 (about 0.2 ms a step on one core)"),
    "cnn": (
        (16, 16, 3),
        "CNN on 16x16x3: conv 3x3x16, conv 3x3x32, max-pool 2, conv 3x3x32, global average "
        "pool, dense 10 (a realistic step: several ms on one core)",
    ),
}


def _layers(kind: str) -> list[Any]:
    import keras

    if kind == "cnn":
        return [
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    return [
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10),
    ]


def build_model(spec: Variant, kind: str = "mlp") -> Any:
    """The benchmark's model ``kind`` (a key of :data:`MODELS`) for ``spec``, compiled
    (and prepared), with SGD (momentum 0.9) at a fixed 0.01 or the variant's schedule."""
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(MODELS[kind][0]), *_layers(kind)])
    model.compile(
        optimizer=keras.optimizers.SGD(
            spec.learning_rate() if spec.learning_rate else 0.01, momentum=0.9
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    if spec.prepare is not None:
        spec.prepare(model)
    return model


def _backend_info(backend: str) -> tuple[str, str]:
    """The backend's version and the device Keras trains on, after single-threading it."""
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        gpus = tf.config.list_physical_devices("GPU")
        return tf.__version__, f"GPU ({len(gpus)} visible)" if gpus else "CPU"
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        if torch.cuda.is_available():
            return torch.__version__, f"cuda ({torch.cuda.get_device_name(0)})"
        return torch.__version__, "CPU"
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        kind = "" if device.platform == "cpu" else f" ({device.device_kind})"
        return jax.__version__, f"{device.platform.upper()}{kind}"
    return "?", "?"


def _compile_counter(backend: str) -> Callable[[], int] | None:
    """On JAX, a function returning how many XLA compilations ran so far (else None)."""
    if backend != "jax":
        return None
    from jax import monitoring

    compiles = [0]

    def listen(event: str, duration: float, **kwargs: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles[0] += 1

    monitoring.register_event_duration_secs_listener(listen)
    return lambda: compiles[0]


def worker(
    names: list[str],
    pairs: int,
    steps: int,
    warmup_rounds: int,
    core: int | None,
    short_steps: int = 0,
    rebuild_every: int = 0,
    model: str = "mlp",
) -> dict[str, Any]:
    if core is not None:  # first, so that every thread started later inherits it
        os.sched_setaffinity(0, {core})
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None

    import keras
    import numpy as np

    backend = keras.backend.backend()
    backend_version, device = _backend_info(backend)
    compiled = _compile_counter(backend)

    skipped: dict[str, str] = {}
    callbacks: dict[str, list[Any]] = {}
    for name in names:
        probe = VARIANTS[name].probe
        try:
            if probe is not None:
                probe()
            callbacks[name] = VARIANTS[name].factory()
        except Unavailable as exc:
            skipped[name] = str(exc)
    run_names = [name for name in names if name in callbacks]

    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * steps, *MODELS[model][0])).astype("float32")
    y = rng.integers(0, 10, size=(BATCH * steps,))

    models: dict[str, Any] = {}
    compiles: dict[str, list[int]] = {name: [] for name in run_names}

    cpu: dict[tuple[str, int], list[float]] = {}  # (variant, steps) -> CPU seconds per step

    def fit(name: str, n: int = steps, timed: bool = True) -> float:
        before = compiled() if compiled else 0
        cpu_start = time.process_time()
        start = time.perf_counter()
        models[name].fit(
            x[: BATCH * n],
            y[: BATCH * n],
            batch_size=BATCH,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=callbacks[name],
        )
        elapsed = time.perf_counter() - start
        cpu_elapsed = time.process_time() - cpu_start
        if timed:
            cpu.setdefault((name, n), []).append(cpu_elapsed / n)
        if compiled and timed:
            compiles[name].append(compiled() - before)
        return elapsed / n

    def build() -> None:
        """New models (and callbacks) for every variant, then the untimed warm-up rounds,
        every variant once per round (tracing, compilation, the first fit's one-off
        work); the JAX compile counter says whether they sufficed."""
        for name in run_names:
            callbacks[name] = VARIANTS[name].factory()
            models[name] = build_model(VARIANTS[name], model)
        for _ in range(warmup_rounds):
            for name in run_names:
                fit(name, timed=False)
                if short_steps:
                    fit(name, short_steps, timed=False)

    times: dict[str, list[float]] = {name: [] for name in run_names}
    short_times: dict[str, list[float]] = {name: [] for name in run_names}
    orders: list[list[str]] = []
    for pair in range(pairs):
        if pair == 0 or (rebuild_every and pair % rebuild_every == 0):
            build()
        shift = pair % len(run_names)
        order = run_names[shift:] + run_names[:shift]
        orders.append(order)
        for name in order:
            times[name].append(fit(name))
            if short_steps:
                short_times[name].append(fit(name, short_steps))

    installed = {
        name: [
            {
                "class": type(cb).__name__,
                "hooks": overridden_hooks(type(cb)),
                "async_safe": bool(getattr(cb, "async_safe", False)),
            }
            for cb in cbs
        ]
        for name, cbs in callbacks.items()
    }
    return {
        "backend": backend,
        "model": model,
        "backend_version": backend_version,
        "keras_version": keras.__version__,
        "device": device,
        "affinity": affinity,
        "pid": os.getpid(),
        "skipped": skipped,
        "callbacks": installed,
        "orders": orders,
        "seconds_per_step": times,
        # With --short-steps: the same pairs' fits of that many steps (seconds per step).
        "short_steps": short_steps,
        "short_seconds_per_step": short_times if short_steps else None,
        # The same fits' CPU time (all of the worker's threads), seconds per step.
        "cpu_seconds_per_step": {name: cpu.get((name, steps), []) for name in run_names},
        "short_cpu_seconds_per_step": (
            {name: cpu.get((name, short_steps), []) for name in run_names} if short_steps else None
        ),
        # XLA compilations during each timed fit (JAX only; null elsewhere): 0 if warm.
        "compiles_per_fit": compiles if compiled else None,
    }


# -- the parent: header, workers, summary -------------------------------------------------


def _version(*distributions: str) -> str:
    for distribution in distributions:
        try:
            return f"{importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _worker_env(backend: str) -> dict[str, str]:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **THREAD_ENV)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {XLA_SINGLE_THREAD}".strip()
    return env


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    import numpy as np

    q1, median, q3 = np.percentile(np.asarray(values), [25, 50, 75])
    return float(q1), float(median), float(q3)


def header(
    args: argparse.Namespace,
    backends: list[str],
    pin: str,
    notes: dict[str, str],
    skipped: dict[str, str],
) -> list[str]:
    backend_versions = {
        "jax": f"jax {_version('jax')} (jaxlib {_version('jaxlib')})",
        "tensorflow": f"tensorflow {_version('tensorflow', 'tensorflow-cpu', 'tf-nightly')}",
        "torch": f"torch {_version('torch')}",
    }
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    usable = f", {len(affinity)} usable by this process" if affinity is not None else ""
    lines = [
        "step_overhead: step time of each variant / step time without a callback, same pair",
        f"command:  {shlex.join([sys.executable, *sys.argv])}",
        f"versions: python {platform.python_version()}, keras {_version('keras')}, "
        f"numpy {_version('numpy')}, clrplug {_version('clrplug')}, "
        f"{SINUSOIDAL_DIST} {_version(SINUSOIDAL_DIST)}; "
        + ", ".join(backend_versions.get(b, f"{b} {_version(b)}") for b in backends),
        f"cpu:      {_cpu_model()}, {os.cpu_count()} logical cores{usable}",
        f"pinning:  {pin}",
        f"threads:  {' '.join(f'{k}=1' for k in THREAD_ENV)}, XLA_FLAGS+='{XLA_SINGLE_THREAD}', "
        "tf.config.threading intra/inter-op 1, torch.set_num_threads(1)",
        f"run:      {args.pairs} pairs x {args.steps} steps per fit() (batch {BATCH}, "
        f"{MODELS[args.model][1]}, SGD momentum 0.9, one model per variant"
        + (f", new ones every {args.rebuild_every} pair(s)" if args.rebuild_every else "")
        + f"); {args.warmup_rounds} untimed warm-up round(s) of one fit per variant"
        + (" after each build" if args.rebuild_every else "")
        + "; order rotates by one variant per pair; step time = fit() wall time / steps"
        + (
            f"; {args.workers} worker processes per backend, pairs pooled"
            if args.workers > 1
            else ""
        )
        + (
            f"; each pair also times a fit of {args.short_steps} steps per variant (per-step "
            "cost = the slope between the two)"
            if args.short_steps
            else ""
        ),
        "variants:",
    ]
    for name in [n for n in VARIANTS if n in notes or n in skipped]:
        lines.append(f"  {name:8s} {VARIANTS[name].description}")
        if skipped.get(name):
            lines.append(f"  {'':8s} SKIPPED: {skipped[name]}")
        elif notes.get(name):
            lines.append(f"  {'':8s} ({notes[name]})")
    return lines


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several workers' results for one backend: their pairs, in turn.

    ``pids`` lists the workers and ``pairs_per_worker`` how many pairs each timed, so
    that the summary can also report each worker's own median.
    """
    result = dict(results[0])
    result["pids"] = [r["pid"] for r in results]
    result["pairs_per_worker"] = len(results[0]["orders"])
    result["orders"] = [order for r in results for order in r["orders"]]
    for key in (
        "seconds_per_step",
        "short_seconds_per_step",
        "cpu_seconds_per_step",
        "short_cpu_seconds_per_step",
        "compiles_per_fit",
    ):
        if result.get(key) is not None:
            result[key] = {
                name: [value for r in results for value in r[key][name]] for name in result[key]
            }
    return result


def summarise(result: dict[str, Any], previous: dict[str, Any] | None, steps: int) -> list[str]:
    times = result["seconds_per_step"]
    lines = [
        f"\n{result['backend']} {result['backend_version']} (keras {result['keras_version']}) "
        f"on {result['device']}, worker pid {', '.join(map(str, result.get('pids', [result['pid']])))} "
        f"affinity {result['affinity']}"
    ]
    for name, reason in result["skipped"].items():
        lines.append(f"  {name}: SKIPPED in the worker: {reason}")
    if previous is not None and previous == result["callbacks"]:
        lines.append("  callbacks: as above")
    else:
        for name, cbs in result["callbacks"].items():
            for cb in cbs:
                safe = "async_safe" if cb["async_safe"] else "not async_safe"
                lines.append(
                    f"  {name:8s} installs {cb['class']}: {safe}, overrides "
                    f"{', '.join(cb['hooks']) or 'no on_* hook'}"
                )
    fixed = times["fixed"]
    _, fixed_median, _ = _quartiles(fixed)
    lines.append(f"  fixed step time, median over {len(fixed)} pairs: {fixed_median * 1e6:.0f} us")
    # A second reference where one ran: a callback that does nothing. Without any batch
    # hook Keras dispatches batch ends to a thread pool (JAX, PyTorch), which on one
    # pinned core can cost more than a callback's own work; see the module docstring.
    others = [n for n in ("syncnoop", "noop") if n in times]
    lines.append(
        f"  {'variant':8s} {'ratio median':>12s}  {'quartiles':13s} {'step median':>11s}"
        f"  {'extra per fit':>13s}" + "".join(f"  {'/ ' + n:>10s}" for n in others)
    )
    for name, values in times.items():
        if name == "fixed":
            continue
        ratios = [v / f for v, f in zip(values, fixed, strict=True)]
        q1, median, q3 = _quartiles(ratios)
        _, step, _ = _quartiles(values)
        _, extra, _ = _quartiles([(v - f) * steps for v, f in zip(values, fixed, strict=True)])
        against = "".join(
            f"  {_quartiles([v / r for v, r in zip(values, times[n], strict=True)])[1]:10.3f}"
            for n in others
        )
        lines.append(
            f"  {name:8s} {median:12.3f}  {q1:.3f}-{q3:.3f}   {step * 1e6:8.0f} us"
            f"  {extra * 1e3:10.2f} ms" + against
        )
    compiles = result.get("compiles_per_fit")
    short = result.get("short_steps") or 0
    if short:
        workers = len(result.get("pids", [result["pid"]]))
        lines += _per_step_lines(times, result["short_seconds_per_step"], steps, short, workers)
        if result.get("short_cpu_seconds_per_step"):
            cpu_lines = _per_step_lines(
                result["cpu_seconds_per_step"],
                result["short_cpu_seconds_per_step"],
                steps,
                short,
                workers,
            )
            cpu_lines[0] = (
                "  the same split in CPU time (all threads; unlike wall time, blind to a "
                f"thread waiting on the one core): fixed {cpu_lines[0].rsplit(': fixed ', 1)[1]}"
            )
            lines += cpu_lines
    if compiles is not None:
        cold = {name: sum(1 for c in counts if c) for name, counts in compiles.items()}
        cold_text = ", ".join(f"{name} {n}/{len(compiles[name])}" for name, n in cold.items() if n)
        lines.append(
            "  timed fits that compiled (XLA): "
            + (cold_text + " -- not warm, add --warmup-rounds" if cold_text else "none")
        )
    return lines


def _per_step_lines(
    long: dict[str, list[float]],
    short: dict[str, list[float]],
    steps: int,
    short_steps: int,
    workers: int = 1,
) -> list[str]:
    """Per-step cost and per-fit cost, split by the two fit lengths of each pair.

    A fit of ``n`` steps takes ``c + n * s``: ``s`` (per step) is the slope between the
    pair's fits of ``short_steps`` and ``steps`` steps, ``c`` (per fit: callback setup,
    epoch-end work, fit()'s own) what is left of the short fit. With several workers
    (their pairs one after another, equally many each) each worker's median per-step
    ratio is listed too.
    """

    def split(name: str) -> tuple[list[float], list[float]]:
        slopes, constants = [], []
        for t_long, t_short in zip(long[name], short[name], strict=True):
            slope = (t_long * steps - t_short * short_steps) / (steps - short_steps)
            slopes.append(slope)
            constants.append(t_short * short_steps - slope * short_steps)
        return slopes, constants

    fixed_slopes, fixed_constants = split("fixed")
    _, fixed_slope, _ = _quartiles(fixed_slopes)
    lines = [
        f"  per step and per fit, from the slope between fits of {short_steps} and {steps} "
        f"steps (same pairs): fixed {fixed_slope * 1e6:.0f} us per step",
        f"  {'variant':8s} {'per-step ratio':>14s}  {'quartiles':13s} {'extra per step':>14s}"
        f"  {'extra per fit':>13s}" + ("  per-step ratio per worker" if workers > 1 else ""),
    ]
    for name in long:
        if name == "fixed":
            continue
        slopes, constants = split(name)
        ratios = [v / f for v, f in zip(slopes, fixed_slopes, strict=True)]
        q1, median, q3 = _quartiles(ratios)
        _, extra_step, _ = _quartiles([v - f for v, f in zip(slopes, fixed_slopes, strict=True)])
        _, extra_fit, _ = _quartiles(
            [v - f for v, f in zip(constants, fixed_constants, strict=True)]
        )
        each = ""
        if workers > 1:
            size = len(ratios) // workers
            each = "  " + " ".join(
                f"{_quartiles(ratios[i * size : (i + 1) * size])[1]:.3f}" for i in range(workers)
            )
        lines.append(
            f"  {name:8s} {median:14.3f}  {q1:.3f}-{q3:.3f}   {extra_step * 1e6:9.2f} us"
            f"  {extra_fit * 1e3:10.2f} ms" + each
        )
    return lines


def requested_variants(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The variant names in ``text`` (comma-separated), in order; an unknown one is a
    usage error."""
    requested = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(requested) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    return requested


def add_direct_call_options(parser: argparse.ArgumentParser, rounds: int, block: int) -> None:
    """The options of the scripts that call a train function directly (graph_cost.py,
    step_cost.py): models per variant, rounds, calls per block, pinning."""
    parser.add_argument("--models", type=int, default=3, help="models per variant (default 3)")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"timed rounds (default {rounds})")
    parser.add_argument("--block", type=int, default=block,
                        help=f"calls per timed block (default {block})")
    parser.add_argument("--core", type=int, default=None, help="core to pin to (default: the last)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process")


def direct_call_setup(parser: argparse.ArgumentParser, args: argparse.Namespace
                      ) -> tuple[list[str], dict[str, str], str]:
    """Check those options and pin this process: the variants to time (``fixed`` first,
    those that cannot run here left out), why each left out one cannot, how it is pinned."""
    requested = requested_variants(parser, args.variants)
    if min(args.models, args.rounds, args.block) < 1:
        parser.error("--models, --rounds and --block must be at least 1")
    core, pin = choose_core(parser, args.core, args.no_pin)
    if core is not None:
        os.sched_setaffinity(0, {core})
        pin = f"pinned to core {core}"
    names = ["fixed"] + [n for n in dict.fromkeys(requested) if n != "fixed"]
    skipped: dict[str, str] = {}
    for name in list(names):
        probe = VARIANTS[name].probe
        try:
            if probe is not None:
                probe()
        except Unavailable as exc:
            skipped[name] = str(exc)
            names.remove(name)
    return names, skipped, pin


def choose_core(
    parser: argparse.ArgumentParser, core: int | None, no_pin: bool
) -> tuple[int | None, str]:
    """The core to pin to (``--core``, default the last usable one) and the cores usable,
    or None and why nothing is pinned; a core this process may not use is a usage error."""
    if no_pin and core is not None:
        parser.error("--core and --no-pin exclude each other")
    if no_pin:
        return None, "not pinned (--no-pin)"
    if not hasattr(os, "sched_setaffinity"):
        return None, "not pinned: os.sched_setaffinity is not available on this platform"
    usable = sorted(os.sched_getaffinity(0))
    chosen = usable[-1] if core is None else core
    if chosen not in usable:
        parser.error(f"--core {chosen}: this process may only use cores {usable}")
    return chosen, f"usable: {usable}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"variants: {', '.join(VARIANTS)} (fixed always runs, as the reference)",
    )
    parser.add_argument(
        "--backends",
        default="jax,tensorflow,torch",
        help="comma-separated Keras backends, one subprocess each",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated subset of the variants (default: all)",
    )
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="mlp",
        help="the model every variant trains (default mlp): "
        + "; ".join(f"{name}: {text}" for name, (_, text) in MODELS.items()),
    )
    parser.add_argument("--pairs", type=int, default=15, help="timed rounds over all variants")
    parser.add_argument("--steps", type=int, default=200, help="steps per timed fit")
    parser.add_argument(
        "--short-steps",
        type=int,
        default=0,
        help="also time a fit of this many steps per variant in each pair (fewer than "
        "--steps), and split the cost into per step (the slope) and per fit (default 0: off)",
    )
    parser.add_argument(
        "--warmup-rounds",
        type=int,
        default=2,
        help="untimed rounds of one fit per variant before the pairs (default 2; on JAX "
        "the compile counter in the output says whether the timed fits were warm)",
    )
    parser.add_argument(
        "--core",
        type=int,
        default=None,
        help="core to pin each worker to (default: the last usable one)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the workers")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes per backend, one after another, their pairs pooled (default "
        "1); each builds its own models, so a step-time bias of one model's memory layout "
        "averages out instead of reading as a variant's cost",
    )
    parser.add_argument(
        "--rebuild-every",
        type=int,
        default=0,
        help="build new models (and callbacks) for every variant, and warm them up again, "
        "every this many pairs (default 0: once); TensorFlow's step time on one model can "
        "sit in one of two modes far apart, so there one model per variant is not enough",
    )
    parser.add_argument("--json", metavar="PATH", help="write the raw per-pair times here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pin-core", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    requested = requested_variants(parser, args.variants)
    names = [n for n in VARIANTS if n == "fixed" or n in requested]
    if args.pairs < 1 or args.steps < 1 or args.warmup_rounds < 1 or args.workers < 1:
        parser.error("--pairs, --steps, --warmup-rounds and --workers must be at least 1")
    if args.rebuild_every < 0:
        parser.error(f"--rebuild-every must be >= 0, got {args.rebuild_every}")
    if not 0 <= args.short_steps < args.steps:
        parser.error(
            f"--short-steps must be >= 0 and below --steps ({args.steps}), got {args.short_steps}"
        )

    if args.worker:
        result = worker(
            names,
            args.pairs,
            args.steps,
            args.warmup_rounds,
            args.pin_core,
            args.short_steps,
            args.rebuild_every,
            args.model,
        )
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0

    core, pin = choose_core(parser, args.core, args.no_pin)
    if core is not None:
        pin = f"each worker pinned to core {core} (os.sched_setaffinity; {pin})"

    notes: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in names:
        probe = VARIANTS[name].probe
        try:
            notes[name] = probe() if probe is not None else ""
        except Unavailable as exc:
            skipped[name] = str(exc)
    names = [n for n in names if n not in skipped]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print("\n".join(header(args, backends, pin, notes, skipped)), flush=True)

    record: dict[str, Any] = {
        "command": [sys.executable, *sys.argv],
        "pairs": args.pairs,
        "steps": args.steps,
        "short_steps": args.short_steps,
        "warmup_rounds": args.warmup_rounds,
        "pinned_core": core,
        "model": args.model,
        "variants": {n: VARIANTS[n].description for n in names},
        "skipped": skipped,
        "backends": {},
    }
    previous: dict[str, Any] | None = None
    failed = False
    for backend in backends:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            "--pairs",
            str(args.pairs),
            "--steps",
            str(args.steps),
            "--short-steps",
            str(args.short_steps),
            "--warmup-rounds",
            str(args.warmup_rounds),
            "--variants",
            ",".join(names),
            "--rebuild-every",
            str(args.rebuild_every),
            "--model",
            args.model,
        ]
        if core is not None:
            cmd += ["--pin-core", str(core)]
        results = []
        for _ in range(args.workers):
            out = subprocess.run(
                cmd, env=_worker_env(backend), capture_output=True, text=True, check=False
            )
            marked = [ln for ln in out.stdout.splitlines() if ln.startswith(RESULT_MARK)]
            if out.returncode != 0 or not marked:
                print(f"\n{backend}: worker failed (exit {out.returncode})\n{out.stderr[-2000:]}")
                break
            results.append(json.loads(marked[-1][len(RESULT_MARK) :]))
        if len(results) < args.workers:
            failed = True
            continue
        result = pooled(results)
        record["backends"][backend] = result
        print("\n".join(summarise(result, previous, args.steps)), flush=True)
        previous = result["callbacks"]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1)
        print(f"\nraw per-pair times (seconds per step): {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
