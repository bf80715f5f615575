"""PyTorch with ``compile(jit_compile=True)``: Keras runs the train step under ``torch.compile``.

The rate still comes from the engine's eager path (a Python float from the float64
reference): Dynamo breaks its graph there, and recompiles Keras' update step for each new
rate until its recompile limit, after which that step runs eagerly. Slow to start, and
exact: checked here against PyTorch's ``CyclicLR`` (stored values) through the rate probe,
the momentum cycled too.

Keras calls ``torch.compile(step)``, whose default backend (Inductor) generates and builds
C++ on CPU, which needs a working compiler toolchain (in a fresh virtual environment here
setuptools' distutils shim broke it). What clrplug meets is Dynamo's tracing, the same
whatever compiles the graphs after it, so the test gives Keras' call the ``aot_eager``
backend: Dynamo and AOTAutograd, without code generation.
"""

from __future__ import annotations

import keras
import pytest
from oracles import torch_cyclic
from probe import fit_probe, rate_probe_model
from recording import assert_applied

from clrplug import CyclicLR

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch",
                                reason="jit_compile=True means torch.compile on PyTorch only")


def test_rates_and_momenta_under_torch_compile_are_pytorchs(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda f, **kw: compile_(f, **{"backend": "aot_eager", **kw}))
    model = rate_probe_model(keras.optimizers.SGD(0.1, momentum=0.7), jit_compile=True)
    assert model.jit_compile is True
    clr = CyclicLR(0.01, 0.05, step_size=3, mode="triangular2", cycle_momentum=True,
                   base_momentum=0.8, max_momentum=0.9)
    from torch._dynamo.utils import counters

    counters.clear()
    run = fit_probe(model, 8, [clr], epochs=3)
    assert counters["stats"]["unique_graphs"] > 0  # Dynamo did trace and compile the step
    lr, momentum = torch_cyclic(24, base_lr=0.01, max_lr=0.05, step_size_up=3,
                                mode="triangular2", cycle_momentum=True)
    assert momentum is not None and momentum.min() < 0.85
    assert_applied(run, lr, momentum)
