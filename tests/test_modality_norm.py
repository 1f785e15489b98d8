"""Per-modality batch norm in a shared backbone (``modality_norm = "separate"``): the shared
convolutions see each modality normalised by its own statistics; "shared" is the network as it
was, and a backbone without batch norm, or without shared stages, is left as it is."""

import pytest
import torch
from torch import nn

from model.backbones import ModalityBatchNorm2d, build_encoder, split_batch_norms
from model.config import ModelConfig, RunConfig
from model.network import TwoStreamEncoder

MOMENTUM = 0.1  # torch's BatchNorm2d default: running = (1 - m) running + m batch


def encoder(seed=0, **model) -> TwoStreamEncoder:
    torch.manual_seed(seed)  # each part's initial weights derive from torch's initial seed
    return TwoStreamEncoder(ModelConfig(shared_backbone=True, **model)).train()


def images(seed: int, mean: float = 0.0, b: int = 2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 32, 32, generator=gen) * 2 + mean


def first_norm_input(enc: TwoStreamEncoder, rgb, thermal):
    """The stems' outputs, which the first norm of stage 0 reads (tiny: BN, ReLU, pool)."""
    thermal_out, rgb_out = enc.stem(thermal, rgb)  # (reference, moving): thermal is reference
    return rgb_out, thermal_out


def test_split_replaces_every_norm_by_two_copies():
    stages = build_encoder("tiny", 3).stages
    norms = [m for m in stages.modules() if isinstance(m, nn.BatchNorm2d)]
    split_batch_norms(stages)
    pairs = [m for m in stages.modules() if isinstance(m, ModalityBatchNorm2d)]
    assert len(pairs) == len(norms) == 5
    assert all(p.rgb is not p.thermal for p in pairs)


@pytest.mark.parametrize("norm", ["shared", "separate"])
def test_running_statistics_are_those_of_each_modality_or_of_both(norm):
    """Known answer after one training step from fresh statistics (running mean 0): the mean
    of the batch the norm saw, times the momentum: RGB and thermal together for "shared",
    each modality's own for "separate"."""
    enc = encoder(modality_norm=norm)
    rgb, thermal = images(1, mean=3.0), images(2)
    with torch.no_grad():
        rgb_in, thermal_in = first_norm_input(enc, rgb, thermal)
        enc.stage(0, *enc.stem(thermal, rgb))
    first = enc.stages_rgb[0][0]
    if norm == "shared":
        expected = MOMENTUM * torch.cat([rgb_in, thermal_in]).mean((0, 2, 3))
        torch.testing.assert_close(first.running_mean, expected)
    else:
        torch.testing.assert_close(first.rgb.running_mean, MOMENTUM * rgb_in.mean((0, 2, 3)))
        torch.testing.assert_close(first.thermal.running_mean,
                                   MOMENTUM * thermal_in.mean((0, 2, 3)))


def run_encoder(enc: TwoStreamEncoder, rgb, thermal):
    ref, mov = enc.stem(thermal, rgb)
    for i in range(len(enc.feature_info)):
        ref, mov = enc.stage(i, ref, mov)
    return ref, mov


def thermal_statistics(enc: TwoStreamEncoder) -> list[torch.Tensor]:
    return [m.thermal.running_var.clone() for m in enc.modules()
            if isinstance(m, ModalityBatchNorm2d)]


