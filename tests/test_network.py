"""The network: every ablation variant of the demo study builds, runs, backpropagates and is
sized right; parts come from the registries, and a part registered by a test is used."""

from pathlib import Path

import pytest
import torch

from ablate.study.study import load_study
from model.config import ModelConfig
from model.data.batch import Batch
from model.layers.grl import grad_reverse
from model.network import build_model, parameter_groups

DEMO = load_study(Path(__file__).resolve().parents[1] / "studies" / "demo.toml")
# The term each loss weight adds, and the module it needs (None: always available).
TERMS = {"local_count": ("local_count", None), "feat_l1": ("feat_l1", None),
         "tv": ("tv", "aligner"), "domain": ("domain", "domain_head"),
         "multiscale_weight": ("density_s4", "multiscale_head")}


def make_batch(b=2, h=64, w=64, thermal_channels=3):
    gen = torch.Generator().manual_seed(0)
    points = [torch.rand(5 + i, 2, generator=gen) * torch.tensor([w, h]) for i in range(b)]
    return Batch(
        rgb=torch.randn(b, 3, h, w, generator=gen),
        thermal=torch.randn(b, thermal_channels, h, w, generator=gen),
        points=points,
        ids=[str(i) for i in range(b)],
    )


def expected_terms(run_cfg) -> set[str]:
    """Every term whose weight is non-zero and whose module is on."""
    expected = {"density"}
    for weight, (term, module) in TERMS.items():
        if getattr(run_cfg.loss, weight) > 0 and (module is None or
                                                  getattr(run_cfg.model, module) != "none"):
            expected.add(term)
    return expected


@pytest.mark.parametrize("backbone", ["tiny", "vgg16_bn"])
@pytest.mark.parametrize("variant", list(DEMO.variants))
def test_every_ablation_variant_trains_one_step(variant, backbone):
    from model.losses import build_loss

    run_cfg = DEMO.config(variant, seed=0)
    cfg = ModelConfig(**{**run_cfg.to_dict()["model"], "backbone": backbone})
    net = build_model(cfg)
    loss_fn = build_loss(run_cfg.loss, cfg)
    batch = make_batch()
    out = net(batch.rgb, batch.thermal)
    total, terms = loss_fn(out, batch)
    assert torch.isfinite(total)
    assert all(torch.isfinite(v) for v in terms.values())
    assert set(terms) == expected_terms(run_cfg)
    total.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("ratio", [8, 16, 32])
