"""Built-in synthetic RGB-T crowds: labels in the thermal frame, an RGB image that is not.

Each image draws from independent random streams (scene, people, distractors, displacement,
sensor noise) seeded from (synth_seed, split, index). Changing one setting therefore changes only
its own part: the same seed with synth_shift=0 renders the same scene registered (as long as the
canvas margin, at least a sixth of the image side, covers both displacements), which is what
lets the tests measure the displacement from the images themselves.

Thermal: background temperature plus warm heads and bodies, warm person-shaped decoys that
only the RGB image can reject, and warm non-person objects (vehicles, vents), pseudo-coloured.
RGB: textured people plus cold look-alikes (posters, mannequins) that are absent from thermal,
darkened and noisy at night, then displaced from the thermal frame by a random affine (and
optionally a smooth local field) with ``grid_sample``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from model.config import DataConfig
from model.data import render
from model.data.sample import PairSet, Sample, Splits, compute_stats, to_thermal_channels

SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
STREAMS = ("scene", "people", "distractors", "warp", "noise", "decoys")


def _generators(seed: int, split: str, index: int) -> dict[str, torch.Generator]:
    base = ((seed * 1_000_003 + SPLIT_CODES[split]) * 100_003 + index) % (2**61)
    return {
        name: torch.Generator().manual_seed((base * 16 + k) % (2**63))
        for k, name in enumerate(STREAMS)
    }


def _uniform(g: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=g)


def _people(cfg: DataConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Head points (N, 2) in the thermal frame and head radii (N,), clustered like real crowds."""
    h, w = cfg.synth_height, cfg.synth_width
    n = int(torch.randint(cfg.synth_min_people, cfg.synth_max_people + 1, (1,), generator=g))
    clusters = _uniform(g, 0.15, 0.85, 3, 2) * torch.tensor([w, h])
    which = torch.randint(0, 3, (n,), generator=g)
    spread = 0.12 * min(h, w)
    clustered = clusters[which] + torch.randn(n, 2, generator=g) * spread
    scattered = torch.rand(n, 2, generator=g) * torch.tensor([w, h])
    # Uneven density across the image makes the regional (GAME1-3) counts informative.
    points = torch.where(torch.rand(n, 1, generator=g) < 0.6, clustered, scattered)
    points = torch.stack([points[:, 0].clamp(2, w - 2), points[:, 1].clamp(2, h - 2)], 1)
    return points, _head_radius(cfg, points[:, 1])


def _head_radius(cfg: DataConfig, rows: torch.Tensor) -> torch.Tensor:
    # Perspective: people near the bottom of the frame are closer and larger.
    base = max(1.5, min(cfg.synth_height, cfg.synth_width) / 48)
    return base * (0.6 + 0.8 * rows.clamp(0, cfg.synth_height) / cfg.synth_height)


def _figures(points: torch.Tensor, radii: torch.Tensor, g: torch.Generator):
    """Head and body ellipses of person-like figures: centres, radii and colours."""
    n = len(points)
    bodies = points + torch.stack([torch.zeros(n), 2.6 * radii], 1)
    body_radii = torch.stack([1.2 * radii, 2.0 * radii], 1)
    head_radii = radii[:, None].expand(n, 2)
    hair = _uniform(g, 0.03, 0.2, n, 1) * torch.tensor([1.0, 0.85, 0.7])  # dark against the ground
    shirts, trousers = torch.rand(n, 3, generator=g), _uniform(g, 0.05, 0.6, n, 3)
    return (bodies, body_radii, shirts, trousers), (points, head_radii, hair)


def _displacement(cfg: DataConfig, g: torch.Generator) -> dict:
    """Per-image affine thermal -> RGB; unit draws scaled by the settings (0 = registered)."""
    unit = _uniform(g, -1, 1, 4)
    return {
        "shift": (float(unit[0]) * cfg.synth_shift, float(unit[1]) * cfg.synth_shift),
        "rotation": float(unit[2]) * cfg.synth_rotation,
        "scale": 1 + float(unit[3]) * cfg.synth_scale,
    }


