"""The report's paired tests as one frame: per (row, against, GAME level) the recipe-level test
(``ablate.report.recipe``, unit: the seed, the headline) and the image-level one
(``ablate.report.stats``, unit: the test image, "these trained models differ").

Columns: row, against ("parent" or "first"), against_key, metric, then ``recipe_<field>`` for
every field of ``recipe.RecipeTest`` and ``image_<field>`` for every field of
``stats.PairedTest``, and ``recipe_note`` / ``image_note``: why that test is missing.
``recipe_p_adjusted`` is filled by ``family.adjust_family`` over the whole report."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from ablate.db import RunStore
from ablate.report import recipe, stats
from ablate.report.recipe import Comparison, RecipeTest
from ablate.report.runs import VariantRow
from ablate.report.stats import PairedTest

if TYPE_CHECKING:
    from ablate.report.build import ReportOptions

RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(RecipeTest))
IMAGE_FIELDS = tuple(f.name for f in dataclasses.fields(PairedTest))
COLUMNS = ["row", "against", "against_key", "metric",
           *(f"recipe_{f}" for f in RECIPE_FIELDS), "recipe_note",
           *(f"image_{f}" for f in IMAGE_FIELDS), "image_note"]


def significance_frame(store: RunStore, rows: list[VariantRow], first: str | None,
                       options: ReportOptions) -> tuple[pd.DataFrame, list[str]]:
    """Every row against its parent and against the first variant, at every GAME level."""
    frames = {row.key: stats.seed_images(store, row.runs, options.split) for row in rows}
    records, done = [], {}
    for row in rows:
        for against, other in (("parent", row.parent), ("first", first)):
            if other is None or other == row.key or other not in frames:
                continue
            if other not in done.setdefault(row.key, {}):  # parent == first: tested once
                done[row.key][other] = _tests(frames[row.key], frames[other], options)
            for metric, (found, image) in done[row.key][other].items():
                records.append({"row": row.key, "against": against, "against_key": other,
                                "metric": metric, **_fields("recipe", found),
                                **_fields("image", image)})
    notes = []
    if all(frame.empty for frame in frames.values()):
        notes.append(f"no per-image {options.split} results are stored (runs record them for "
                     "test only), so there is no significance test")
    return pd.DataFrame.from_records(records, columns=COLUMNS), notes


def _tests(variant: pd.DataFrame, other: pd.DataFrame, options: ReportOptions
           ) -> dict[str, tuple[RecipeTest | str, PairedTest | str]]:
    """Per GAME level (recipe-level test, image-level test), each or the reason for none."""
    images = stats.compare(stats.per_seed_image(variant), stats.per_seed_image(other))
    diffs = recipe.diff_matrices(variant, other)
    out = {}
    for metric in stats.GAME_METRICS:
        image = images if isinstance(images, str) else images[metric]
        if isinstance(diffs, str):
            out[metric] = (diffs, image)
            continue
        effect = options.effect * float(other[metric].mean())
        out[metric] = (recipe.recipe_test(diffs[metric], effect, options.recipe_test), image)
    return out


def _fields(prefix: str, test: Any) -> dict[str, Any]:
    names = RECIPE_FIELDS if prefix == "recipe" else IMAGE_FIELDS
    if isinstance(test, str):
        return {**{f"{prefix}_{n}": None for n in names}, f"{prefix}_note": test}
    note = test.note if isinstance(test, RecipeTest) else ""
    return {**{f"{prefix}_{n}": getattr(test, n) for n in names}, f"{prefix}_note": note}


def comparison(found: pd.Series) -> Comparison:
    """The Comparison of one row of a significance frame."""
    return Comparison(_rebuild(found, "recipe", RecipeTest, RECIPE_FIELDS),
                      _rebuild(found, "image", PairedTest, IMAGE_FIELDS))


def _rebuild(found: pd.Series, prefix: str, kind: type, names: tuple[str, ...]) -> Any:
    value = {n: found[f"{prefix}_{n}"] for n in names}
    if _missing(value[names[0]]):  # no test: the note says why
        return found[f"{prefix}_note"] or ""
    value = {n: math.nan if _missing(v) else v for n, v in value.items()}
    for count in ("n_seeds", "n_images", "seeds_needed"):  # stored as floats beside NaN
        if count in value:
            value[count] = None if _missing(value[count]) else int(value[count])
    return kind(**value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
