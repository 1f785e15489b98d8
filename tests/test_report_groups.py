"""A study whose conditions are datasets reports one main table with a column group per
dataset (issue 13): each value under its dataset, each dataset's published rows under it, a
dash where a dataset or metric has no number; Markdown, CSV, LaTeX and HTML alike."""

from __future__ import annotations

import io
import re
import tomllib
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from ablate.db import ClaimSpec, RunStore
from ablate.errors import UsageError
from ablate.report import build_report, render_report
from ablate.report.baselines import DEFAULT_FILE
from ablate.report.table import header, table_metrics
from ablate.study.study import load_study
from model.config import RunConfig
from tests.test_report import two_variant_study

STUDY = two_variant_study("pair") + """[conditions.rgbtcc]
[conditions.drone]
dataset = "dronergbt"
val_size = 2
"""
# The mean of every metric of (condition, variant): the first metric at BASE, each next one
# 0.25 higher; seed 0 is 0.5 below the mean and seed 1 0.5 above (std 0.71).
BASE = {("rgbtcc", "A"): 20.0, ("rgbtcc", "B"): 18.0, ("drone", "A"): 8.0,
        ("drone", "B"): 7.0}
GROUPS = {"rgbtcc": "RGBT-CC", "dronergbt": "DroneRGBT"}  # file key: the report's header
CONDITION_DATASET = {"rgbtcc": "rgbtcc", "drone": "dronergbt"}
WANTED = "BM,CSCA,CGINet"  # CSCA: RGBT-CC only; CGINet: DroneRGBT only
N_IMAGES = 8


def published(dataset: str, key: str) -> dict[str, float]:
    """The row of studies/baselines.toml, read here with tomllib, not through the report."""
    return tomllib.loads(DEFAULT_FILE.read_text(encoding="utf-8"))["baselines"][dataset][key]


def mean(condition: str, variant: str, metric: str) -> float:
    return BASE[condition, variant] + 0.25 * table_metrics().index(metric)


def _add(store: RunStore, condition: str, variant: str, seed: int) -> None:
    overrides = {"stn": variant == "B", "seed": seed, "data_path": f"/data/{condition}"}
    config = RunConfig().with_overrides(overrides)
    claim = store.claim(ClaimSpec("pair", variant, seed, config.to_dict(), config.config_hash(),
                        label=variant, condition=condition))
    values = {m: mean(condition, variant, m) + (seed - 0.5) for m in table_metrics()}
    values["mae"] = values["game0"]
    gain = 1.0 if variant == "B" else 0.0  # B errs less by one on every image
    images = [{"split": "test", "image_id": f"{condition}{i}", "true_count": 10.0 + i,
               "pred_count": 10.0, "game0": 2.0 + i - gain, "game1": 3.0 + i - gain,
               "game2": 4.0 + i - gain, "game3": 5.0 + i - gain + 0.1 * (i % 3),
               "cells": None} for i in range(N_IMAGES)]
    store.finish(claim.run.id, values, values, 1, images)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("groups")
    (root / "pair.toml").write_text(STUDY)
    with RunStore(str(root / "runs.db")) as store:
        store.record_study("pair", load_study(root / "pair.toml").to_record())
        for condition in ("rgbtcc", "drone"):
            for variant in ("A", "B"):
                for seed in (0, 1):
                    _add(store, condition, variant, seed)
        return build_report(store, "pair", baselines=WANTED)


def expected_cells(row: str, dash: str) -> dict[str, str]:
    """The main table's printed number (without ± std) per "<group> <header>" column."""
    out = {}
    for dataset, group in GROUPS.items():
        condition = next(c for c, d in CONDITION_DATASET.items() if d == dataset)
        for m in table_metrics():
            if row in ("A", "B"):
                text = f"{mean(condition, row, m):.2f}"
            else:
                tables = tomllib.loads(DEFAULT_FILE.read_text())["baselines"][dataset]
                value = tables.get(row, {}).get(m)
                text = dash if value is None else f"{value:.2f}"
            out[f"{group} {header(m)}"] = text
    return out


def test_the_report_knows_its_datasets(report):
    assert report.by_dataset
    assert [(c, p.dataset_key) for c, p in report.parts] == [("rgbtcc", "rgbtcc"),
                                                           ("drone", "dronergbt")]
    assert report.cross == []  # errors on two datasets are not a condition's effect


def test_markdown_has_one_table_with_a_column_group_per_dataset(report):
    text = render_report(report, "markdown")
    columns = ["Method", "Label"] + [f"{g} {header(m)}" for g in GROUPS.values()
                                     for m in table_metrics()]
    head = "| " + " | ".join(columns) + " |"
    assert text.count(head) == 1 and text.count("| Method |") == 1
    lines = text[text.index(head):].splitlines()
    table = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().replace("**", "") for c in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(columns, cells, strict=True))
    assert list(table) == ["BM", "CSCA", "CGINet", "A", "B"]
    for row, cells in table.items():
        for column, number in expected_cells(row, "-").items():
            shown = cells[column].split(" ± ")[0].removesuffix(" †")
            assert shown == number, (row, column)
    assert table["A"]["RGBT-CC GAME0"] == "20.00 ± 0.71"
    bm_drone = published("dronergbt", "BM")
    assert table["BM"]["DroneRGBT GAME0"] == f"{bm_drone['game0']:.2f}"
    assert table["BM"]["DroneRGBT GAME1"] == "-"  # DroneRGBT's BM row has no GAME1-3
    assert "## RGBT-CC (condition rgbtcc)" in text and "## DroneRGBT (condition drone)" in text
    assert text.count("### Paired tests: between recipes (unit: seed)") == 2
    assert "Difference between conditions" not in text


