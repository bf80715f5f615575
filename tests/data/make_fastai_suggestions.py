"""fastai's own suggestions on synthetic and recorded range test curves, stored as data.

    PYTHONPATH=<where fastai is> python tests/data/make_fastai_suggestions.py [--check]

Needs fastai 2.8 (``fastai.callback.schedule``) and torch; run it in a process that
imports neither JAX nor TensorFlow. For each curve it computes what fastai does:

1. the recorder's smoothed loss, with fastai's own ``AvgSmoothLoss`` (factor 0.98) fed
   the raw losses one step at a time;
2. ``Learner.lr_find``'s trimming, ``lrs[num_it//10:-5]`` and
   ``losses[num_it//10:-5]``, cut at the first NaN (the record holds the step that
   tripped the stop rule, as fastai's recorder does);
3. fastai's ``valley``, ``steep``, ``minimum`` and ``slide`` on those tensors (float64;
   ``lr_find`` itself makes float32 tensors, whose answers are stored too).

It writes ``fastai_suggestions.json`` next to it: each curve's record and fastai's
answer (the rate and the step of the record it was read at) per rule. With
``--check`` it writes nothing and exits 1 when the stored file differs.
tests/test_fastai_rules.py compares clrplug's rules of those names with the stored answers;
tests/test_fastai_parity_data.py reruns this script where fastai is importable.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
OUT = HERE / "fastai_suggestions.json"
RULES = ("valley", "steep", "minimum", "slide")


def loss_shape(u: np.ndarray, start: float, lowest: float, warp: float = 1.0) -> np.ndarray:
    """Plateau until 10**start, cosine descent of 2.0 to 10**lowest, parabolic rise after."""
    t = np.clip((u - start) / (lowest - start), 0.0, 1.0)
    loss = 2.5 - 2.0 * (1.0 - np.cos(np.pi * t**warp)) / 2.0
    curvature = 2.0 * np.pi**2 / (2.0 * (lowest - start) ** 2) * max(warp, 1.0)
    return loss + 0.5 * curvature * np.clip(u - lowest, 0.0, None) ** 2


def fastai_smooth(raw: list[float]) -> list[float]:
    """fastai's AvgSmoothLoss, fed one loss per step as the recorder does."""
    import torch
    from fastai.learner import AvgSmoothLoss

    class Learn:  # what AvgSmoothLoss.accumulate reads
        loss: torch.Tensor
        training = True

    metric, learn = AvgSmoothLoss(beta=0.98), Learn()
    metric.reset()
    metric.val = metric.val.double()  # fastai's float32 zero, in the record's float64
    out = []
    for value in raw:
        learn.loss = torch.tensor(value, dtype=torch.float64)
        metric.accumulate(learn)
        out.append(float(metric.value))
    return out


