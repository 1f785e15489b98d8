"""Writing an ablate checkpoint's density maps in the format ``ablate diagnose`` reads.

One ``<id>.npy`` per image, a float32 (h, w) map at the network's stride, exactly the
prediction ``ablate eval`` scores: so diagnose can be tried on ablate's own models, and the
format is documented by example.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ablate.errors import UsageError
from ablate.paths import inside
from model.data import NormStats, PairSet, eval_batches, load_splits, normalize
from model.engine import checkpoint
from model.engine.device import autocast, resolve_device
from model.engine.evaluate import SPLITS, pad_to


@torch.no_grad()
def predict(loaded: checkpoint.Loaded, pairs: PairSet, stats: NormStats,
            device: torch.device) -> Iterator[tuple[str, torch.Tensor]]:
    """(id, (h, w) density) per image, computed as ``model.engine.evaluate`` does: padded
    bottom/right to the stride, the padded margin dropped again."""
    net, cfg = loaded.net.to(device).eval(), loaded.config
    ratio = cfg.model.downsample_ratio
    for batch in eval_batches(pairs, device=device):
        batch = normalize(batch, stats)
        with autocast(cfg.train, device):
            density = net(pad_to(batch.rgb, ratio), pad_to(batch.thermal, ratio)).density
        h, w = batch.image_size
        density = density.float()[..., : -(-h // ratio), : -(-w // ratio)].cpu()
        for sample_id, one in zip(batch.ids, density, strict=True):
            yield sample_id, one[0]


def write_predictions(checkpoint_path: str | Path, out_dir: str | Path, split: str = "test",
                      data_path: str | Path | None = None, device: str | None = None) -> int:
    """Write ``<out_dir>/<id>.npy`` for every image of ``split``; returns how many."""
    if split not in SPLITS:
        raise UsageError(f"--split {split!r} is not valid; choose one of {', '.join(SPLITS)}")
    overrides = {k: v for k, v in {"data_path": data_path and str(data_path),
                                   "device": device}.items() if v}
    loaded = checkpoint.load_model(checkpoint_path, overrides)
    cfg = loaded.config
    splits = load_splits(cfg.data, cfg.model.thermal_channels)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror}") from None
    written = 0
    for sample_id, density in predict(loaded, getattr(splits, split), splits.stats,
                                      resolve_device(cfg.train.device)):
        np.save(inside(out, f"{sample_id}.npy"), density.numpy().astype(np.float32))
        written += 1
    return written
