"""Render a Report as HTML, LaTeX or Markdown (Jinja2 templates in ``ablate/templates``) or CSV
(pandas), and write it where the user asked."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from ablate.errors import AblateError, UsageError
from ablate.paths import safe_name
from ablate.report import charts, fmt
from ablate.report.build import Report
from ablate.report.conditions import CrossRow
from ablate.report.family import CORRECTIONS
from ablate.report.groups import grouped_view
from ablate.report.recipe import MIN_SEEDS, Comparison
from ablate.report.stats import GAME_METRICS
from ablate.report.table import SWITCH_HEADERS, SWITCHES, header

FORMATS = {"html": "html", "latex": "tex", "markdown": "md", "csv": "csv"}
# Per paired test, the CSV columns <metric>_vs_<parent|first>_<value>: the recipe-level test
# (unit: the seed) and the image-level one (unit: the test image).
TEST_VALUES = ("recipe_n_seeds", "recipe_mean_diff", "recipe_ci_low", "recipe_ci_high",
               "recipe_p_value", "recipe_p_adjusted", "recipe_mde", "recipe_effect",
               "recipe_seeds_needed", "image_n_images", "image_mean_diff", "image_ci_low",
               "image_ci_high", "image_p_value", "image_mde")
TEMPLATES = {"html": "report.html.j2", "latex": "report.tex.j2", "markdown": "report.md.j2"}
CROSS_TEMPLATES = {"latex": "conditions.tex.j2", "markdown": "conditions.md.j2"}
GROUPED_TEMPLATES = {"latex": "grouped.tex.j2", "markdown": "grouped.md.j2"}


def render_report(report: Report, format: str = "html") -> str:
    """The report as text in ``format`` (html, latex, markdown or csv)."""
    if format not in FORMATS:
        raise UsageError(f"--format {format!r} is not valid; choose one of {', '.join(FORMATS)}")
    if format == "csv":
        return flat_frame(report).to_csv(index=False, float_format="%.6g")
    env = _environment(format)
    context = {**view(report), **cross_view(report)}
    if format != "html" and report.parts and not report.by_dataset:
        # LaTeX and Markdown are fragments: one per condition, then the differences.
        text = "".join(render_report(part, format) for _, part in report.parts)
        return text + env.get_template(CROSS_TEMPLATES[format]).render(**context)
    parts = [part for _, part in report.parts] or [report]
    context["parts"] = [view(part) if part is not report else dict(context) for part in parts]
    if format == "html":
        for part, part_view in zip(parts, context["parts"], strict=True):
            part_view["charts"] = charts.report_charts(part)
    context.update(grouped_view(report, context["parts"]))
    # The HTML page holds the grouped table itself (report.html.j2), around its parts.
    grouped = report.by_dataset and format != "html"
    name = GROUPED_TEMPLATES[format] if grouped else TEMPLATES[format]
    return env.get_template(name).render(**context)


def write_report(report: Report, format: str = "html", out: str | Path | None = None) -> Path:
    """Write the rendered report to ``out`` (default ``reports/<study>.<ext>``)."""
    path = Path(out) if out is not None else default_path(report.study, format)
    text = render_report(report, format)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise AblateError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def default_path(study: str, format: str) -> Path:
    """``reports/<study>.<ext>``; the study name is made one inert file name first."""
    return Path("reports") / f"{safe_name(study, 'study')}.{FORMATS.get(format, format)}"


def view(report: Report) -> dict[str, Any]:
    """What every template gets: raw values; the templates format them with filters."""
    table = report.table
    rows = []
    for key, r in table.iterrows():
        cells = [{"mean": r[f"{m}_mean"], "std": r[f"{m}_std"], "d_ref": r[f"{m}_d_ref"],
                  "d_parent": r[f"{m}_d_parent"], "best": bool(r[f"{m}_best"]),
                  "beats": bool(r[f"{m}_beats_ref"])} for m in report.metrics]
        parent = None if fmt.missing(r["parent"]) else r["parent"]
        rows.append({"key": key, "label": r["label"], "kind": r["kind"], "parent": parent,
                     "n": int(r["n"]), "source": r["source"], "cells": cells,
                     "switches": [_switch(s, r[f"sw_{s}"]) for s in SWITCHES],
                     "vs_parent": report.test(key, "parent"),
                     "vs_first": report.test(key, "first")})
    return {
        "report": report,
        "title": _title(report),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "metric_headers": [header(m) for m in report.metrics],
        "switch_headers": [SWITCH_HEADERS.get(s, s) for s in SWITCHES],
        "baseline_rows": [row for row in rows if row["kind"] == "baseline"],
        "variant_rows": [row for row in rows if row["kind"] != "baseline"],
        "sig_header": header(report.sig_metric),
        "sig_rows": _sig_rows(report),
        "family": family_text(report),
        "correction_name": CORRECTIONS.get(report.correction, report.correction),
        "align_rows": _align_rows(report.table),
        "game_headers": [header(m) for m in GAME_METRICS],
        "label_slug": re.sub(r"[^A-Za-z0-9]+", "-", " ".join(
            (report.study, report.condition))).strip("-") or "study",
    }


def _title(report: Report) -> str:
    if report.by_dataset:
        return f"{report.study}: results against {report.reference}, per dataset"
    if report.parts:
        return f"{report.study}: results against {report.reference}, by condition"
    where = f", condition {report.condition}" if report.condition else ""
    synthetic = "synthetic" in report.dataset  # a condition of the built-in data names none
    dataset = f" ({report.baseline_dataset})" if report.condition and not synthetic else ""
    return f"{report.study}{where}{dataset}: results against {report.reference}"


def cross_view(report: Report) -> dict[str, Any]:
    """The difference between conditions, grouped by condition, each cell (test, mean)."""
    groups: dict[str, dict[str, Any]] = {}
    for row in report.cross:
        group = groups.setdefault(row.condition, {"condition": row.condition,
                                                  "reference": row.reference, "rows": []})
        group["rows"].append({"key": row.key, "label": row.label, "recovered": row.recovered,
                              "cells": [_cross_cell(row, m) for m in GAME_METRICS]})
    return {"cross": list(groups.values()), "study": report.study,
            "cross_reference": report.parts[0][0] if report.parts else "",
            "cross_first": report.first or "the first variant"}


def _cross_cell(row: CrossRow, metric: str) -> dict[str, Any]:
    """A difference between conditions: its tests, or the difference of the means and why
    there is no test (conditions on different datasets share no images)."""
    image = row.tests[metric]
    return {"test": Comparison(row.recipe.get(metric, ""), image), "diff": row.diff[metric],
            "none": image if isinstance(image, str) else "", "metric": header(metric)}


def flat_frame(report: Report) -> pd.DataFrame:
    """The table frame with every paired test as columns ``<metric>_vs_<parent|first>_...``;
    a study with conditions has every condition's rows, named in a ``condition`` column (and,
    where the conditions are datasets, a ``dataset`` column: rgbtcc, dronergbt)."""
    if report.parts:
        frames = [flat_frame(part) for _, part in report.parts]
        for (condition, part), frame in zip(report.parts, frames, strict=True):
            frame.insert(1, "condition", condition)
            if report.by_dataset:  # a row of the grouped table: its column group
                frame.insert(2, "dataset", part.dataset_key)
        return pd.concat(frames, ignore_index=True)
    frame = report.table.reset_index().rename(columns={"key": "row"})
    for column in (c for c in frame.columns if c.startswith("sw_")):
        frame[column] = frame[column].map(lambda v: "" if fmt.missing(v) or v is False else v)
    sig = report.significance
    if not sig.empty:
        wide = sig.pivot_table(index="row", columns=["metric", "against"],
                               values=list(TEST_VALUES),
                               aggfunc="first", dropna=False)
        order = [(v, m, a) for m in GAME_METRICS for a in ("parent", "first")
                 for v in TEST_VALUES if (v, m, a) in wide]
        wide = wide[order]
        wide.columns = [f"{metric}_vs_{against}_{value}" for value, metric, against in order]
        wide = wide.reset_index()
        frame = frame.merge(wide, on="row", how="left")
        keys = sig.drop_duplicates(["row", "against"]).pivot(index="row", columns="against",
                                                             values="against_key")
        keys.columns = [f"vs_{c}_row" for c in keys.columns]
        frame = frame.merge(keys.reset_index(), on="row", how="left")
    frame = frame.copy()  # one block: the columns added one by one above leave it fragmented
    frame.insert(1, "split", report.split)
    return frame


def _switch(name: str, value: Any) -> dict[str, Any]:
    if fmt.missing(value) or value is False:
        return {"on": False, "detail": ""}
    if name == "fusion":  # a choice, not an on/off switch: print which
        return {"on": False, "detail": str(value)}
    return {"on": True, "detail": "" if value is True else str(value)}


def _align_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per variant with alignment measured at the heads (alignment.COLUMNS), in table order."""
    if "align_residual_px_mean" not in table:
        return []
    have = table[table["align_residual_px_mean"].notna()]
    return [{"key": key, "label": r["label"], "residual": r["align_residual_px_mean"],
             "residual_std": r["align_residual_px_std"], "baseline": r["align_baseline_px_mean"],
             "split": r["align_split"]} for key, r in have.iterrows()]


