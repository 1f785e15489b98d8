"""``ablate robustness``: the fixed displacement, stored results, report curves and the CLI."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
import typer
from conftest import ok, runs_json, tiny_study_text
from typer.testing import CliRunner

from ablate.cli.app import _OneLineErrors
from ablate.cli.robustness import robustness_command
from ablate.cli.runs import app as runs_app
from ablate.robustness import (
    RESULTS,
    displace,
    displacement_theta,
    parse_values,
    plot_robustness,
    read_results,
    robustness_curves,
)
from ablate.robustness.runner import Target, store_results
from model.data.misalign import warp_points

# The command as the lead registers it in ablate/cli.py, with the same one-line error handling.
app = typer.Typer(cls=_OneLineErrors, pretty_exceptions_enable=False)
app.command("robustness")(robustness_command)
app.add_typer(runs_app, name="runs")

# A trained A whose moving image carries the localisation: with reference = rgb the thermal
# image is the one displaced. (With the default thermal reference, A on the tiny data barely
# uses the RGB: GAME3 rose 0.69 at 8 px, no more than GAME0.) Registered data, enough steps
# (64 pairs, 8 epochs, about 10 s) for the density to sit on the people.
TRAIN = ["--epochs", "8", "--set", "reference=rgb", "--set", "synth_n_train=64",
         "--set", "synth_shift=0", "--set", "synth_rotation=0", "--set", "synth_scale=0",
         # The first version's synthetic world, which the measured numbers below come from.
         "--set", "synth_max_decoys=0", "--set", "synth_decoys=0.5",
         "--set", "synth_night_fraction=0.5", "--set", "synth_night_brightness=0.21",
         "--set", "synth_night_noise=0.06", "--set", "select_metric=game0"]


def robust(*args: str):
    return CliRunner().invoke(app, ["robustness", *map(str, args)])


def rows_of(*args: str) -> list[dict]:
    result = robust(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with runs.db and runs/ holding one done A run (id 1) of the tiny study."""
    root = tmp_path_factory.mktemp("robust")
    (root / "tiny.toml").write_text(tiny_study_text())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        ok("run", "--study", "tiny.toml", "--variant", "A", *TRAIN)
    return root


