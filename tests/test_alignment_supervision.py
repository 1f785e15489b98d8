"""Issue 11, items 1-2: the bounded STN in pixels and the supervised alignment, known answers.

Conventions (model/losses/alignment.py): pixel c spans [c, c + 1), so pixel centres sit at
c + 0.5; a theta of ``F.affine_grid`` takes an output pixel to where it samples the input.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model.config import DataConfig, LossConfig, ModelConfig, RunConfig
from model.data import load_splits, train_batches
from model.data.augment import crop_flip_map, crop_flip_points
from model.data.batch import Batch
from model.data.loader import _job_lists
from model.data.synth import pixel_affine
from model.engine import Trainer
from model.layers import stn as stn_module
from model.layers.stn import BoundedSTN, pixel_theta, sampling_points, warp
from model.losses.alignment import (
    gradient_ncc,
    homogeneous,
    known_map,
    supervised_alignment,
    theta_to_pixels,
)
from model.losses.counting import CountingLoss, Phase
from model.output import ModelOutput
from tests.test_data_readers import write_rgbtcc_fixture


def _params(tx: float, ty: float, angle: float = 0.0, scale: float = 0.0) -> torch.Tensor:
    return torch.tensor([[tx, ty, angle, scale]])


def _bright_pixel(height: int, width: int, x: int, y: int) -> torch.Tensor:
    image = torch.zeros(1, 1, height, width)
    image[0, 0, y, x] = 1.0
    return image


def _peak(image: torch.Tensor) -> tuple[int, int]:
    """(x, y) of the brightest pixel of a (1, 1, H, W) image."""
    index = int(image.flatten().argmax())
    return index % image.shape[-1], index // image.shape[-1]


def _apply(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(3, 3) or (2, 3) pixel map on (N, 2) points."""
    return points @ maps[:2, :2].T + maps[:2, 2]


# -- 1. the same pixels on a crop and on the full image ---------------------------------------

SIZES = [(128, 128), (128, 160), (480, 640)]


@pytest.mark.parametrize("height,width", SIZES)
def test_a_pixel_transform_moves_content_by_the_same_pixels_at_any_size(height, width):
    # Output pixel p samples the input at p + t: content at q shows up at q - t.
    image = _bright_pixel(height, width, x=40, y=30)
    warped = warp(image, pixel_theta(_params(5.0, -3.0), height, width))
    assert _peak(warped) == (35, 33)
    assert float(warped.max()) == pytest.approx(1.0, abs=1e-4)
    points = torch.tensor([[[40.5, 30.5], [7.5, 100.5]]])
    sampled = sampling_points(pixel_theta(_params(5.0, -3.0), height, width), points,
                              height, width)
    assert torch.allclose(sampled - points, torch.tensor([5.0, -3.0]), atol=1e-4)


def test_a_normalised_translation_moves_content_by_a_different_number_of_pixels():
    # Why the STN works in pixels: the first AffineSTN's translation is a fraction of the
    # image, so 5 px learned on a 128-px crop become 25 px on a 640-px-wide test image.
    theta = torch.tensor([[[1.0, 0.0, 5 / 64], [0.0, 1.0, 0.0]]])
    shifts = []
    for height, width in [(128, 128), (480, 640)]:
        warped = warp(_bright_pixel(height, width, x=40, y=30), theta)
        shifts.append(40 - _peak(warped)[0])
    assert shifts == [5, 25]


def test_the_bounded_stn_applies_one_match_as_the_same_pixels_on_a_crop_and_a_full_image(
        monkeypatch):
    # Matches that say "1.25 feature pixels right, 0.5 down" (5 px, 2 px at stride 4), with no
    # rotation or scale: the module's sampling shift must not depend on the input's size.
    monkeypatch.setattr(stn_module, "similarity_fit",
                        lambda flow, weight, size: torch.zeros(len(flow), 4))
    monkeypatch.setattr(stn_module, "soft_argmax", lambda scores, radius, temperature:
                        torch.tensor([1.25, 0.5]).view(1, 2, 1).expand(len(scores), 2, 1))
    net = _open_stn()
    shifts = []
    for height, width in [(128, 128), (480, 640)]:
        _, theta = net(torch.rand(1, 3, height, width), torch.rand(1, 3, height, width))
        centre = torch.tensor([[[width / 2, height / 2]]])
        shifts.append(sampling_points(theta.detach(), centre, height, width) - centre)
    expected = LIMITS["max_shift"] * torch.tanh(torch.tensor([5.0, 2.0]) / LIMITS["max_shift"])
    assert torch.allclose(shifts[0].flatten(), expected, atol=1e-4)
    assert torch.allclose(shifts[1].flatten(), expected, atol=1e-4)


