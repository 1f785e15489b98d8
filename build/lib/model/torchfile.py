"""Reading a file written by ``torch.save`` with one-line errors that name the file.

Checkpoints and pretrained state dicts are read the same way: tensors only
(``weights_only=True``), onto the CPU, and every way a path can fail to be such a file (a
directory, missing, a text file, a truncated archive) is one line of the caller's error type.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from model.errors import AblateError, CheckpointError

# torch.save writes a zip archive; files from before PyTorch 1.6 are a bare pickle (0x80).
_MAGIC = (b"PK\x03\x04", b"\x80")


def read(path: Path | str, what: str = "checkpoint",
         error: type[AblateError] = CheckpointError) -> Any:
    """The object stored at ``path``; ``what`` names the kind of file in the messages."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path} is a directory, not a {what} file")
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        with path.open("rb") as stream:
            head = stream.read(4)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not head.startswith(_MAGIC):
        raise error(f"{path} is not a {what} (not a PyTorch file)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile,
            OSError) as exc:  # truncated, corrupt or holding more than tensors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"{path} is not a readable {what}: {reason}") from None
