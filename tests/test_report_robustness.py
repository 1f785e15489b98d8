"""The report's "Robustness to extra misalignment" section: what ``ablate robustness`` stored
next to each done run's checkpoint, averaged over seeds per variant, shift and rotation (known
answers), in Markdown, HTML (with its chart), LaTeX, per condition, and absent when nothing
was stored."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ablate.db import ClaimSpec, RunStore
from ablate.report import build_report, render_report
from ablate.robustness.runner import RESULTS, Target, store_results
from ablate.study.study import load_study
from model.config import RunConfig
from tests.test_report import two_variant_study

SECTION = "Robustness to extra misalignment"
STUDY_TOML = two_variant_study("robust")
CONDITIONS = """
[conditions.registered]
synth_shift = 0
[conditions.misaligned]
synth_shift = 12
"""
TEST = {"game0": 10.0, "game1": 11.0, "game2": 12.0, "game3": 13.0, "rmse": 14.0, "mae": 10.0}
# (variant, seed) -> {(shift, rotation): GAME0}; GAME<i> is GAME0 + i at every displacement.
STORED = {
    ("A", 0): {(0, 0): 1.0, (8, 0): 5.0, (8, 2): 7.0},
    ("A", 1): {(0, 0): 3.0, (8, 0): 8.0},
    ("B", 0): {(0, 0): 2.0, (8, 0): 3.0},
    ("B", 1): {(0, 0): 2.5, (8, 0): 4.0},
}


def add_run(store: RunStore, variant: str, seed: int, save_dir: Path, condition: str = "",
            offset: float = 0.0) -> None:
    """A done run whose checkpoint folder holds the results of STORED (each plus ``offset``),
    written by the runner's own writer; no folder is made when ``offset`` is None."""
    cfg = RunConfig().with_overrides({"seed": seed, "stn": variant == "B"})
    claim = store.claim(ClaimSpec("robust", variant, seed, cfg.to_dict(), cfg.config_hash(),
                        save_dir=str(save_dir), condition=condition))
    store.finish(claim.run.id, TEST, TEST, 1, [])
    if offset is None:
        return
    save_dir.mkdir(parents=True)
    rows = [{"run_id": claim.run.id, "variant": variant, "shift": shift, "rotation": rotation,
             **{f"game{i}": game + offset + i for i in range(4)}, "rmse": game}
            for (shift, rotation), game in STORED[variant, seed].items()]
    store_results(Target(claim.run.id, variant, save_dir), rows)


def make_db(tmp_path: Path, conditions: dict[str, float | None]) -> str:
    """Two variants x two seeds per condition (``""``: a study without conditions), each
    condition's stored values shifted by its offset (None: nothing stored)."""
    tmp_path.mkdir(exist_ok=True)
    study = tmp_path / "robust.toml"
    study.write_text(STUDY_TOML + (CONDITIONS if "" not in conditions else ""))
    url = str(tmp_path / "runs.db")
    with RunStore(url) as store:
        store.record_study("robust", load_study(study).to_record())
        for condition, offset in conditions.items():
            for variant, seed in STORED:
                where = tmp_path / "runs" / (condition or "all") / f"{variant}-{seed}"
                add_run(store, variant, seed, where, condition, offset)
    return url


def report(url: str):
    with RunStore(url, readonly=True) as store:
        return build_report(store, "robust")


def section_lines(markdown: str) -> list[str]:
    """The table rows of every robustness section in a Markdown report."""
    out, inside = [], False
    for line in markdown.splitlines():
        if line.startswith("### "):
            inside = line == f"### {SECTION}"
        elif inside and line.startswith("| ") and not line.startswith("| Variant"):
            out.append(line)
    return out


def csv_header(csv: str) -> list[str]:
    return csv.splitlines()[0].split(",")


def test_markdown_table_holds_the_means_over_seeds(tmp_path):
    """A at shift 8: GAME0 (5 + 8) / 2 = 6.5; rotation 2 only seed 0 has (n = 1)."""
    text = render_report(report(make_db(tmp_path, {"": 0.0})), "markdown")
    assert f"### {SECTION}" in text
    assert "| Variant | Rotation deg | Shift px | n | GAME0 | GAME1 | GAME2 | GAME3 |" in text
    assert section_lines(text) == [
        "| A | 0 | 0 | 2 | 2.00 | 3.00 | 4.00 | 5.00 |",
        "| A | 0 | 8 | 2 | 6.50 | 7.50 | 8.50 | 9.50 |",
        "| A | 2 | 8 | 1 | 7.00 | 8.00 | 9.00 | 10.00 |",
        "| B | 0 | 0 | 2 | 2.25 | 3.25 | 4.25 | 5.25 |",
        "| B | 0 | 8 | 2 | 3.50 | 4.50 | 5.50 | 6.50 |",
    ]