def test_separate_thermal_statistics_are_untouched_by_rgb():
    """Two RGB batches of different brightness, one thermal batch: every thermal norm ends
    with the same statistics, and the thermal features are the same."""
    thermal = images(2)
    encoders = [encoder(modality_norm="separate") for _ in range(2)]
    with torch.no_grad():
        outputs = [run_encoder(enc, images(1, mean=m), thermal)
                   for enc, m in zip(encoders, (0.0, 5.0), strict=True)]
    for a, b in zip(*map(thermal_statistics, encoders), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(outputs[0][0], outputs[1][0], rtol=0, atol=0)  # thermal: ref
    assert not torch.equal(outputs[0][1], outputs[1][1])  # the RGB features did change


def test_shared_thermal_features_depend_on_the_rgb_batch():
    """The contrast: with one norm for both, the RGB batch moves the thermal features."""
    thermal = images(2)
    with torch.no_grad():
        outputs = [run_encoder(encoder(), images(1, mean=m), thermal)[0] for m in (0.0, 5.0)]
    assert not torch.allclose(outputs[0], outputs[1])


@pytest.mark.parametrize("mode", ["eval", "train-equal-halves"])
def test_separate_starts_as_the_shared_function(mode):
    """Both copies start as the shared norm: the same function in eval mode, and in training
    when the two halves of the batch are the same (their statistics then agree)."""
    shared, separate = encoder(), encoder(modality_norm="separate")
    channels = shared.feature_info[0].channels
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(2, 2, channels, 32, 32, generator=gen)  # what the stems give stage 0
    if mode == "eval":
        shared.eval(), separate.eval()
        args = (x, y + 2)
    else:
        args = (x, x)
    with torch.no_grad():
        for i in range(len(shared.feature_info)):
            expected = shared.stage(i, *args)
            got = separate.stage(i, *args)
            for e, g in zip(expected, got, strict=True):
                torch.testing.assert_close(g, e)
            args = expected


def test_shared_is_the_network_as_it_was():
    """"shared" keeps the hash of every run recorded before the field existed, the state-dict
    names checkpoints store, and runs the shared stage as one batch of 2B."""
    base = RunConfig().with_overrides({"shared_backbone": True})
    assert "modality_norm" not in base.identity()["model"]
    assert base.with_overrides({"modality_norm": "separate"}).config_hash() != base.config_hash()
    enc = encoder(modality_norm="shared")
    assert not any(k.endswith((".rgb.weight", ".thermal.weight")) for k in enc.state_dict())
    with torch.no_grad():
        thermal, rgb = enc.stem(images(2), images(1))
        got = enc.stage(0, thermal, rgb)
        expected = enc.stages_rgb[0](torch.cat([rgb, thermal])).chunk(2)[::-1]
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_separate_is_a_no_op_without_shared_stages_or_without_batch_norm():
    torch.manual_seed(0)
    separate_streams = TwoStreamEncoder(ModelConfig(modality_norm="separate"))
    torch.manual_seed(0)
    plain = TwoStreamEncoder(ModelConfig())
    assert separate_streams.state_dict().keys() == plain.state_dict().keys()
    vgg19 = build_encoder("vgg19", 3).stages
    keys = list(vgg19.state_dict())
    assert list(split_batch_norms(vgg19).state_dict()) == keys
    # The same network is the same experiment: without shared stages the field is no part of
    # the hash, and a study that sets it for every variant retrains nothing already done.
    two = RunConfig().with_overrides({"shared_backbone": False})
    assert two.with_overrides({"modality_norm": "separate"}).config_hash() == two.config_hash()


def test_pretrained_norms_load_into_both_copies(tmp_path):
    """A VGG16-BN state dict whose batch norms are not torch's defaults: each modality's copy
    holds the file's statistics and affine parameters."""
    from torchvision import models

    features = models.vgg.make_layers(models.vgg.cfgs["D"], batch_norm=True)
    gen = torch.Generator().manual_seed(5)
    state = {f"features.{k}": (torch.rand(v.shape, generator=gen) + 0.5
                               if v.is_floating_point() else v)
             for k, v in features.state_dict().items()}
    path = tmp_path / "vgg16_bn.pth"
    torch.save(state, path)
    enc = encoder(backbone="vgg16_bn", pretrained=str(path), modality_norm="separate")
    # make_layers indexes conv, BN, ReLU (pool); the stem is index 0, its norm index 1.
    named = dict(enc.stages_rgb.named_modules())
    first = named["0.0"]
    assert isinstance(first, ModalityBatchNorm2d)
    for copy in (first.rgb, first.thermal):
        for name in ("weight", "bias", "running_mean", "running_var"):
            torch.testing.assert_close(getattr(copy, name), state[f"features.1.{name}"],
                                       rtol=0, atol=0)
    pairs = [m for m in enc.modules() if isinstance(m, ModalityBatchNorm2d)]
    assert len(pairs) == 13  # every batch norm of VGG16-BN's 13 conv layers
    for pair in pairs:
        assert torch.equal(pair.rgb.running_var, pair.thermal.running_var)
        assert not torch.equal(pair.rgb.running_var, torch.ones_like(pair.rgb.running_var))
