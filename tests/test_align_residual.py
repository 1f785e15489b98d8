"""align_residual_px / align_baseline_px: the alignment measured at the labelled heads against
the synthetic generator's true RGB position of every head (model.engine.evaluate)."""

import dataclasses
from io import StringIO

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_report import STUDY_TOML, add_run, metrics
from test_viz import tiny_loaded

from ablate.db import ClaimSpec, RunStore
from ablate.report import build_report, render_report
from ablate.viz import plots
from ablate.viz.infer import infer
from model.config import DataConfig, RunConfig
from model.data import compute_stats
from model.data.sample import PairSet
from model.data.synth import synthetic_pairs
from model.engine.evaluate import ALIGN_KEYS, evaluate, head_alignment_errors
from model.output import ModelOutput


def pairs(**overrides) -> PairSet:
    cfg = DataConfig(**{"synth_n_test": 4, "synth_local_warp": 0.0, **overrides})
    return synthetic_pairs(cfg, "test", cfg.synth_n_test)


def undoing_theta(affine: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The affine_grid theta (align_corners=False) whose sampling map is the pixel affine."""
    extent = torch.tensor([width, height], dtype=torch.float32)
    to_norm = torch.diag(2 / extent)
    lin = to_norm @ affine[:, :2] @ torch.linalg.inv(to_norm)
    offset = to_norm @ (affine[:, :2] @ (extent / 2) + affine[:, 2]) - 1
    return torch.cat([lin, offset[:, None]], 1)[None]


def test_the_undoing_theta_registers_the_rgb_image_the_way_the_stn_samples_it():
    # Checks the convention the residual assumes: warping the displaced RGB with
    # affine_grid/grid_sample (as the STN does) by this theta gives the registered rendering.
    day = {"synth_night_fraction": 0.0}  # night RGB is mostly noise that interpolation blurs
    for moved, registered in zip(pairs(**day), pairs(synth_shift=0.0, synth_rotation=0.0,
                                                     synth_scale=0.0, **day), strict=True):
        h, w = moved.size
        theta = undoing_theta(moved.meta["affine"], h, w)
        grid = F.affine_grid(theta, [1, 3, h, w], align_corners=False)
        warped = F.grid_sample(moved.rgb[None].float(), grid, align_corners=False)[0]
        inner = (slice(None), slice(20, h - 20), slice(20, w - 20))
        after = (warped - registered.rgb.float())[inner].abs().mean()
        before = (moved.rgb.float() - registered.rgb.float())[inner].abs().mean()
        assert after < 0.5 * before


class Identity(torch.nn.Module):
    """No alignment at all: density zero, no theta, no displacement."""

    class cfg:  # noqa: N801 - read as net.cfg by evaluate
        downsample_ratio = 8
        moving = "rgb"

    def forward(self, rgb, thermal):
        return ModelOutput(density=torch.zeros(rgb.shape[0], 1, rgb.shape[2] // 8,
                                               rgb.shape[3] // 8))


def test_an_stn_that_undoes_the_generator_leaves_no_residual():
    for sample in pairs():
        h, w = sample.size
        out = ModelOutput(density=torch.zeros(1), theta=undoing_theta(sample.meta["affine"], h, w))
        errors = head_alignment_errors(out, sample.points, sample.meta["rgb_points"], (h, w))
        truth = (sample.meta["rgb_points"] - sample.points).norm(dim=1)
        assert errors[:, 0].abs().max() < 1e-3
        torch.testing.assert_close(errors[:, 1], truth)
        assert truth.mean() > 1  # the data is displaced, so the test can fail


def test_an_offset_field_equal_to_the_shift_leaves_no_residual():
    # Pure translation: the true displacement is the same (dx, dy) at every head.
    for sample in pairs(synth_rotation=0.0, synth_scale=0.0):
        h, w = sample.size
        shift = sample.meta["rgb_points"][0] - sample.points[0]
        field = (shift / 8)[None, :, None, None].expand(1, 2, h // 8, w // 8)  # feature px
        out = ModelOutput(density=torch.zeros(1), displacement=field)
        errors = head_alignment_errors(out, sample.points, sample.meta["rgb_points"], (h, w))
        assert errors[:, 0].abs().max() < 1e-3
        assert errors[:, 1].min() == pytest.approx(float(shift.norm()), abs=1e-3)


def test_evaluate_records_residual_equal_to_baseline_for_the_identity():
    data = pairs()
    summary, _ = evaluate(Identity(), data, compute_stats(data), torch.device("cpu"))
    heads = torch.cat([(s.meta["rgb_points"] - s.points).norm(dim=1) for s in data])
    assert summary["align_residual_px"] == pytest.approx(summary["align_baseline_px"])
    assert summary["align_baseline_px"] == pytest.approx(float(heads.mean()), rel=1e-5)
    assert summary["align_baseline_px"] > 1


class Undoing(Identity):
    """An STN forced to the generator's transform of each image, in evaluation order."""

    def __init__(self, data: PairSet):
        super().__init__()
        self.thetas = iter([undoing_theta(s.meta["affine"], *s.size) for s in data])

    def forward(self, rgb, thermal):
        out = super().forward(rgb, thermal)
        # One theta per image of the batch (evaluation batches same-size images).
        return dataclasses.replace(out, theta=torch.cat([next(self.thetas) for _ in rgb]))


def test_evaluate_records_no_residual_for_an_stn_that_undoes_the_generator():
    data = pairs()  # 128x160: no padding at stride 8, so theta's frame is the image's
    summary, _ = evaluate(Undoing(data), data, compute_stats(data), torch.device("cpu"))
    heads = torch.cat([(s.meta["rgb_points"] - s.points).norm(dim=1) for s in data])
    assert summary["align_residual_px"] < 1e-3
    assert summary["align_baseline_px"] == pytest.approx(float(heads.mean()), rel=1e-5)


def test_data_without_the_true_transform_records_no_alignment_keys():
    data = PairSet("test", [type(s)(s.id, s.rgb, s.thermal, s.points) for s in pairs()])
    summary, _ = evaluate(Identity(), data, compute_stats(data), torch.device("cpu"))
    assert not set(ALIGN_KEYS) & set(summary)
    assert "game3" in summary


def add_aligned_run(store, variant, seed, residual, baseline, config=None):
    """A done run whose selected epoch (1) recorded the alignment on val; epoch 0 did not
    select and holds other values, so reading the wrong epoch fails the test."""
    cfg = RunConfig().with_overrides({**(config or {}), "seed": seed})
    run_id = store.claim(ClaimSpec("mini", variant, seed, cfg.to_dict(), cfg.config_hash())).run.id
    store.record_epoch(run_id, 0, {"loss": 2.0, "val_game0": 9.0, "val_align_residual_px": 99.0,
                                   "val_align_baseline_px": 99.0})
    store.record_epoch(run_id, 1, {"loss": 1.0, "val_game0": 8.0,
                                   "val_align_residual_px": residual,
                                   "val_align_baseline_px": baseline})
    test = {"game0": 8.0, "game1": 9.0, "game2": 10.0, "game3": 11.0, "rmse": 9.0, "mae": 8.0,
            "align_residual_px": residual, "align_baseline_px": baseline}
    store.finish(run_id, test, test, 1, [])


def test_the_report_shows_residual_and_baseline_per_variant(tmp_path):
    study = tmp_path / "mini.toml"
    study.write_text(STUDY_TOML.format(label="offset").replace("'", '"'), encoding="utf-8")
    url = str(tmp_path / "runs.db")
    with RunStore(url) as store:
        add_aligned_run(store, "A", 0, 6.0, 6.0)
        add_aligned_run(store, "A", 1, 7.0, 7.0)
        add_aligned_run(store, "B", 0, 2.0, 6.0, {"stn": "bounded"})
        add_aligned_run(store, "B", 1, 3.0, 7.0, {"stn": "bounded"})
        rep = build_report(store, str(study))
    stored = rep.table.loc["B", "align_split"]  # "test" once the database keeps them
    assert stored in ("test", "val")
    md = render_report(rep, "markdown")
    assert "### Alignment at the labelled heads" in md
    assert f"| A | plain | 6.50 ± 0.71 | 6.50 | {stored} |" in md
    assert f"| B | + STN | 2.50 ± 0.71 | 6.50 | {stored} |" in md
    assert "C |" not in md.split("### Alignment")[1].split("###")[0]  # C has no runs
    assert "Residual px</th>" in render_report(rep, "html")
    assert r"B & + STN & 2.50{\scriptsize${\pm}$0.71} & 6.50" in render_report(rep, "latex")
    frame = pd.read_csv(StringIO(render_report(rep, "csv"))).set_index("row")
    assert frame.at["B", "align_residual_px_mean"] == pytest.approx(2.5)
    assert frame.at["A", "align_baseline_px_mean"] == pytest.approx(6.5)


def test_a_report_without_alignment_values_has_no_alignment_section(tmp_path):
    study = tmp_path / "mini.toml"
    study.write_text(STUDY_TOML.format(label="offset").replace("'", '"'), encoding="utf-8")
    url = str(tmp_path / "runs.db")
    with RunStore(url) as store:
        add_run(store, "mini", "A", 0, metrics(8.0, 9.0, 10.0, 11.0, 9.0))
        rep = build_report(store, str(study))
    assert "align_residual_px_mean" not in rep.table
    assert "Alignment at the labelled heads" not in render_report(rep, "markdown")


def test_viz_shows_the_alignment_at_the_heads_of_each_image(tmp_path):
    # A flow field fixed at (1.5, -0.5) feature pixels = (3, -1) input pixels at stride 2,
    # after an STN that is the identity at init: every head is read 3 px right and 1 px up.
    loaded, splits = tiny_loaded(stn="bounded", aligner="flow")
    last = loaded.net.offset.offset[-1]
    with torch.no_grad():
        last.bias[0::2], last.bias[1::2] = 1.5, -0.5
    (inf,) = infer(loaded, splits.val, splits, 1)
    sample = inf.sample
    truth = sample.meta["rgb_points"] - sample.points
    residual = (truth - torch.tensor([3.0, -1.0])).norm(dim=1).mean()
    assert inf.align_px == pytest.approx((float(residual), float(truth.norm(dim=1).mean())),
                                         abs=1e-3)
    text = plots.align_text(inf)
    assert f"{residual:.2f} px left after alignment" in text
    assert plots.align_text(dataclasses.replace(inf, align_px=None)) == ""
    assert plots.offset_quiver(inf, tmp_path / "o.png").read_bytes().startswith(b"\x89PNG")


def test_loss_curves_add_an_alignment_panel_when_epochs_recorded_it(tmp_path):
    plain = [{"epoch": e, "loss": 1.0 / (e + 1), "val_game3": 20.0 - e} for e in range(3)]
    aligned = [{**row, "val_align_residual_px": 6.0 - row["epoch"],
                "val_align_baseline_px": 6.0} for row in plain]

    def width(rows, name):
        path, _ = plots.loss_curves(rows, tmp_path / name, "run")
        return int.from_bytes(path.read_bytes()[16:20], "big")  # PNG IHDR width

    assert width(aligned, "a.png") > 1.3 * width(plain, "p.png")  # three panels, not two


def test_align_false_keeps_the_summary_to_the_registered_metrics():
    data = pairs()
    summary, _ = evaluate(Identity(), data, compute_stats(data), torch.device("cpu"), align=False)
    assert not set(ALIGN_KEYS) & set(summary)


def test_the_runs_database_keeps_the_alignment_values(tmp_path):
    from ablate.db import RunStore

    with RunStore(str(tmp_path / "runs.db")) as store:
        run = store.claim(ClaimSpec("s", "A", 0, {"lr": 1e-3}, "0123456789abcdef", label="A")).run
        metrics = {m: 1.0 for m in ("game0", "game1", "game2", "game3", "rmse", "mae")}
        align = {"align_residual_px": 2.5, "align_baseline_px": 6.0}
        store.finish(run.id, {**metrics, **align}, {**metrics, "align_residual_px": 3.0,
                                                   "align_baseline_px": 6.5}, 0, [])
        row = store.run_dicts()[0]
    assert (row["align_residual_px"], row["align_baseline_px"]) == (3.0, 6.5)
    assert (row["val_align_residual_px"], row["val_align_baseline_px"]) == (2.5, 6.0)
