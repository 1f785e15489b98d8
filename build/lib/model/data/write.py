"""Writing pairs to disk in the RGBT-CC layout (how ``ablate data synth`` ships its dataset)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torchvision.io import encode_jpeg, write_file

from model.data.errors import DataError
from model.data.io import torchvision_io
from model.data.sample import PairSet, Splits

JPEG_QUALITY = 95  # high enough that read-back images differ by a few grey levels at most


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def write_rgbtcc(
    splits_or_pairsets: Splits | PairSet | Iterable[PairSet], out_dir: str | Path
) -> dict:
    """Write ``<split>/<id>_RGB.jpg``, ``<id>_T.jpg`` and ``<id>_GT.json`` for every pair.

    The JSON holds ``"points"`` and, for synthetic pairs, a ``"synthetic"`` key with the RGB
    misalignment that was applied (readers ignore other keys). Returns {split: pairs written}.
    """
    out = Path(out_dir)
    sets = (
        [splits_or_pairsets]
        if isinstance(splits_or_pairsets, PairSet)
        else list(splits_or_pairsets)
    )
    written: dict[str, int] = {}
    for pairs in sets:
        folder = out / pairs.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create {folder}: {exc.strerror}") from None
        for s in pairs:
            with torchvision_io():
                rgb = encode_jpeg(s.rgb.cpu(), quality=JPEG_QUALITY)
                thermal = encode_jpeg(s.thermal.cpu(), quality=JPEG_QUALITY)
                write_file(str(folder / f"{s.id}_RGB.jpg"), rgb)
                write_file(str(folder / f"{s.id}_T.jpg"), thermal)
            label: dict[str, Any] = {"points": s.points.tolist()}
            if s.meta:
                label["synthetic"] = _jsonable(s.meta)
            (folder / f"{s.id}_GT.json").write_text(json.dumps(label))
        written[pairs.name] = len(pairs)
    return written
