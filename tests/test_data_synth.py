"""The built-in synthetic RGB-T crowds: determinism, labels in the thermal frame, and an RGB
displacement whose size, measured from the images, is the configured one."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from model.config import DataConfig
from model.data import load_splits, synth_sample, write_rgbtcc
from model.data.synth import _head_radius, pixel_affine

# The first version's decoys (in proportion to the crowd): the people-only maps below subtract a
# render without people, which then has no decoys either.
DAY = DataConfig(synth_night_fraction=0.0, synth_min_people=6, synth_max_people=12,
                 synth_decoys=0.5, synth_max_decoys=0)


def _cfg(**changes) -> DataConfig:
    return dataclasses.replace(DAY, **changes)


def _people_maps(cfg: DataConfig, index: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(thermal, rgb) maps of the people alone: the same scene rendered with and without them.

    Every random stream is independent, so removing the people leaves background, distractors
    and displacement untouched.
    """
    with_people = synth_sample(cfg, "train", index)
    without = synth_sample(
        dataclasses.replace(cfg, synth_min_people=0, synth_max_people=0), "train", index
    )
    thermal = with_people.thermal.float().mean(0) - without.thermal.float().mean(0)
    rgb = (with_people.rgb.float() - without.rgb.float()).abs().sum(0)
    return thermal, rgb, {"points": with_people.points, **with_people.meta}


