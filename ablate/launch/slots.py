"""``--workers N`` and ``--gpus 0,1,3|all``: one ``Slot`` (GPU and thread count) per worker."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated

import typer

from ablate.errors import UsageError

Workers = Annotated[int | None, typer.Option(
    "--workers", help="Worker processes on this machine sharing the runs database. "
    "Default: 1, or one per --gpus.")]
Gpus = Annotated[str | None, typer.Option(
    "--gpus", help="One worker per GPU, e.g. 0,1,3 or all; each sees only its own "
    "(CUDA_VISIBLE_DEVICES).")]


@dataclass(frozen=True)
class Slot:
    """What one worker process is given."""

    gpu: str | None  # its CUDA_VISIBLE_DEVICES, or None to inherit the parent's
    threads: int  # its OMP_NUM_THREADS

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        # N workers with the default thread count each oversubscribe the cores: measured on
        # 2 cores, 2 workers x 2 threads trained 3x slower in total than 2 x 1 thread.
        env.setdefault("OMP_NUM_THREADS", str(self.threads))
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        return env


def visible_gpus() -> list[str]:
    """The ids ``CUDA_VISIBLE_DEVICES`` would accept for every GPU this process sees."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in visible.split(",") if d.strip()] if visible else []
    return ids[:count] if ids else [str(i) for i in range(count)]


def parse_gpus(text: str, visible: list[str]) -> list[str]:
    """``all`` or a comma-separated list of distinct ids among ``visible``."""
    if text.strip().lower() == "all":
        if not visible:
            raise UsageError("--gpus all: no GPU is visible to this process; use --workers N")
        return list(visible)
    ids = [part.strip() for part in text.split(",")]
    if not all(ids):
        raise UsageError(f"--gpus {text!r} is not a comma-separated list of GPU ids, e.g. 0,1,3")
    if len(set(ids)) != len(ids):
        raise UsageError(f"--gpus {text!r} names a GPU twice; each GPU gets one worker")
    unknown = [i for i in ids if i not in visible]
    if unknown:
        shown = ", ".join(visible) if visible else "none"
        raise UsageError(f"--gpus {text}: GPU {unknown[0]} is not visible (visible: {shown})")
    return ids


def plan_slots(workers: int | None, gpus: str | None, visible: list[str] | None = None,
               cores: int | None = None) -> list[Slot]:
    """One slot per worker: one per listed GPU, else ``workers`` sharing the cores."""
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers} is not valid; it must be >= 1")
    cores = cores or os.cpu_count() or 1
    if gpus is None:
        n = workers or 1
        return [Slot(None, max(1, cores // n))] * n
    ids = parse_gpus(gpus, visible_gpus() if visible is None else visible)
    if workers is not None and workers != len(ids):
        raise UsageError(f"--workers {workers} and --gpus {gpus} disagree: --gpus starts one "
                         f"worker per GPU ({len(ids)}); give one of them")
    return [Slot(gpu, max(1, cores // len(ids))) for gpu in ids]
