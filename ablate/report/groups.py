"""The main table of a study whose conditions are datasets (RGBT-CC, DroneRGBT): one row per
method, one column group per dataset, as papers print them. Each group holds that dataset's
cells from its condition's own table (``build.Report.parts``), so the means, the best cell and
the mark of beating BM are judged within the dataset; a method a dataset lacks (a baseline
published on the other one only, a variant not run there) shows a dash in every column."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ablate.report.build import Report


def grouped_view(report: Report, part_views: list[dict[str, Any]]) -> dict[str, Any]:
    """What the grouped templates add to the report's view: ``groups`` (one per dataset) and
    ``grouped_rows``; each part's view gets the ``heading`` of its section below the table.
    Empty for a report without dataset conditions (``grouped`` is False)."""
    if not report.by_dataset:
        return {"grouped": False, "groups": [], "grouped_rows": []}
    groups = []
    for (condition, part), part_view in zip(report.parts, part_views, strict=True):
        part_view["heading"] = f"{part.baseline_dataset} (condition {condition})"
        groups.append({"condition": condition, "dataset": part.baseline_dataset,
                       "data": part.dataset, "seeds": seeds_text(part)})
    return {"grouped": True, "groups": groups, "grouped_rows": grouped_rows(part_views)}


def grouped_rows(part_views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Baselines, then variants, each in the order of the first part that has them; per part
    the row's cells (render.view's), or None where the part lacks the row."""
    by_part = [{row["key"]: row for row in v["baseline_rows"] + v["variant_rows"]}
               for v in part_views]
    order: dict[str, None] = {}
    for kind in ("baseline_rows", "variant_rows"):
        order.update((row["key"], None) for v in part_views for row in v[kind])
    out = []
    for key in order:
        first = next(rows[key] for rows in by_part if key in rows)
        out.append({"key": key, "label": first["label"], "kind": first["kind"],
                    "parent": first["parent"],
                    "groups": [rows[key]["cells"] if key in rows else None for rows in by_part]})
    return out


def seeds_text(part: Report) -> str:
    """How many seeds the part's variant cells average: "3 seeds", or "1-3 seeds"."""
    counts = sorted(int(n) for n in part.table.loc[part.table["kind"] != "baseline", "n"])
    if not counts:
        return "no runs"
    low, high = counts[0], counts[-1]
    span = str(low) if low == high else f"{low}-{high}"
    return f"{span} seed{'' if span == '1' else 's'}"