# -- 2. pixel_theta against its pixel formula --------------------------------------------------


def _formula(points: torch.Tensor, tx, ty, angle, scale, height, width) -> torch.Tensor:
    """c + (1 + s) R(a) (p - c) + t on (N, 2) pixel points."""
    centre = torch.tensor([width / 2, height / 2])
    rot = (1 + scale) * torch.tensor([[math.cos(angle), -math.sin(angle)],
                                      [math.sin(angle), math.cos(angle)]])
    return centre + (points - centre) @ rot.T + torch.tensor([tx, ty])


def test_pixel_theta_samples_where_the_pixel_formula_says():
    height, width = 60, 80
    tx, ty, angle, scale = 2.0, -1.5, 0.1, 0.05
    theta = pixel_theta(_params(tx, ty, angle, scale), height, width)
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)[0]
    in_pixels = (grid + 1) * torch.tensor([width / 2, height / 2])  # (H, W, 2)
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    centres = torch.stack([xs, ys], -1).reshape(-1, 2)
    expected = _formula(centres, tx, ty, angle, scale, height, width)
    assert torch.allclose(in_pixels.reshape(-1, 2), expected, atol=1e-4)
    assert torch.allclose(sampling_points(theta, centres[None], height, width)[0], expected,
                          atol=1e-4)
    # Bilinear sampling of a linear ramp is exact: the warped ramp reads the sampled position.
    ramp = (xs + 2 * ys)[None, None]
    warped = warp(ramp, theta)[0, 0].reshape(-1)
    inside = ((expected > 1) & (expected < torch.tensor([width - 1, height - 1]))).all(1)
    assert inside.sum() > 1000
    ramp_at = expected[:, 0] + 2 * expected[:, 1]
    assert torch.allclose(warped[inside], ramp_at[inside], atol=1e-3)


# -- 3. BoundedSTN: identity at init, never past its bounds -----------------------------------


def test_bounded_stn_is_the_identity_at_init_on_a_non_square_input():
    torch.manual_seed(0)
    net = BoundedSTN(3, 1)
    moving, reference = torch.rand(2, 3, 48, 64), torch.rand(2, 1, 48, 64)
    warped, theta = net(moving, reference)
    assert torch.allclose(warped, moving, atol=1e-5)
    assert torch.allclose(theta, torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(2, 2, 3))


def _decompose(theta: torch.Tensor, height: int, width: int):
    """(shift (B, 2) px, angle (B,) rad, scale - 1 (B,)) of a pixel similarity map."""
    maps = theta_to_pixels(theta, height, width)
    centre = torch.tensor([width / 2, height / 2])
    shift = maps[:, :2, :2] @ centre + maps[:, :2, 2] - centre
    angle = torch.atan2(maps[:, 1, 0], maps[:, 0, 0])
    return shift, angle, torch.hypot(maps[:, 0, 0], maps[:, 1, 0]) - 1


LIMITS = {"max_shift": 6.0, "max_rotation": 4.0, "max_scale": 0.1}


def _open_stn() -> BoundedSTN:
    net = BoundedSTN(3, 3, **LIMITS)
    with torch.no_grad():
        net.gate.fill_(10.0)  # tanh(10 x GATE_RATE) == 1: the gate fully open
    return net


def _within_limits(theta: torch.Tensor, height: int, width: int) -> None:
    shift, angle, scale = _decompose(theta.detach(), height, width)
    assert shift.abs().max() <= LIMITS["max_shift"] + 1e-3
    assert angle.abs().max() <= math.radians(LIMITS["max_rotation"]) + 1e-5
    assert scale.abs().max() <= LIMITS["max_scale"] + 1e-5


def test_an_open_bounded_stn_stays_within_its_bounds_on_random_inputs():
    torch.manual_seed(1)
    net = _open_stn()
    for height, width in [(32, 48), (64, 40)]:
        _, theta = net(torch.rand(4, 3, height, width) * 5, torch.randn(4, 3, height, width))
        _within_limits(theta, height, width)