def test_csv_rows_carry_their_dataset(report):
    frame = pd.read_csv(io.StringIO(render_report(report, "csv")))
    assert list(frame.columns[:4]) == ["row", "condition", "dataset", "split"]
    assert set(frame["dataset"]) == {"rgbtcc", "dronergbt"}
    by = frame.set_index(["row", "dataset"])
    assert by.at[("A", "rgbtcc"), "game0_mean"] == pytest.approx(20.0)
    assert by.at[("A", "dronergbt"), "game3_mean"] == pytest.approx(mean("drone", "A", "game3"))
    assert by.at[("B", "dronergbt"), "n"] == 2
    for dataset in GROUPS:
        bm = published(dataset, "BM")
        for m in table_metrics():
            value = by.at[("BM", dataset), f"{m}_mean"]
            assert (np.isnan(value) if m not in bm else value == pytest.approx(bm[m])), m
    assert ("CSCA", "dronergbt") not in by.index and ("CGINet", "rgbtcc") not in by.index


def test_latex_groups_columns_with_multicolumn_and_cmidrule(report):
    text = render_report(report, "latex")
    width = len(table_metrics())
    assert text.count(r"\begin{tabular}{lp{2.3cm}" + "r" * 2 * width + "}") == 1
    assert (rf"\multicolumn{{{width}}}{{c}}{{RGBT-CC}} & \multicolumn{{{width}}}{{c}}"
            "{DroneRGBT}") in text
    assert rf"\cmidrule(lr){{3-{2 + width}}}\cmidrule(lr){{{3 + width}-{2 + 2 * width}}}" in text
    columns = [f"{g} {header(m)}" for g in GROUPS.values() for m in table_metrics()]
    for row in ("BM", "CSCA", "CGINet", "A", "B"):
        line = next(line for line in text.splitlines() if line.startswith(f"{row} & "))
        cells = [re.sub(r"\\textbf\{(.*?)\}", r"\1", c).strip()
                 for c in line.removesuffix(r"\\").split("&")[2:]]
        shown = dict(zip(columns, (c.split("{")[0].split("$")[0] for c in cells), strict=True))
        assert shown == expected_cells(row, "--"), row
    assert text.count(r"\label{tab:pair-rgbtcc-tests}") == 1
    assert text.count(r"\label{tab:pair-drone-tests}") == 1


class _Table(HTMLParser):
    """The first table of a page: its rows as lists of (text, colspan)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, int]]] = []
        self.depth, self.done, self.cell = 0, False, None

    def handle_starttag(self, tag, attrs):
        if self.done:
            return
        self.depth += tag == "table"
        if self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = ["", int(dict(attrs).get("colspan", 1))]
        elif self.cell is not None and tag == "span" and ("class", "delta") in attrs:
            self.cell[0] += "\n"  # the change lines below the mean

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append((self.cell[0].strip(), self.cell[1]))
            self.cell = None
        elif tag == "table" and self.depth:
            self.depth, self.done = 0, True

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data


def test_html_has_a_two_row_header_and_each_value_under_its_dataset(report):
    parser = _Table()
    parser.feed(render_report(report, "html"))
    width = len(table_metrics())
    top, names, *rows = parser.rows
    assert top == [("Method", 1), ("Label", 1), ("RGBT-CC", width), ("DroneRGBT", width)]
    assert [text for text, _ in names] == [header(m) for m in table_metrics()] * 2
    columns = [f"{g} {header(m)}" for g in GROUPS.values() for m in table_metrics()]
    for cells in rows:
        row = cells[0][0]
        shown = {c: text.split("\n")[0].split(" ±")[0].split("±")[0].strip()
                 for c, (text, _) in zip(columns, cells[2:], strict=True)}
        assert shown == expected_cells(row, "-"), row
    assert [cells[0][0] for cells in rows] == ["BM", "CSCA", "CGINet", "A", "B"]


def test_conditions_on_one_dataset_keep_a_table_each(tmp_path):
    path = tmp_path / "same.toml"
    path.write_text(STUDY.replace('dataset = "dronergbt"', 'dataset = "rgbtcc"'))
    with RunStore(str(tmp_path / "runs.db")) as store:
        store.record_study("pair", load_study(path).to_record())
        for condition in ("rgbtcc", "drone"):
            _add(store, condition, "A", 0)
        rep = build_report(store, "pair")
    assert not rep.by_dataset and len(rep.parts) == 2
    assert "Difference between conditions" in render_report(rep, "markdown")


def test_a_baseline_no_dataset_publishes_is_one_line(tmp_path):
    path = tmp_path / "pair.toml"
    path.write_text(STUDY)
    with RunStore(str(tmp_path / "runs.db")) as store:
        store.record_study("pair", load_study(path).to_record())
        for condition in ("rgbtcc", "drone"):
            _add(store, condition, "A", 0)
        with pytest.raises(UsageError) as info:
            build_report(store, "pair", baselines="BM,Nope")
    message = str(info.value)
    assert "\n" not in message and "unknown baseline 'Nope'" in message
    assert "CSCA" in message and "CGINet" in message  # the keys of either dataset
