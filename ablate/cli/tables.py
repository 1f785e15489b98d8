"""Tables that fit the terminal: a table wider than the console is shown turned on its side.

A study's switch table has a column per switch (13 of them): on an 80-column terminal rich
cut every header to "loc…", "f…". Turned, it has a row per switch and a column per variant,
and a study with more variants than fit is shown in several such tables, so no header and no
cell is ever cut.
"""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def width(table: Table, console: Console) -> int:
    """The columns ``table`` needs to show every cell and header uncut."""
    unbounded = console.options.update_width(1_000_000)  # rich clamps to the console's width
    return Measurement.get(console, unbounded, table).maximum


def fitted(table: Table, console: Console) -> list[Table]:
    """``table`` if it fits ``console``; else its transpose (the first column's cells become
    the headers), split into as few tables as make every part fit, then the columns that
    wrap (free text, such as a variant's label) as a table of their own."""
    if width(table, console) <= console.width or len(table.columns) < 3:
        return [table]
    first, *rest = table.columns
    keys = [str(cell) for cell in first.cells]
    rows = [(str(column.header).replace("/\n", "/").replace("\n", " "), list(column.cells))
            for column in rest if column.no_wrap]
    for n_parts in range(1, len(keys) + 1):
        per_table = -(-len(keys) // n_parts)  # as even as the parts can be
        parts = [_turned(table, str(first.header), rows, keys,
                         range(start, min(start + per_table, len(keys))))
                 for start in range(0, len(keys), per_table)]
        if all(width(part, console) <= console.width for part in parts) or per_table == 1:
            return parts + _free_text(table)
    return [table]  # pragma: no cover - the loop returns at per_table == 1


def _turned(table: Table, corner: str, rows: list[tuple[str, list]], keys: list[str],
            chosen: range) -> Table:
    turned = Table(title=table.title if chosen.start == 0 else None,
                   caption=table.caption if chosen.stop >= len(keys) else None,
                   box=table.box, pad_edge=False, padding=(0, 1), collapse_padding=True)
    turned.add_column(corner, no_wrap=True)
    for index in chosen:
        turned.add_column(keys[index], overflow="fold")
    for header, cells in rows:
        turned.add_row(header, *(cells[i] for i in chosen))
    return turned


def _free_text(table: Table) -> list[Table]:
    """The first column and every column that wraps, as they were."""
    first, *rest = table.columns
    wrapping = [column for column in rest if not column.no_wrap]
    if not wrapping:
        return []
    text = Table(box=table.box, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for column in (first, *wrapping):
        text.add_column(column.header, no_wrap=column.no_wrap)
    for row in zip(*(list(column.cells) for column in (first, *wrapping)), strict=True):
        text.add_row(*row)
    return [text]