def _sig_rows(report: Report) -> list[dict[str, Any]]:
    """The tests table, one line per (comparison, GAME level)."""
    out = []
    sig = report.significance
    for key, against in sig[["row", "against"]].drop_duplicates().itertuples(index=False):
        other = sig[(sig["row"] == key) & (sig["against"] == against)]["against_key"].iloc[0]
        for metric in GAME_METRICS:
            test = report.test(key, against, metric)
            if test:
                out.append({"key": key, "against": against, "other": other,
                            "metric": header(metric), "test": test})
    return out


def family_text(report: Report) -> str:
    """How the recipe-level tests were made and corrected, in two sentences."""
    method = CORRECTIONS.get(report.correction, report.correction)
    test = "paired t-test" if report.recipe_test == "t" else "exact Wilcoxon signed-rank test"
    power = ("exact noncentral t" if report.recipe_test == "t" else
             "the exact test's own rejection rule on normal differences")
    family = (f"Family: the {report.family_size} recipe-level tests of this report (every "
              "comparison shown, at every GAME level, each counted once), p adjusted by "
              f"{method}; significant: adjusted p below 0.05" if report.family_size else
              f"No recipe-level test: no comparison has {MIN_SEEDS} seeds or more, so no "
              "recipe-level claim can be made")
    return (f"Between recipes the unit is the seed (variants share seeds): the {test} over "
            "the per-seed mean differences, with a hierarchical bootstrap 95% CI (seeds, then "
            "images within each seed, widened for few seeds); with fewer than "
            f"{MIN_SEEDS} seeds no recipe-level "
            f"claim can be made. {family}. MDE: the smallest difference these seeds would "
            f"find (80% power, two-sided 5%, {power} over the seed-to-seed spread "
            "of the differences), so \"no difference\" reads \"smaller than the MDE, if any\"; "
            f"seeds for {report.effect:.0%}: how many seeds would find a difference of "
            f"{report.effect:.0%} of the other variant's GAME at that power (both at 5% "
            "before the correction, which asks for more).")


