"""``ablate report``: every format on a crafted runs database with known answers (means, std,
best cells, the paired test), escaping of hostile names, LaTeX compilation, and bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.db import ClaimSpec, RunStore
from ablate.errors import AblateError
from ablate.report import (
    build_report,
    default_path,
    load_baselines,
    paired_test,
    render_report,
    write_report,
)
from ablate.report.table import table_metrics
from ablate.study.study import load_study
from model.config import RunConfig

HOSTILE_LABEL = r"<script>alert(1)</script> 50%_&$#{}~^\ "
HOSTILE_VARIANT = "<b>x</b>&50%_$#{}"
N_IMAGES = 10


def two_variant_study(name: str) -> str:
    """The report tests' study ``name``: A (plain) and B (A + STN), tiny backbone."""
    return (f'[study]\nname = "{name}"\n[model]\nbackbone = "tiny"\n'
            '[variants.A]\nlabel = "plain"\n'
            '[variants.B]\nbase = "A"\nlabel = "+ STN"\nstn = true\n')


# Formatted with the label of C (str.format: the shared part holds no braces).
STUDY_TOML = two_variant_study("mini") + """[variants.C]
base = "A"
label = {label!r}
offset_align = true
"""


def add_run(store, study, variant, seed, test, images=(), config=None, **extra):
    """A done run; ``extra``: label, val (default: the test metrics), trial (a tuning trial
    number, which tags the run with the tuning ``<study>-tune``), condition."""
    cfg = RunConfig().with_overrides({**(config or {}), "seed": seed})
    claim = store.claim(ClaimSpec(study, variant, seed, cfg.to_dict(), cfg.config_hash(),
                        label=extra.get("label"), condition=extra.get("condition", "")))
    run_id = claim.run.id
    store.record_epoch(run_id, 0, {"loss": 2.0, "loss_density": 2.0, "val_game0": 9.0})
    store.record_epoch(run_id, 1, {"loss": 1.0, "loss_density": 1.0, "val_game0": 8.0})
    if extra.get("trial") is not None:
        store.set_trial(run_id, f"{study}-tune", extra["trial"], {"lr": 1e-3})
    store.finish(run_id, extra.get("val") or test, test, 1, list(images))
    return run_id


def metrics(g0, g1, g2, g3, rmse):
    return {"game0": g0, "game1": g1, "game2": g2, "game3": g3, "rmse": rmse, "mae": g0}


def images(shift):
    """Per-image rows whose GAME3 is 20 + i - shift(i): a known paired difference."""
    rows = []
    for i in range(N_IMAGES):
        g3 = 20.0 + i - shift(i)
        rows.append({"split": "test", "image_id": str(i), "true_count": 10.0 + i,
                     "pred_count": 12.0, "game0": 2.0, "game1": 3.0, "game2": 4.0,
                     "game3": g3, "cells": {"1": [0.0, 0.0, 0.0, 0.0]}})
    return rows


@pytest.fixture
def study_file(tmp_path) -> Path:
    path = tmp_path / "mini.toml"
    path.write_text(STUDY_TOML.format(label=HOSTILE_LABEL).replace("'", '"'), encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path, study_file) -> str:
    """A: GAME0 10 and 12 (mean 11, std 1.41); B (+STN): GAME0 8 both seeds, the best of its
    column, and per image GAME3 lower than A's by i+1 on image i; C: the hostile label."""
    url = str(tmp_path / "runs.db")
    with RunStore(url) as store:
        for seed, g0 in ((0, 10.0), (1, 12.0)):
            add_run(store, "mini", "A", seed, metrics(g0, 14.0, 18.0, 30.0, 15.0),
                    images(lambda i: 0))
        for seed in (0, 1):
            add_run(store, "mini", "B", seed, metrics(8.0, 15.0, 19.0, 29.0, 20.0),
                    images(lambda i: i + 1), {"stn": "bounded"})
        add_run(store, "mini", "C", 0, metrics(9.0, 16.0, 20.0, 31.0, 16.0),
                images(lambda i: 0), {"aligner": "flow"})
    return url


