"""Device choice, precision and seeding: the fast path on CUDA, plain fp32 on the CPU."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from model.config import TrainConfig
from model.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was requested but CUDA is not available on this machine")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r} is not valid; choose one of auto, cpu, cuda")
    return torch.device(name)


def autocast(cfg: TrainConfig, device: torch.device):
    """bf16 autocast on CUDA by default; fp32 elsewhere (CPU bf16 is slower than fp32 here)."""
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def configure_backends(cfg: TrainConfig, device: torch.device) -> bool:
    """Deterministic kernels when asked; else on CUDA cudnn.benchmark, which times the
    convolution algorithms once per input shape (fixed crops: once per run) and keeps the
    fastest. Returns whether benchmark is on. Process-wide: set again by every run."""
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    benchmark = device.type == "cuda" and not cfg.deterministic
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.deterministic = cfg.deterministic
    return benchmark


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG a run draws from, in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuples(value):
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
