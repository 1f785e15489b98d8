"""Joint crop/flip of images and points, the epoch iterators, the warm-up misalignment, targets."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from model.config import DataConfig
from model.data import (
    NormStats,
    PairSet,
    Sample,
    collate,
    crop_flip,
    crop_params,
    eval_batches,
    gather_crops,
    load_splits,
    normalize,
    random_affine,
    train_batches,
    warp_points,
)
from model.data.loader import _device_batches
from model.game import point_map
from model.targets import gaussian_density


def _marked(height: int, width: int, n: int, seed: int) -> Sample:
    """A pair whose pixel under each point holds that point's id (1..n), in both modalities.

    Points get fractional parts near 0 and 1 too, where a half-pixel slip would show. (Not 0
    itself: a mirror maps pixel c's left edge onto the right edge of its mirror pixel, which
    int() assigns to the next pixel; no mirror can keep a point exactly on an edge.)
    """
    g = torch.Generator().manual_seed(seed)
    cols = torch.randperm(width, generator=g)[:n]
    rows = torch.randint(0, height, (n,), generator=g)
    frac = torch.tensor([0.001, 0.01, 0.5, 0.99, 0.999])[torch.randint(0, 5, (n, 2), generator=g)]
    points = torch.stack([cols, rows], 1).float() + frac
    rgb = torch.zeros(3, height, width, dtype=torch.uint8)
    thermal = torch.zeros(1, height, width, dtype=torch.uint8)
    ids = torch.arange(1, n + 1, dtype=torch.uint8)
    rgb[0, rows, cols] = ids
    rgb[2, rows, cols] = 255 - ids
    thermal[0, rows, cols] = ids
    return Sample(id=str(seed), rgb=rgb, thermal=thermal, points=points)


@pytest.mark.parametrize("size", [(40, 60), (20, 30), (64, 20)])  # larger, smaller, mixed
def test_points_stay_on_their_pixels_through_crop_and_flip(size):
    crop = 32
    for seed in range(30):
        s = _marked(*size, n=min(size[1], 25), seed=seed)
        params = crop_params(
            torch.tensor([s.size]), crop, True, torch.Generator().manual_seed(seed)
        )
        top, left, flip = int(params.tops[0]), int(params.lefts[0]), bool(params.flips[0])
        rgb, thermal, points = crop_flip(s.rgb, s.thermal, s.points, top, left, flip, crop)
        assert rgb.shape == (3, crop, crop) and thermal.shape == (1, crop, crop)
        # Which points should survive: their pixel lies inside the window.
        px, py = s.points[:, 0].floor() - left, s.points[:, 1].floor() - top
        inside = (px >= 0) & (px < crop) & (py >= 0) & (py < crop)
        expected_ids = (torch.nonzero(inside).flatten() + 1).tolist()
        cols, rows = points[:, 0].long(), points[:, 1].long()
        assert rgb[0, rows, cols].tolist() == expected_ids  # same order, same pixels
        assert thermal[0, rows, cols].tolist() == expected_ids
        assert (rgb[2, rows, cols] == 255 - rgb[0, rows, cols]).all()
        # Nothing was lost or invented: every marked pixel in the crop carries a point.
        assert int((rgb[0] > 0).sum()) == len(expected_ids)
        assert (points >= 0).all() and (points < crop).all()


def test_small_image_is_padded_with_zeros_never_cropped():
    s = _marked(10, 12, n=8, seed=3)
    s.rgb[1] = 200  # a full-image channel shows exactly where the image landed
    for seed in range(10):
        p = crop_params(torch.tensor([s.size]), 32, True, torch.Generator().manual_seed(seed))
        assert -22 <= int(p.tops[0]) <= 0 and -20 <= int(p.lefts[0]) <= 0
        rgb, _, points = crop_flip(
            s.rgb, s.thermal, s.points, int(p.tops[0]), int(p.lefts[0]), bool(p.flips[0]), 32
        )
        assert int((rgb[1] == 200).sum()) == 10 * 12  # whole image inside, rest zero
        assert int((rgb[1] == 0).sum()) == 32 * 32 - 10 * 12
        assert len(points) == 8


def test_batched_gather_matches_the_per_pair_transform():
    pairs = [_marked(h, w, n=10, seed=i) for i, (h, w) in enumerate([(40, 60), (20, 30), (48, 24)])]
    sizes = torch.tensor([s.size for s in pairs])
    stack = torch.zeros(3, 3, 48, 60, dtype=torch.uint8)
    for i, s in enumerate(pairs):
        stack[i, :, : s.size[0], : s.size[1]] = s.rgb
    index = torch.tensor([2, 0, 1, 0, 2, 1])
    params = crop_params(sizes[index], 32, True, torch.Generator().manual_seed(0))
    params.flips[:3] = torch.tensor([True, False, True])
    out = gather_crops(stack, sizes, index, params)
    for b, i in enumerate(index.tolist()):
        s = pairs[i]
        rgb, _, _ = crop_flip(
            s.rgb,
            s.thermal,
            s.points,
            int(params.tops[b]),
            int(params.lefts[b]),
            bool(params.flips[b]),
            32,
        )
        assert torch.equal(out[b], rgb)


def _synthetic_train(n: int = 12) -> tuple[PairSet, DataConfig]:
    cfg = DataConfig(synth_n_train=n, synth_n_val=1, synth_n_test=1, crop_size=64)
    return load_splits(cfg).train, cfg


def _epoch(pairs, cfg, seed, **kw):
    return list(train_batches(pairs, cfg, 5, torch.Generator().manual_seed(seed), **kw))


def test_train_batches_shuffle_deterministically_and_keep_the_last_partial_batch():
    pairs, cfg = _synthetic_train()
    a, b, c = _epoch(pairs, cfg, 0), _epoch(pairs, cfg, 0), _epoch(pairs, cfg, 1)
    assert [len(x.ids) for x in a] == [5, 5, 2]
    assert sorted(i for x in a for i in x.ids) == sorted(s.id for s in pairs)
    assert all(x.rgb.dtype == torch.uint8 and x.rgb.shape[1:] == (3, 64, 64) for x in a)
    assert all(x.thermal.shape[1:] == (3, 64, 64) for x in a)
    for x, y in zip(a, b, strict=True):
        assert x.ids == y.ids and torch.equal(x.rgb, y.rgb) and torch.equal(x.thermal, y.thermal)
        assert all(torch.equal(p, q) for p, q in zip(x.points, y.points, strict=True))
    assert [x.ids for x in a] != [x.ids for x in c]


def test_worker_and_device_paths_give_the_same_epoch():
    pairs, cfg = _synthetic_train(8)
    reference = _epoch(pairs, cfg, 4)
    workers = _epoch(pairs, dataclasses.replace(cfg, num_workers=1), 4)
    # The on-device path, run on the CPU: one gather per batch instead of per-pair transforms.
    gen = torch.Generator().manual_seed(4)
    on_device = list(_device_batches(pairs, cfg, 5, gen, torch.device("cpu")))
    for other in (workers, on_device):
        for x, y in zip(reference, other, strict=True):
            assert (
                x.ids == y.ids and torch.equal(x.rgb, y.rgb) and torch.equal(x.thermal, y.thermal)
            )
            assert all(torch.equal(p, q) for p, q in zip(x.points, y.points, strict=True))


def test_every_path_carries_each_pairs_uncropped_size():
    # The Bayesian background distance needs the full image's short side after cropping.
    sizes = [(40, 50), (70, 30), (64, 96), (33, 33), (90, 41)]
    pairs = PairSet("train", [_marked(h, w, 4, seed) for seed, (h, w) in enumerate(sizes)])
    cfg = DataConfig(crop_size=32)
    by_id = {s.id: s.size for s in pairs}
    paths = {
        "in-process": _epoch(pairs, cfg, 3),
        "workers": _epoch(pairs, dataclasses.replace(cfg, num_workers=1), 3),
        "on-device (CPU)": list(_device_batches(pairs, cfg, 5, torch.Generator().manual_seed(3),
                                                torch.device("cpu"))),
    }
    for name, batches in paths.items():
        assert [b.image_size for b in batches] == [(32, 32)], name
        assert batches[0].full_sizes == [by_id[i] for i in batches[0].ids], name
        assert batches[0].full_size(1) == by_id[batches[0].ids[1]], name
    whole = collate([pairs[0]])
    assert whole.full_sizes == [(40, 50)] and whole.full_size(0) == whole.image_size


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_device_crops_on_the_gpu():
    pairs, cfg = _synthetic_train(8)
    reference = _epoch(pairs, cfg, 2)
    gpu = _epoch(pairs, dataclasses.replace(cfg, on_device=True), 2, device="cuda")
    for x, y in zip(reference, gpu, strict=True):
        assert y.rgb.is_cuda and torch.equal(x.rgb, y.rgb.cpu())
        assert all(torch.equal(p, q.cpu()) for p, q in zip(x.points, y.points, strict=True))


def test_registered_synthetic_heads_stay_warm_after_crop_and_flip():
    cfg = DataConfig(
        synth_n_train=6,
        synth_n_val=1,
        synth_n_test=1,
        synth_shift=0.0,
        synth_rotation=0.0,
        synth_scale=0.0,
        crop_size=96,
    )
    pairs = load_splits(cfg).train
    warm, ground = [], []
    for batch in train_batches(pairs, cfg, 3, torch.Generator().manual_seed(0)):
        for thermal, points in zip(batch.thermal, batch.points, strict=True):
            heat = thermal.float().mean(0)
            warm.append(heat[points[:, 1].long(), points[:, 0].long()])
            ground.append(heat.flatten())
    assert torch.cat(warm).median() > torch.cat(ground).quantile(0.9)


def test_eval_batches_are_full_images_one_at_a_time():
    pairs, _ = _synthetic_train(3)
    batches = list(eval_batches(pairs))
    assert len(batches) == 3 and batches[0].rgb.shape == (1, 3, 128, 160)
    assert torch.equal(batches[1].points[0], pairs[1].points) and batches[1].ids == [pairs[1].id]


def test_normalize_uses_the_stats_and_averages_them_for_one_channel_thermal():
    stats = NormStats((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (0.2, 0.4, 0.6), (0.1, 0.2, 0.3))
    s = _marked(8, 8, n=3, seed=0)
    batch = normalize(collate([s, s]), stats)
    assert batch.rgb.dtype == torch.float32
    assert torch.allclose(batch.rgb[0, 1, 0, 0], torch.tensor(-2.0))  # (0 - 0.5) / 0.25
    assert torch.allclose(batch.thermal[0, 0, 0, 0], torch.tensor(-0.4 / 0.2))


def test_random_affine_theta_is_what_grid_sample_used_and_maps_points():
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(6, 1, 48, 64)
    images[:, :, 20:23, 30:33] = 1.0  # a 3x3 blob centred on (31.5, 21.5)
    warped, theta = random_affine(images, generator=g)
    assert theta.shape == (6, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    assert torch.allclose(warped, F.grid_sample(images, grid, align_corners=False), atol=1e-6)
    for b in range(6):
        where = warp_points(torch.tensor([[31.5, 21.5]]), theta[b], 48, 64)[0]
        ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(64) + 0.5, indexing="ij")
        mass = warped[b, 0]
        centroid = torch.stack([(mass * xs).sum(), (mass * ys).sum()]) / mass.sum()
        assert torch.allclose(centroid, where, atol=0.1)
        # Within the plan's defaults: shift <= 16 px per axis, rotation <= 5 degrees.
        centre = warp_points(torch.tensor([[32.0, 24.0]]), theta[b], 48, 64)[0]
        assert (centre - torch.tensor([32.0, 24.0])).abs().max() <= 16 + 1e-4
        lin = theta[b, :, :2] * torch.tensor([[1.0, 64 / 48], [48 / 64, 1.0]])  # undo aspect
        assert abs(torch.rad2deg(torch.atan2(lin[0, 1], lin[0, 0]))) <= 5 + 1e-4
    as_uint8, _ = random_affine(
        (images * 255).to(torch.uint8), generator=torch.Generator().manual_seed(0)
    )
    assert as_uint8.dtype == torch.uint8 and (as_uint8.float() - warped * 255).abs().max() <= 1


def test_density_maps_preserve_counts_and_point_map_follows_the_protocol():
    points = torch.tensor([[0.2, 0.3], [63.9, 47.9], [10.5, 20.5], [10.7, 20.2]])
    full = gaussian_density([points], (48, 64), stride=1, sigma=4.0)[0, 0]
    assert full.shape == (48, 64) and torch.isclose(full.sum(), torch.tensor(4.0))
    pooled = gaussian_density([points], (48, 64), stride=8, sigma=4.0)[0, 0]
    assert pooled.shape == (6, 8) and torch.isclose(pooled.sum(), torch.tensor(4.0))
    batch = gaussian_density([points, points[:1], torch.zeros(0, 2)], (48, 64), 8, 4.0)
    assert batch.shape == (3, 1, 6, 8) and batch.sum((1, 2, 3)).tolist() == pytest.approx([4, 1, 0])
    raster = point_map(points, (48, 64))
    assert raster.sum() == 3  # two heads share pixel (10, 20): assignment counts it once
    assert raster[20, 10] == 1 and raster[47, 63] == 1 and raster[0, 0] == 1