def report(db, study_file, **kwargs):
    with RunStore(db) as store:
        return build_report(store, str(study_file), **kwargs)


def test_markdown_has_bm_row_mean_std_bold_and_significance(db, study_file):
    text = render_report(report(db, study_file), "markdown")
    bm = load_baselines()["BM"]
    assert f"| BM | {bm.name} |" in text
    official = ["game0", "game1", "game2", "game3", "rmse"]
    assert table_metrics()[:5] == official and "mae" not in table_metrics()  # MAE is GAME0
    published = " | ".join(f"{bm.metrics[m]:.2f}" for m in official)
    assert f"| {published} |" in text.replace("**", "")
    a_row = next(line for line in text.splitlines() if line.startswith("| A |"))
    assert "11.00 ± 1.41 |" in a_row  # mean and sample std of 10 and 12
    b_row = next(line for line in text.splitlines() if line.startswith("| B |"))
    assert "**8.00** ± 0.00 †" in b_row  # best GAME0 of all rows, below BM's 10.19
    # Two seeds: the main table makes no recipe-level claim; the tests table has the
    # image-level test: GAME3 of B minus A per image is -(i+1), mean -5.5, exact Wilcoxon
    # p = 2 / 2**10.
    assert "| -5.50; 2 seeds: no recipe-level claim (needs 3 or more) |" in b_row
    b_test = next(line for line in text.splitlines()
                  if line.startswith("| B | A (parent) | GAME3 |"))
    assert "| -5.50 | no claim (2 seeds) |" in b_test and "| 0.002 |" in b_test
    assert "| B | A | -3.00 | +1.00 | +1.00 | -1.00 | +5.00 |" in text  # change from parent


def test_best_cell_is_bold_once_per_column_in_every_format(db, study_file):
    rep = report(db, study_file, baselines="BM,HyperCounter")
    best = {m: rep.table.index[rep.table[f"{m}_best"]].tolist()
            for m in ("game0", "game1", "game2", "game3", "rmse")}
    assert best == {"game0": ["B"], "game1": ["HyperCounter"], "game2": ["HyperCounter"],
                    "game3": ["HyperCounter"], "rmse": ["A"]}
    latex = render_report(rep, "latex")
    assert r"\textbf{8.00}" in latex and r"\textbf{13.11}" in latex
    assert latex.count(r"\textbf{") == 5 + latex.count(r"\textbf{bold}")
    assert "<strong>8.00</strong>" in render_report(rep, "html")


def test_csv_holds_the_numbers(db, study_file):
    frame = pd.read_csv(StringIO(render_report(report(db, study_file), "csv")))
    rows = frame.set_index("row")
    assert rows.at["BM", "game0_mean"] == pytest.approx(10.19)
    assert rows.at["A", "game0_mean"] == pytest.approx(11.0)
    assert rows.at["A", "game0_std"] == pytest.approx(np.sqrt(2.0), rel=1e-4)
    assert rows.at["A", "n"] == 2
    assert rows.at["B", "game0_d_ref"] == pytest.approx(8.0 - 10.19)
    assert rows.at["B", "game3_vs_parent_image_mean_diff"] == pytest.approx(-5.5)
    assert rows.at["B", "game3_vs_parent_image_p_value"] == pytest.approx(2 / 2**10, rel=1e-4)
    assert rows.at["B", "game3_vs_parent_recipe_n_seeds"] == 2  # too few for a p-value
    assert rows.at["B", "game3_vs_parent_recipe_mean_diff"] == pytest.approx(-5.5)
    assert np.isnan(rows.at["B", "game3_vs_parent_recipe_p_value"])
    assert rows.at["B", "sw_stn"] and rows.at["B", "parent"] == "A"


