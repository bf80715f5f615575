"""The range test's figure: the loss (and accuracy) against the rate, every rule's suggestion marked.

Drawn from a :class:`~clrplug.range_test.result.RangeTestResult` with the shared figure
helpers of :mod:`clrplug.plotting`; matplotlib is the optional extra ``clrplug[plot]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from clrplug.plotting import _accuracy_keys, _axes_or_new, _finish, _finite, _format_lr
from clrplug.range_test.defaults import DEFAULT_RULE

__all__ = ["plot_range_test"]


#: Colours of the rules' marks, in the registry's order (the curves use blue, orange, purple).
_RULE_COLORS = ("tab:red", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
                "tab:gray")
_RULE_STYLES = ("--", "-.", ":")


def _mark_suggestions(
    axis: Any, suggestions: Mapping[str, Any], shaded: str, *, legend: bool = True
) -> None:
    """A vertical line at each rule's ``max_lr``; the ``shaded`` rule's band filled.

    Labelled with the rule's name when ``legend`` (one panel carries the labels); rules
    that found no range are listed in a note.
    """
    missing = []
    for i, (name, found) in enumerate(suggestions.items()):
        if found is None:
            missing.append(name)
            continue
        color = _RULE_COLORS[i % len(_RULE_COLORS)]
        style = _RULE_STYLES[(i // len(_RULE_COLORS)) % len(_RULE_STYLES)]
        axis.axvline(found.max_lr, color=color, linestyle=style, linewidth=1.3,
                     label=f"{name}: max_lr = {_format_lr(found.max_lr)}" if legend else None)
        if name == shaded and found.caveat is None:  # no confident band on an ambiguous curve
            axis.axvspan(
                found.base_lr, found.max_lr, color=color, alpha=0.1,
                label=(f"{name}: base_lr..max_lr = {_format_lr(found.base_lr)}.."
                       f"{_format_lr(found.max_lr)}") if legend else None,
            )
    if missing and legend:
        axis.text(0.02, 0.95, "no range found: " + ", ".join(missing), transform=axis.transAxes,
                  va="top", color="0.3", fontsize=8)


def plot_range_test(
    result: Any,
    path: str | os.PathLike[str] | None = None,
    ax: Any = None,
    *,
    rule: Any = None,
) -> Any:
    """Plot a range test: loss and accuracy against the learning rate, every rule's suggestion marked.

    The top panel shows the per-batch loss (light) and the smoothed loss the loss rules
    read (bold); the bottom panel, when an accuracy was logged, the accuracy against the
    learning rate as in the seed's figure (validation accuracy as dots when it was
    measured, the column ``accuracy_rise`` reads drawn bold). Every registered rule's
    suggested ``max_lr`` is a vertical line labelled with the rule's name
    (:meth:`~clrplug.range_test.RangeTestResult.suggestions`), and ``rule``'s band from
    ``base_lr`` to ``max_lr`` is shaded, unless the curve is ambiguous (the title then
    says why, :meth:`~clrplug.range_test.RangeTestResult.ambiguity`). The x axis is
    logarithmic for an ``"exp"`` sweep.

    Args:
        result: a :class:`~clrplug.range_test.RangeTestResult`.
        path: write the figure there.
        ax: one Axes (loss, with accuracy on a twin axis) or two (loss, accuracy).
        rule: the rule whose band is shaded (a name or a ``SuggestionRule``); default
            ``clrplug.range_test.DEFAULT_RULE``.

    Returns:
        The matplotlib ``Figure``.
    """
    suggestions: dict[str, Any] = dict(result.suggestions())
    chosen = result.suggest(rule)
    shaded = DEFAULT_RULE if rule is None else getattr(rule, "name", rule)
    if chosen is not None:
        shaded = chosen.rule
        suggestions[chosen.rule] = chosen
    accuracy = _accuracy_keys([k for k in result.metrics if not k.startswith("val_")])[:1]
    val_accuracy = _accuracy_keys([k for k in result.metrics if k.startswith("val_")])[:1]
    single = ax is not None and not isinstance(ax, (list, tuple, np.ndarray))
    rows = 1 if single or not (accuracy or val_accuracy) else 2
    figure, axes = _axes_or_new(ax, rows, height=3.2)
    lr = result.lr
    loss_axis = axes[0]
    loss_axis.plot(lr, result.loss, color="tab:blue", alpha=0.3, linewidth=0.8,
                   label="loss (per batch)")
    smooth_lr, smooth_loss = result.smoothed("loss")
    loss_axis.plot(smooth_lr, smooth_loss, color="tab:blue", linewidth=1.8,
                   label="loss (smoothed, centred: as the robust_* rules read it)")
    loss_axis.plot(lr, result.smoothed_loss, color="tab:cyan", linewidth=1.0,
                   label="loss (moving average, as fastai's rules read it)")
    valid = result.loss[: result.valid_steps]
    if smooth_loss.size and np.isfinite(valid).any():
        # From the lowest loss to a little above where it started: the divergence at the
        # end would otherwise flatten the part that matters.
        lowest = int(np.argmin(smooth_loss))
        low = float(min(smooth_loss[lowest], np.nanmin(valid)))
        high = float(smooth_loss[: lowest + 1].max())
        span = max(high - low, 1e-12)
        loss_axis.set_ylim(low - 0.05 * span if low < 0 else max(0.0, low - 0.05 * span),
                           high + 0.35 * span)
    loss_axis.set_ylabel("training loss")
    loss_axis.set_title(
        f"LR range test: {result.step_mode} sweep, {len(lr)}/{result.steps} steps, "
        f"{result.stop_reason}; shaded: {shaded}"
        + ("" if result.ambiguity() is None else "\nnot confident: " + result.ambiguity()),
        fontsize=10 if result.ambiguity() is None else 8,
    )
    _mark_suggestions(loss_axis, suggestions, shaded)
    if accuracy or val_accuracy:
        acc_axis = axes[1] if rows == 2 else loss_axis.twinx()
        for name in accuracy:
            x, y = _finite(lr, np.asarray(result.metrics[name], dtype=np.float64))
            acc_axis.plot(x, y, color="tab:orange", alpha=0.3, linewidth=0.8,
                          label=f"{name} (per batch)")
        for name in val_accuracy:
            x, y = _finite(lr, np.asarray(result.metrics[name], dtype=np.float64))
            acc_axis.plot(x, y, color="tab:purple", linestyle="none", marker="o",
                          markersize=3, label=name)
        key = result.curve().accuracy_key()
        if key is not None:
            x, y = result.smoothed(key)
            acc_axis.plot(x, y, color="tab:purple" if key.startswith("val_") else "tab:orange",
                          linewidth=1.8, label=f"{key} (smoothed, as accuracy_rise reads it)")
        acc_axis.set_ylabel("accuracy")
        if rows == 2:
            _mark_suggestions(acc_axis, suggestions, shaded, legend=False)
            acc_axis.legend(loc="best", fontsize=8)
    for axis in axes:
        if result.step_mode == "exp":
            axis.set_xscale("log")
        axis.set_xlim(lr[0], lr[-1])
        axis.grid(True, alpha=0.3)
    axes[-1].set_xlabel("learning rate" + (" (log scale)" if result.step_mode == "exp" else ""))
    loss_axis.legend(loc="best", fontsize=8)
    return _finish(figure, path)
