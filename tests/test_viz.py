"""``ablate viz``: every picture for a G run (all modules on), the applicable subset for an A
run (no STN, no offsets), known answers for the density peaks, and bad input. The runs come
from the tiny demo study that conftest's ``done_study`` trains once per session."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY_NAME, invoke

from ablate.db import ClaimSpec, RunStore
from ablate.viz import plots
from ablate.viz.infer import LoadedRun, infer
from model.config import DataConfig, ModelConfig, RunConfig
from model.data import synthetic_splits
from model.network import build_model

PNG = b"\x89PNG\r\n\x1a\n"


def run_id(done_study: Path, variant: str) -> int:
    with RunStore(str(done_study / "runs.db")) as store:
        return next(r.id for r in store.list_runs(TINY_NAME) if r.variant == variant)


def viz(done_study: Path, out: Path, *args: str):
    return invoke("viz", *args, "--db", str(done_study / "runs.db"), "--out", str(out))


def written(out: Path) -> set[str]:
    files = {p.name for p in out.iterdir()}
    for name in files:
        assert (out / name).read_bytes().startswith(PNG), name
    return files


def test_g_run_gets_every_picture(done_study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # save_dir is relative to done_study: found beside the db
    out = tmp_path / "g"
    result = viz(done_study, out, str(run_id(done_study, "G")), "--images", "2")
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output
    assert f"wrote 9 pictures to {out}" in result.output
    assert written(out) == {f"val-{i}_{kind}.png" for i in (0, 1)
                            for kind in ("stn", "offsets", "density", "cells")} | {
        "loss_curves.png"}


def test_a_run_gets_the_pictures_that_apply_and_says_what_it_skipped(done_study, tmp_path):
    out = tmp_path / "a"
    result = viz(done_study, out, str(run_id(done_study, "A")), "--images", "1", "--split",
                 "test")
    assert result.exit_code == 0, result.output
    assert "skipped: STN is off in this run: no STN overlay" in result.output
    assert "skipped: offset alignment is off in this run: no offset field" in result.output
    assert "feature L1, TV, local-count" in result.output
    assert written(out) == {"test-0_density.png", "test-0_cells.png", "loss_curves.png"}


def test_run_without_checkpoint_and_bad_options_are_one_line_errors(tmp_path):
    db = str(tmp_path / "runs.db")
    with RunStore(db) as store:
        cfg = RunConfig()
        run = store.claim(ClaimSpec("s", "A", 0, cfg.to_dict(), cfg.config_hash(),
                          save_dir=str(tmp_path / "gone"))).run
    for args, message in (
        ((str(run.id),), f"Error: run {run.id} (A, seed 0, running) has no checkpoint at "
                         f"{tmp_path / 'gone' / 'best.pt'}"),
        (("42",), "Error: no run with id 42"),
        ((str(run.id), "--split", "train"),
         "Error: --split 'train' is not valid; choose one of val, test"),
        ((str(run.id), "--images", "0"), "Error: --images 0 is not valid; it must be >= 1"),
    ):
        result = invoke("viz", *args, "--db", db, "--out", str(tmp_path / "out"))
        assert result.exit_code == 1 and result.output.startswith(message), result.output
        assert result.output.count("\n") == 1


def tiny_loaded(**model: object) -> tuple[LoadedRun, object]:
    data = DataConfig(synth_n_train=2, synth_n_val=2, synth_n_test=1, synth_height=64,
                      synth_width=64, crop_size=64)
    cfg = RunConfig(model=ModelConfig(**model), data=data)
    net = build_model(cfg.model).eval()
    return LoadedRun(run=None, config=cfg, net=net, checkpoint=Path("-"), epoch=0), \
        synthetic_splits(data)


@pytest.mark.parametrize("mode", ["flow", "deform"])
def test_a_known_offset_field_becomes_its_dx_dy_vector_per_feature_pixel(tmp_path, mode):
    """The last offset layer's weights are zero, so its bias is the field everywhere: the
    plotted (dx, dy) must be (1.5, -0.5) whichever aligner made it. For the deformable one every
    tap carries torchvision's (dy, dx), so reading the taps in the wrong order gives
    (-0.5, 1.5)."""
    loaded, splits = tiny_loaded(stn="bounded", aligner=mode)
    last = loaded.net.offset.offset[-1]
    with torch.no_grad():
        last.bias[0::2], last.bias[1::2] = (-0.5, 1.5) if mode == "deform" else (1.5, -0.5)
    (inf,) = infer(loaded, splits.val, splits, 1)
    assert inf.offsets.shape == (2, 32, 32)  # stage 1: stride 2 on a 64x64 image
    assert np.allclose(inf.offsets[0], 1.5) and np.allclose(inf.offsets[1], -0.5)
    assert inf.offset_stride == 2
    assert inf.warped.shape == inf.reference.shape
    assert inf.density_full.shape == (64, 64)
    assert inf.density_full.sum() == pytest.approx(inf.game["pred_count"], rel=1e-4)
    assert plots.offset_quiver(inf, tmp_path / "o.png", mode).read_bytes().startswith(PNG)


def test_modules_that_are_off_give_no_warp_and_no_offsets():
    loaded, splits = tiny_loaded()
    (inf,) = infer(loaded, splits.val, splits, 1)
    assert inf.warped is None and inf.stn_shift_px is None and inf.offsets is None
    on, _ = tiny_loaded(stn="bounded")
    (inf,) = infer(on, splits.val, splits, 1)
    assert inf.stn_shift_px == pytest.approx((0.0, 0.0), abs=1e-5)  # identity at init


def test_density_peaks_are_the_local_maxima_in_input_pixels():
    loaded, splits = tiny_loaded()
    (inf,) = infer(loaded, splits.val, splits, 1)
    density = np.zeros((8, 8))
    density[2, 3], density[6, 1], density[6, 2] = 1.0, 0.5, 0.01  # 0.01: below 10% of max
    inf = dataclasses.replace(inf, density=density, density_full=np.zeros((64, 64)))
    assert plots.peaks(inf).tolist() == [[28.0, 20.0], [12.0, 52.0]]  # (x, y) cell centres
    assert plots.peaks(dataclasses.replace(inf, density=np.zeros((8, 8)))).shape == (0, 2)
    density[0, 0] = 2.0  # the new maximum: 0.5 still counts, as it is above 10% of 2
    inf = dataclasses.replace(inf, density=density)
    assert plots.peaks(inf).tolist() == [[4.0, 4.0], [28.0, 20.0], [12.0, 52.0]]


@pytest.mark.parametrize("height, width", [(128, 160), (480, 640)])
def test_game3_cell_numbers_are_readable(height, width):
    """Issue 24: the GAME3 numbers were 5.5 pt black on saturated red/blue. Now: sized to
    the drawn cell (at least 8 pt in the default figure), outlined in white, and the cells
    keep the image's proportions at RGBT-CC's size as at the synthetic one."""
    from matplotlib import patheffects

    rng = np.random.default_rng(0)
    points = rng.uniform([0, 0], [width, height], size=(200, 2)).astype(np.float32)
    density = np.full((height, width), 200 / (height * width), dtype=np.float32)
    inf = SimpleNamespace(density_full=density, points=points, sample=SimpleNamespace(id="x"))
    fig = plots.cell_grid_figure(inf)
    game3 = fig.axes[2]
    assert len(game3.texts) == 64
    for text in game3.texts:
        assert text.get_fontsize() >= 8
        assert any(isinstance(e, patheffects.withStroke) for e in text.get_path_effects())
    assert game3.get_aspect() == pytest.approx(height / width)
