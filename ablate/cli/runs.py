"""``ablate runs list|show``: what the runs database holds (opened read-only)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ablate.cli import options as opt

app = typer.Typer(help="List and inspect recorded runs.", no_args_is_help=True)
console = Console()


def _fmt(value) -> str:
    """Two decimals; one from 100 on, so a column stays six characters wide up to 9999.9."""
    if value is None:
        return "-"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"


@app.command("list")
def list_runs(
    study: Annotated[str | None, typer.Option("--study", help="Only this study's runs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    condition: Annotated[str | None, typer.Option(
        "--condition", help="Only the runs of this study condition, e.g. --condition "
        "misaligned.")] = None,
    db: opt.Db = None,
) -> None:
    """List runs with their status and test metrics.

    Example: ablate runs list --study demo --json

    Example: ablate runs list --study control --condition misaligned
    """
    from ablate.db import RunStore  # SQLAlchemy: only when a command runs (ablate.cli.app)

    with RunStore(db, readonly=True) as store:
        if study is not None:
            store.check_study(study)
        rows = store.run_dicts(study, condition)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for i, table in enumerate(_runs_tables(rows)):
        console.print(*([""] if i else []), table)


def _runs_tables(rows: list[dict]) -> list[Table]:
    """One table per study and condition, named in its title: the columns left (id, variant,
    seed, status and every test metric) fit an 80-column terminal uncut."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["study"], r["condition"] or ""), []).append(r)
    return [_runs_table(group, f"runs of {study}" + (f", condition {condition}" if condition
                                                      else ""))
            for (study, condition), group in groups.items()] or [_runs_table([], "runs")]


def _runs_table(rows: list[dict], title: str) -> Table:
    from model.metrics import metrics

    keys = ["id", "variant", "seed", "status"]
    shown = metrics()  # every registered metric, test split
    # The box's divider is the one space between columns: all ten fit 80 columns with
    # 4-digit ids and 4-digit metrics (2 spaces each took 11 more).
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for key in keys:
        table.add_column(key, justify="right" if key in ("id", "seed") else "left",
                         no_wrap=True)
    for metric in shown:
        table.add_column(metric.header, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(*(str(r[key]) for key in keys), *(_fmt(r[m.name]) for m in shown))
    return table


@app.command("show")
def show_run(
    run_id: Annotated[int, typer.Argument(help="Run id from `ablate runs list`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    db: opt.Db = None,
) -> None:
    """Show one run: its config, status, epochs, final metrics and error.

    Example: ablate runs show 3
    """
    from ablate.db import RunStore

    with RunStore(db, readonly=True) as store:
        run = store.get_run(run_id)
        info = run.as_dict()
        info["config"] = run.config
        info["val"], info["test"] = run.metrics("val"), run.metrics("test")
        info["epochs"] = store.epochs(run_id)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    where = f"{info['condition']} / " if info["condition"] else ""
    console.print(f"[bold]run {run_id}[/bold]: {info['study']} / {where}{info['variant']} "
                  f"seed {info['seed']} — {info['status']}")
    for key in ("label", "condition", "config_hash", "host", "pid", "started_at", "ended_at",
                "code_version", "save_dir", "best_epoch", "trial_number"):
        if info.get(key) not in (None, ""):
            console.print(f"  {key}: {info[key]}")
    for split in ("val", "test"):
        m = info[split]
        if any(v is not None for v in m.values()):
            console.print(f"  {split}: " + "  ".join(f"{k} {_fmt(v)}" for k, v in m.items()))
    if info["epochs"]:
        last = info["epochs"][-1]
        console.print(f"  epochs recorded: {len(info['epochs'])}; last: "
                      + "  ".join(f"{k} {v:.4g}" for k, v in last.items()
                                  if isinstance(v, float)))
    if info.get("error"):
        console.print(f"  [red]error:[/red] {info['error']}")