def test_the_bounds_hold_however_far_the_matches_point(monkeypatch):
    # Matches pointing 1000 px / rad away: the squashed transform sits on its bounds.
    def huge_fit(flow, weight, size):
        return torch.tensor([1e3, -1e3, 1e3, -1e3]).expand(len(flow), 4)

    def huge_argmax(scores, radius, temperature):
        return torch.full((scores.shape[0], 2, scores.shape[-1]), -1e3)

    monkeypatch.setattr(stn_module, "similarity_fit", huge_fit)
    monkeypatch.setattr(stn_module, "soft_argmax", huge_argmax)
    _, theta = _open_stn()(torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48))
    _within_limits(theta, 32, 48)
    shift, angle, scale = _decompose(theta.detach(), 32, 48)
    assert torch.allclose(shift, torch.full_like(shift, -LIMITS["max_shift"]), atol=1e-3)
    assert torch.allclose(angle, torch.full_like(angle, math.radians(LIMITS["max_rotation"])))
    assert torch.allclose(scale, torch.full_like(scale, -LIMITS["max_scale"]), atol=1e-5)


# -- 4. crop_flip_map ------------------------------------------------------------------------

AFFINE = pixel_affine({"shift": (3.0, -2.0), "rotation": 4.0, "scale": 1.05}, 60, 80)
TOP, LEFT, CROP = 7, 11, 32


def test_the_crop_map_sends_a_crop_point_to_its_image_in_crop_coordinates():
    p = torch.tensor([[25.3, 20.7], [30.0, 14.25]])  # full-image thermal points
    q = _apply(AFFINE, p)
    offset = torch.tensor([float(LEFT), float(TOP)])
    local = crop_flip_map(AFFINE, TOP, LEFT, False, CROP)
    assert torch.allclose(_apply(local, p - offset), q - offset, atol=1e-4)
    mirror = torch.tensor([-1.0, 1.0])
    flipped = crop_flip_map(AFFINE, TOP, LEFT, True, CROP)
    ends = [torch.tensor([float(CROP), 0.0]) + mirror * (v - offset) for v in (p, q)]
    assert torch.allclose(_apply(flipped, ends[0]), ends[1], atol=1e-4)


@pytest.mark.parametrize("flip", [False, True])
def test_mapping_then_cropping_equals_cropping_then_mapping(flip):
    p = torch.tensor([[25.3, 20.7], [30.0, 14.25], [18.5, 25.5]])
    q = _apply(AFFINE, p)
    cropped_then_mapped = _apply(crop_flip_map(AFFINE, TOP, LEFT, flip, CROP),
                                 crop_flip_points(p, (60, 80), TOP, LEFT, flip, CROP))
    mapped_then_cropped = crop_flip_points(q, (60, 80), TOP, LEFT, flip, CROP)
    assert len(mapped_then_cropped) == len(p)  # every point stays in the crop at both ends
    assert torch.allclose(cropped_then_mapped, mapped_then_cropped, atol=1e-4)


# -- 5. known_map ----------------------------------------------------------------------------

DATA = AFFINE[None]  # (1, 2, 3) thermal -> RGB
INJECTED = homogeneous(torch.tensor([[[0.98, -0.05, 4.0], [0.05, 0.98, -6.0]]]))


def test_known_map_with_rgb_moving_is_the_data_map():
    assert torch.allclose(known_map(DATA, None, moving_is_rgb=True), homogeneous(DATA))


def test_known_map_with_thermal_moving_is_its_inverse():
    p = torch.tensor([[20.0, 30.0]])
    back = known_map(DATA, None, moving_is_rgb=False)[0]
    assert torch.allclose(_apply(back, _apply(AFFINE, p)), p, atol=1e-4)


def test_an_injected_map_is_undone_after_the_data_map():
    # new(p) = old(T p): content at old q is now at T^-1 q.
    p = torch.tensor([[20.0, 30.0]])
    old = _apply(AFFINE, p)
    expected = _apply(torch.linalg.inv(INJECTED[0]), old)
    assert torch.allclose(_apply(known_map(DATA, INJECTED, True)[0], p), expected, atol=1e-4)
    assert torch.allclose(known_map(None, INJECTED, True), torch.linalg.inv(INJECTED))
    assert known_map(None, None, True) is None