def _safe(cells: list[str]) -> list[fmt.Safe]:
    return [fmt.Safe(cell) for cell in cells]


def _finalize(escape):
    return lambda value: value if isinstance(value, fmt.Safe) else escape(
        "" if value is None else value)


def _environment(format: str) -> Environment:
    loader = PackageLoader("ablate", "templates")
    common = {"loader": loader, "trim_blocks": True, "lstrip_blocks": True,
              "keep_trailing_newline": True, "undefined": StrictUndefined}
    if format == "html":
        env = Environment(autoescape=True, **common)
        env.filters.update(num=fmt.num, signed=fmt.signed, test=fmt.test_text, pm=fmt.pm,
                           value=fmt.value_text, recipe=fmt.recipe_text, models=fmt.models_text,
                           recipe_cells=fmt.recipe_cells, image_cells=fmt.image_cells,
                           switch=fmt.switch_text, pvalue=fmt.pvalue, mde=fmt.mde_text,
                           percent=fmt.percent)
    elif format == "latex":
        env = Environment(autoescape=False, finalize=_finalize(fmt.latex_escape), **common)
        env.filters.update(num=fmt.Latex.num, signed=fmt.Latex.signed, pm=fmt.Latex.pm,
                           test=fmt.Latex.test, switch=fmt.Latex.switch, stars=fmt.Latex.stars,
                           percent=fmt.Latex.percent,
                           recipe=lambda c: fmt.Safe(fmt.recipe_text(c, tex=True)),
                           models=lambda c: fmt.Safe(fmt.models_text(c, tex=True)),
                           recipe_cells=lambda c: _safe(fmt.recipe_cells(c, tex=True)),
                           image_cells=lambda c: _safe(fmt.image_cells(c, tex=True)),
                           safe_tex=lambda text: fmt.Safe(text))
    else:
        env = Environment(autoescape=False, finalize=_finalize(fmt.markdown_escape), **common)
        env.filters.update(num=lambda v: fmt.Safe(fmt.num(v)),
                           signed=lambda v: fmt.Safe(fmt.signed(v)),
                           pm=lambda v: fmt.Safe(fmt.pm(v)),
                           test=lambda t: fmt.Safe(fmt.test_text(t)),
                           percent=lambda v: fmt.Safe(fmt.percent(v)),
                           recipe=lambda c: fmt.Safe(fmt.recipe_text(c)),
                           models=lambda c: fmt.Safe(fmt.models_text(c)),
                           recipe_cells=lambda c: _safe(fmt.recipe_cells(c)),
                           image_cells=lambda c: _safe(fmt.image_cells(c)),
                           switch=lambda on, d: fmt.Safe(fmt.markdown_escape(
                               fmt.switch_text(on, d))))
    return env
