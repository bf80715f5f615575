"""Multi-process data-parallel training: two local worker processes per scenario.

Two processes of tests/multiworker_worker.py on this machine (localhost coordinator, CPU)
run each backend's scenarios one after the other (a module fixture; the docs example has
a pair of its own), and the tests compare what each worker applied with the oracles and
with the other worker: JAX with ``jax.distributed`` and Keras'
``DataParallel`` over both processes' devices, TensorFlow with
``MultiWorkerMirroredStrategy`` from ``TF_CONFIG`` (Keras 3's ``fit`` fails there: a
custom loop trains, and a test pins Keras' failure), PyTorch a custom loop over
``torch.distributed`` (Keras has no distribution for that backend).

Every worker prints what it applied; the probes are those of tests/probe.py: the rate
probe (rates and momenta recovered from the biases) for ``fit``, the bias probe (loss
``mean(y_pred)``, bias gradient exactly 1 over the global batch) for the resumed run and
the custom loop. Expected values come from PyTorch's schedulers (stored data,
tests/oracles.py) or the seed's transcription; a plugin's policy from the same fit in
this single process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from oracles import seed_rates, torch_cyclic, torch_one_cycle
from probe import fit_probe, rate_probe_model
from recording import assert_applied

from clrplug import CyclicLR

WORKER = Path(__file__).with_name("multiworker_worker.py")
WORLD = 2
CYCLIC = {"base_lr": 0.001, "max_lr": 0.006, "step_size": 3}
STEPS, EPOCHS = 8, 2  # per worker, per epoch (as in the worker)
TIMEOUT = 240  # seconds for one scenario's workers


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    with contextlib.ExitStack() as stack:
        for s in sockets:
            stack.enter_context(s)
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]


def start_workers(argv: Callable[[int, list[int]], list[str]], folder: Path,
                  env: Callable[[int, list[int]], dict[str, str]] | None = None,
                  ) -> list[tuple[int, str, str]]:
    """Run ``WORLD`` processes ``python *argv(rank, ports)`` in ``folder`` at once, on the
    CPU, and wait for all; each one's exit status, output and error output, by rank.

    As soon as one worker fails, the others are killed (they would wait for it in their
    collectives until the time is up); so is every worker still running after
    ``TIMEOUT`` seconds, which fails the test with each worker's error output.
    """
    backend = keras.backend.backend()
    ports = free_ports(WORLD)
    # One CPU device per worker on any host (no GPU, no forced host device count).
    xla_flags = " ".join(flag for flag in os.environ.get("XLA_FLAGS", "").split()
                         if not flag.startswith("--xla_force_host_platform_device_count"))
    base = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
            "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "", "XLA_FLAGS": xla_flags}
    procs: list[subprocess.Popen[str]] = []
    with contextlib.ExitStack() as files:
        try:
            for rank in range(WORLD):
                extra = env(rank, ports) if env else {}
                out = files.enter_context((folder / f"worker-{rank}.out").open("w"))
                err = files.enter_context((folder / f"worker-{rank}.log").open("w"))
                procs.append(subprocess.Popen(
                    [sys.executable, *argv(rank, ports)], cwd=folder, stdout=out, stderr=err,
                    text=True, env={**base, **extra}))
            deadline = time.monotonic() + TIMEOUT
            while any(p.poll() is None for p in procs):
                if any(p.returncode not in (None, 0) for p in procs):
                    break  # one failed: the others cannot finish
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
    outcomes = [(proc.returncode,
                 (folder / f"worker-{rank}.out").read_text(errors="replace"),
                 (folder / f"worker-{rank}.log").read_text(errors="replace"))
                for rank, proc in enumerate(procs)]
    if any(code != 0 for code, _, _ in outcomes):
        report = "\n".join(f"--- worker {rank} (exit {code}):\n{err[-3000:]}"
                           for rank, (code, _, err) in enumerate(outcomes))
        raise AssertionError(f"a worker failed or ran out of time ({TIMEOUT} s):\n{report}")
    return outcomes


def tf_config(rank: int, ports: list[int]) -> dict[str, str]:
    """``TF_CONFIG`` of worker ``rank`` of a local cluster, one port per worker."""
    return {"TF_CONFIG": json.dumps({
        "cluster": {"worker": [f"localhost:{port}" for port in ports]},
        "task": {"type": "worker", "index": rank},
    })}


def run_workers(scenario: str, tmp_path: Path) -> list[dict[str, Any]]:
    """Run scenarios of tests/multiworker_worker.py (comma-separated) on one pair of
    processes; each worker's results by rank."""
    outcomes = start_workers(
        lambda rank, ports: [str(WORKER), scenario, str(rank), str(WORLD),
                             f"localhost:{ports[0]}", str(tmp_path)],
        tmp_path, tf_config if keras.backend.backend() == "tensorflow" else None)
    results = []
    for rank, (_, out, err) in enumerate(outcomes):
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        assert lines, f"worker {rank} of {scenario} reported nothing:\n{err[-4000:]}"
        results.append(json.loads(lines[-1][len("RESULT "):]))
    assert [r["rank"] for r in results] == list(range(WORLD))
    return results


