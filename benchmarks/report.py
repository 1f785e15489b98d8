"""The performance targets of issue 4 checked against a run's numbers, and the printed tables."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

DEMO_EPOCH_MAX_S = 10.0  # "a few seconds, not minutes" made checkable


def _target(name: str, value: float, op: str, threshold: float, scope: str) -> dict:
    met = value >= threshold if op == ">=" else value <= threshold
    return {"name": name, "value": value, "op": op, "threshold": threshold, "met": met,
            "scope": scope}


def targets(results: dict) -> list[dict]:
    """Every target the run has the numbers for. The GPU targets are computed on any device
    but only a CUDA run can meet or miss them; ``scope`` says which kind each one is."""
    on_gpu = results["meta"]["device"].startswith("cuda")
    gpu_scope = "gpu" if on_gpu else "gpu target, measured on cpu (indicative only)"
    train = {(r["backbone"], r["variant"], r["mode"]): r["pairs_per_s"] for r in results["train"]}
    out = []
    for (backbone, variant, mode), rate in train.items():
        if variant == "G" and (backbone, "B", mode) in train:
            out.append(_target(f"G / B, {backbone} {mode}", rate / train[backbone, "B", mode],
                               ">=", 0.7, gpu_scope))
    shared_ref = next((r["pairs_per_s"] for r in results["reference"] if "shared" in r["name"]),
                      None)
    if shared_ref:
        for (backbone, variant, mode), rate in train.items():
            if variant == "B":
                # Only vgg19 is like for like; other backbones are shown for information.
                scope = gpu_scope if backbone == "vgg19" else "info: backbone is not vgg19"
                out.append(_target(f"B / plain vgg19 shared, {backbone} {mode}",
                                   rate / shared_ref, ">=", 0.9, scope))
    if train:
        (fastest, fastest_rate) = max(train.items(), key=lambda kv: kv[1])
        for row in results["data"]:
            out.append(_target(f"loader {row['path']} / fastest model ({' '.join(fastest)})",
                               row["pairs_per_s"] / fastest_rate, ">=", 2.0,
                               "gpu" if on_gpu else "cpu"))
    demo = results.get("demo")
    if demo and not demo["reduced"]:
        out.append(_target("demo G epoch 0 + val, s (cpu)", demo["epoch0_train_s"] + demo["val_s"],
                           "<=", DEMO_EPOCH_MAX_S, "cpu"))
    return out


def _table(title: str, columns: list[str], rows: list[list]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row))
    return table


def print_report(results: dict, console: Console | None = None) -> None:
    # Wide enough for every table when the output is a file or a pipe, not a terminal.
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    meta, s = results["meta"], results["settings"]
    console.print(f"[bold]ablate benchmark[/] {meta['date']}  device {meta['device']} "
                  f"({meta['device_name']})  torch {meta['torch']}  threads "
                  f"{meta['torch_threads']}  load {meta['load_average'][0]:.2f}")
    console.print(f"  {meta['command']}")
    console.print(_table(
        f"Training (batch {s['batch_size']}, {s['crop']} crops, {s['steps']} timed steps after "
        f"{s['warmup']} warm-up)",
        ["backbone", "variant", "mode", "pairs/s", "ms/step", "loss fwd ms (alone)",
         "warm-up s"],
        [[r["backbone"], r["variant"], r["mode"], r["pairs_per_s"], r["step_ms"], r["loss_ms"],
          r["warmup_s"]] for r in results["train"]]))
    console.print(_table(
        f"Evaluation ({s['image_size'][0]}x{s['image_size'][1]}, batch 1, "
        f"{s['eval_images']} images)",
        ["backbone", "variant", "forward img/s", "metrics img/s", "evaluate() img/s"],
        [[r["backbone"], r["variant"], r["forward_images_per_s"], r["metric_images_per_s"],
          r["evaluate_images_per_s"]] for r in results["eval"]]))
    console.print(_table(
        f"Data pipeline alone (train_batches, {s['image_size'][0]}x{s['image_size'][1]} images)",
        ["path", "batch", "crop", "pairs/s"],
        [[r["path"], r["batch_size"], r["crop"], r["pairs_per_s"]] for r in results["data"]]))
    if results["reference"]:
        console.print(_table("Plain reference (eager, MSE, AdamW)", ["net", "pairs/s", "ms/step"],
                             [[r["name"], r["pairs_per_s"], r["step_ms"]]
                              for r in results["reference"]]))
    if results["demo"]:
        d = results["demo"]
        title = "Demo study, variant G, CPU" + (" (reduced to 8/2/2 pairs)" if d["reduced"] else "")
        console.print(_table(title, ["train pairs", "data s", "build s", "epoch 0 s", "epoch 1 s",
                                     "val s"],
                             [[d["train_pairs"], d["data_s"], d["build_s"], d["epoch0_train_s"],
                               d["epoch1_train_s"], d["val_s"]]]))
    console.print(_table("Targets", ["target", "value", "needs", "met", "scope"],
                         [[t["name"], t["value"], f"{t['op']} {t['threshold']}",
                           "yes" if t["met"] else "no", t["scope"]] for t in results["targets"]]))
