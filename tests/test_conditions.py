"""Study conditions: a second axis (registered vs misaligned data, or one dataset each), with
runs keyed by condition, per-condition data paths, and the report's differences between them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ablate.db import SCHEMA_VERSION, ClaimSpec, RunStore
from ablate.report import build_report, load_baselines, render_report
from ablate.study.plan import PlanOptions, plan
from ablate.study.study import load_study
from tests.conftest import invoke, ok, runs_json, tiny_study_text
from tests.test_real_format import write_dronergbt, write_rgbtcc

CONDITIONS = """
[conditions.registered]
synth_shift = 0

[conditions.misaligned]
synth_shift = 12
"""


@pytest.fixture
def two_conditions(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_study_text() + CONDITIONS)
    return path


def test_conditions_load_in_file_order_with_their_settings(two_conditions):
    study = load_study(two_conditions)
    assert list(study.conditions) == ["registered", "misaligned"]
    assert study.conditions["misaligned"].settings == {"synth_shift": 12}
    config = study.config("A", 0, condition="registered")
    assert config.data.synth_shift == 0
    assert study.config("A", 0, {"synth_shift": "3"}, condition="misaligned").data.synth_shift == 3


def test_unknown_condition_key_is_one_line_naming_file_condition_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(tiny_study_text() + "\n[conditions.misaligned]\nsynth_shfit = 3\n")
    result = invoke("study", "show", path)
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and str(path) in line and "condition misaligned" in line
    assert "synth_shfit" in line and "synth_shift" in line  # the did-you-mean


def test_study_run_trains_conditions_times_variants_and_dedupes(two_conditions, in_tmp):
    args = ("study", "run", two_conditions, "--variant", "A", "--variant", "B", "--quiet")
    assert "4 trained, 0 skipped" in ok(*args).output
    rows = runs_json()
    assert sorted((r["condition"], r["variant"]) for r in rows) == [
        ("misaligned", "A"), ("misaligned", "B"), ("registered", "A"), ("registered", "B")]
    with RunStore("runs.db", readonly=True) as store:
        shifts = {(r.condition, r.variant): r.config["data"]["synth_shift"]
                  for r in store.list_runs()}
    assert shifts[("registered", "A")] == 0 and shifts[("misaligned", "B")] == 12
    assert "0 trained, 4 skipped" in ok(*args).output
    only = json.loads(ok("runs", "list", "--json", "--condition", "misaligned").stdout)
    assert {r["condition"] for r in only} == {"misaligned"} and len(only) == 2
    ok("study", "run", two_conditions, "--variant", "A", "--condition", "registered",
       "--quiet")
    report = in_tmp / "r.md"
    ok("report", "tiny", "--format", "markdown", "--out", report)
    text = report.read_text()
    assert "condition registered" in text and "condition misaligned" in text
    assert "## Difference between conditions" in text and "misaligned minus registered" in text
    html = in_tmp / "r.html"
    ok("report", "tiny", "--out", html)
    assert "Difference between conditions" in html.read_text()
    csv = in_tmp / "r.csv"
    ok("report", "tiny", "--format", "csv", "--out", csv)
    assert "registered" in csv.read_text() and "condition" in csv.read_text().splitlines()[0]


def test_unknown_condition_option_is_one_line_error(two_conditions, in_tmp):
    result = invoke("study", "run", two_conditions, "--condition", "registred", "--quiet")
    assert result.exit_code == 1
    assert "registred" in result.output and "did you mean registered" in result.output
    result = invoke("study", "run", two_conditions, "--data-path", f"nope={in_tmp}", "--quiet")
    assert result.exit_code == 1 and "no condition 'nope'" in result.output


def test_data_path_per_condition_sets_only_that_condition(tmp_path):
    from ablate.cli.options import RunOptions, split_data_paths

    rgbtcc = write_rgbtcc(tmp_path / "RGBT-CC")
    path = tmp_path / "two.toml"
    path.write_text(tiny_study_text() + "\n[conditions.rgbtcc]\n\n[conditions.synthetic]\n")
    study = load_study(path)
    plain, named = split_data_paths([f"rgbtcc={rgbtcc}"])
    assert plain is None and named == (("rgbtcc", rgbtcc),)
    extra, per_condition = RunOptions(condition_paths=named).study_overrides(study)
    specs = plan(study, ["A"], [0], extra, tmp_path / "runs",
                 PlanOptions(condition_extra=per_condition))
    paths = {s.condition: s.config.data.data_path for s in specs}
    assert paths == {"rgbtcc": str(rgbtcc.resolve()), "synthetic": None}
    assert study.select_conditions(["synthetic"]) == ["synthetic"]


def test_requires_is_checked_per_condition(tmp_path):
    path = tmp_path / "req.toml"
    text = tiny_study_text().replace('[study]\n', '[study]\nrequires = ["data_path"]\n', 1)
    path.write_text(text + "\n[conditions.rgbtcc]\n\n[conditions.drone]\n")
    study = load_study(path)
    rgbtcc = write_rgbtcc(tmp_path / "RGBT-CC")
    with pytest.raises(Exception) as info:
        plan(study, ["A"], [0], {}, tmp_path, PlanOptions(condition_extra={
            "rgbtcc": {"data_path": str(rgbtcc)}}))
    assert "condition drone needs data_path" in str(info.value)
    assert "--data-path drone=PATH" in str(info.value)


def _fake_run(store: RunStore, condition: str, variant: str, seed: int,
              game3: list[float]) -> None:
    config = {"train": {"seed": seed, "select_metric": "game0"}, "data": {}}
    claim = store.claim(ClaimSpec("known", variant, seed, config, f"h-{condition}-{variant}",
                        label=variant, condition=condition))
    images = [{"split": "test", "image_id": f"img{i}", "true_count": 10.0 + i,
               "pred_count": 10.0, "game0": v / 4, "game1": v / 2, "game2": v, "game3": v,
               "cells": None} for i, v in enumerate(game3)]
    mean = float(np.mean(game3))
    metrics = {"game0": mean / 4, "game1": mean / 2, "game2": mean, "game3": mean,
               "rmse": mean, "mae": mean / 4}
    store.finish(claim.run.id, metrics, metrics, 1, images)


def test_difference_between_conditions_is_paired_by_seed_and_image(tmp_path):
    """Known answer: A costs +2 per image under misalignment; B recovers half of it."""
    rng = np.random.default_rng(0)
    base = rng.uniform(5, 15, size=(2, 8))  # two seeds, eight images
    noise = rng.normal(0, 0.5, size=(2, 8))
    db = str(tmp_path / "k.db")
    with RunStore(db) as store:
        study_toml = tmp_path / "known.toml"
        study_toml.write_text(tiny_study_text(name='name = "known"') + CONDITIONS)
        store.record_study("known", load_study(study_toml).to_record())
        for seed in (0, 1):
            _fake_run(store, "registered", "A", seed, list(base[seed]))
            _fake_run(store, "misaligned", "A", seed, list(base[seed] + 2 + noise[seed]))
            _fake_run(store, "registered", "B", seed, list(base[seed]))
            _fake_run(store, "misaligned", "B", seed, list(base[seed] + 1 + noise[seed]))
    with RunStore(db, readonly=True) as store:
        report = build_report(store, "known")
    assert [c for c, _ in report.parts] == ["registered", "misaligned"]
    rows = {row.key: row for row in report.cross}
    expected = (2 + noise).ravel()
    test = rows["A"].tests["game3"]
    assert test.n_images == 16
    assert test.mean_diff == pytest.approx(expected.mean())
    assert test.p_value == pytest.approx(scipy_stats.wilcoxon(expected).pvalue)
    assert rows["B"].recovered == pytest.approx(1 / (2 + noise.mean()))
    markdown = render_report(report, "markdown")
    assert f"{expected.mean():+.2f}" in markdown and "Difference between conditions" in markdown
    assert "Difference between conditions" in render_report(report, "html")
    assert "conditions" in render_report(report, "latex")


def test_schema_2_database_opens_with_its_runs_and_empty_condition(tmp_path):
    db = str(tmp_path / "old.db")
    with RunStore(db) as store:
        store.claim(ClaimSpec("s", "A", 0, {"train": {"seed": 0}}, "hash", label="A"))
    with sqlite3.connect(db) as con:  # back to schema 2: no condition column
        con.execute("ALTER TABLE ablate_runs DROP COLUMN condition")
        con.execute("UPDATE ablate_meta SET value = '2' WHERE key = 'schema_version'")
    with RunStore(db, readonly=True) as store:
        runs = store.list_runs()
    assert [(r.variant, r.condition) for r in runs] == [("A", "")]
    assert runs[0].as_dict()["condition"] == ""
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT value FROM ablate_meta").fetchone() == (str(SCHEMA_VERSION),)


def test_paper_study_on_both_real_layouts(tmp_path, in_tmp):
    """Both datasets as conditions; the report has one table with a column group per
    dataset, BM's published numbers of each under its own group."""
    rgbtcc = write_rgbtcc(tmp_path / "RGBT-CC")
    drone = write_dronergbt(tmp_path / "DroneRGBT")
    ok("study", "run", "studies/paper.toml" if Path("studies").exists() else
       Path(__file__).parents[1] / "studies" / "paper.toml",
       "--data-path", f"rgbtcc={rgbtcc}", "--data-path", f"drone={drone}", "--variant", "A",
       "--set", "backbone=tiny", "--set", "pretrained=none", "--epochs", "1",
       "--set", "crop_size=64", "--set", "val_size=1", "--set", "batch_size=2", "--quiet")
    out = in_tmp / "paper.md"
    ok("report", "paper", "--format", "markdown", "--out", out)
    text = out.read_text()
    assert text.count("| Method |") == 1, "one main table"
    head, _, *rows = text[text.index("| Method |"):].split("\n\n")[0].splitlines()
    columns = [cell.strip() for cell in head.strip("|").split("|")]
    assert columns[2] == "RGBT-CC GAME0" and columns[-1] == "DroneRGBT RMSE"
    assert [row.split("|")[1].strip() for row in rows] == ["BM", "A"]
    bm = dict(zip(columns, (c.strip().strip("*") for c in rows[0].strip("|").split("|")),
                  strict=True))
    for dataset, group in (("rgbtcc", "RGBT-CC"), ("dronergbt", "DroneRGBT")):
        published = load_baselines(dataset=dataset)["BM"].metrics
        assert bm[f"{group} GAME0"] == f"{published['game0']:.2f}"
        assert bm[f"{group} RMSE"] == f"{published['rmse']:.2f}"
    assert bm["DroneRGBT GAME1"] == "-"  # not published for DroneRGBT
    a_row = [c.strip() for c in rows[1].strip("|").split("|")]
    assert all(c != "-" for c in a_row[2:]), "A trained on both: a number in every column"
    assert "## RGBT-CC (condition rgbtcc)" in text and "## DroneRGBT (condition drone)" in text
