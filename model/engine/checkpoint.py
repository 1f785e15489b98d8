"""Checkpoints: written atomically (temp file + rename), read with ``weights_only=True``, and
the one loader that rebuilds the network a checkpoint was trained with from its stored config
(``ablate eval``, ``ablate viz`` and anything else that evaluates a saved run)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model import torchfile
from model.config import RunConfig
from model.errors import CheckpointError, ConfigError
from model.network import RGBTCounter, build_model

LAST = "last.pt"
PREVIOUS = "previous.pt"  # the last.pt before the latest one: the fallback if that one is bad
BEST = "best.pt"
REQUIRED = ("model", "config")  # what every checkpoint the trainer writes holds


def save_atomic(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write(payload, tmp, path)
    os.replace(tmp, path)  # a crash leaves the previous checkpoint whole


def save_keeping_previous(payload: dict, folder: Path) -> None:
    """Write ``folder/last.pt`` atomically, first moving the current one to ``previous.pt``:
    a node that dies mid-write, or a disk that fills, leaves at least one whole checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{LAST}.{os.getpid()}.tmp"
    _write(payload, tmp, folder / LAST)
    if (folder / LAST).exists():
        os.replace(folder / LAST, folder / PREVIOUS)
    os.replace(tmp, folder / LAST)


def _write(payload: dict, tmp: Path, path: Path) -> None:
    """``torch.save`` to ``tmp``; a failed write (a full disk, a quota, a vanished mount) is one
    ``CheckpointError`` naming ``path`` and the cause, and leaves no partial file behind."""
    try:
        torch.save(payload, tmp)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"could not write checkpoint {path}: {_cause(exc, path)}") from None


def _cause(exc: BaseException, path: Path) -> str:
    """Why a write failed, in words: the OS's reason, or (torch's zip writer reports a short
    write only as "unexpected pos A vs B") the free space left where the file goes."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{os.strerror(exc.errno)} (errno {exc.errno})"
    detail = " ".join(str(exc).split())  # one line, whatever the library printed
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return f"the write stopped short ({detail})"
    return (f"the write stopped short ({detail}); {free / 2**20:.0f} MiB free on its disk: "
            "is the disk full or over quota?")


def load_resumable(folder: Path) -> tuple[dict | None, str | None]:
    """The newest whole checkpoint of a run folder (``last.pt``, else ``previous.pt``) and,
    when it is not ``last.pt`` as expected, one line saying what happened; (None, line) when
    only bad files are left and the run restarts from epoch 0, (None, None) for a new run."""
    last, previous = folder / LAST, folder / PREVIOUS
    if not last.exists() and not previous.exists():
        return None, None
    problem = f"{last} is missing" if not last.exists() else None
    if problem is None:
        try:
            return load(last), None
        except CheckpointError as exc:
            problem = str(exc)
    if previous.exists():
        try:
            state = load(previous)
        except CheckpointError:
            pass
        else:
            return state, (f"{problem}; resuming from {PREVIOUS}, at epoch "
                           f"{int(state.get('epoch', -1)) + 1}")
    return None, f"{problem} and no earlier checkpoint is readable; restarting from epoch 0"


def load(path: Path | str) -> dict:
    """The stored dict; a directory, a missing file or a file that is not one of ablate's
    checkpoints is a one-line ``CheckpointError`` naming the file."""
    state = torchfile.read(path, "checkpoint", CheckpointError)
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED):
        raise CheckpointError(f"{path} is not an ablate checkpoint (no model or config inside)")
    return state


@dataclass
class Loaded:
    net: RGBTCounter  # in eval mode, on the CPU
    config: RunConfig  # the stored config, with the caller's overrides applied
    epoch: int
    state: dict[str, Any]


def load_model(path: Path | str, overrides: dict[str, Any] | None = None) -> Loaded:
    """Rebuild the network of the checkpoint at ``path`` from the config stored in it.

    ``overrides`` may move what does not shape the network (data_path, device). The weights
    come from the checkpoint, so no ImageNet file needs to be present.
    """
    state = load(path)
    try:
        stored = RunConfig.from_dict(state["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path} holds a config this version cannot build: {exc}") from None
    cfg = stored.with_overrides(overrides or {})
    net = build_model(dataclasses.replace(stored.model, pretrained=None))
    _check_fits(path, net, state["model"])
    net.load_state_dict(state["model"])
    return Loaded(net.eval(), cfg, int(state.get("epoch", -1)), state)


def _check_fits(path: Path | str, net: torch.nn.Module, weights: Any) -> None:
    """One line for a state dict that does not fit ``net`` (torch prints one line per key)."""
    if not isinstance(weights, dict) or not all(
            isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path} is not an ablate checkpoint (its model is no state dict)")
    expected = net.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    resized = [k for k in expected if k in weights and weights[k].shape != expected[k].shape]
    problems = [f"{len(keys)} {what} (first: {keys[0]})" for what, keys in (
        ("missing weights", missing), ("unexpected weights", unexpected),
        ("weights of another shape", resized)) if keys]
    if problems:
        raise CheckpointError(f"{path} does not fit the model built from its own config: "
                              f"{'; '.join(problems)}")
