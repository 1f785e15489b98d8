"""The measurements behind ``bench.py``: each returns plain numbers and times the engine's own code.

Training runs ``Trainer._train_epoch`` itself (normalise, channels_last, autocast, forward, loss,
backward, gradient clipping, AdamW step) on batches cropped beforehand, so the rate is the
model's alone; the loader is measured on its own in ``data_rate``. Every timed region starts and
ends with a device synchronisation, and warm-up work (first kernels, ``torch.compile``) is
timed apart and never counted in a rate.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from ablate.study.study import load_study
from model.config import DataConfig, RunConfig, TrainConfig
from model.data import (
    Batch,
    NormStats,
    PairSet,
    Sample,
    Splits,
    compute_stats,
    eval_batches,
    load_splits,
    normalize,
    synth_sample,
    train_batches,
)
from model.engine import Trainer, evaluate
from model.engine.device import autocast
from model.game import MetricAccumulator

ROOT = Path(__file__).resolve().parents[1]
DEMO_STUDY = ROOT / "studies" / "demo.toml"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds ``fn`` takes, with the device idle before and drained after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


# -- inputs ----------------------------------------------------------------------------------
def render_pairs(height: int, width: int, n: int) -> list[Sample]:
    """``n`` synthetic pairs of height x width from the project's renderer."""
    cfg = DataConfig(synth_height=height, synth_width=width)
    return [synth_sample(cfg, "train", i) for i in range(n)]


def repeat_pairs(rendered: list[Sample], total: int) -> PairSet:
    """``total`` pairs cycling through ``rendered`` under new ids, sharing their tensors.

    Rendering is slow and neither the loader's nor the network's cost depends on content.
    """
    return PairSet("bench", [dataclasses.replace(rendered[i % len(rendered)], id=f"p{i}")
                             for i in range(total)])


def bench_splits(pairs: PairSet, eval_pairs: PairSet) -> Splits:
    return Splits(train=pairs, val=eval_pairs, test=eval_pairs, format="synthetic",
                  stats=compute_stats(pairs))


def crop_batches(pairs: PairSet, cfg: DataConfig, batch_size: int, n: int,
                 device: torch.device) -> list[Batch]:
    """``n`` full uint8 training batches on ``device``, cut by the project's loader."""
    generator, out = torch.Generator().manual_seed(0), []
    while len(out) < n:
        for batch in train_batches(pairs, cfg, batch_size, generator, device=device):
            if len(batch.ids) == batch_size and len(out) < n:
                out.append(batch)
    sync(device)
    return out


def study_config(variant: str, overrides: dict) -> RunConfig:
    """A variant's flags and loss weights exactly as ``studies/demo.toml`` defines them."""
    return load_study(DEMO_STUDY).config(variant, 0, overrides)


# -- training --------------------------------------------------------------------------------
def _epoch(trainer: Trainer, epoch: int, batches: list[Batch]) -> int:
    """One ``_train_epoch`` over ``batches`` instead of the run's loader; returns the batches
    used."""
    used = 0

    def feed(*_args, **_kwargs) -> Iterator[Batch]:
        nonlocal used
        for batch in batches:
            used += 1
            yield batch

    with mock.patch.object(trainer.loader, "epoch", feed):
        trainer._train_epoch(epoch)
    if used != len(batches):
        raise RuntimeError("Trainer._train_epoch no longer reads Trainer.loader.epoch; "
                           "update benchmarks/measure.py so the timed step is the engine's")
    return used