def test_parent_comes_from_the_study_chain_and_first_variant_is_a(db, study_file):
    rep = report(db, study_file)
    assert rep.table.loc[["A", "B", "C"], "parent"].tolist()[1:] == ["A", "A"]
    assert rep.first == "A"
    assert rep.test("C", "parent").image.mean_diff == pytest.approx(0.0)
    assert rep.test("C", "parent").image.p_value == 1.0
    recipe = rep.test("C", "parent").recipe  # C ran seed 0 only: one seed in common with A
    assert recipe.n_seeds == 1 and not recipe.claim and not rep.test("C", "parent").significant


def test_paired_test_known_answers():
    shift = paired_test(-np.arange(1.0, 11.0))
    assert shift.mean_diff == pytest.approx(-5.5)
    assert shift.p_value == pytest.approx(2 / 2**10)
    assert shift.ci_low < -5.5 < shift.ci_high < 0 and shift.significant
    assert paired_test(-np.arange(1.0, 11.0)) == shift  # fixed bootstrap seed
    constant = paired_test(np.full(8, -2.0))
    assert (constant.ci_low, constant.ci_high) == pytest.approx((-2.0, -2.0))
    same = paired_test(np.zeros(5))
    assert same.p_value == 1.0 and not same.significant
    with pytest.raises(ValueError):
        paired_test(np.array([]))


def test_html_is_self_contained_and_escapes_hostile_names(tmp_path, db, study_file):
    with RunStore(db) as store:
        add_run(store, "hostile", HOSTILE_VARIANT, 0, metrics(9.0, 16.0, 20.0, 31.0, 16.0),
                label=HOSTILE_LABEL)
    html = render_report(report(db, study_file), "html")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; 50%_&amp;$#{}" in html
    assert "data:image/png;base64," in html and 'src="http' not in html and "<link" not in html
    with RunStore(db) as store:
        hostile = render_report(build_report(store, "hostile"), "html")
    assert "<b>x</b>" not in hostile and "&lt;b&gt;x&lt;/b&gt;&amp;50%_$#{}" in hostile


def test_latex_and_markdown_escape_hostile_names(db, study_file):
    rep = report(db, study_file)
    latex = render_report(rep, "latex")
    assert (r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{} "
            r"50\%\_\&\$\#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}") in latex
    assert r"\toprule" in latex and r"\bottomrule" in latex
    markdown = render_report(rep, "markdown")
    assert r"\<script\>alert(1)\</script\> 50%\_&$\#{}~^\\" in markdown


def pdflatex(tmp_path: Path, table: Path) -> str:
    """Compile ``table`` in a two-column article; the log."""
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n"
                   "\\usepackage{graphicx}\n\\begin{document}\n"
                   f"\\input{{{table.name}}}\n\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    return (tmp_path / "doc.log").read_text(errors="replace")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles_in_a_two_column_paper_without_overfull_boxes(tmp_path, db, study_file):
    # Every table fits the text width (\\resizebox scales a wide one down). A label with no
    # break point (the hostile one) may stick out of its own cell, so plain labels first.
    plain = tmp_path / "plain.toml"
    plain.write_text(STUDY_TOML.format(label="+ offset field"), encoding="utf-8")
    log = pdflatex(tmp_path, write_report(report(db, plain, baselines="all"), "latex",
                                          tmp_path / "t.tex"))
    assert "Overfull \\hbox" not in log, log[log.find("Overfull"):][:500]
    with RunStore(db) as store:
        add_run(store, "mini", "B-best", 0, metrics(7.0, 15.0, 19.0, 29.0, 20.0),
                label=HOSTILE_LABEL)
    pdflatex(tmp_path, write_report(report(db, study_file, baselines="all"), "latex",
                                    tmp_path / "t.tex"))


