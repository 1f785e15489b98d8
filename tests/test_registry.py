"""Every registry entry keeps its kind's contract, whichever module registered it; a part
registered by a test is a valid config choice and is what the network builds."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from model.backbones import STRIDES, build_encoder
from model.config import LossConfig, ModelConfig
from model.errors import ConfigError
from model.network import build_model
from model.registry import lookup, names, register, unregister


def texture(*shape: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def test_off_is_an_entry_of_every_switchable_kind():
    assert "none" in names("aligner") and "none" in names("stn")
    assert {"flow", "deform"} <= set(names("aligner"))
    assert set(names("backbone")) >= {"tiny", "vgg16_bn", "vgg19"}
    assert set(names("fusion")) >= {"concat", "sum"}
    assert set(names("density_loss")) >= {"mse", "bayesian"}


@pytest.mark.parametrize("name", names("aligner"))
def test_every_aligner_is_the_identity_at_init_and_passes_gradients(name):
    module = lookup("aligner", name)(8).double()
    reference = texture(2, 8, 12, 16)
    moving = texture(2, 8, 12, 16).mul(0.5).requires_grad_()
    aligned, displacement = module(reference, moving)
    assert aligned.shape == moving.shape
    assert torch.allclose(aligned, moving, atol=1e-6)
    assert displacement is None or displacement.shape == (2, 2, 12, 16)
    assert displacement is None or displacement.abs().max() == 0
    loss = aligned.square().sum() + (0 if displacement is None else displacement.sum())
    loss.backward()
    assert moving.grad is not None and moving.grad.abs().sum() > 0
    params = list(module.parameters())
    assert all(p.grad is not None for p in params)
    assert not params or any(p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("name", names("aligner"))
def test_every_aligner_gives_the_same_answer_on_channels_last_input(name):
    """The trainer feeds channels_last tensors on CUDA; a view that assumes NCHW would fail."""
    torch.manual_seed(0)
    module = lookup("aligner", name)(8).double()
    for p in module.parameters():  # away from the zero init, so offsets are non-zero
        torch.nn.init.normal_(p, std=0.1)
    reference, moving = texture(2, 8, 12, 16), texture(2, 8, 12, 16).flip(-1)
    plain = module(reference, moving)
    last = module(*(x.contiguous(memory_format=torch.channels_last)
                    for x in (reference, moving)))
    for a, b in zip(plain, last, strict=True):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("name", names("stn"))
def test_every_stn_is_the_identity_at_init(name):
    module = lookup("stn", name)(3, 1).double()
    moving, reference = texture(2, 3, 32, 40), texture(2, 1, 32, 40)
    warped, theta = module(moving, reference)
    assert torch.allclose(warped, moving, atol=1e-6)
    assert theta is None or torch.equal(theta, torch.eye(2, 3).double().expand(2, 2, 3))


@pytest.mark.parametrize("name", names("fusion"))
def test_every_fusion_keeps_the_shape_and_uses_both_inputs(name):
    module = lookup("fusion", name)(8)
    reference = torch.randn(2, 8, 6, 10, requires_grad=True)
    moving = torch.randn(2, 8, 6, 10, requires_grad=True)
    fused = module(reference, moving)
    assert fused.shape == (2, 8, 6, 10)
    fused.sum().backward()
    assert reference.grad.abs().sum() > 0 and moving.grad.abs().sum() > 0


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", names("backbone"))
def test_every_backbone_has_the_stage_interface_it_declares(name, in_channels):
    parts = build_encoder(name, in_channels)
    assert [f.stride for f in parts.feature_info] == list(STRIDES)
    x = parts.stem(torch.randn(1, in_channels, 32, 48))
    with torch.no_grad():
        for stage, info in zip(parts.stages, parts.feature_info, strict=True):
            x = stage(x)
            assert x.shape == (1, info.channels, 32 // info.stride, 48 // info.stride)


@pytest.mark.parametrize("name", names("density_loss"))
def test_every_density_loss_is_finite_and_smallest_near_the_truth(name):
    loss = lookup("density_loss", name)(LossConfig(density=name))
    points = [torch.tensor([[12.0, 12.0], [44.0, 20.0]]), torch.zeros(0, 2)]  # cell centres
    empty = torch.zeros(2, 1, 4, 8, requires_grad=True)
    value = loss(empty, points, (32, 64))
    assert torch.isfinite(value) and value > 0  # two people predicted as nobody
    value.backward()
    assert torch.isfinite(empty.grad).all() and empty.grad.abs().sum() > 0
    near = torch.zeros(2, 1, 4, 8)
    near[0, 0, 1, 1] = near[0, 0, 2, 5] = 1.0  # one unit of mass on each person's cell
    assert loss(near, points, (32, 64)) < value


class ShiftAlign(nn.Module):
    """A test aligner: moving features shifted one pixel left, displacement (dx, dy) = (1, 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, reference: torch.Tensor, moving: torch.Tensor):
        displacement = torch.zeros_like(moving[:, :2])
        displacement[:, 0] = 1.0
        return torch.roll(moving, -1, dims=-1), displacement


@pytest.fixture
def test_shift():
    register("aligner", "test_shift")(ShiftAlign)
    yield
    unregister("aligner", "test_shift")


def test_an_aligner_registered_elsewhere_is_a_config_choice_and_is_built(test_shift):
    cfg = ModelConfig(aligner="test_shift")
    net = build_model(cfg)
    assert isinstance(net.offset, ShiftAlign)
    assert net.offset.channels == net.encoder.feature_info[0].channels
    out = net(torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32))
    assert out.displacement[:, 0].eq(1).all() and out.displacement[:, 1].eq(0).all()
    assert torch.equal(out.aligned_features[0][1], torch.roll(out.moving_features, -1, -1))


def test_an_unregistered_aligner_is_refused_with_the_valid_names():
    with pytest.raises(ConfigError, match=r"aligner='test_shift' is not valid; .*"
                                          r"choose one of none, flow, deform"):
        ModelConfig(aligner="test_shift")


def test_a_plugin_registered_first_still_lists_after_the_built_ins():
    """A plugin may register before anything imported the built-in aligners (the CLI no longer
    imports them at start-up); the valid names still read built-ins first."""
    code = ("from model.registry import names, register\n"
            "register('aligner', 'mine')(type('Mine', (), {}))\n"
            "print(','.join(names('aligner')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    listed = done.stdout.strip().split(",")
    assert listed[-1] == "mine" and {"none", "flow", "deform"} <= set(listed[:-1])
