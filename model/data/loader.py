"""Epoch iterators: random crops for training, full images for evaluation.

Three training paths with the same semantics (same generator -> same windows, flips and points):
in-process on the CPU, one persistent DataLoader with workers (pinned memory for CUDA), and,
with ``on_device`` on CUDA when the splits fit, the whole decoded split resident on the GPU,
cropped there in one gather per batch so the loader never starves a fast GPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from model.config import DataConfig
from model.data.augment import (
    CropParams,
    crop_flip,
    crop_flip_map,
    crop_flip_points,
    crop_params,
    gather_crops,
)
from model.data.batch import Batch
from model.data.sample import PairSet

Job = tuple[int, int, int, bool, int]  # (pair index, top, left, flip, crop size)


def _jobs(pairs: PairSet, cfg: DataConfig, batch_size: int, generator: torch.Generator):
    """The epoch's shuffled order and crop windows, cut into batches (last partial one kept)."""
    order = torch.randperm(len(pairs), generator=generator)
    sizes = torch.tensor([pairs[int(i)].size for i in order]).view(-1, 2)
    params = crop_params(sizes, cfg.crop_size, cfg.hflip, generator)
    for start in range(0, len(order), batch_size):
        stop = start + batch_size
        yield (
            order[start:stop],
            CropParams(
                params.tops[start:stop],
                params.lefts[start:stop],
                params.flips[start:stop],
                params.size,
            ),
        )


class _CropSet(Dataset):
    """Indexed by a job, not a position, so workers apply windows drawn in the main process."""

    def __init__(self, pairs: PairSet):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, job: Job):
        index, top, left, flip, crop = job
        s = self.pairs[index]
        rgb, thermal, points = crop_flip(s.rgb, s.thermal, s.points, top, left, flip, crop)
        return rgb, thermal, points, s.id, s.size, _crop_map(s, top, left, flip, crop)


def _crop_map(sample, top: int, left: int, flip: bool, crop: int) -> torch.Tensor:
    """The sample's thermal -> RGB pixel map in the crop; NaN where the data does not know it
    (a tensor either way, so DataLoader workers can collate it)."""
    affine = sample.meta.get("affine")
    if affine is None:
        return torch.full((2, 3), float("nan"))
    return crop_flip_map(affine, top, left, flip, crop)


def _known(maps: torch.Tensor) -> torch.Tensor | None:
    """(B, 2, 3) maps when every pair of the batch has one, else None."""
    return None if bool(maps.isnan().any()) else maps


def _stack(items: list) -> tuple:
    # A tuple, not a Batch, so DataLoader's pin_memory can walk it.
    rgb, thermal, points, ids, sizes, maps = zip(*items, strict=True)
    return (torch.stack(rgb), torch.stack(thermal), list(points), list(ids), list(sizes),
            torch.stack(maps))


def _job_lists(pairs, cfg, batch_size, generator) -> list[list[Job]]:
    return [
        [
            (int(i), int(t), int(le), bool(f), p.size)
            for i, t, le, f in zip(idx, p.tops, p.lefts, p.flips, strict=True)
        ]
        for idx, p in _jobs(pairs, cfg, batch_size, generator)
    ]


def _device_stack(pairs: PairSet, device: torch.device):
    """Every image of the split on the device, once: (N, C, Hmax, Wmax) stacks plus sizes."""
    key = str(device)
    if key not in pairs.device_cache:
        sizes = torch.tensor([s.size for s in pairs]).view(-1, 2)
        h, w = (int(v) for v in sizes.max(0).values)
        stacks = []
        for attr in ("rgb", "thermal"):
            channels = getattr(pairs[0], attr).shape[0]
            stack = torch.zeros(len(pairs), channels, h, w, dtype=torch.uint8, device=device)
            for i, s in enumerate(pairs):
                image = getattr(s, attr)
                stack[i, :, : image.shape[1], : image.shape[2]] = image.to(device)
            stacks.append(stack)
        pairs.device_cache[key] = (*stacks, sizes.to(device))
    return pairs.device_cache[key]


def _device_batches(pairs, cfg, batch_size, generator, device) -> Iterator[Batch]:
    rgb_stack, thermal_stack, sizes = _device_stack(pairs, device)
    for order, params in _jobs(pairs, cfg, batch_size, generator):
        index = order.to(device)
        points = [
            crop_flip_points(
                pairs[int(i)].points, pairs[int(i)].size, int(t), int(le), bool(f), params.size
            )
            for i, t, le, f in zip(order, params.tops, params.lefts, params.flips, strict=True)
        ]
        # One transfer for all point lists, then views: not B tiny copies.
        counts = [len(p) for p in points]
        on_device = torch.cat(points).to(device, non_blocking=True).split(counts)
        yield Batch(
            rgb=gather_crops(rgb_stack, sizes, index, params),
            thermal=gather_crops(thermal_stack, sizes, index, params),
            points=list(on_device),
            ids=[pairs[int(i)].id for i in order],
            full_sizes=[pairs[int(i)].size for i in order],
            thermal_to_rgb=_device_maps(pairs, order, params, device),
        )