#: The scenarios of each backend, run once for this module by one pair of processes.
SCENARIOS = {"jax": "jax_fit,jax_resume,jax_range_test", "tensorflow": "tf_loop,tf_fit",
             "torch": "torch_loop"}


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_workers(SCENARIOS[keras.backend.backend()], tmp_path_factory.mktemp("workers"))


def assert_same_on_every_worker(results: list[dict[str, Any]], *keys: str) -> None:
    for key in keys:
        for result in results[1:]:
            assert result[key] == results[0][key], f"{key}: the workers differ"


def applied(case: dict[str, Any]) -> Any:
    """A worker's rate-probe result as the ``ProbeRun`` fields ``assert_applied`` reads."""
    from types import SimpleNamespace

    fields = {key: np.array(case[key], dtype=np.float64)
              for key in ("rates", "rate_atol", "momenta", "momentum_atol") if key in case}
    fields.setdefault("momenta", None)
    fields.setdefault("momentum_atol", None)
    return SimpleNamespace(**fields)


def single_process_rates(mode: str) -> np.ndarray:
    """The rates the same fit applies in this one process (rate probe)."""
    run = fit_probe(rate_probe_model(), STEPS, [CyclicLR(**CYCLIC, mode=mode)], epochs=EPOCHS)
    return run.rates


jax_only = pytest.mark.skipif(keras.backend.backend() != "jax",
                              reason="jax.distributed with Keras' DataParallel")
torch_only = pytest.mark.skipif(keras.backend.backend() != "torch",
                                reason="torch.distributed custom loop")
tf_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                             reason="tf.distribute.MultiWorkerMirroredStrategy")


