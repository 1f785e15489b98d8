"""``ablate diagnose`` through a CLI runner, and the maps ``write_predictions`` exports.

The command is registered on a local Typer app carrying the same error formatter as
``ablate.cli.app`` (``errors_cli.report``), so these tests do not depend on the registration.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ablate.cli.diagnose import diagnose_command
from ablate.cli.errors import report
from ablate.diagnose.export import write_predictions
from ablate.diagnose.run import diagnose
from ablate.errors import AblateError
from model.config import RunConfig
from model.data import synthetic_splits, write_rgbtcc
from model.engine import checkpoint
from model.engine.evaluate import evaluate_checkpoint
from model.network import build_model
from model.targets import gaussian_density

N_TEST = 10  # a correction is named from 9 images on (evidence.images_needed)
TINY = {"synth_n_train": 2, "synth_n_val": 2, "synth_n_test": N_TEST, "synth_height": 64,
        "synth_width": 80, "crop_size": 64, "device": "cpu"}


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("diagnose")(diagnose_command)
    app.command("noop")(lambda: None)  # two commands keep "diagnose" as a subcommand
    return app


def _invoke(*args: str):
    """Run like ``ablate.cli.app``: an AblateError becomes one ``Error:`` line and exit code 1."""
    try:
        result = CliRunner().invoke(_app(), ["diagnose", *args], catch_exceptions=False)
    except AblateError as exc:
        return None, report(exc)
    return result, result.exit_code


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cfg = RunConfig().with_overrides(TINY)
    root = tmp_path_factory.mktemp("cli") / "data"
    splits = synthetic_splits(cfg.data)
    write_rgbtcc(splits, root)
    return root, cfg, splits


def _flipped_maps(folder, splits):
    folder.mkdir()
    for s in splits.test:
        density = gaussian_density([s.points], s.size, 8, 2.0)[0, 0]
        np.save(folder / f"{s.id}.npy", density.flip(-1)[None].numpy())  # (1, h, w)


def test_table_names_the_flip_and_writes_overlays(data, tmp_path):
    root, _, splits = data
    _flipped_maps(tmp_path / "pred", splits)
    result, code = _invoke(str(tmp_path / "pred"), "--data-path", str(root), "--out",
                           str(tmp_path / "overlays"))
    assert code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{N_TEST} test images from {tmp_path / 'pred'}, official "
                               "protocol")
    header = next(line.split() for line in lines if "correction" in line)
    assert header[-3:] == ["change", "helps", "p"]
    hflip = next(line.split() for line in lines if line.split()[:2] == ["1", "hflip"])
    assert hflip[-2:] == [f"{N_TEST}/{N_TEST}", "0.014"]  # 14 x 2**-10: Holm's first step
    assert "Verdict: The maps are flipped left-right. Undoing it lowers GAME3 from" in \
        result.output
    assert len(list((tmp_path / "overlays").glob("*.png"))) == 6  # the WORST images
    assert lines[-1] == f"wrote 6 overlays to {tmp_path / 'overlays'}"


def test_json_is_one_object_and_notes_go_to_stderr(data, tmp_path):
    root, _, splits = data
    _flipped_maps(tmp_path / "pred", splits)
    (tmp_path / "pred" / "0.npy").unlink()
    result, code = _invoke(str(tmp_path / "pred"), "--data-path", str(root), "--json")
    assert code == 0
    out = json.loads(result.stdout)
    assert list(out) == ["game0", "game1", "game2", "game3", "rmse", "n_images", "hypotheses",
                         "named", "images_needed", "verdict"]
    fixes = [h for h in out["hypotheses"] if "bound" not in h["params"]]
    assert out["n_images"] == N_TEST - 1 and fixes[0]["name"] == "hflip"
    assert out["named"] == "hflip" and fixes[0]["helps"] == N_TEST - 1
    assert fixes[0]["p"] == pytest.approx(14 * 0.5 ** (N_TEST - 1))
    assert result.stderr.strip() == "missing (no file for a test id): 0"


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: None, "prediction folder {d} does not exist"),
    (lambda d: d.mkdir(), f"{{d}} holds no prediction for any of the {N_TEST} test images"),
    (lambda d: (d.mkdir(), (d / "1.npy").write_text("x")), "prediction {d}/1.npy is not a "
                                                            "readable array"),
    (lambda d: (d.mkdir(), np.save(d / "1.npy", np.full((8, 10), np.nan))),
     "prediction {d}/1.npy holds NaN or infinite values"),
])
def test_bad_input_is_one_error_line_exit_1(data, tmp_path, capsys, setup, message):
    root, _, _ = data
    folder = tmp_path / "pred"
    setup(folder)
    _, code = _invoke(str(folder), "--data-path", str(root))
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"Error: {message.format(d=folder)}")


def test_a_data_path_that_is_not_a_dataset(tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    _, code = _invoke(str(tmp_path / "pred"), "--data-path", str(tmp_path / "pred"))
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: unrecognised dataset layout at ")


def test_exported_maps_score_what_ablate_eval_reports(data, tmp_path):
    root, cfg, splits = data
    net = build_model(cfg.model)
    path = tmp_path / "best.pt"
    checkpoint.save_atomic({"model": net.state_dict(), "config": cfg.to_dict(), "epoch": 0}, path)
    written = write_predictions(path, tmp_path / "pred", "test", data_path=root)
    assert written == N_TEST and sorted(p.name for p in (tmp_path / "pred").iterdir()) == \
        sorted(f"{i}.npy" for i in range(N_TEST))
    assert np.load(tmp_path / "pred" / "0.npy").shape == (8, 10)
    summary, _ = evaluate_checkpoint(path, "test", {"data_path": str(root)})
    result = diagnose(tmp_path / "pred", root, "test")
    for key in ("game0", "game1", "game2", "game3", "rmse"):
        assert result.summary[key] == pytest.approx(summary[key], rel=1e-5, abs=1e-6)