# -- 6. supervised_alignment -----------------------------------------------------------------

H, W = 48, 64


def _output(theta=None, displacement=None) -> ModelOutput:
    return ModelOutput(density=torch.zeros(1, 1, H // 8, W // 8), theta=theta,
                       displacement=displacement)


def _translation(tx: float, ty: float) -> torch.Tensor:
    return torch.tensor([[[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]]])


def test_supervised_alignment_is_zero_when_the_stn_reproduces_the_target():
    theta = pixel_theta(_params(3.0, -2.0, 0.05, 0.02), H, W)
    loss = supervised_alignment(_output(theta), theta_to_pixels(theta, H, W), (H, W))
    assert float(loss) == pytest.approx(0.0, abs=1e-4)


def huber(distance: float) -> float:
    """The pseudo-Huber distance the term reports for an error of ``distance`` px."""
    return math.sqrt(distance**2 + 1) - 1


def test_supervised_alignment_is_the_pixel_distance_of_a_translation_error():
    identity = pixel_theta(_params(0.0, 0.0), H, W)
    loss = supervised_alignment(_output(identity), _translation(3.0, 4.0), (H, W))
    assert float(loss) == pytest.approx(huber(5.0), abs=1e-4)
    assert supervised_alignment(_output(), _translation(3.0, 4.0), (H, W)) is None


@pytest.mark.parametrize("stride", [4, 8])
def test_the_field_term_is_the_distance_of_its_displacement_in_pixels(stride):
    dx, dy = 1.5, -0.5  # feature pixels
    field = torch.tensor([dx, dy]).view(1, 2, 1, 1).expand(1, 2, H // stride, W // stride)
    loss = supervised_alignment(_output(displacement=field), _translation(2.0, 1.0), (H, W))
    assert float(loss) == pytest.approx(huber(math.hypot(dx * stride - 2.0, dy * stride - 1.0)),
                                        abs=1e-4)
    # With an STN, the field's combined map adds its own distance to the STN's.
    identity = pixel_theta(_params(0.0, 0.0), H, W)
    both = supervised_alignment(_output(identity, field), _translation(2.0, 1.0), (H, W))
    assert float(both) == pytest.approx(huber(math.hypot(2.0, 1.0)) + float(loss), abs=1e-4)


# -- 7. gradient_ncc -------------------------------------------------------------------------


def _texture() -> torch.Tensor:
    """A smooth (1, 3, 64, 64) texture of unit-order intensities, like a normalised image."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.randn(1, 3, 8, 8, generator=g)
    return F.interpolate(coarse, size=(64, 64), mode="bicubic", align_corners=False)


def test_gradient_ncc_is_zero_for_identical_images_and_grows_with_a_shift():
    image = _texture()
    assert float(gradient_ncc(image, image)) == pytest.approx(0.0, abs=1e-4)
    costs = [float(gradient_ncc(torch.roll(image, k, dims=-1), image)) for k in (1, 3, 6)]
    assert costs == sorted(costs) and costs[0] > 0.05


def test_gradient_ncc_ignores_either_images_intensity_scale():
    image, moved = _texture(), torch.roll(_texture(), 3, dims=-2)
    base = float(gradient_ncc(moved, image))
    for scale in (0.2, 10.0):
        assert float(gradient_ncc(scale * moved, image)) == pytest.approx(base, abs=1e-4)
        assert float(gradient_ncc(moved, scale * image)) == pytest.approx(base, abs=1e-4)


# -- 8. the loader's thermal -> RGB maps ------------------------------------------------------

SYNTH = DataConfig(synth_n_train=4, synth_n_val=1, synth_n_test=1, synth_height=64,
                   synth_width=80, crop_size=64)


def _local(points: torch.Tensor, top: int, left: int, flip: bool, crop: int) -> torch.Tensor:
    out = points - torch.tensor([float(left), float(top)])
    if flip:
        out[:, 0] = crop - out[:, 0]
    return out


def test_a_synthetic_batch_maps_each_head_to_where_the_generator_drew_it_in_the_rgb():
    splits = load_splits(SYNTH)
    seed = 3
    jobs = _job_lists(splits.train, SYNTH, 4, torch.Generator().manual_seed(seed))[0]
    batch = next(train_batches(splits.train, SYNTH, 4, torch.Generator().manual_seed(seed)))
    assert {flip for _, _, _, flip, _ in jobs} == {False, True}  # both branches checked
    assert batch.thermal_to_rgb.shape == (4, 2, 3)
    for k, (index, top, left, flip, crop) in enumerate(jobs):
        sample = splits.train[index]
        heads = _local(sample.points, top, left, flip, crop)
        in_rgb = _local(sample.meta["rgb_points"], top, left, flip, crop)
        assert torch.allclose(_apply(batch.thermal_to_rgb[k], heads), in_rgb, atol=1e-3)
        # The windows above are the batch's: its labelled heads are the kept ones.
        kept = crop_flip_points(sample.points, sample.size, top, left, flip, crop)
        assert torch.allclose(batch.points[k], kept)


def test_data_on_disk_has_no_thermal_to_rgb_map(tmp_path):
    cfg = DataConfig(data_path=str(write_rgbtcc_fixture(tmp_path)), crop_size=16)
    batch = next(train_batches(load_splits(cfg).train, cfg, 2, torch.Generator().manual_seed(0)))
    assert batch.thermal_to_rgb is None


# -- 9. the loss terms ----------------------------------------------------------------------


def _batch() -> Batch:
    return Batch(rgb=torch.rand(1, 3, H, W), thermal=torch.rand(1, 3, H, W),
                 points=[torch.tensor([[10.0, 12.0]])], ids=["0"])


def _stn_output(rgb: torch.Tensor) -> ModelOutput:
    out = _output(pixel_theta(_params(0.0, 0.0), H, W))
    out.moving_warped = rgb
    return out


def test_the_align_term_is_there_only_when_a_target_is_known():
    loss = CountingLoss(LossConfig(align_loss=1.0), ModelConfig())
    batch = _batch()
    _, unknown = loss(_stn_output(batch.rgb), batch)
    assert "align" not in unknown and "density" in unknown
    total, known = loss(_stn_output(batch.rgb), batch,
                        phase=Phase(count_weight=0.0, align_target=_translation(3.0, 4.0)))
    assert float(known["align"]) == pytest.approx(huber(5.0), abs=1e-4)
    assert "density" not in known
    assert float(total) == pytest.approx(huber(5.0), abs=1e-4)


def test_the_ncc_term_needs_an_stn():
    loss = CountingLoss(LossConfig(align_ncc=1.0), ModelConfig())
    batch = _batch()
    _, without = loss(_output(), batch)
    _, with_stn = loss(_stn_output(batch.rgb), batch)
    assert "align_ncc" not in without
    assert "align_ncc" in with_stn


# -- 10. the config hash ---------------------------------------------------------------------


def test_a_run_stored_before_stn_mode_existed_reads_as_the_free_affine_stn():
    # Runs recorded before stn_mode existed trained the free affine STN (commit caece39).
    stored = RunConfig().to_dict()
    stored["model"] = {k: v for k, v in stored["model"].items() if k != "stn"} | {"stn": True}
    assert RunConfig.from_record(stored).model.stn == "affine"
    assert RunConfig.from_dict(stored).model.stn == "bounded"  # a study file: today's default


def test_the_stn_bounds_count_only_for_an_on_bounded_stn():
    def changed(**settings) -> bool:
        base = RunConfig().with_overrides({"data_path": "/x", **settings})
        return base.with_overrides({"stn_max_shift": 4.0}).config_hash() != base.config_hash()

    assert changed(stn="bounded")
    assert not changed(stn="affine")
    assert not changed(stn="none")
    assert changed(stn=True, stn_mode="bounded")  # the keys of earlier releases still read


# -- 11. the supervised warm-up in the trainer ----------------------------------------------


def test_an_alignment_only_warmup_epoch_logs_the_align_term_and_no_density(tmp_path):
    cfg = RunConfig().with_overrides({
        "synth_n_train": 4, "synth_n_val": 1, "synth_n_test": 1, "synth_height": 64,
        "synth_width": 64, "crop_size": 64, "batch_size": 4, "epochs": 1, "device": "cpu",
        "stn": "bounded", "align_warmup_epochs": 1, "warmup_align_loss": 1.0,
        "warmup_count_weight": 0.0,
    })
    row = Trainer(cfg, tmp_path).fit().history[0]
    assert row["epoch"] == 0
    assert math.isfinite(row["loss_align"]) and row["loss_align"] > 0
    assert "loss_density" not in row
