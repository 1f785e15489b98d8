"""Alignment must work, not only exist: each module, trained alone, recovers a known warp, and
the deformable aligner reports the displacement it applies. (Identity at init and gradient
flow are checked for every registered aligner in test_registry.)"""

import math

import pytest
import torch
import torch.nn.functional as F

from model.layers.offset_align import DeformAlign, FlowAlign, tap_mean_displacement, warp_by_flow
from model.layers.stn import AffineSTN, theta_translation_px


def smooth_texture(b: int, c: int, h: int, w: int, blur: float, gen: torch.Generator):
    """Blurred noise: every pixel has gradient, so photometric alignment is well posed."""
    noise = torch.randn(b, c, h, w, generator=gen)
    radius = int(3 * blur)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * blur**2))
    k = k / k.sum()
    noise = F.conv2d(noise.reshape(b * c, 1, h, w), k.view(1, 1, 1, -1), padding=(0, radius))
    noise = F.conv2d(noise, k.view(1, 1, -1, 1), padding=(radius, 0))
    out = noise.reshape(b, c, h, w)
    return out / out.std()


def test_stn_is_identity_at_init():
    # float64: the identity to 1e-6 exactly; in float32 grid_sample's coordinate rounding
    # (about 1e-5 px at these widths) is all that differs.
    stn = AffineSTN(3, 3).double()
    moving, reference = torch.randn(2, 3, 40, 56).double(), torch.randn(2, 3, 40, 56).double()
    warped, theta = stn(moving, reference)
    assert torch.allclose(warped, moving, atol=1e-6)
    assert torch.equal(theta, torch.eye(2, 3).double().expand(2, 2, 3))
    warped32, _ = AffineSTN(3, 3)(moving.float(), reference.float())
    assert torch.allclose(warped32, moving.float(), atol=1e-4)


@pytest.mark.parametrize(("dx", "dy"), [(2.0, 0.0), (0.0, 1.0), (-1.0, 2.0)])
def test_deform_align_samples_where_its_displacement_says(dx, dy):
    """Known answer with non-zero offsets: every tap moved by (dx, dy) samples the moving
    features at p + (dx, dy), exactly what warp_by_flow does with that flow, and the reported
    displacement is (dx, dy). Swapping torchvision's (dy, dx) tap order fails both checks."""
    module = DeformAlign(4).double()
    last = module.offset[-1]
    with torch.no_grad():
        last.bias[0::2] = dy  # torchvision: (dy, dx) per kernel tap
        last.bias[1::2] = dx
    reference, moving = torch.randn(2, 4, 10, 12).double(), torch.randn(2, 4, 10, 12).double()
    aligned, displacement = module(reference, moving)
    assert displacement.shape == (2, 2, 10, 12)
    assert torch.equal(displacement[:, 0], torch.full((2, 10, 12), dx, dtype=torch.float64))
    assert torch.equal(displacement[:, 1], torch.full((2, 10, 12), dy, dtype=torch.float64))
    expected = warp_by_flow(moving, displacement)
    # Inside, where p + (dx, dy) stays in the map (the borders differ: zeros vs. clamping).
    rows = slice(max(0, -int(dy)), 10 - max(0, int(dy)))
    cols = slice(max(0, -int(dx)), 12 - max(0, int(dx)))
    assert torch.allclose(aligned[..., rows, cols], expected[..., rows, cols], atol=1e-9)
    assert not torch.allclose(aligned[..., rows, cols], moving[..., rows, cols])


def test_tap_mean_displacement_averages_the_taps_as_dx_dy():
    offsets = torch.zeros(1, 18, 2, 3)
    offsets[0, 0::2] = torch.arange(9.0)[:, None, None]  # dy of tap t = t: mean 4
    offsets[0, 1::2] = -1.0  # dx of every tap
    mean = tap_mean_displacement(offsets)
    assert mean.shape == (1, 2, 2, 3)
    assert mean[0, 0].eq(-1).all() and mean[0, 1].eq(4).all()


def test_warp_by_flow_moves_by_whole_pixels():
    x = torch.arange(20.0).view(1, 1, 1, 20).expand(1, 1, 6, 20).contiguous()
    flow = torch.zeros(1, 2, 6, 20)
    flow[:, 0] = 3.0
    warped = warp_by_flow(x, flow)
    assert torch.allclose(warped[..., :17], x[..., 3:])


def test_stn_recovers_a_known_8px_shift():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    shift, size = 8, 64
    stn = AffineSTN(3, 3)
    opt = torch.optim.Adam(stn.parameters(), lr=2e-3)

    def pair(b):
        big = smooth_texture(b, 3, size + 2 * shift, size + 2 * shift, 3.0, gen)
        reference = big[..., shift:shift + size, shift:shift + size]
        moving = big[..., shift:shift + size, 0:size]  # content moved right by `shift` px
        return moving, reference

    inner = (slice(None), slice(None), slice(shift, -shift), slice(shift, -shift))
    for _ in range(300):
        moving, reference = pair(8)
        warped, _ = stn(moving, reference)
        loss = (warped - reference)[inner].abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        moving, reference = pair(16)
        _, theta = stn(moving, reference)
    dx, dy = theta_translation_px(theta, size, size).mean(0).tolist()
    # warped(p) = moving(p + t) = reference(p + t - shift): the STN must learn t = +shift.
    assert abs(dx - shift) < 1.0, dx
    assert abs(dy) < 1.0, dy


def test_flow_align_recovers_a_smooth_displacement_field():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    h = w = 32
    ys, xs = torch.meshgrid(torch.arange(h) / h, torch.arange(w) / w, indexing="ij")
    true = torch.stack([2.0 * torch.sin(2 * math.pi * ys), 1.5 * torch.cos(2 * math.pi * xs)])
    true = true.unsqueeze(0)  # (1, 2, h, w): moving(p) = reference(p + true(p))
    module = FlowAlign(8)
    opt = torch.optim.Adam(module.parameters(), lr=2e-3)
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    for _ in range(300):
        reference = smooth_texture(8, 8, h, w, 1.5, gen)
        moving = warp_by_flow(reference, true.expand(8, -1, -1, -1))
        warped, flow = module(reference, moving)
        tv = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + (
            flow[..., 1:] - flow[..., :-1]).abs().mean()
        loss = (warped - reference)[inner].abs().mean() + 0.05 * tv
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        reference = smooth_texture(8, 8, h, w, 1.5, gen)
        moving = warp_by_flow(reference, true.expand(8, -1, -1, -1))
        _, flow = module(reference, moving)
    # Undoing moving(p) = reference(p + true(p)) needs flow(p) ~ -true(p) for a smooth field.
    error = (flow + true)[inner].norm(dim=1).mean().item()
    assert error < 1.0, error
