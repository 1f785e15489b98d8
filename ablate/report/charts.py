"""The HTML report's pictures as PNG data URIs (matplotlib, no display needed)."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ablate.report import fmt
from ablate.report.build import Report
from ablate.report.stats import GAME_METRICS
from ablate.report.table import header
from ablate.robustness import plot_robustness

LOSS_PREFIX = "loss"
VAL_KEYS = tuple(f"val_{m}" for m in GAME_METRICS)


def plain(text: Any) -> str:
    """User text for a matplotlib label: a "$" must not switch on mathtext."""
    return str(text).replace("$", r"\$")


def data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def report_charts(report: Report) -> dict[str, Any]:
    """{"bars": uri, "curves": [(row key, uri)], "tuning": [(name, {"importances": uri,
    "history": uri})], "robustness": [(rotation, uri)]}."""
    return {
        "bars": game_bars(report),
        "curves": [(key, uri) for key, runs in report.curves.items()
                   if (uri := curves(key, runs)) is not None],
        "tuning": [(t["name"], tuning_charts(t)) for t in report.tuning],
        "robustness": robustness_charts(report),
    }


def robustness_charts(report: Report) -> list[tuple[float, str]]:
    """Per stored rotation (0 first), test GAME0-3 against the extra shift: four panels, one
    line per variant (``ablate.robustness.plot_robustness``)."""
    where = f", condition {report.condition}" if report.condition else ""
    out = []
    for rotation, by_variant in report.robustness.items():
        named = {plain(key): curve for key, curve in by_variant.items()}  # legend labels
        fig = plot_robustness(named, f"{report.study}{where}: extra rotation {rotation:g} deg")
        out.append((rotation, data_uri(fig)))
    return out


def game_bars(report: Report) -> str:
    """GAME0-3 per variant (mean, std as error bars), the reference row's levels as lines."""
    table = report.table
    variants = table[table["kind"] != "baseline"]
    fig = Figure(figsize=(max(6.0, 0.9 * len(variants) + 2), 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(variants))
    width = 0.8 / len(GAME_METRICS)
    for i, m in enumerate(GAME_METRICS):
        color = f"C{i}"
        ax.bar(x + (i - 1.5) * width, variants[f"{m}_mean"], width,
               yerr=variants[f"{m}_std"].fillna(0), capsize=2, color=color, label=header(m))
        level = table.at[report.reference, f"{m}_mean"]
        if not fmt.missing(level):  # a baseline may not publish every level
            ax.axhline(level, color=color, linestyle="--", linewidth=1)
    ax.set_xticks(x, [plain(k) for k in variants.index])
    ax.set_ylabel(f"{report.split} error (lower is better)")
    ax.set_title(f"GAME per variant; dashed: {plain(report.reference)}", fontsize=10)
    ax.legend(ncols=4, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.12))
    return data_uri(fig)


def curves(key: str, runs: list[tuple[int, list[dict[str, Any]]]]) -> str | None:
    """Loss terms (left, log scale) and val GAME (right) per epoch, one line style per seed."""
    if not any(epochs for _, epochs in runs):
        return None
    fig = Figure(figsize=(9, 3))
    losses, vals = fig.subplots(1, 2)
    names = sorted({k for _, epochs in runs for row in epochs for k in row
                    if k.startswith(LOSS_PREFIX)})
    for (seed, epochs), style in zip(runs, ("-", "--", ":", "-.") * 8, strict=False):
        x = [row["epoch"] for row in epochs]
        for i, name in enumerate(names):
            losses.plot(x, _series(epochs, name, positive=True), style, marker=".", color=f"C{i}",
                        label=name if seed == runs[0][0] else None)
        for i, name in enumerate(VAL_KEYS):
            vals.plot(x, _series(epochs, name), style, marker=".", color=f"C{i}",
                      label=header(name.removeprefix("val_")) if seed == runs[0][0] else None)
    losses.set_yscale("log")
    losses.set_title(f"{plain(key)}: training loss terms", fontsize=10)
    vals.set_title(f"{plain(key)}: val GAME (seeds: {', '.join(str(s) for s, _ in runs)})",
                   fontsize=10)
    for ax in (losses, vals):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    return data_uri(fig)


def tuning_charts(summary: dict[str, Any]) -> dict[str, str | None]:
    return {"importances": _importances(summary.get("importances") or {}),
            "history": _history(summary.get("history") or [],
                                (summary.get("directions") or ["minimize"])[0])}


def _series(epochs: list[dict[str, Any]], name: str, positive: bool = False) -> list[float]:
    """Missing, non-finite (and on a log axis, non-positive) values as gaps."""
    values = [row.get(name) for row in epochs]
    return [float(v) if isinstance(v, int | float) and math.isfinite(v) and (v > 0 or not positive)
            else np.nan for v in values]


def _importances(importances: dict[str, float]) -> str | None:
    if not importances:
        return None
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = Figure(figsize=(5, 0.35 * len(items) + 1))
    ax = fig.add_subplot()
    ax.barh([plain(k) for k, _ in items], [float(v) for _, v in items])
    ax.set_title("parameter importance", fontsize=10)
    return data_uri(fig)


def _history(history: list[Any], direction: str) -> str | None:
    """Trial values in order and the running best. Rows are (number, value, state) tuples as
    ``ablate.tune`` gives them, dicts with number/value, or bare values; a multi-objective
    value is drawn by its first objective."""
    points = []
    for i, row in enumerate(history):
        if isinstance(row, dict):
            number, value = row.get("number", i), row.get("value")
        elif isinstance(row, list | tuple):
            number, value = (row[0], row[1]) if len(row) > 1 else (i, row[0] if row else None)
        else:
            number, value = i, row
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if isinstance(value, int | float) and math.isfinite(value):
            points.append((number, float(value)))
    if not points:
        return None
    fig = Figure(figsize=(5, 3))
    ax = fig.add_subplot()
    xs, ys = zip(*points, strict=True)
    ax.plot(xs, ys, "o", label="trial")
    best = np.maximum if direction == "maximize" else np.minimum
    ax.plot(xs, best.accumulate(ys), "-", label="best so far")
    ax.set_xlabel("trial")
    ax.set_title("optimisation history", fontsize=10)
    ax.legend(fontsize=8)
    return data_uri(fig)
