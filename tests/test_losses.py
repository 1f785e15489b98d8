"""Known-answer tests for the training losses and their terms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model.config import LossConfig, ModelConfig
from model.data.batch import Batch
from model.losses import (
    bayesian_image_loss,
    build_loss,
    feature_l1,
    gaussian_density,
    local_count_loss,
    total_variation,
)
from model.output import ModelOutput
from model.registry import names

SIZE = (64, 64)


def make_batch(points: list[torch.Tensor], size: tuple[int, int] = SIZE,
               full_sizes: list[tuple[int, int]] | None = None) -> Batch:
    n = len(points)
    return Batch(
        rgb=torch.zeros(n, 3, *size, dtype=torch.uint8),
        thermal=torch.zeros(n, 3, *size, dtype=torch.uint8),
        points=points,
        ids=[str(i) for i in range(n)],
        full_sizes=full_sizes,
    )


def two_images() -> list[torch.Tensor]:
    return [torch.tensor([[10.0, 12.0], [40.5, 50.2], [33.0, 5.0]]), torch.tensor([[60.0, 3.0]])]


def loop_local_count(density, target, levels, weights):
    """The loss written cell by cell, as the GAME protocol reads."""
    total = 0.0
    b, _, h, w = density.shape
    for level, weight in zip(levels, weights, strict=True):
        p = 2**level
        errors = []
        for n in range(b):
            for i in range(p):
                for j in range(p):
                    rows = slice(i * h // p, (i + 1) * h // p)
                    cols = slice(j * w // p, (j + 1) * w // p)
                    pred = density[n, 0, rows, cols].sum()
                    true = target[n, 0, rows, cols].sum()
                    errors.append(abs(float(pred - true)))
        total += weight * sum(errors) / len(errors)
    return total


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (3, 1, 7, 5), (1, 1, 13, 11), (2, 1, 3, 2)])
def test_local_count_equals_a_per_cell_loop(shape):
    generator = torch.Generator().manual_seed(shape[2])
    density = torch.rand(shape, generator=generator, dtype=torch.float64)
    target = torch.rand(shape, generator=generator, dtype=torch.float64)
    levels, weights = (0, 1, 2, 3), (0.3, 1.0, 0.5, 0.25)
    ours = local_count_loss(density, target, levels, weights)
    assert float(ours) == pytest.approx(loop_local_count(density, target, levels, weights))


def test_gaussian_density_preserves_counts_near_borders():
    points = [
        torch.tensor([[0.0, 0.0], [71.9, 63.9], [0.5, 40.0], [36.0, 63.0], [20.0, 20.0]]),
        torch.tensor([[72.0, 10.0], [-0.1, 5.0], [5.0, 64.0]]),  # all outside: dropped
        torch.zeros(0, 2),
    ]
    target = gaussian_density(points, (64, 72), stride=8, sigma=6.0)
    assert target.shape == (3, 1, 8, 9)
    torch.testing.assert_close(target.sum(dim=(1, 2, 3)), torch.tensor([5.0, 0.0, 0.0]))
    assert (target >= 0).all()


def test_gaussian_density_puts_mass_in_the_points_cell():
    target = gaussian_density([torch.tensor([[20.0, 43.0]])], (64, 64), stride=8, sigma=1.0)
    assert target[0, 0].argmax() == 5 * 8 + 2  # row 43 // 8, column 20 // 8


def test_mse_of_a_perfect_prediction_is_zero():
    points = two_images()
    density = gaussian_density(points, SIZE, stride=8, sigma=4.0)
    loss = build_loss(LossConfig(density="mse"), ModelConfig())
    total, terms = loss(ModelOutput(density=density), make_batch(points))
    assert float(total) == pytest.approx(0.0, abs=1e-10)
    assert set(terms) == {"density"}


def test_mse_is_summed_over_pixels_and_averaged_over_the_batch():
    points = [torch.zeros(0, 2), torch.zeros(0, 2)]
    density = torch.zeros(2, 1, 8, 8)
    density[0, 0, 0, :3] = 1.0  # squared error 3 in image 0, 0 in image 1
    loss = build_loss(LossConfig(density="mse"), ModelConfig())
    _, terms = loss(ModelOutput(density=density), make_batch(points))
    assert float(terms["density"]) == pytest.approx(1.5)


def test_bayesian_known_answer_for_one_point():
    # One point at the centre of output pixel (3, 2), all predicted mass m on that pixel: its
    # posterior is p = 1 / (1 + exp(-d^2 / (2 sigma^2))) against the background at distance d.
    sigma, ratio, mass = 8.0, 0.15, 1.0
    density = torch.zeros(8, 8, dtype=torch.float64)
    density[3, 2] = mass
    points = torch.tensor([[20.0, 28.0]], dtype=torch.float64)
    d = ratio * 64
    p = 1 / (1 + math.exp(-(d**2) / (2 * sigma**2)))
    loss = bayesian_image_loss(density, points, SIZE, sigma, ratio)
    assert float(loss) == pytest.approx(abs(1 - mass * p) + mass * (1 - p))


def _two_point_answer(d: float) -> float:
    """The Bayesian loss of the 2x2 map [[1, .5], [.5, 1]] over a 16x16 input with heads at
    the centres (4, 4) and (12, 12) of its diagonal pixels, sigma 8 (2 sigma^2 = 128), by hand.

    Diagonal pixel: squared distances 0 (own head) and 128 (other head), nearest m = 0, so the
    background sits at (d - 0)^2. Off-diagonal pixel: 64 and 64, m = 8, background (d - 8)^2.
    """
    diag = [1.0, math.exp(-128 / 128), math.exp(-(d**2) / 128)]  # own, other, background
    off = [math.exp(-64 / 128), math.exp(-64 / 128), math.exp(-((d - 8) ** 2) / 128)]
    z_diag, z_off = sum(diag), sum(off)
    # Each head gets its own diagonal pixel (mass 1), the other one (mass 1) and both
    # off-diagonal pixels (mass 0.5 each); the background the rest.
    head = (diag[0] + diag[1]) / z_diag + 2 * 0.5 * off[0] / z_off
    background = 2 * diag[2] / z_diag + 2 * 0.5 * off[2] / z_off
    return 2 * abs(1 - head) + abs(0 - background)


def test_bayesian_known_answer_for_two_points_uses_the_uncropped_short_side():
    loss = build_loss(LossConfig(density="bayesian", bayes_sigma=8.0,
                                 bayes_background_ratio=0.25), ModelConfig())
    density = torch.tensor([[[[1.0, 0.5], [0.5, 1.0]]]], dtype=torch.float64)
    points = [torch.tensor([[4.0, 4.0], [12.0, 12.0]], dtype=torch.float64)]
    # A 16x16 crop of a 32x48 image: d = 0.25 * 32 = 8, where the crop's side would give 4.
    cropped = make_batch(points, (16, 16), full_sizes=[(32, 48)])
    total, _ = loss(ModelOutput(density=density), cropped)
    assert float(total) == pytest.approx(_two_point_answer(8.0), rel=1e-6)
    whole, _ = loss(ModelOutput(density=density), make_batch(points, (16, 16)))
    assert float(whole) == pytest.approx(_two_point_answer(4.0), rel=1e-6)
    assert _two_point_answer(8.0) == pytest.approx(1.1325, abs=1e-4)  # 2 x 0.0331 + 1.0662


def test_bayesian_is_finite_and_falls_when_mass_moves_onto_the_points():
    points = two_images()
    batch = make_batch(points)
    loss = build_loss(LossConfig(density="bayesian"), ModelConfig())
    uniform = torch.stack([torch.full((1, 8, 8), len(p) / 64) for p in points])
    on_points = torch.zeros(2, 1, 8, 8)
    for n, image in enumerate(points):
        for x, y in image.tolist():
            on_points[n, 0, int(y // 8), int(x // 8)] += 1.0
    spread, _ = loss(ModelOutput(density=uniform), batch)
    peaked, _ = loss(ModelOutput(density=on_points), batch)
    assert math.isfinite(float(spread)) and math.isfinite(float(peaked))
    assert float(peaked) < float(spread)


def test_bayesian_without_points_is_the_predicted_count():
    density = torch.full((2, 1, 8, 8), 0.05)
    loss = build_loss(LossConfig(density="bayesian"), ModelConfig())
    total, _ = loss(ModelOutput(density=density), make_batch([torch.zeros(0, 2)] * 2))
    assert float(total) == pytest.approx(0.05 * 64)


@pytest.mark.parametrize("kind", names("density_loss"))
def test_gradients_reach_the_prediction(kind):
    density = torch.rand(2, 1, 8, 8, requires_grad=True)
    offsets = torch.rand(2, 2, 8, 8, requires_grad=True)
    cfg = LossConfig(density=kind, local_count=0.2, tv=0.05)
    total, terms = build_loss(cfg, ModelConfig())(
        ModelOutput(density=density, displacement=offsets), make_batch(two_images())
    )
    total.backward()
    assert set(terms) == {"density", "local_count", "tv"}
    assert density.grad is not None and density.grad.abs().sum() > 0
    assert offsets.grad is not None and offsets.grad.abs().sum() > 0


def full_output() -> ModelOutput:
    generator = torch.Generator().manual_seed(7)
    return ModelOutput(
        density=torch.rand(2, 1, 8, 8, generator=generator),
        density_s4=torch.rand(2, 1, 16, 16, generator=generator),
        displacement=torch.rand(2, 2, 8, 8, generator=generator),
        aligned_features=[(torch.zeros(2, 4, 8, 8), torch.ones(2, 4, 8, 8))],
        domain_logits=torch.randn(4, 2, generator=generator),
        domain_labels=torch.tensor([0, 0, 1, 1]),
    )


def test_total_is_the_weighted_sum_of_the_unweighted_terms():
    cfg = LossConfig(local_count=0.2, feat_l1=0.1, tv=0.05, domain=0.01, multiscale_weight=0.5)
    total, terms = build_loss(cfg, ModelConfig())(full_output(), make_batch(two_images()), 0.25)
    assert set(terms) == {"density", "local_count", "feat_l1", "tv", "domain", "density_s4"}
    expected = (
        terms["density"] + 0.2 * 0.25 * terms["local_count"] + 0.1 * terms["feat_l1"]
        + 0.05 * terms["tv"] + 0.01 * terms["domain"] + 0.5 * terms["density_s4"]
    )
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert float(terms["feat_l1"]) == pytest.approx(1.0)


def test_zero_weights_and_absent_outputs_leave_terms_out():
    output = full_output()
    _, terms = build_loss(LossConfig(), ModelConfig())(output, make_batch(two_images()))
    assert set(terms) == {"density"}
    cfg = LossConfig(local_count=0.2, feat_l1=0.1, tv=0.05, domain=0.01, multiscale_weight=0.5)
    bare = ModelOutput(density=output.density)
    _, terms = build_loss(cfg, ModelConfig())(bare, make_batch(two_images()))
    assert set(terms) == {"density", "local_count"}


def test_local_count_term_uses_the_configured_levels():
    cfg = LossConfig(local_count=1.0, local_count_levels=(1, 2), local_count_level_weights=(1, 0.5))
    points = two_images()
    density = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    _, terms = build_loss(cfg, ModelConfig())(ModelOutput(density=density), make_batch(points))
    target = gaussian_density(points, SIZE, stride=8, sigma=cfg.density_sigma).double()
    expected = loop_local_count(density, target, (1, 2), (1.0, 0.5))
    assert float(terms["local_count"]) == pytest.approx(expected, rel=1e-5)


def test_tv_known_answers():
    assert float(total_variation(torch.full((2, 2, 6, 5), 3.0))) == 0.0
    ramp = torch.arange(5.0).expand(2, 2, 6, 5)  # slope 1 along x, flat along y
    assert float(total_variation(ramp)) == pytest.approx(1.0)
    assert float(total_variation(torch.zeros(1, 2, 1, 1))) == 0.0


def test_feature_l1_averages_the_pairs():
    pairs = [(torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 3, 3)),
             (torch.zeros(1, 4, 2, 2), torch.full((1, 4, 2, 2), -3.0))]
    assert float(feature_l1(pairs)) == pytest.approx(2.0)


def test_domain_term_is_cross_entropy():
    output = full_output()
    _, terms = build_loss(LossConfig(domain=0.1), ModelConfig())(output, make_batch(two_images()))
    expected = F.cross_entropy(output.domain_logits, output.domain_labels)
    assert float(terms["domain"]) == pytest.approx(float(expected))


def test_bad_inputs_raise_value_error():
    loss = build_loss(LossConfig(local_count=0.2), ModelConfig())
    batch = make_batch(two_images())
    with pytest.raises(ValueError, match="stride 8"):
        loss(ModelOutput(density=torch.zeros(2, 1, 16, 16)), batch)
    with pytest.raises(ValueError, match="density of shape"):
        loss(ModelOutput(density=torch.zeros(3, 1, 8, 8)), batch)
    with pytest.raises(ValueError, match="local_count_scale"):
        loss(ModelOutput(density=torch.zeros(2, 1, 8, 8)), batch, -1.0)
    with pytest.raises(ValueError, match="domain_labels"):
        output = ModelOutput(density=torch.zeros(2, 1, 8, 8), domain_logits=torch.zeros(4, 2))
        build_loss(LossConfig(domain=0.1), ModelConfig())(output, batch)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_density(two_images(), SIZE, stride=8, sigma=0.0)


def _per_image_bayesian(density, points, image_size, sigma, ratio, full_sizes):
    """The per-image loop the batched loss replaced (kept verbatim as the reference)."""
    from model.targets import inside_points

    losses = []
    for i, raw in enumerate(points):
        pts, dens = inside_points(raw, image_size), density[i, 0]
        if pts.shape[0] == 0:
            losses.append(dens.sum().abs())
            continue
        (height, width), (h, w) = image_size, dens.shape
        ys = (torch.arange(h, dtype=dens.dtype) + 0.5) * (height / h)
        xs = (torch.arange(w, dtype=dens.dtype) + 0.5) * (width / w)
        dist2 = (pts[:, 1, None, None] - ys[None, :, None]) ** 2 + (
            pts[:, 0, None, None] - xs[None, None, :]) ** 2
        nearest = dist2.min(dim=0, keepdim=True).values.clamp(min=0).sqrt()
        background = (ratio * min(full_sizes[i]) - nearest) ** 2
        posterior = torch.softmax(-torch.cat([dist2, background]) / (2 * sigma**2), dim=0)
        expected = (posterior * dens).flatten(1).sum(dim=1)
        target = torch.ones_like(expected)
        target[-1] = 0
        losses.append((target - expected).abs().sum())
    return torch.stack(losses).mean()


def test_the_batched_bayesian_loss_equals_the_per_image_loop():
    """Ragged point counts (0, 1, many, some outside the crop), mixed uncropped sizes; in
    float64 so that 1e-6 measures the algorithm, not float32 rounding of a sum near 20."""
    from model.losses.bayesian import bayesian_batch_loss

    gen = torch.Generator().manual_seed(3)
    size, full_sizes = (64, 96), [(64, 96), (480, 640), (128, 96), (200, 300)]
    scale = torch.tensor([96.0, 64.0], dtype=torch.float64)
    points = [torch.zeros(0, 2, dtype=torch.float64), torch.tensor([[10.0, 20.0]]).double(),
              torch.rand(37, 2, generator=gen, dtype=torch.float64) * scale,
              torch.rand(9, 2, generator=gen, dtype=torch.float64) * scale * 1.5 - 20]
    density = torch.rand(4, 1, 8, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    per_image = bayesian_batch_loss(density[:, 0], points, size, 8.0, 0.15, full_sizes)
    batched = per_image.mean()
    (grad,) = torch.autograd.grad(batched, density)
    reference = _per_image_bayesian(density, points, size, 8.0, 0.15, full_sizes)
    (expected_grad,) = torch.autograd.grad(reference, density)
    assert batched.item() == pytest.approx(reference.item(), abs=1e-6)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
    # Each image's own loss: the padding of one image leaks into no other.
    for i in range(4):
        single = _per_image_bayesian(density[i:i + 1], points[i:i + 1], size, 8.0, 0.15,
                                     full_sizes[i:i + 1])
        assert per_image[i].item() == pytest.approx(single.item(), abs=1e-6)
    # The registered module (float32) gives the same number.
    module = build_loss(LossConfig(density="bayesian"), ModelConfig()).density_loss
    assert module(density, points, size, full_sizes).item() == pytest.approx(
        reference.item(), rel=1e-6)


def test_a_batch_where_no_image_has_a_point_is_the_predicted_count():
    loss = build_loss(LossConfig(density="bayesian"), ModelConfig()).density_loss
    density = torch.rand(3, 1, 4, 4)
    total = loss(density, [torch.zeros(0, 2)] * 3, (32, 32))
    assert float(total) == pytest.approx(float(density.sum(dim=(1, 2, 3)).mean()), abs=1e-6)
