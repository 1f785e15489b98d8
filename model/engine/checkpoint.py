"""Checkpoints written atomically (temp file + rename), read with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

LAST = "last.pt"
BEST = "best.pt"


def save_atomic(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # a crash leaves the previous checkpoint whole


def load(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign files all mean "not a checkpoint of ours"
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from None
