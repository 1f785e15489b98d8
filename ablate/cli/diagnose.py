"""``ablate diagnose``: score any model's saved density maps and name the placement bug."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ablate.cli import options as opt
from ablate.diagnose import WORST

if TYPE_CHECKING:
    from ablate.diagnose.run import Diagnosis
    from ablate.diagnose.search import Scored

# GAME0 (counts) and GAME3 (placement) are what the verdict weighs; GAME1-2 are in --json,
# and leaving them out keeps the table, with its params and confidence, inside 80 columns.
GAMES = ("game0", "game3")


def _params(s: Scored) -> str:
    if s.bound:  # the count/placement split rows are references, not corrections
        return "(bound)"
    if s.name == "count-scale":
        from ablate.diagnose.search import ratio_text  # torch: loaded by the command already

        return f"totals {ratio_text(s.params['factor'])}"
    return ", ".join(f"{k}={v}" for k, v in s.params.items())


def _confidence(s: Scored, n_images: int) -> tuple[str, str]:
    """(helps, p) cells: images the correction helps and its adjusted p (none for bounds)."""
    if s.bound or s.p is None:
        return "", ""
    p = "<0.001" if s.p < 0.001 else f"{s.p:.3f}"
    return f"{s.helps}/{n_images}", p


def _table(result: Diagnosis) -> Table:
    base, n = result.summary["game3"], int(result.summary["n_images"])
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col, justify in (("#", "right"), ("correction", "left"), ("params", "left"),
                         *((g.upper(), "right") for g in GAMES), ("change", "right"),
                         ("helps", "right"), ("p", "right")):
        table.add_column(col, justify=justify, no_wrap=col != "params", overflow="fold",
                         min_width=5 if col.startswith("GAME") else None)
    table.add_row("", "as given", "", *(f"{result.summary[g]:.2f}" for g in GAMES), "", "",
                  "", style="bold", end_section=True)
    rank = 0
    for s in result.scored:
        change = (s.summary["game3"] - base) / base if base > 0 else 0.0
        rank += not s.bound
        table.add_row("" if s.bound else str(rank), s.name, _params(s),
                      *(f"{s.summary[g]:.2f}" for g in GAMES), f"{change:+.0%}",
                      *_confidence(s, n),
                      style="dim" if s.bound else ("green" if s is result.chosen else None))
    return table


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def diagnose_command(
    pred_dir: Annotated[Path, typer.Argument(
        help="One file per image named by its id: <id>.npy or <id>.pt (a density map at any "
        "stride) or <id>.json / <id>.txt (predicted points).")],
    data_path: opt.DataPath = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help=f"Write overlays of the {WORST} worst images here, before and after the "
        "best correction.")] = None,
) -> None:
    """Score saved density maps with the official GAME protocol, then undo every common way of
    misplacing them (flips, 90/180/270-degree turns, transpose, view-for-permute, shifts and
    rolls up to half the map, the other camera's frame, wrong stride, wrong-side padding
    crop, totals off by a power of two) and name one only when it wins clearly, image by
    image, on enough images; otherwise say that no placement bug is clearly indicated.

    Example: ablate diagnose preds/ --data-path ~/RGBT-CC --split test --out reports/diagnose
    """
    from ablate.diagnose import diagnose  # torch: only when the command runs (see ablate.cli.app)

    result = diagnose(pred_dir, data_path, split)
    console = Console(stderr=as_json)  # with --json, stdout holds the JSON object only
    for note in result.notes:
        _say(console, note)
    if as_json:
        typer.echo(json.dumps(result.as_json()))
    else:
        s = result.summary
        _say(console, f"{s['n_images']} {split} images from {pred_dir}, official protocol (as "
                      f"ablate eval): GAME0 {s['game0']:.2f}, GAME1 {s['game1']:.2f}, GAME2 "
                      f"{s['game2']:.2f}, GAME3 {s['game3']:.2f}, RMSE {s['rmse']:.2f}")
        console.print(_table(result))
        _say(console, "change: GAME3 against the maps as given; helps: images whose GAME3 "
                      "(GAME0 for count-scale) it lowers by 10% or more, params fitted on the "
                      "other images; p: one-sided sign test over images, Holm-adjusted; bound "
                      "rows split the error into count and placement.")
        _say(console, f"Verdict: {result.verdict}")
    if out is not None:
        from ablate.diagnose.overlays import write_overlays  # matplotlib: only with --out

        paths = write_overlays(result, out)
        _say(console, f"wrote {len(paths)} overlays to {out}")