def stop_rule(lr: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The record fastai's LRFinder keeps: up to the step whose smoothed loss passes 4x its best."""
    smooth, best = fastai_smooth(raw.tolist()), math.inf
    for i, value in enumerate(smooth):
        if i > 0 and value > 4 * best:
            return lr[: i + 1], raw[: i + 1]
        best = min(best, value)
    return lr, raw


def synthetic() -> list[dict]:
    rng = np.random.default_rng(2024)
    curves = []
    shapes = [(-4.5, -2.0, 1.0), (-2.5, 0.0, 2.0), (-3.5, -1.0, 1.0), (-5.0, -0.5, 0.5)]
    for steps in (50, 100, 200, 500):
        for k, (start, lowest, warp) in enumerate(shapes):
            for noise in (0.0, 0.03, 0.15):
                lr = np.geomspace(1e-7 if k % 2 else 1e-6, 10.0, steps)
                raw = loss_shape(np.log10(lr), start, lowest, warp)
                raw = raw + noise * rng.standard_normal(steps)
                lr_rec, raw_rec = stop_rule(lr, raw)
                curves.append({"name": f"exp{steps}_shape{k}_noise{noise}", "step_mode": "exp",
                               "steps": steps, "lr": lr_rec.tolist(), "loss": raw_rec.tolist()})
        for k, (centre, width) in enumerate([(0.3, 0.1), (0.6, 0.25)]):
            for noise in (0.0, 0.05):
                lr = np.linspace(0.0, 1.0, steps)
                raw = 2.0 - np.tanh((lr - centre) / width) + 8 * np.clip(lr - 0.85, 0, None) ** 2
                raw = raw + noise * rng.standard_normal(steps)
                lr_rec, raw_rec = stop_rule(lr, raw)
                curves.append({"name": f"lin{steps}_tanh{k}_noise{noise}", "step_mode": "linear",
                               "steps": steps, "lr": lr_rec.tolist(), "loss": raw_rec.tolist()})
    # fastai's corner cases: no descent at all, a two-step descent at the start (valley
    # reads index -1, the last step), a flat noisy curve (slide finds no window).
    lr = np.geomspace(1e-6, 1.0, 60)
    rising = np.linspace(1.0, 3.0, 60)
    two_step = rising.copy()
    two_step[6] = 5.0  # steps 6, 7 (positions 0, 1 after trimming) fall, then it rises
    flat = 2.0 + 0.5 * rng.standard_normal(60)
    for name, raw in (("rising", rising), ("two_step_start", two_step), ("flat_noisy", flat)):
        curves.append({"name": name, "step_mode": "exp", "steps": 60, "lr": lr.tolist(),
                       "loss": raw.tolist(), "smoothed_loss": raw.tolist()})
    return curves


def answers(curve: dict, dtype: str) -> dict:
    import torch
    from fastai.callback.schedule import minimum, slide, steep, valley

    num_it = curve["steps"]
    lrs_all, losses_all = curve["lr"], curve["smoothed_loss"]
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    # Learner.lr_find's own lines.
    lrs = torch.tensor(lrs_all[num_it // 10 : -5], dtype=torch_dtype)
    losses = torch.tensor(losses_all[num_it // 10 : -5], dtype=torch_dtype)
    nan_idxs = torch.nonzero(torch.isnan(losses.view(-1)))
    if len(nan_idxs) > 0:
        drop_idx = min(nan_idxs)
        lrs, losses = lrs[:drop_idx], losses[:drop_idx]
    out = {}
    for name, func in zip(RULES, (valley, steep, minimum, slide), strict=True):
        try:
            value, _ = func(lrs, losses, num_it)
        except (IndexError, RuntimeError, ValueError) as exc:
            out[name] = {"error": type(exc).__name__}
            continue
        target = value * 10 if name == "minimum" else value
        listed = lrs.tolist()
        position = min(range(len(listed)), key=lambda i: abs(listed[i] - target))
        out[name] = {"lr": float(value), "index": num_it // 10 + position}
    return out


def build() -> dict:
    import fastai

    recorded = json.loads((HERE / "range_curves.json").read_text())["curves"]
    curves = synthetic()
    for curve in recorded:
        curves.append({key: curve[key] for key in ("name", "step_mode", "steps", "lr", "loss")}
                      | {"recorded": True, "smoothed_loss_clrplug": curve["smoothed_loss"]})
    for curve in curves:
        if "smoothed_loss" not in curve:
            curve["smoothed_loss"] = fastai_smooth(curve["loss"])
        curve["fastai"] = answers(curve, "float64")
        curve["fastai_float32"] = answers(curve, "float32")
    return {"made_by": "tests/data/make_fastai_suggestions.py", "fastai": fastai.__version__,
            "curves": curves}


def dumps(data: dict) -> str:
    return json.dumps(data, indent=None, separators=(",", ":")) + "\n"


def main(argv: list[str]) -> int:
    text = dumps(build())
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} differs from what fastai gives now", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