def test_html_has_the_section_with_a_chart_per_rotation_and_the_table(tmp_path):
    html = render_report(report(make_db(tmp_path, {"": 0.0})), "html")
    section = html[html.index(f"<h2>{SECTION}</h2>"):]
    section = section[:section.index("<h2>", 4)]
    charts = re.findall(r'<img alt="test GAME0-3 against the extra shift[^"]*rotation (\S+) '
                        r'deg[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', section)
    assert charts == ["0", "2"]
    assert "<td>6.50</td><td>7.50</td><td>8.50</td><td>9.50</td>" in section


def test_latex_has_the_table(tmp_path):
    tex = render_report(report(make_db(tmp_path, {"": 0.0})), "latex")
    assert r"\label{tab:robust-robustness}" in tex
    assert "A & 2 & 8 & 1 & 7.00 & 8.00 & 9.00 & 10.00 \\\\" in tex


def test_each_condition_shows_its_own_results(tmp_path):
    """The misaligned condition's stored values are 10 higher, and only its own runs count."""
    built = report(make_db(tmp_path, {"registered": 0.0, "misaligned": 10.0}))
    assert [c for c, _ in built.parts] == ["registered", "misaligned"]
    text = render_report(built, "markdown")
    rows = [line for line in section_lines(text) if line.startswith("| A | 0 | 8 |")]
    assert rows == ["| A | 0 | 8 | 2 | 6.50 | 7.50 | 8.50 | 9.50 |",
                    "| A | 0 | 8 | 2 | 16.50 | 17.50 | 18.50 | 19.50 |"]
    assert render_report(built, "html").count(f"<h2>{SECTION}</h2>") == 2


def test_no_results_no_section_and_csv_unchanged(tmp_path):
    built = report(make_db(tmp_path, {"": None}))
    assert built.robustness == {} and built.robustness_rows == []
    for format in ("markdown", "html", "latex"):
        assert SECTION.lower() not in render_report(built, format).lower()
    with_results = report(make_db(tmp_path / "with", {"": 0.0}))
    assert csv_header(render_report(with_results, "csv")) == \
        csv_header(render_report(built, "csv"))


def test_unreadable_results_are_a_note_not_a_crash(tmp_path):
    url = make_db(tmp_path, {"": 0.0})
    (tmp_path / "runs" / "all" / "B-1" / RESULTS).write_text("{not json")
    built = report(url)
    assert any(f"B-1/{RESULTS} is not readable robustness results" in note
               for note in built.notes)
    assert "| B | 0 | 8 | 1 | 3.00 | 4.00 | 5.00 | 6.00 |" in section_lines(
        render_report(built, "markdown"))


@pytest.mark.parametrize("format", ["markdown", "latex", "html"])
def test_hostile_variant_name_is_escaped(tmp_path, format):
    """A variant named like markup prints as text in the robustness table too."""
    url = str(tmp_path / "runs.db")
    hostile = "<b>x</b>_$|"
    with RunStore(url) as store:
        cfg = RunConfig().with_overrides({"seed": 0})
        claim = store.claim(ClaimSpec("robust", hostile, 0, cfg.to_dict(), cfg.config_hash(),
                            save_dir=str(tmp_path / "h")))
        store.finish(claim.run.id, TEST, TEST, 1, [])
        (tmp_path / "h").mkdir()
        store_results(Target(claim.run.id, hostile, tmp_path / "h"), [
            {"run_id": claim.run.id, "variant": hostile, "shift": 4, "rotation": 0,
             "game0": 1.0, "game1": 2.0, "game2": 3.0, "game3": 4.0, "rmse": 1.0}])
    text = render_report(report(url), format)
    assert "<b>x</b>" not in text
    assert "4.00" in text.split(SECTION if format != "latex" else "robustness to extra")[1]