def test_tuned_runs_are_rows_of_their_own_after_their_variant(db, study_file):
    with RunStore(db) as store:
        add_run(store, "mini", "B-best", 0, metrics(7.0, 15.0, 19.0, 29.0, 20.0),
                config={"stn": "bounded"})
        for trial, val_g0 in ((0, 9.0), (1, 6.0)):
            add_run(store, "mini", "B", 10 + trial, metrics(5.0 + trial, 1, 1, 1, 1),
                    config={"stn": "bounded", "lr": 1e-4 * (trial + 1)}, trial=trial,
                    val=metrics(val_g0, 1, 1, 1, 1))
    rep = report(db, study_file)
    assert list(rep.table.index) == ["BM", "A", "B", "B-best", "B-tune", "C"]
    assert rep.table.at["B", "n"] == 2  # the trials are not averaged into B
    assert rep.table.at["B-tune", "game0_mean"] == 6.0  # trial 1: best on val, not test
    assert rep.table.at["B-best", "parent"] == "B" and rep.table.at["B-tune", "parent"] == "B"


def test_val_split_uses_val_metrics(tmp_path):
    url = str(tmp_path / "runs.db")
    with RunStore(url) as store:
        add_run(store, "s", "A", 0, metrics(10, 10, 10, 10, 10), val=metrics(3, 4, 5, 6, 7))
        rep = build_report(store, None, split="val")
    assert rep.table.at["A", "game0_mean"] == 3.0
    assert any("no per-image val results" in note for note in rep.notes)


SUMMARY = {
    "objective": "game3", "directions": ["minimize"], "best_trial": 1, "best_run_id": None,
    "best_params": {"lr_<i>": 0.001}, "best_value": 4.5, "counts": {"COMPLETE": 2},
    "importances": {"lr": 0.7, "tv": 0.3}, "importance_note": None,
    "history": [(0, 6.0, "COMPLETE"), (1, 4.5, "COMPLETE")]}


def fake_tune(monkeypatch, summaries: dict[str, object], journal: Path | None) -> list[str]:
    """``ablate.tune`` whose ``tune_summary(url, name)`` answers from ``summaries`` by storage
    kind ("db" or "journal"): a dict, or an exception to raise. Returns the urls asked."""
    asked: list[str] = []

    def tune_summary(url, name):
        asked.append(url)
        answer = summaries["journal" if journal is not None and url == str(journal) else "db"]
        if isinstance(answer, Exception):
            raise answer
        return answer

    fake = types.ModuleType("ablate.tune")
    fake.tune_summary = tune_summary
    storage = types.ModuleType("ablate.tune.storage")
    storage.journal_path = lambda url: journal
    monkeypatch.setitem(sys.modules, "ablate.tune", fake)
    monkeypatch.setitem(sys.modules, "ablate.tune.storage", storage)
    return asked


def test_tuning_section_comes_from_the_db_or_the_journal(tmp_path, db, study_file,
                                                         monkeypatch):
    with RunStore(db) as store:
        add_run(store, "mini", "B", 20, metrics(5, 1, 1, 1, 1), config={"stn": "bounded"}, trial=0)
    fake_tune(monkeypatch, {"db": SUMMARY}, None)
    html = render_report(report(db, study_file), "html")
    assert "<h2>Tuning</h2>" in html and "lr_&lt;i&gt;" in html and "<b>4.5</b>" in html
    journal = tmp_path / "runs.optuna.journal"
    journal.write_text("")
    missing = AblateError("no Optuna study 'mini-tune' in runs.db (studies there: none)")
    asked = fake_tune(monkeypatch, {"db": missing, "journal": SUMMARY}, journal)
    rep = report(db, study_file)
    assert [t["best_value"] for t in rep.tuning] == [4.5] and asked[1:] == [str(journal)]
    fake_tune(monkeypatch, {"db": missing, "journal": missing}, journal)
    rep = report(db, study_file)
    assert not rep.tuning and "<h2>Tuning</h2>" not in render_report(rep, "html")
    assert f"tuning 'mini-tune' skipped: {missing}; {missing}" in rep.notes


def test_a_bug_in_the_tuning_summary_is_not_swallowed(db, study_file, monkeypatch):
    with RunStore(db) as store:
        add_run(store, "mini", "B", 20, metrics(5, 1, 1, 1, 1), config={"stn": "bounded"}, trial=0)
    fake_tune(monkeypatch, {"db": ZeroDivisionError("a bug")}, None)
    with pytest.raises(ZeroDivisionError):
        report(db, study_file)