@jax_only
def test_jax_two_processes_apply_the_single_process_rates(workers: list[dict[str, Any]]) -> None:
    results = [worker["jax_fit"] for worker in workers]
    steps = STEPS * EPOCHS
    for rank, result in enumerate(results):
        assert result["process_index"] == rank and result["local_devices"] == 1
        assert result["devices"] == WORLD and result["bias_devices"] == WORLD  # one model
    assert_same_on_every_worker(results, "triangular2", "sinusoidal", "momentum", "one_cycle",
                                "schedule")
    chief = results[0]
    # Built-in policies against PyTorch's schedulers (stored values).
    expected = {"sinusoidal": single_process_rates("sinusoidal")}
    expected["triangular2"], _ = torch_cyclic(steps, base_lr=0.001, max_lr=0.006,
                                              step_size_up=3, mode="triangular2")
    assert_applied(applied(chief["triangular2"]), expected["triangular2"])
    lr, momentum = torch_cyclic(steps, base_lr=0.001, max_lr=0.006, step_size_up=3,
                                cycle_momentum=True, base_momentum=0.8, max_momentum=0.9)
    assert_applied(applied(chief["momentum"]), lr, momentum)
    expected["momentum"] = lr
    # 1cycle's length is the per-worker count: 8 steps x 2 epochs, not the global samples.
    assert chief["one_cycle"]["total_steps"] == steps
    lr, _ = torch_one_cycle(steps, max_lr=0.01, total_steps=steps, cycle_momentum=False)
    assert_applied(applied(chief["one_cycle"]), lr)
    expected["one_cycle"] = lr
    assert_applied(applied(chief["schedule"]),
                   seed_rates(np.arange(steps), **CYCLIC, mode="exp_range", gamma=0.9))
    # A plugin's policy (clrplug-sinusoidal): as the same fit applies it in one process.
    assert_applied(applied(chief["sinusoidal"]), expected["sinusoidal"])
    # History: one row per global step, its iterations the global count, on every worker.
    for name, rates in expected.items():
        rows = chief[name]["history"]
        assert rows["iterations"] == list(range(1, steps + 1)), name
        np.testing.assert_allclose(rows["lr"], rates, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(chief["momentum"]["history"]["momentum"], momentum, rtol=1e-12)


@jax_only
def test_jax_backup_and_restore_resumes_both_workers_in_the_middle_of_an_epoch(
    workers: list[dict[str, Any]],
) -> None:
    results = [worker["jax_resume"] for worker in workers]
    assert_same_on_every_worker(results, "first", "resumed", "history", "end_iterations")
    result = results[0]
    oracle = seed_rates(np.arange(8 * STEPS), **CYCLIC, mode="triangular2")
    done = len(result["first"])
    assert done == 2 * STEPS + 4  # crashed after batch 3 of epoch 2
    np.testing.assert_allclose(result["first"], oracle[:done], rtol=2e-5, atol=1e-9)
    # As in one process: the backup (every 2 batches; it runs before the crash) holds the
    # counter after batch 3 of epoch 2, and Keras resumes that epoch from its first batch;
    # the rate follows the counter, so it continues exactly where the backup left it.
    resumed = len(result["resumed"])
    restored = result["end_iterations"] - resumed
    assert restored == done and resumed == 2 * STEPS
    np.testing.assert_allclose(result["resumed"], oracle[restored:restored + resumed],
                               rtol=2e-5, atol=1e-9)
    assert result["history"]["iterations"] == list(range(restored + 1, restored + resumed + 1))
    np.testing.assert_allclose(result["history"]["lr"], oracle[restored:restored + resumed],
                               rtol=1e-12)


@jax_only
def test_jax_range_test_runs_on_every_worker_and_restores_each(workers: list[dict[str, Any]]) -> None:
    results = [worker["jax_range_test"] for worker in workers]
    # The loss of a step is the global batch's: the curves, and so the stop, agree.
    assert_same_on_every_worker(results, "lr", "loss", "stop_reason")
    for result in results:
        assert result["restored"] and result["iterations"] == 0
        assert result["learning_rate"] == pytest.approx(0.01, rel=1e-7)
        assert len(result["lr"]) >= 5


def check_custom_loop(results: list[dict[str, Any]]) -> None:
    """Every worker of a custom loop applied each stand-alone schedule's rates."""
    assert_same_on_every_worker(results, "triangular2", "sinusoidal", "one_cycle")
    chief, steps = results[0], STEPS * EPOCHS
    # Each rate is a difference of two float32 biases, which stay below 0.1: it is read to
    # their spacing there (7.5e-9), which is all of 1cycle's last rate (4e-8) can show.
    tol = {"rtol": 2e-5, "atol": 2 * float(np.spacing(np.float32(0.1)))}
    lr, _ = torch_cyclic(steps, base_lr=0.001, max_lr=0.006, step_size_up=3, mode="triangular2")
    np.testing.assert_allclose(chief["triangular2"]["rates"], lr, **tol)
    lr, _ = torch_one_cycle(steps, max_lr=0.01, total_steps=steps, cycle_momentum=False)
    np.testing.assert_allclose(chief["one_cycle"]["rates"], lr, **tol)
    from clrplug import CyclicalSchedule

    schedule = CyclicalSchedule(**CYCLIC, mode="sinusoidal")  # the plugin's, in one process
    single = [float(keras.ops.convert_to_numpy(schedule(step))) for step in range(steps)]
    np.testing.assert_allclose(chief["sinusoidal"]["rates"], single, **tol)
    for name in ("triangular2", "sinusoidal", "one_cycle"):
        assert chief[name]["iterations"] == steps


@tf_only
def test_tf_multi_worker_custom_loop_applies_the_schedule_on_every_worker(
    workers: list[dict[str, Any]],
) -> None:
    results = [worker["tf_loop"] for worker in workers]
    assert [r["task"] for r in results] == [["worker", 0], ["worker", 1]]
    assert all(r["replicas"] == WORLD for r in results)
    check_custom_loop(results)


@torch_only
def test_torch_distributed_custom_loop_applies_the_schedule_on_every_worker(
    workers: list[dict[str, Any]],
) -> None:
    results = [worker["torch_loop"] for worker in workers]
    assert all(r["world"] == WORLD for r in results)
    # Keras' distribution API has no PyTorch implementation (docs/distributed.md).
    assert all(r["keras_distribution"] != "available" for r in results)
    check_custom_loop(results)


@tf_only
def test_tf_multi_worker_fit_fails_in_keras_and_the_range_test_refuses(workers: list[dict[str, Any]]) -> None:
    results = [worker["tf_fit"] for worker in workers]
    for result in results:
        # Keras' own failure, with no clrplug callback in the fit (keras-team/keras#20585).
        # When this assertion fails, Keras trains under the strategy: add the CyclicLR,
        # OneCycleLR and BackupAndRestore scenarios of the JAX tests here, and update
        # docs/distributed.md.
        assert result["fit"] != "trained", "Keras now fits under MultiWorkerMirroredStrategy"
        assert "PerReplica" in result["fit"], result["fit"]
        refusal = result["range_test"]
        assert refusal.startswith("clrplug.errors.InvalidArgumentError"), refusal
        assert "MultiWorkerMirroredStrategy" in refusal and "one process" in refusal, refusal


#: docs/distributed.md's example script for each backend, and its arguments.
DOCS_EXAMPLES: dict[str, tuple[str, Callable[[int, list[int]], list[str]]]] = {
    "jax": ("train_jax.py", lambda rank, ports: [str(rank), str(WORLD), f"localhost:{ports[0]}"]),
    "tensorflow": ("train_tf.py", lambda rank, ports: [str(rank), ",".join(map(str, ports))]),
    "torch": ("train_torch.py", lambda rank, ports: [str(rank), str(WORLD), f"localhost:{ports[0]}"]),
}


def test_the_docs_two_process_example_runs(tmp_path: Path) -> None:
    """docs/distributed.md's script for this backend, on two processes as the page says."""
    from test_docs import ROOT, parse_blocks

    name, args = DOCS_EXAMPLES[keras.backend.backend()]
    page = ROOT / "docs" / "distributed.md"
    block = next(b for b in parse_blocks(page.read_text()) if b.title == name)
    (tmp_path / name).write_text(block.code)
    outcomes = start_workers(lambda rank, ports: [name, *args(rank, ports)], tmp_path)
    pattern = r"worker (\d): steps (\d+), last rate ([0-9.]+), weights ([0-9.]+)"
    reports = []
    for rank, (_, out, _) in enumerate(outcomes):
        # Gloo (JAX's CPU collectives) prints its connections.
        lines = [line for line in out.splitlines() if line.strip() and not line.startswith("[Gloo]")]
        assert len(lines) == 1, lines
        found = re.fullmatch(pattern, lines[0])
        assert found and int(found[1]) == rank, lines
        reports.append(found)
    expected = seed_rates([63], base_lr=0.01, max_lr=0.1, step_size=16, mode="triangular2")
    for found in reports:
        # 512 samples per worker in batches of 32, 4 epochs: 64 steps of the cycle.
        assert int(found[2]) == 64
        assert float(found[3]) == pytest.approx(float(expected[0]), abs=1e-6)
    # The workers trained one model: the gradients were combined at every step.
    assert float(reports[1][4]) == pytest.approx(float(reports[0][4]), rel=1e-6)