@pytest.fixture
def work(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of ``trained`` as the cwd (save dirs are stored relative to it)."""
    shutil.copy2(trained / "runs.db", tmp_path / "runs.db")
    shutil.copytree(trained / "runs", tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- the displacement ------------------------------------------------------------------------
def test_integer_shift_moves_a_pixel_right_and_down_exactly() -> None:
    image = torch.zeros(2, 1, 16, 20)
    image[:, 0, 5, 3] = 1.0  # row 5, column 3
    moved = displace(image, 4.0, 0.0)
    assert moved[:, 0, 9, 7].tolist() == pytest.approx([1.0, 1.0])
    assert moved.sum().item() == pytest.approx(2.0)


def test_quarter_turn_about_the_centre() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 4, 6] = 1.0  # centre (6.5, 4.5): (2.5, 0.5) from c = (4, 4)
    moved = displace(image, 0.0, 90.0)  # clockwise on screen: to (-0.5, 2.5) -> (3.5, 6.5)
    assert moved[0, 0, 6, 3].item() == pytest.approx(1.0, abs=1e-5)
    assert moved.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_theta_agrees_with_misalign_points() -> None:
    theta = displacement_theta(3.0, 10.0, 40, 60)[0]
    points = torch.tensor([[30.0, 20.0], [10.0, 5.0]])  # the centre, then a corner point
    moved = warp_points(points, theta, 40, 60)
    angle = math.radians(10.0)
    dx, dy = 10.0 - 30.0, 5.0 - 20.0
    expected = [[33.0, 23.0], [30 + 3 + dx * math.cos(angle) - dy * math.sin(angle),
                               20 + 3 + dx * math.sin(angle) + dy * math.cos(angle)]]
    assert moved.tolist() == [pytest.approx(p, abs=1e-4) for p in expected]


def test_identity_is_not_resampled() -> None:
    image = torch.rand(1, 3, 9, 7)
    assert displace(image, 0.0, 0.0) is image


def test_parse_values() -> None:
    assert parse_values("8, 0,2,2", "--shifts", minimum=0.0) == [0.0, 2.0, 8.0]
    assert parse_values("-2,0", "--rotations") == [-2.0, 0.0]


# -- stored results and the report hook -------------------------------------------------------
def _row(run_id: int, variant: str, shift: float, game: float, rotation: float = 0.0) -> dict:
    levels = {f"game{i}": game + i for i in range(4)}
    return {"run_id": run_id, "variant": variant, "shift": shift, "rotation": rotation,
            **levels, "rmse": game}


def test_results_merge_and_curves_average_a_variant(tmp_path: Path) -> None:
    dirs = [tmp_path / name for name in ("a1", "a2", "g1")]
    for d in dirs:
        d.mkdir()
    store_results(Target(1, "A", dirs[0]), [_row(1, "A", 0, 1.0), _row(1, "A", 8, 9.0)])
    store_results(Target(1, "A", dirs[0]), [_row(1, "A", 8, 5.0), _row(1, "A", 8, 7.0, 2.0)])
    assert [(r["shift"], r["rotation"], r["game0"]) for r in read_results(dirs[0] / RESULTS)] \
        == [(0, 0.0, 1.0), (8, 0.0, 5.0), (8, 2.0, 7.0)]  # 8/0 replaced, the rest kept
    store_results(Target(2, "A", dirs[1]), [_row(2, "A", 0, 3.0), _row(2, "A", 8, 6.0)])
    store_results(Target(3, "G", dirs[2]), [_row(3, "G", 0, 2.0)])
    runs = [{"variant": "A", "save_dir": str(dirs[0])}, {"variant": "A", "save_dir": str(dirs[1])},
            {"variant": "G", "save_dir": str(dirs[2])}, {"variant": "G", "save_dir": None}]
    curves = robustness_curves(runs)
    assert curves["A"] == {"shift": [0, 8], "n_runs": [2, 2], "game0": [2.0, 5.5],
                           "game1": [3.0, 6.5], "game2": [4.0, 7.5], "game3": [5.0, 8.5]}
    assert curves["G"]["game3"] == [5.0]
    assert robustness_curves(runs, rotation=2.0)["A"]["game0"] == [7.0]
    fig = plot_robustness(curves, "demo")
    assert [len(ax.lines) for ax in fig.axes] == [2, 2, 2, 2]
    assert list(fig.axes[3].lines[0].get_ydata()) == [5.0, 8.5]


# -- the command on a trained run -------------------------------------------------------------
def test_shift_raises_game3_and_stores_results(work: Path) -> None:
    rows = rows_of("1", "--shifts", "0,8", "--rotations", "0,2")
    assert [(r["shift"], r["rotation"]) for r in rows] == [(0, 0), (0, 2), (8, 0), (8, 2)]
    assert set(rows[0]) == {"run_id", "variant", "shift", "rotation", "game0", "game1",
                            "game2", "game3", "rmse"}
    recorded = runs_json()[0]
    for key in ("game0", "game1", "game2", "game3", "rmse"):
        assert rows[0][key] == pytest.approx(recorded[key], abs=1e-6)  # shift 0 = training's
    base, moved = rows[0], rows[2]
    rise3 = moved["game3"] - base["game3"]
    assert rise3 > 1.5  # measured 2.77 (26.29 -> 29.07)
    assert abs(moved["game0"] - base["game0"]) < 0.5 * rise3  # measured +0.54
    stored = read_results(Path(recorded["save_dir"]) / RESULTS)
    assert stored == rows


def test_study_table(work: Path) -> None:
    result = robust("--study", "tiny", "--shifts", "0", "--rotations", "0")
    assert result.exit_code == 0, result.output
    assert "GAME3" in result.stdout and "A" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["7"], "no run with id 7"),
    (["1", "--shifts", "0,-4"], "-4 is not a finite number >= 0"),
    (["1", "--shifts", "nan"], "nan is not a finite number"),
    (["1", "--rotations", "x"], "'x' is not a number"),
    ([], "give either a RUN_ID or --study"),
    (["1", "--study", "tiny"], "give either a RUN_ID or --study"),
    (["--study", "nope"], "no study 'nope'"),
])
def test_bad_input_is_one_error_line(work: Path, args: list[str], message: str) -> None:
    result = robust(*args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error:") and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_run_not_done_and_folder_gone(work: Path) -> None:
    save_dir = runs_json()[0]["save_dir"]
    shutil.rmtree(save_dir)
    result = robust("1")
    assert result.exit_code == 1 and "checkpoint folder" in result.output, result.output
    with sqlite3.connect(work / "runs.db") as con:
        con.execute("UPDATE ablate_runs SET status = 'failed' WHERE id = 1")
    result = robust("1")
    assert result.exit_code == 1 and "run 1 is failed, not done" in result.output, result.output
    result = robust("--study", "tiny")
    assert result.exit_code == 1 and "no done run" in result.output, result.output
