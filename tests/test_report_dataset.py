"""``ablate report --dataset``: the published rows of the dataset asked for (issue 13)."""

from __future__ import annotations

from conftest import TINY_NAME, invoke, ok

from ablate.report.baselines import load_baselines


def test_dataset_option_picks_that_datasets_published_rows(done_study, tmp_path):
    out = tmp_path / "r.md"
    ok("report", TINY_NAME, "--db", done_study / "runs.db", "--format", "markdown",
       "--dataset", "dronergbt", "--out", out)
    bm = load_baselines(dataset="dronergbt")["BM"]
    row = next(line for line in out.read_text().splitlines() if line.startswith("| BM |"))
    cells = [cell.strip().strip("*") for cell in row.split("|")]  # the best is in bold
    assert f"{bm.metrics['game0']:.2f}" in cells and f"{bm.metrics['rmse']:.2f}" in cells
    assert cells.count("-") == 3, "DroneRGBT's BM row has no GAME1-3: three dashes"


def test_an_unknown_dataset_is_one_line(done_study, tmp_path):
    result = invoke("report", TINY_NAME, "--db", done_study / "runs.db", "--dataset", "nope",
                    "--out", tmp_path / "r.md")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: dataset 'nope' has no published rows")
    assert not (tmp_path / "r.md").exists()