def _device_maps(pairs, order, params: CropParams, device) -> torch.Tensor | None:
    maps = torch.stack([
        _crop_map(pairs[int(i)], int(t), int(le), bool(f), params.size)
        for i, t, le, f in zip(order, params.tops, params.lefts, params.flips, strict=True)
    ])
    known = _known(maps)
    return None if known is None else known.to(device, non_blocking=True)


def stack_bytes(pairs: PairSet) -> int:
    """Bytes the split takes resident on a device: both uint8 stacks at the largest size."""
    if not len(pairs):
        return 0
    h, w = (max(s.size[i] for s in pairs) for i in (0, 1))
    channels = pairs[0].rgb.shape[0] + pairs[0].thermal.shape[0]
    return len(pairs) * channels * h * w


def fits_on_device(pairs: list[PairSet], free_bytes: int, share: float = 0.25) -> bool:
    """Whether every split fits in ``share`` of the device's free memory: the rest is left
    to the network, its activations and cudnn's workspaces."""
    return sum(stack_bytes(p) for p in pairs) <= share * free_bytes


def make_resident(pairs: PairSet, device: torch.device) -> None:
    """Copy the split to ``device`` once; train_batches and eval_batches then cut from it."""
    _device_stack(pairs, device)


class _EpochJobs:
    """The batch sampler of a persistent DataLoader: iterated in the main process at the start
    of each epoch, it yields that epoch's jobs, so the workers live for the whole run."""

    def __init__(self) -> None:
        self.jobs: list[list[Job]] = []

    def __iter__(self):
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)


class EpochLoader:
    """One object per run that yields each epoch's batches; with workers, one persistent
    DataLoader (pinned memory for CUDA) serves every epoch instead of a new one per epoch."""

    def __init__(self, pairs: PairSet, cfg: DataConfig, batch_size: int,
                 device: torch.device | str = "cpu") -> None:
        self.pairs, self.cfg, self.batch_size = pairs, cfg, batch_size
        self.device = torch.device(device)
        self.resident = str(self.device) in pairs.device_cache and self.device.type != "cpu"
        self._jobs = _EpochJobs()
        self._loader = None
        if cfg.num_workers > 0 and not self.resident:
            self._loader = DataLoader(
                _CropSet(pairs), batch_sampler=self._jobs, num_workers=cfg.num_workers,
                collate_fn=_stack, pin_memory=self.device.type == "cuda",
                persistent_workers=True)

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        """One shuffled epoch of uint8 crops of ``crop_size`` with a random horizontal flip;
        ``generator`` (CPU) draws them, so the same seed gives the same epoch on every path."""
        if self.resident:
            yield from _device_batches(self.pairs, self.cfg, self.batch_size, generator,
                                       self.device)
            return
        self._jobs.jobs = _job_lists(self.pairs, self.cfg, self.batch_size, generator)
        dataset = _CropSet(self.pairs)
        batches = self._loader if self._loader is not None else (
            _stack([dataset[job] for job in batch]) for batch in self._jobs.jobs)
        for rgb, thermal, points, ids, sizes, maps in batches:
            batch = Batch(rgb=rgb, thermal=thermal, points=points, ids=ids,
                          full_sizes=[(int(h), int(w)) for h, w in sizes],
                          thermal_to_rgb=_known(maps))
            yield batch if self.device.type == "cpu" else batch.to(self.device,
                                                                   non_blocking=True)


def train_batches(
    pairs: PairSet,
    cfg: DataConfig,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Iterator[Batch]:
    """One epoch of ``EpochLoader`` (a run keeps one loader instead). ``on_device`` on CUDA
    copies the split to the device first."""
    device = torch.device(device)
    if cfg.on_device and device.type == "cuda":
        make_resident(pairs, device)
    yield from EpochLoader(pairs, cfg, batch_size, device).epoch(generator)


def eval_batches(pairs: PairSet, device: torch.device | str = "cpu",
                 batch_size: int = 1) -> Iterator[Batch]:
    """Every pair at full resolution (the protocol evaluates uncropped images), up to
    ``batch_size`` images of one size per batch, sizes in their first-seen order. On a device
    that holds the split (``on_device``), the batch is cut from the resident stack."""
    device = torch.device(device)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(pairs):
        groups.setdefault(tuple(s.size), []).append(i)
    resident = pairs.device_cache.get(str(device)) if device.type != "cpu" else None
    for (h, w), members in groups.items():
        for start in range(0, len(members), batch_size):
            chosen = members[start:start + batch_size]
            samples = [pairs[i] for i in chosen]
            if resident is not None:
                index = torch.tensor(chosen, device=device)
                rgb, thermal = (stack[index, :, :h, :w] for stack in resident[:2])
            else:
                rgb = torch.stack([s.rgb for s in samples])
                thermal = torch.stack([s.thermal for s in samples])
            batch = Batch(rgb=rgb, thermal=thermal, points=[s.points for s in samples],
                          ids=[s.id for s in samples])
            yield batch if device.type == "cpu" else batch.to(device, non_blocking=True)