@pytest.mark.parametrize("size", [(64, 64), (480, 640)])
def test_output_shapes(ratio, size):
    h, w = size
    cfg = ModelConfig(downsample_ratio=ratio, multiscale_head="stride4", stn="bounded",
                      aligner="flow")
    with torch.no_grad():
        out = build_model(cfg)(torch.randn(1, 3, h, w), torch.randn(1, 3, h, w))
    assert out.density.shape == (1, 1, h // ratio, w // ratio)
    assert out.density_s4.shape == (1, 1, h // 4, w // 4)
    assert out.displacement.shape == (1, 2, h // 2, w // 2)
    assert out.offsets is out.displacement  # the former name still reads the field
    assert out.theta.shape == (1, 2, 3)
    assert (out.density >= 0).all()


@pytest.mark.parametrize("ratio", [8, 32])
def test_vgg16_bn_output_shape(ratio):
    cfg = ModelConfig(backbone="vgg16_bn", shared_backbone=True, fusion="sum",
                      downsample_ratio=ratio)
    with torch.no_grad():
        out = build_model(cfg)(torch.randn(1, 3, 96, 128), torch.randn(1, 3, 96, 128))
    assert out.density.shape == (1, 1, 96 // ratio, 128 // ratio)


def test_deform_offsets_and_one_channel_thermal_with_rgb_reference():
    cfg = ModelConfig(aligner="deform", offset_stage=2,
                      thermal_channels=1, reference="rgb", stn="bounded")
    out = build_model(cfg)(torch.randn(2, 3, 64, 64), torch.randn(2, 1, 64, 64))
    assert out.displacement.shape == (2, 2, 16, 16)  # the mean of the 9 taps' (dx, dy)
    assert out.moving_features.shape == out.aligned_features[0][1].shape
    assert out.moving_warped.shape == (2, 1, 64, 64)  # the thermal image is the one warped


def test_every_variant_fills_the_output_the_same_way():
    """Off modules are the identity: their output is the input and only theta/displacement are
    None; ``forward`` does not branch on flags."""
    torch.manual_seed(0)
    rgb, thermal = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    off = build_model(ModelConfig()).eval()
    with torch.no_grad():
        out = off(rgb, thermal)
    assert out.theta is None and out.displacement is None
    assert torch.equal(out.moving_warped, rgb)  # the moving image, untouched
    assert len(out.aligned_features) == 2
    assert torch.equal(out.aligned_features[0][1], out.moving_features)
    on = build_model(ModelConfig(stn="bounded", aligner="flow")).eval()
    with torch.no_grad():
        out = on(rgb, thermal)
    assert out.theta.shape == (2, 2, 3) and out.displacement.shape == (2, 2, 32, 32)
    assert len(out.aligned_features) == 2


def module_names(net):
    return {name.split(".")[0] for name, _ in net.named_parameters()}


def test_modules_that_are_off_have_no_parameters():
    plain = build_model(ModelConfig())
    assert module_names(plain) == {"encoder", "fusion", "head"}
    full = build_model(ModelConfig(stn="bounded", aligner="flow", domain_head="grl",
                                   multiscale_head="stride4"))
    assert module_names(full) == {"encoder", "fusion", "head", "stn", "offset", "domain", "head_s4"}
    summed = build_model(ModelConfig(shared_backbone=True, fusion="sum"))
    assert "fusion" not in module_names(summed)
    assert summed.encoder.stages_thermal is None


def test_shared_backbone_shares_all_but_the_stems():
    separate = build_model(ModelConfig())
    shared = build_model(ModelConfig(shared_backbone=True))
    n_sep = sum(p.numel() for p in separate.encoder.parameters())
    n_shared = sum(p.numel() for p in shared.encoder.parameters())
    n_stages = sum(p.numel() for p in shared.encoder.stages_rgb.parameters())
    assert n_sep - n_shared == n_stages


def test_parameter_groups_split_backbone_from_heads():
    net = build_model(ModelConfig(stn="bounded"))
    groups = parameter_groups(net)
    assert len(groups["backbone"]) + len(groups["head"]) == len(list(net.parameters()))
    stn_ids = {id(p) for p in net.stn.parameters()}
    assert stn_ids <= {id(p) for p in groups["head"]}


def test_grl_reverses_and_scales_the_gradient():
    x = torch.randn(4, 8, requires_grad=True)
    weights = torch.randn(4, 8)
    (x * weights).sum().backward()
    plain = x.grad.clone()
    x.grad = None
    (grad_reverse(x, 0.3) * weights).sum().backward()
    assert torch.allclose(x.grad, -0.3 * plain)


def test_grl_in_the_model_reverses_the_domain_gradient_to_features():
    torch.manual_seed(0)
    net = build_model(ModelConfig(domain_head="grl", grl_lambda=0.5))
    batch = make_batch()
    out = net(batch.rgb, batch.thermal)
    loss = torch.nn.functional.cross_entropy(out.domain_logits, out.domain_labels)
    stem = net.encoder.stem_rgb.weight
    (g_rev,) = torch.autograd.grad(loss, stem, retain_graph=True)
    net.domain.lam = -1.0  # grad_reverse(x, -1) is the plain gradient
    out = net(batch.rgb, batch.thermal)
    loss = torch.nn.functional.cross_entropy(out.domain_logits, out.domain_labels)
    (g_plain,) = torch.autograd.grad(loss, stem)
    assert torch.allclose(g_rev, -0.5 * g_plain, atol=1e-7)


@pytest.mark.parametrize(
    ("rgb", "thermal", "message"),
    [
        ((2, 1, 64, 64), (2, 3, 64, 64), "rgb has shape"),
        ((2, 3, 64, 64), (2, 1, 64, 64), "thermal_channels=3"),
        ((2, 3, 64, 64), (2, 3, 64, 72), "differ"),
        ((2, 3, 60, 64), (2, 3, 60, 64), "not divisible by downsample_ratio=8"),
    ],
)
def test_bad_inputs_raise_value_error(rgb, thermal, message):
    net = build_model(ModelConfig())
    with pytest.raises(ValueError, match=message):
        net(torch.randn(*rgb), torch.randn(*thermal))


@pytest.mark.parametrize(
    ("field", "value", "choices"),
    [
        ("backbone", "resnet50", "tiny, vgg16_bn, vgg19"),
        ("fusion", "max", "concat, sum"),
        ("aligner", "warp", "none, flow, deform"),
        ("stn", "rigid", "none, affine, bounded"),
        ("reference", "depth", "thermal, rgb"),
        ("downsample_ratio", 4, "8, 16, 32"),
    ],
)
def test_unknown_names_list_the_valid_choices(field, value, choices):
    with pytest.raises(ValueError, match=f"{field}={value!r}.*{choices}"):
        ModelConfig(**{field: value})


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not found at .*nope.pth"):
        build_model(ModelConfig(backbone="vgg16_bn", pretrained=str(tmp_path / "nope.pth")))


def test_pretrained_state_dict_is_loaded_into_both_stems(tmp_path):
    from torchvision.models import vgg16_bn

    source = vgg16_bn(weights=None)
    path = tmp_path / "vgg16_bn.pth"
    torch.save(source.state_dict(), path)
    net = build_model(ModelConfig(backbone="vgg16_bn", pretrained=str(path), thermal_channels=1))
    assert torch.equal(net.encoder.stem_rgb.weight, source.features[0].weight)
    grey = source.features[0].weight.sum(dim=1, keepdim=True)
    assert torch.allclose(net.encoder.stem_thermal.weight, grey)
    assert torch.equal(net.encoder.stages_rgb[1][0].weight, source.features[7].weight)


def test_the_public_entry_points_work_from_the_package_top():
    import model
    import model.metrics

    net = model.build_model(model.ModelConfig(fusion="sum"))
    assert type(net.fusion).__name__ == "SumFusion"
    row = model.metrics.game_per_image(torch.zeros(1, 1, 4, 4), torch.tensor([[3.0, 5.0]]),
                                       (32, 32))
    assert row["game0"] == 1.0 and row["true_count"] == 1.0