def test_baseline_choice_and_extra_file(tmp_path, db, study_file):
    extra = tmp_path / "mine.toml"
    extra.write_text('[baselines.Mine]\nname = "our previous best"\ngame0 = 7.84\ngame1 = '
                     '39.17\ngame2 = 58.20\ngame3 = 67.77\nrmse = 11.06\nsource = "lab notes"\n')
    rep = report(db, study_file, baselines="IADM,Mine", baseline_file=str(extra))
    assert [b.key for b in rep.baselines] == ["IADM", "Mine", "BM"]  # BM always
    assert rep.table.at["Mine", "game0_mean"] == 7.84
    assert len(report(db, study_file, baselines="all").baselines) == len(load_baselines()) == 17


def run_cli(*args):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_writes_every_format_to_the_default_path(tmp_path, db, study_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for fmt, ext in (("html", "html"), ("latex", "tex"), ("markdown", "md"), ("csv", "csv")):
        code, out = run_cli("report", "mini", "--db", db, "--format", fmt)
        assert code == 0, out
        assert f"wrote reports/mini.{ext}" in out
        assert "10.19" in (tmp_path / "reports" / f"mini.{ext}").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (("report", "mini", "--baselines", "BM,XYZ"),
     "Error: unknown baseline 'XYZ'; known: CSRNet, IADM, CSCA, MMCCN, DEFNet, MC3Net, "
     "MSDTrans, BM, HyperCounter, SAMGuided, RaBiT-CC, MISF-Net, BGDFNet, CMFX, MCN, "
     "CSCA-S1, CSCA-S2 (or all)"),
    (("report", "nothing"), "Error: no study 'nothing' in sqlite:///"),
    (("report", "mini", "--format", "pdf"),
     "Error: --format 'pdf' is not valid; choose one of html, latex, markdown, csv"),
    (("report", "mini", "--split", "train"),
     "Error: --split 'train' is not valid; choose one of test, val"),
    (("viz", "999"), "Error: no run with id 999"),
])
def test_cli_bad_input_is_one_line_and_exit_1(db, args, message):
    code, out = run_cli(*args, "--db", db)
    assert code == 1 and out.startswith(message) and out.count("\n") == 1, out


def test_cli_study_without_done_runs_says_how_to_run_it(tmp_path, study_file):
    url = str(tmp_path / "runs.db")
    with RunStore(url) as store:
        cfg = RunConfig()
        running = ClaimSpec("mini", "A", 0, cfg.to_dict(), cfg.config_hash())
        store.claim(running)  # running, not done
    code, out = run_cli("report", str(study_file), "--db", url)
    assert code == 1 and "has no done runs" in out and "(1 running)" in out
    assert f"run it with: ablate study run {study_file} --seeds 3" in out