def _translation(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """Integer (dx, dy) with b(x) ~ a(x - d), by phase correlation."""
    fa, fb = torch.fft.fft2(a - a.mean()), torch.fft.fft2(b - b.mean())
    cross = fb * fa.conj()
    r = torch.fft.ifft2(cross / cross.abs().clamp(min=1e-9)).real
    dy, dx = divmod(int(r.argmax()), r.shape[1])
    h, w = r.shape
    return (dx - w if dx > w // 2 else dx), (dy - h if dy > h // 2 else dy)


def _ncc(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_deterministic_from_seed_and_sized_by_config():
    cfg = DataConfig(synth_height=64, synth_width=96, synth_min_people=3, synth_max_people=9)
    a, b = synth_sample(cfg, "val", 2), synth_sample(cfg, "val", 2)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.thermal, b.thermal)
    assert torch.equal(a.points, b.points)
    c = synth_sample(dataclasses.replace(cfg, synth_seed=1), "val", 2)
    assert not torch.equal(a.rgb, c.rgb)
    assert not torch.equal(a.rgb, synth_sample(cfg, "test", 2).rgb)  # splits differ
    assert a.rgb.shape == (3, 64, 96) and a.thermal.shape == (3, 64, 96)
    assert a.rgb.dtype == torch.uint8 and a.points.dtype == torch.float32
    counts = [len(synth_sample(cfg, "train", i).points) for i in range(20)]
    assert min(counts) >= 3 and max(counts) <= 9 and len(set(counts)) > 1


def test_default_splits_carry_stats_and_both_day_and_night():
    # About 0.6 s on 2 idle cores; not asserted, the shared test machine's load varies too much.
    cfg = DataConfig()
    splits = load_splits(cfg)
    assert cfg.synth_n_test >= 64  # the redesigned benchmark: enough images for paired tests
    assert (len(splits.train), len(splits.val), len(splits.test)) == (
        cfg.synth_n_train, cfg.synth_n_val, cfg.synth_n_test)
    assert splits.format == "synthetic"
    assert all(0 < m < 1 for m in splits.stats.rgb_mean + splits.stats.thermal_mean)
    nights = [s.meta["night"] for s in splits.train]
    assert 0 < sum(nights) < len(nights)  # synth_night_fraction 0.25: both kinds
    night_rgb = torch.stack([s.rgb.float().mean() for s in splits.train if s.meta["night"]])
    day_rgb = torch.stack([s.rgb.float().mean() for s in splits.train if not s.meta["night"]])
    # Dimmer at night (gain 0.5 on average), but not black: the RGB stays informative.
    assert 0.3 * day_rgb.mean() < night_rgb.mean() < 0.75 * day_rgb.mean()
    one = load_splits(DataConfig(), thermal_channels=1)
    assert one.train[0].thermal.shape == (1, 128, 160)


def test_thermal_heads_are_centred_on_the_labels():
    for index in range(3):
        heat, _, meta = _people_maps(_cfg(), index)
        points = meta["points"]
        dist = torch.cdist(points, points) + 1e3 * torch.eye(len(points))
        isolated = points[dist.min(1).values > 12]
        assert len(isolated) > 0
        for x, y in isolated.tolist():
            cx, cy = int(x), int(y)
            window = heat[cy - 3 : cy + 4, cx - 3 : cx + 4]
            if window.shape != (7, 7):
                continue
            wy, wx = divmod(int(window.argmax()), 7)
            assert abs(wx - 3) <= 1 and abs(wy - 3) <= 1, (x, y, wx, wy)
            assert heat[cy, cx] > 40  # a head is much warmer than the background


def _boxes(cfg: DataConfig, heads: torch.Tensor) -> torch.Tensor:
    """(N, 4) x0, y0, x1, y1 around each figure: head of radius r on top, body down to y + 4.6r."""
    r = _head_radius(cfg, heads[:, 1])
    x, y = heads[:, 0], heads[:, 1]
    return torch.stack([x - 1.3 * r - 2, y - r - 2, x + 1.3 * r + 2, y + 4.6 * r + 2], 1)


def _isolated(cfg: DataConfig, meta: dict, h: int, w: int) -> list[tuple[float, float, list[int]]]:
    """Labelled heads whose figure box meets no other figure (person or look-alike) and stays
    inside the image, with that box in whole pixels."""
    points = meta["points"]
    boxes = _boxes(cfg, torch.cat([points, meta["lookalikes"]]))
    out = []
    for i, (x, y) in enumerate(points.tolist()):
        b = boxes[i]
        overlap = (
            (boxes[:, 0] < b[2])
            & (boxes[:, 2] > b[0])
            & (boxes[:, 1] < b[3])
            & (boxes[:, 3] > b[1])
        )
        overlap[i] = False
        inside = b[0] >= 0 and b[1] >= 0 and b[2] < w and b[3] < h
        if not overlap.any() and inside:
            out.append((x, y, [int(b[0]), int(b[1]), int(b[2]) + 1, int(b[3]) + 1]))
    return out


def _centroid(people: torch.Tensor, box: list[int]) -> torch.Tensor:
    """Centroid (x, y) of a people map inside a whole-pixel box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    window = people[y0:y1, x0:x1].clamp(min=0)
    xs, ys = torch.arange(x0, x1) + 0.5, torch.arange(y0, y1) + 0.5
    total = window.sum()
    return torch.stack([(window.sum(0) * xs).sum() / total, (window.sum(1) * ys).sum() / total])


def test_rgb_is_registered_when_displacement_is_zero():
    cfg = _cfg(synth_shift=0.0, synth_rotation=0.0, synth_scale=0.0)
    checked = 0
    for index in range(8):
        _, people_rgb, meta = _people_maps(cfg, index)
        assert torch.allclose(meta["rgb_points"], meta["points"], atol=1e-4)
        assert meta["shift"] == (0.0, 0.0) and meta["rotation"] == 0.0 and meta["scale"] == 1.0
        for x, y, box in _isolated(cfg, meta, *people_rgb.shape):
            # Figures are symmetric about the head's column ...
            assert abs(float(_centroid(people_rgb, box)[0]) - x) < 0.2
            # ... and the (dark) head is their top: it starts one head radius above the label.
            start = max(int(y) - 10, 0)
            column = people_rgb[start : int(y) + 1, int(x)]
            assert column[-1] > 12  # the head centre differs from the ground
            top = int(torch.nonzero(column > 0.5 * column[-1]).min()) + start + 0.5
            radius = float(_head_radius(cfg, torch.tensor(y)))
            assert y - radius - 0.5 <= top <= y - radius + 1.5, (top, y, radius)
            checked += 1
    assert checked >= 10


def test_measured_rgb_shift_matches_the_configured_one():
    shift = 10.0
    cfg = _cfg(synth_shift=shift, synth_rotation=0.0, synth_scale=0.0)
    registered = dataclasses.replace(cfg, synth_shift=0.0)
    errors = []
    for index in range(6):
        _, moved, meta = _people_maps(cfg, index)
        _, still, _ = _people_maps(registered, index)
        tx, ty = meta["shift"]
        assert abs(tx) <= shift and abs(ty) <= shift
        # Whole image: phase correlation of the displaced RGB against its registered twin.
        dx, dy = _translation(still, moved)
        assert abs(dx - tx) <= 1 and abs(dy - ty) <= 1, ((dx, dy), (tx, ty))
        # Per person, sub-pixel: each figure moved by the recorded shift.
        h, w = still.shape
        for _, _, box in _isolated(cfg, meta, h, w):
            # The same box moved by the whole-pixel part of the shift still holds the figure.
            ix, iy = math.floor(tx), math.floor(ty)
            moved_box = [box[0] + ix - 1, box[1] + iy - 1, box[2] + ix + 2, box[3] + iy + 2]
            if moved_box[0] >= 0 and moved_box[1] >= 0 and moved_box[2] <= w and moved_box[3] <= h:
                moved_by = _centroid(moved, moved_box) - _centroid(still, box)
                errors.append(moved_by - torch.tensor([tx, ty]))
    errors = torch.stack(errors).abs()
    # Blending and uint8 rounding move a figure's centroid by a few hundredths of a pixel.
    assert len(errors) >= 8 and errors.median() < 0.15 and errors.max() < 0.8, errors
    shifts = torch.tensor([synth_sample(cfg, "train", i).meta["shift"] for i in range(48)])
    assert shifts.abs().max() <= shift and shifts.abs().max() > 0.8 * shift


def _warp_by(image: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Move an (H, W) map's content from p to A p (2x3 pixel affine), bilinear."""
    h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    p = (torch.stack([xs, ys], -1) - affine[:, 2]) @ torch.linalg.inv(affine[:, :2]).T
    grid = 2 * p / torch.tensor([w, h]) - 1
    return F.grid_sample(image[None, None], grid[None], align_corners=False)[0, 0]


def test_rotation_and_scale_follow_the_recorded_affine():
    cfg = _cfg(synth_shift=4.0, synth_rotation=5.0, synth_scale=0.05)
    registered = dataclasses.replace(cfg, synth_shift=0.0, synth_rotation=0.0, synth_scale=0.0)
    for index in range(6):
        _, moved, meta = _people_maps(cfg, index)
        _, still, _ = _people_maps(registered, index)
        assert abs(meta["rotation"]) <= 5.0 and abs(meta["scale"] - 1) <= 0.05
        h, w = still.shape
        # The registered people moved by the recorded affine reproduce the displaced ones ...
        predicted = _ncc(_warp_by(still, pixel_affine(meta, h, w)), moved)
        assert predicted > 0.98 and predicted > _ncc(still, moved) + 0.1
        # ... and the sign of the rotation matters.
        if abs(meta["rotation"]) > 1:
            flipped = pixel_affine({**meta, "rotation": -meta["rotation"]}, h, w)
            assert _ncc(_warp_by(still, flipped), moved) < predicted - 0.1


def test_local_warp_moves_heads_by_at_most_its_amplitude():
    cfg = _cfg(synth_shift=0.0, synth_rotation=0.0, synth_scale=0.0, synth_local_warp=3.0)
    s = synth_sample(cfg, "train", 0)
    offsets = (s.meta["rgb_points"] - s.points).norm(dim=1)
    assert offsets.max() <= 3.0 + 1e-3 and offsets.max() > 0.3


def test_write_rgbtcc_then_read_back(tmp_path):
    cfg = DataConfig(synth_n_train=4, synth_n_val=2, synth_n_test=2)
    splits = load_splits(cfg)
    assert write_rgbtcc(splits, tmp_path) == {"train": 4, "val": 2, "test": 2}
    back = load_splits(DataConfig(data_path=str(tmp_path)))
    assert back.format == "rgbtcc"
    for original, read in zip(splits.train, back.train, strict=True):
        assert original.id == read.id
        assert torch.equal(original.points, read.points)
        for a, b in ((original.rgb, read.rgb), (original.thermal, read.thermal)):
            assert a.shape == b.shape and (a.float() - b.float()).abs().mean() < 6
    label = (tmp_path / "train" / "0_GT.json").read_text()
    assert '"synthetic"' in label and '"shift"' in label and not math.isnan(len(label))