def pixel_affine(params: dict, height: int, width: int) -> torch.Tensor:
    """2x3 matrix A with q = A @ (x, y, 1): where thermal pixel (x, y) shows up in the RGB image.

    q = s R(a) (p - c) + c + t, with c the image centre, R(a) = [[cos a, -sin a], [sin a, cos a]]
    in (x right, y down) pixels (positive a turns the content clockwise on screen), s the scale
    and t the shift in pixels.
    """
    angle = math.radians(params["rotation"])
    s = params["scale"]
    lin = s * torch.tensor(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    centre = torch.tensor([width / 2, height / 2])
    offset = centre - lin @ centre + torch.tensor(params["shift"])
    return torch.cat([lin, offset[:, None]], 1)


def _margin(cfg: DataConfig) -> int:
    # Canvas margin so the displaced RGB never samples outside the rendered scene. A fixed
    # generous minimum keeps the canvas (and so the scene) identical across small displacements.
    h, w = cfg.synth_height, cfg.synth_width
    half_diag = 0.5 * math.hypot(h, w)
    s = max(1 - cfg.synth_scale, 1e-3)
    need = (2 * math.sin(math.radians(cfg.synth_rotation) / 2) + cfg.synth_scale) * half_diag / s
    need += math.sqrt(2) * cfg.synth_shift + cfg.synth_local_warp + 2
    return max(max(h, w) // 6, math.ceil(need))


def _warp_rgb(canvas, m, affine, local, height, width):
    """Sample the canvas at A^-1(q) + d(q) for every RGB pixel centre q."""
    ys = torch.arange(height) + 0.5
    xs = torch.arange(width) + 0.5
    q = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (H, W, 2)
    lin, off = affine[:, :2], affine[:, 2]
    p = (q - off) @ torch.linalg.inv(lin).T
    if local is not None:
        p = p + local.permute(1, 2, 0)
    size = torch.tensor([canvas.shape[-1], canvas.shape[-2]], dtype=torch.float32)
    grid = 2 * (p + m) / size - 1  # align_corners=False: pixel centre i + 0.5 -> normalised
    return F.grid_sample(
        canvas[None], grid[None], mode="bilinear", padding_mode="border", align_corners=False
    )[0]


def _rgb_points(points, affine, local, height, width):
    """Where each labelled head appears in the RGB image: solve q = A(p - d(q)) by iteration."""
    q = points @ affine[:, :2].T + affine[:, 2]
    if local is None or len(points) == 0:
        return q
    size = torch.tensor([width, height], dtype=torch.float32)
    for _ in range(5):
        grid = (2 * q / size - 1)[None, None]
        d = F.grid_sample(local[None], grid, align_corners=False, padding_mode="border")[0, :, 0].T
        q = (points - d) @ affine[:, :2].T + affine[:, 2]
    return q


@contextmanager
def _one_thread():
    """Rendering is hundreds of small ops: intra-op threads only add barriers, and on a busy
    machine those stall (measured 5x slower on 2 loaded cores), so render on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def synth_sample(cfg: DataConfig, split: str, index: int) -> Sample:
    """Render one synthetic pair deterministically from (cfg.synth_seed, split, index)."""
    with _one_thread():
        return _render_sample(cfg, split, index)


def _warm_objects(cfg: DataConfig, g: torch.Generator) -> dict:
    """1-3 large, elongated warm things that are not people (engines, vents, lamps)."""
    h, w = cfg.synth_height, cfg.synth_width
    k = int(torch.randint(1, 4, (1,), generator=g))
    person = _head_radius(cfg, torch.tensor(h / 2))  # not the crowd's: streams stay independent
    return {
        "at": torch.rand(k, 2, generator=g) * torch.tensor([w, h]),
        "size": _uniform(g, 1.0, 2.5, k, 2) * torch.tensor([3.0, 1.0]) * person,
        "angle": _uniform(g, 0, math.pi, k),
        "heat": _uniform(g, 0.35, 0.6, k),
        "colour": _uniform(g, 0.15, 0.5, k, 1) * _uniform(g, 0.7, 1.0, k, 3),  # dull in RGB
    }


def _decoys(cfg: DataConfig, n_people: int, g: torch.Generator):
    """Warm person-shaped things that are not people: head points and radii."""
    h, w = cfg.synth_height, cfg.synth_width
    k = int(round(cfg.synth_decoys * n_people))
    if cfg.synth_max_decoys > 0:  # drawn only when asked: the stream of older settings stays
        k += int(torch.randint(0, cfg.synth_max_decoys + 1, (1,), generator=g))
    at = torch.rand(k, 2, generator=g) * torch.tensor([w, h])
    return at, _head_radius(cfg, at[:, 1])


def _warm_figures(xs, ys, heads, radii, bodies, body_radii, g) -> torch.Tensor:
    """Heat of person-like figures: a warm head and a weaker body."""
    n = len(heads)
    heat = render.gaussians(xs, ys, heads, 0.9 * radii[:, None].expand(n, 2),
                            _uniform(g, 0.5, 0.65, n))
    return heat + render.gaussians(xs, ys, bodies, body_radii * 0.8, _uniform(g, 0.2, 0.3, n))


def _thermal_image(grid, cfg, ground, crowd, warm, g) -> torch.Tensor:
    """Heat: ground + warm people on the labels + warm decoys + warm objects, pseudo-coloured.
    ``grid`` = (xs, ys, margin) of the padded canvas; ``crowd`` = (points, radii, body)."""
    xs, ys, m = grid
    points, radii, body = crowd
    heat = 0.25 + 0.08 * ground[0]
    if cfg.synth_shared_scene > 0:  # the scene's layout (paths, walls) seen by both cameras
        heat = heat + cfg.synth_shared_scene * ground[1:].mean(0)
    heat = heat + _warm_figures(xs, ys, points, radii, body[0], body[1], g["people"])
    decoys, decoy_radii = _decoys(cfg, len(points), g["decoys"])
    if len(decoys):
        decoy_body = _figures(decoys, decoy_radii, g["decoys"])[0]
        heat = heat + _warm_figures(xs, ys, decoys, decoy_radii, decoy_body[0], decoy_body[1],
                                    g["decoys"])
    heat = heat + render.rotated_gaussians(
        xs, ys, warm["at"], warm["size"], warm["angle"], warm["heat"]
    )
    heat = heat + 0.01 * torch.randn(heat.shape, generator=g["noise"])
    if cfg.synth_thermal_blur > 0:
        heat = _blur(heat, cfg.synth_thermal_blur)
    return render.pseudo_colour(heat[m : m + cfg.synth_height, m : m + cfg.synth_width])


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of an (H, W) image, edges replicated."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.pad(image[None, None], (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))[0, 0]


def _rgb_canvas(origin, ground, g, people, lookalikes, warm) -> torch.Tensor:
    """Daylight RGB scene in thermal-frame coordinates: ground, warm objects as dull patches,
    then people and cold look-alikes drawn alike so that shape alone cannot tell them apart."""
    colour = _uniform(g["scene"], 0.35, 0.6, 3, 1, 1)
    canvas = (colour + 0.12 * ground[1:]).clamp(0, 1)
    canvas = render.ellipses_over(canvas, origin, warm["at"], warm["size"] * 1.5, warm["colour"])
    for layer in range(2):  # bodies, then heads on top
        parts = [torch.cat([a, b]) for a, b in zip(people[layer], lookalikes[layer], strict=True)]
        canvas = render.ellipses_over(canvas, origin, *parts)
    return canvas


def _render_sample(cfg: DataConfig, split: str, index: int) -> Sample:
    h, w = cfg.synth_height, cfg.synth_width
    g = _generators(cfg.synth_seed, split, index)
    m = _margin(cfg)
    xs = torch.arange(w + 2 * m) + 0.5 - m  # canvas pixel centres in thermal-frame coordinates
    ys = torch.arange(h + 2 * m) + 0.5 - m
    origin = (float(xs[0]), float(ys[0]))

    night = bool(torch.rand(1, generator=g["scene"]) < cfg.synth_night_fraction)
    ground = render.smooth_field(g["scene"], xs, ys, (h, w), channels=4)
    points, radii = _people(cfg, g["people"])
    people = _figures(points, radii, g["people"])
    warm = _warm_objects(cfg, g["distractors"])
    n_fake = int(torch.randint(1, max(2, h * w // 4000) + 1, (1,), generator=g["distractors"]))
    # Look-alikes anywhere on the canvas: the RGB camera also sees past the thermal frame.
    fake_at = (
        torch.rand(n_fake, 2, generator=g["distractors"]) * torch.tensor([len(xs), len(ys)]) - m
    )
    lookalikes = _figures(fake_at, _head_radius(cfg, fake_at[:, 1]), g["distractors"])

    thermal = _thermal_image((xs, ys, m), cfg, ground, (points, radii, people[0]), warm, g)
    canvas = _rgb_canvas(origin, ground, g, people, lookalikes, warm)

    params = _displacement(cfg, g["warp"])
    affine = pixel_affine(params, h, w)
    local = None
    if cfg.synth_local_warp > 0:
        local = render.upsampled_noise(g["warp"], (2, 3, 4), (h, w))
        local = local * cfg.synth_local_warp / local.norm(dim=0).max().clamp(min=1e-6)
    rgb = _warp_rgb(canvas, m, affine, local, h, w)
    # Night: a dark, noisy RGB sensor; the thermal image does not care about light.
    b = cfg.synth_night_brightness
    brightness, noise = ((_uniform(g["scene"], b * 4 / 7, b * 10 / 7, 1), cfg.synth_night_noise)
                         if night else (1.0, 0.015))
    rgb = rgb * brightness + noise * torch.randn(rgb.shape, generator=g["noise"])
    meta = {
        **params,
        "night": night,
        "affine": affine,  # thermal pixel -> RGB pixel, see pixel_affine
        "rgb_points": _rgb_points(points, affine, local, h, w),  # heads as seen in the RGB
        "lookalikes": fake_at,  # heads of the cold look-alikes, thermal-frame coordinates
    }
    rgb = (rgb.clamp(0, 1) * 255).round().to(torch.uint8)
    return Sample(id=str(index), rgb=rgb, thermal=thermal, points=points.float(), meta=meta)


def synthetic_pairs(cfg: DataConfig, split: str, n: int, thermal_channels: int = 3) -> PairSet:
    samples = [synth_sample(cfg, split, i) for i in range(n)]
    for s in samples:
        s.thermal = to_thermal_channels(s.thermal, thermal_channels)
    return PairSet(split, samples)


def synthetic_splits(cfg: DataConfig, thermal_channels: int = 3) -> Splits:
    train = synthetic_pairs(cfg, "train", cfg.synth_n_train, thermal_channels)
    val = synthetic_pairs(cfg, "val", cfg.synth_n_val, thermal_channels)
    test = synthetic_pairs(cfg, "test", cfg.synth_n_test, thermal_channels)
    return Splits(train, val, test, "synthetic", compute_stats(train))