def test_cli_unwritable_output_and_missing_database(tmp_path, db):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, out = run_cli("report", "mini", "--db", db, "--out", str(blocker / "r.html"))
    assert code == 1 and out.startswith(f"Error: cannot write {blocker / 'r.html'}")
    code, out = run_cli("report", "--db", str(tmp_path / "none.db"))
    assert code == 1 and out.startswith(f"Error: no runs database at {tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()


def test_several_studies_need_a_name(tmp_path):
    url = str(tmp_path / "runs.db")
    with RunStore(url) as store:
        add_run(store, "one", "A", 0, metrics(1, 1, 1, 1, 1))
        add_run(store, "two", "A", 0, metrics(1, 1, 1, 1, 1))
        with pytest.raises(AblateError, match="several studies"):
            build_report(store)


def test_report_of_the_trained_tiny_demo_study(done_study, tmp_path):
    """End to end on real runs (conftest's tiny demo study, seed 0): the demo's A-G chain,
    real per-image results, and every format."""
    db = str(done_study / "runs.db")
    for fmt, ext in (("html", "html"), ("latex", "tex"), ("markdown", "md"), ("csv", "csv")):
        out = tmp_path / f"tiny.{ext}"
        code, text = run_cli("report", str(done_study / "tiny.toml"), "--db", db, "-f", fmt,
                             "--out", str(out))
        assert code == 0 and f"wrote {out}" in text, text
    frame = pd.read_csv(tmp_path / "tiny.csv").set_index("row")
    assert list(frame.index) == ["BM", "A", "B", "C", "D", "E", "F", "G"]
    assert frame.loc[["B", "C", "D", "E", "F", "G"], "parent"].tolist() == [
        "A", "B", "C", "D", "D", "E"]
    assert frame.loc["A":, "n"].eq(1).all() and frame.loc["A":, "game0_mean"].notna().all()
    assert frame.loc["B":, "game3_vs_first_image_p_value"].between(0, 1).all()
    html = (tmp_path / "tiny.html").read_text()
    assert html.count("data:image/png;base64,") == 1 + 7  # GAME bars + one curve per variant


def test_report_reads_the_recorded_study_from_any_directory(tmp_path, db, study_file,
                                                            monkeypatch):
    """The definition recorded at `study run` gives the order, labels and the base chain;
    neither the study file nor the working directory matters."""
    with RunStore(db) as store:
        store.record_study("mini", load_study(study_file).to_record())
    study_file.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with RunStore(db, readonly=True) as store:
        rep = build_report(store, "mini")
    assert list(rep.table.index) == ["BM", "A", "B", "C"]
    assert rep.table.loc[["B", "C"], "parent"].tolist() == ["A", "A"]  # both based on A
    assert rep.table.at["B", "label"] == "+ STN"
    assert not any("not recorded" in note for note in rep.notes)


def test_study_without_a_record_orders_runs_as_created_and_says_so(tmp_path):
    url = str(tmp_path / "runs.db")
    with RunStore(url) as store:
        for variant in ("Z", "B", "M"):
            add_run(store, "old", variant, 0, metrics(1, 2, 3, 4, 5))
        rep = build_report(store, "old")
    assert list(rep.table.index) == ["BM", "Z", "B", "M"]
    assert rep.table.loc[["B", "M"], "parent"].tolist() == ["Z", "B"]  # the previous row
    [note] = [n for n in rep.notes if "not recorded" in n]
    assert "rerun `ablate study run FILE` to record it" in note and "nothing is trained" in note


def test_baseline_without_some_metrics_prints_a_dash_in_every_format(tmp_path, db,
                                                                     study_file):
    extra = tmp_path / "partial.toml"
    extra.write_text('[baselines.Old]\nname = "only GAME0"\ngame0 = 12.5\nsource = "x"\n')
    rep = report(db, study_file, baselines="Old", baseline_file=str(extra))
    markdown = render_report(rep, "markdown")
    assert "| Old | only GAME0 |" in markdown
    old_row = next(line for line in markdown.splitlines() if line.startswith("| Old |"))
    dashes = " - |" * (len(table_metrics()) - 1)  # every metric but GAME0
    assert old_row.endswith(f"| 12.50 |{dashes}  |  |"), old_row
    latex = render_report(rep, "latex")
    old_tex = next(line for line in latex.splitlines() if line.startswith("Old &"))
    assert "& 12.50 & -- & -- & -- & --" in old_tex, old_tex
    html = render_report(rep, "html")
    assert "<td>12.50</td><td>-</td><td>-</td><td>-</td><td>-</td>" in html
    csv = render_report(rep, "csv")
    assert "nan" not in csv.lower()  # a missing value is an empty cell
    frame = pd.read_csv(StringIO(csv)).set_index("row")
    assert frame.at["Old", "game0_mean"] == 12.5 and np.isnan(frame.at["Old", "game1_mean"])


def test_reference_baseline_without_a_metric_has_no_delta_there(tmp_path, db, study_file):
    extra = tmp_path / "bm.toml"
    extra.write_text('[baselines.BM]\nname = "BM, GAME0 only"\ngame0 = 10.0\nsource = "x"\n')
    rep = report(db, study_file, baseline_file=str(extra))
    assert rep.table.at["A", "game0_d_ref"] == pytest.approx(1.0)
    assert np.isnan(rep.table.at["A", "game1_d_ref"]) and not rep.table.at["B", "game1_beats_ref"]
    markdown = render_report(rep, "markdown")
    assert "| A | +1.00 |  |  |  |  |" in markdown  # the change from BM: GAME0 only
    assert "data:image/png" in render_report(rep, "html")  # the bars draw without BM's lines


@pytest.mark.parametrize("name", ["../../etc/x", "/data/elsewhere", "a/b", "~", "x\0y", "n" * 300])
def test_default_report_path_stays_in_reports(name):
    path = default_path(name, "html")
    assert path.parent == Path("reports") and path.suffix == ".html"
    assert "/" not in path.name and ".." not in path.name and "\0" not in path.name
    assert len(path.name) <= 110 and not path.name.startswith(".")


def test_dronergbt_rows_name_their_sources_and_keep_both_where_papers_disagree():
    drone = load_baselines(dataset="dronergbt")
    assert drone["BM"].metrics == {"game0": 6.20, "rmse": 10.40}  # GAME1-3 not published
    assert drone["IADM"].metrics["game3"] == 22.61 and load_baselines()["IADM"].metrics[
        "game3"] == 32.89  # the same key, each dataset's own numbers
    assert drone["MC3Net-S1"].metrics["game0"] == 7.33
    assert drone["MC3Net-S2"].metrics["game0"] == 7.63
    assert "HyperCounter" in drone["MC3Net-S1"].source
    assert "RaBiT-CC" in drone["MC3Net-S2"].source
    every = [*drone.values(), *load_baselines().values()]
    assert all(b.source.strip() for b in every)
    assert {b.dataset for b in drone.values()} == {"dronergbt"}


def test_rows_of_the_older_form_are_rgbtcc_and_extra_rows_replace_per_dataset(tmp_path):
    extra = tmp_path / "mine.toml"
    extra.write_text('[baselines.Mine]\nname = "old form"\ngame0 = 7.0\nsource = "notes"\n'
                     '[baselines.dronergbt.BM]\nname = "BM rerun"\ngame0 = 6.9\n'
                     'source = "our rerun"\n')
    assert load_baselines(extra)["Mine"].dataset == "rgbtcc"
    assert load_baselines(extra)["BM"].metrics["game0"] == 10.19
    drone = load_baselines(extra, dataset="dronergbt")
    assert "Mine" not in drone and drone["BM"].metrics == {"game0": 6.9}
    with pytest.raises(AblateError, match="dataset 'shanghai' has no published rows"):
        load_baselines(dataset="shanghai")


def test_report_of_dronergbt_runs_shows_dronergbt_rows_with_dashes(tmp_path, study_file):
    root = tmp_path / "DroneRGBT"
    for split in ("train", "test"):
        for sub in ("RGB", "Infrared", "GT_"):
            (root / split / sub).mkdir(parents=True)
    url = str(tmp_path / "drone.db")
    with RunStore(url) as store:
        add_run(store, "mini", "A", 0, metrics(7.0, 9.0, 11.0, 14.0, 10.0),
                config={"data_path": str(root)})
    rep = report(url, study_file, baselines="BM,IADM")
    assert rep.baseline_dataset == "DroneRGBT"
    assert rep.table.at["BM", "game0_mean"] == 6.20
    assert np.isnan(rep.table.at["BM", "game1_mean"])
    markdown = render_report(rep, "markdown")
    assert "published DroneRGBT test results" in markdown
    bm_line = next(line for line in markdown.splitlines() if line.startswith("| BM |"))
    assert "| **6.20** | - | - | - | 10.40 |" in bm_line  # best GAME0: A has 7.00
    shutil.rmtree(root)  # the data is elsewhere now: RGBT-CC rows, and a note says why
    rep = report(url, study_file)
    assert rep.baseline_dataset == "RGBT-CC" and any("not readable here" in n for n in rep.notes)