def train_rate(cfg: RunConfig, splits: Splits, warmup: list[Batch], timed_batches: list[Batch],
               repeats: int = 1) -> tuple[dict, Trainer]:
    """Training pairs/s of the engine's step; the median over ``repeats`` timed epochs."""
    if cfg.train.compile:
        # Every config compiles RGBTCounter.forward anew; without a reset the earlier configs'
        # entries fill dynamo's cache and later ones silently fall back to eager.
        torch._dynamo.reset()
    with tempfile.TemporaryDirectory() as out_dir:  # the trainer writes only in fit()
        trainer = Trainer(cfg, out_dir, splits)
    device = trainer.device
    warmup_s = timed(lambda: _epoch(trainer, 0, warmup), device)
    pairs = sum(len(b.ids) for b in timed_batches)
    rates = sorted(pairs / timed(lambda e=e: _epoch(trainer, e, timed_batches), device)
                   for e in range(1, repeats + 1))
    rate = rates[len(rates) // 2]
    return {
        "pairs_per_s": rate,
        "step_ms": 1000 * len(timed_batches[0].ids) / rate,
        "loss_ms": loss_ms(trainer, timed_batches[0], splits.stats, len(timed_batches)),
        "warmup_s": warmup_s,
        "timed_pairs": pairs * repeats,
    }, trainer


@torch.no_grad()
def loss_ms(trainer: Trainer, batch: Batch, stats: NormStats, n: int) -> float:
    """Milliseconds of the loss's forward alone on one batch: its targets (Gaussian maps at
    each stride used) and terms, including any host synchronisation they cause."""
    batch = normalize(batch, stats)
    with autocast(trainer.cfg.train, trainer.device):
        out = trainer.net(batch.rgb, batch.thermal)  # eager: no extra no_grad compile
    trainer.loss_fn(out, batch)  # warm-up
    return 1000 * timed(lambda: [trainer.loss_fn(out, batch) for _ in range(n)],
                        trainer.device) / n


# -- evaluation ------------------------------------------------------------------------------
def _padded(batch: Batch, stats: NormStats, ratio: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised inputs zero-padded to the stride, as ``evaluate`` feeds the network."""
    batch = normalize(batch, stats)
    h, w = batch.image_size
    pad = (0, -w % ratio, 0, -h % ratio)
    return F.pad(batch.rgb, pad), F.pad(batch.thermal, pad)


@torch.no_grad()
def eval_rates(net: nn.Module, pairs: PairSet, stats: NormStats, device: torch.device,
               train_cfg: TrainConfig) -> dict:
    """Images/s at full size, one image per batch as the protocol does: the forward pass alone
    (inputs already normalised on the device), the GAME/RMSE scoring alone, and ``evaluate``
    end to end (transfer, normalise, forward, scoring)."""
    ratio = net.cfg.downsample_ratio
    batches = list(eval_batches(pairs, device=device))
    inputs = [_padded(b, stats, ratio) for b in batches]
    was_training = net.training
    net.eval()
    densities: list[torch.Tensor] = []

    def forward() -> None:
        densities.clear()
        for (rgb, thermal), b in zip(inputs, batches, strict=True):
            with autocast(train_cfg, device):
                density = net(rgb, thermal).density.float()
            h, w = b.image_size
            densities.append(density[..., : -(-h // ratio), : -(-w // ratio)])

    def score() -> None:
        acc = MetricAccumulator()
        for density, b in zip(densities, batches, strict=True):
            acc.add_batch(density, b)
        acc.summary()

    try:
        forward()  # warm-up: first kernels, allocator
        n = len(inputs)
        rates = {"forward_images_per_s": n / timed(forward, device),
                 "metric_images_per_s": n / timed(score, device)}
        rates["evaluate_images_per_s"] = n / timed(
            lambda: evaluate(net, pairs, stats, device, train_cfg), device)
    finally:
        net.train(was_training)
    return {**rates, "images": n}


# -- data pipeline ---------------------------------------------------------------------------
def data_rate(pairs: PairSet, cfg: DataConfig, batch_size: int, device: torch.device,
              epochs: int = 2) -> float:
    """Pairs/s of ``train_batches`` alone, delivered as uint8 crops on ``device``."""
    generator = torch.Generator().manual_seed(0)

    def run(n_epochs: int) -> None:
        for _ in range(n_epochs):
            for _batch in train_batches(pairs, cfg, batch_size, generator, device=device):
                pass

    run(1)  # warm-up: worker start-up, the on-device copy of the split
    return epochs * len(pairs) / timed(lambda: run(epochs), device)


# -- the plain reference ---------------------------------------------------------------------
class PlainTwoStream(nn.Module):
    """Plain eager two-stream VGG19 counter, the yardstick of domain.md's measured speeds.

    torchvision's VGG19 features to conv5_4 (stride 16) per modality, or one copy run on both
    modalities as a batch of 2B when ``shared``; concat, a 1x1 fusion, a small density head.
    """

    def __init__(self, shared: bool) -> None:
        super().__init__()
        self.shared = shared
        self.rgb = make_layers(cfgs["E"])[:36]  # conv5_4 + ReLU: stride 16, no classifier
        self.thermal = self.rgb if shared else make_layers(cfgs["E"])[:36]
        self.fuse = nn.Sequential(nn.Conv2d(1024, 256, 1), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Conv2d(256, 128, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(128, 1, 1))

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        if self.shared:
            f_rgb, f_thermal = self.rgb(torch.cat([rgb, thermal])).chunk(2)
        else:
            f_rgb, f_thermal = self.rgb(rgb), self.thermal(thermal)
        return self.head(self.fuse(torch.cat([f_rgb, f_thermal], 1)))  # (B, 1, H/16, W/16)


def reference_rate(shared: bool, batch_size: int, crop: int, warmup: int, steps: int,
                   device: torch.device) -> dict:
    """Pairs/s of the reference with MSE and AdamW on random data, precision and memory format
    chosen as the engine chooses them (bf16 + channels_last on CUDA, fp32 on the CPU)."""
    torch.manual_seed(0)
    train_cfg = TrainConfig()
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    net = PlainTwoStream(shared).to(device, memory_format=fmt)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-5)
    rgb, thermal = (torch.randn(batch_size, 3, crop, crop, device=device)
                    .contiguous(memory_format=fmt) for _ in range(2))
    target = torch.rand(batch_size, 1, crop // 16, crop // 16, device=device)

    def run(n: int) -> None:
        for _ in range(n):
            with autocast(train_cfg, device):
                loss = F.mse_loss(net(rgb, thermal).float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    warmup_s = timed(lambda: run(warmup), device)
    rate = steps * batch_size / timed(lambda: run(steps), device)
    return {"pairs_per_s": rate, "step_ms": 1000 * batch_size / rate, "warmup_s": warmup_s}


# -- the demo study --------------------------------------------------------------------------
def demo_epoch(reduced: bool, epochs: int = 2) -> dict:
    """Variant G of ``studies/demo.toml`` on the CPU: data, build, each epoch, one val pass.

    ``reduced`` (for --quick) renders 8/2/2 synthetic pairs instead of the study's 48/12/16.
    """
    extra = {"device": "cpu"}
    if reduced:
        extra.update(synth_n_train=8, synth_n_val=2, synth_n_test=2)
    cfg = study_config("G", extra)
    start = time.perf_counter()
    splits = load_splits(cfg.data, cfg.model.thermal_channels)
    row = {"train_pairs": len(splits.train), "val_pairs": len(splits.val),
           "data_s": time.perf_counter() - start, "reduced": reduced}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(cfg, out_dir, splits)
    row["build_s"] = time.perf_counter() - start
    for epoch in range(epochs):
        start = time.perf_counter()
        trainer._train_epoch(epoch)
        row[f"epoch{epoch}_train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    evaluate(trainer.net, splits.val, splits.stats, trainer.device, cfg.train)
    row["val_s"] = time.perf_counter() - start
    return row
