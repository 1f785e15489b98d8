"""The training loop: the plan's recipe, selection on val, test only at the selected checkpoint,
resumable from the last saved checkpoint (see ``model.engine.schedule`` for when it saves)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.config import RunConfig
from model.data import Splits, load_splits, normalize, random_affine
from model.data.loader import EpochLoader, fits_on_device, make_resident
from model.engine import checkpoint
from model.engine.device import (
    autocast,
    configure_backends,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from model.engine.evaluate import evaluate
from model.engine.optim import build_optimizer, build_scheduler, local_count_scale, set_frozen
from model.engine.schedule import CheckpointClock, degenerate_warning, eval_interval, validates
from model.errors import TrainingError
from model.losses import build_loss
from model.losses.alignment import known_map, theta_to_pixels
from model.losses.counting import Phase
from model.metrics import selection_score
from model.network import RGBTCounter, build_model, clip_groups

log = logging.getLogger(__name__)
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    best_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, float]]
    image_results: list[dict[str, Any]] = field(default_factory=list)  # test, per image
    checkpoint: Path | None = None
    warnings: list[str] = field(default_factory=list)  # one line each, e.g. a degenerate run
    # How it ran: the data path and backends chosen for this machine (not in the hash).
    execution: dict[str, Any] = field(default_factory=dict)


class Trainer:
    def __init__(self, cfg: RunConfig, out_dir: Path | str, splits: Splits | None = None,
                 on_epoch: EpochCallback | None = None) -> None:
        self.cfg, self.out_dir, self.on_epoch = cfg, Path(out_dir), on_epoch
        self.device = resolve_device(cfg.train.device)
        seed_everything(cfg.train.seed)
        self.splits = splits or load_splits(cfg.data, cfg.model.thermal_channels)
        self.cfg = cfg = self._choose_data_path(cfg)
        self.loader = EpochLoader(self.splits.train, cfg.data, cfg.train.batch_size, self.device)
        self.eval_every = eval_interval(cfg, self.splits)
        self.clock = CheckpointClock(cfg.train.checkpoint_every, cfg.train.checkpoint_minutes)
        self.net: RGBTCounter = build_model(cfg.model).to(self.device)
        if self.device.type == "cuda" and cfg.train.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.net) if cfg.train.compile else self.net
        self.loss_fn = build_loss(cfg.loss, cfg.model)
        self.optimizer = build_optimizer(self.net, cfg.train)
        self.clip_groups = clip_groups(self.net)
        self.scheduler = build_scheduler(self.optimizer, cfg.train)
        self.generator = torch.Generator().manual_seed(cfg.train.seed)
        self.start_epoch, self.best_score, self.best_epoch = 0, math.inf, -1
        self.history: list[dict[str, float]] = []

    def _choose_data_path(self, cfg: RunConfig) -> RunConfig:
        """The config with the data path this machine runs: on CUDA the splits resident on
        the GPU when they fit, else persistent pinned workers; recorded in every checkpoint."""
        data = cfg.data
        benchmark = configure_backends(cfg.train, self.device)
        resident = False
        if self.device.type == "cuda" and data.on_device:
            free, _ = torch.cuda.mem_get_info(self.device)
            resident = fits_on_device([self.splits.train, self.splits.val], free)
        workers = data.num_workers
        if self.device.type == "cuda" and not resident and workers == 0:
            workers = min(4, max(1, (os.cpu_count() or 2) // 2))
        if resident:
            make_resident(self.splits.train, self.device)
            make_resident(self.splits.val, self.device)
        self.execution = {"on_device": resident, "num_workers": 0 if resident else workers,
                          "cudnn_benchmark": benchmark}
        return dataclasses.replace(cfg, data=dataclasses.replace(
            data, on_device=resident, num_workers=self.execution["num_workers"]))

    # -- checkpoints ---------------------------------------------------------------------
    def _state(self, epoch: int) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "config_hash": self.cfg.config_hash(),
            "epoch": epoch,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "data_rng": self.generator.get_state(),
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "history": self.history,
        }

    def resume(self) -> bool:
        state, note = checkpoint.load_resumable(self.out_dir)
        if note is not None:
            # One line on stderr (logging's last-resort handler prints the bare message):
            # which checkpoint the run goes on from, or that it starts over.
            log.warning(note)
        if state is None:
            return False
        # Rehashed from the stored config, so a checkpoint written under an older definition
        # of the hash still resumes.
        stored = RunConfig.from_dict(state["config"]).config_hash()
        if stored != self.cfg.config_hash():
            raise TrainingError(
                f"{self.out_dir} holds a run of another config (hash {stored}); "
                "use another --save-dir or delete it"
            )
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.generator.set_state(state["data_rng"])
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.history = list(state["history"])
        self.start_epoch = state["epoch"] + 1
        return True

    # -- one epoch -----------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        warmup = epoch < cfg.train.align_warmup_epochs
        set_frozen(self.net, warmup or epoch < cfg.train.freeze_epochs,
                   all_stages=warmup, n_stages=cfg.train.freeze_stages)
        self.net.train()
        scale = local_count_scale(epoch, cfg.train.local_count_ramp_epochs)
        sums: dict[str, torch.Tensor] = {}
        n_steps = n_pairs = 0
        stepped = False
        start = time.perf_counter()
        for batch in self.loader.epoch(self.generator):
            batch = normalize(batch.to(self.device, non_blocking=True), self.splits.stats)
            rgb, thermal, injected = batch.rgb, batch.thermal, None
            if warmup:
                rgb, thermal, injected = self._misalign(rgb, thermal)
            if self.device.type == "cuda" and cfg.train.channels_last:
                rgb = rgb.contiguous(memory_format=torch.channels_last)
                thermal = thermal.contiguous(memory_format=torch.channels_last)
            with autocast(cfg.train, self.device):
                out = self.forward(rgb, thermal)
            phase = self._phase(warmup, scale, batch, injected)
            total, terms = self.loss_fn(out, batch, phase=phase)
            stepped = self._step(total) or stepped
            # Sums stay on the device: one host sync per epoch, not per step.
            for name, value in {"loss": total, **terms}.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
            n_steps += 1
            n_pairs += len(batch.ids)
        with warnings.catch_warnings():
            # Every variant follows the same schedule, also through a warm-up in which a
            # variant without alignment modules has nothing to learn (no optimizer step).
            if not stepped:
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        row = {f"loss_{k}" if k != "loss" else k: v.item() / max(n_steps, 1)
               for k, v in sums.items()}
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            raise TrainingError(f"loss term '{bad[-1].removeprefix('loss_')}' became "
                                f"{row[bad[-1]]} at epoch {epoch}")
        row["pairs_per_s"] = n_pairs / max(time.perf_counter() - start, 1e-9)
        row["lr"] = self.optimizer.param_groups[-1]["lr"]
        row.update({f"lr_{g['name']}": g["lr"] for g in self.optimizer.param_groups
                    if g.get("name") == "backbone"})  # the plan's second learning rate
        return row

    def _step(self, total: torch.Tensor) -> bool:
        """One optimiser step; False when every term weighed 0 in this phase."""
        if not total.requires_grad:
            return False
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.train.grad_clip > 0:
            for params in self.clip_groups:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip)
        self.optimizer.step()
        return True

    def _phase(self, warmup: bool, scale: float, batch, injected) -> Phase:
        """The loss's weights this step, and the displacement it knows (data and injected)."""
        t = self.cfg.train
        if warmup:
            phase = Phase(local_count_scale=scale, count_weight=t.warmup_count_weight,
                          align_weight=t.warmup_align_loss)
        else:
            phase = Phase(local_count_scale=scale, align_weight=self.cfg.loss.align_loss)
        if phase.align_weight == 0:
            return phase  # no term reads the map: spare its 3x3 inverses per batch
        target = known_map(batch.thermal_to_rgb, injected, self.cfg.model.moving == "rgb")
        return dataclasses.replace(phase, align_target=target)

    def _misalign(self, rgb: torch.Tensor, thermal: torch.Tensor):
        """Plan priority 6: warm the alignment modules up on a known extra misalignment; also
        returns it as (B, 3, 3) pixel maps, new(p) = old(T p), for the supervised term."""
        t = self.cfg.train
        moving = rgb if self.cfg.model.moving == "rgb" else thermal
        moved, theta = random_affine(moving, t.warmup_shift, t.warmup_rotation, self.generator)
        injected = theta_to_pixels(theta, *moving.shape[-2:])
        if self.cfg.model.moving == "rgb":
            return moved, thermal, injected
        return rgb, moved, injected

    # -- the whole run -------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg = self.cfg.train
        self.resume()
        log.info("data path: %s; validation every %d epoch(s)", self.execution, self.eval_every)
        for epoch in range(self.start_epoch, cfg.epochs):
            row = {"epoch": epoch, **self._train_epoch(epoch)}
            if validates(epoch, self.eval_every, cfg.epochs):
                row.update(self._validate(epoch))
            self.history.append(row)
            if self.clock.due(epoch, cfg.epochs):
                start = time.perf_counter()
                checkpoint.save_keeping_previous(self._state(epoch), self.out_dir)
                self.clock.record(time.perf_counter() - start)
            if self.on_epoch is not None:
                self.on_epoch(epoch, row)
        return self.final()

    def _validate(self, epoch: int) -> dict[str, float]:
        """Val metrics of this epoch; best.pt when they are the best so far."""
        cfg = self.cfg.train
        val, _ = evaluate(self.net, self.splits.val, self.splits.stats, self.device, cfg)
        score = selection_score(val, cfg.select_metric)
        if score < self.best_score or self.best_epoch < 0:
            self.best_score, self.best_epoch = score, epoch
            checkpoint.save_atomic(
                {"config": self.cfg.to_dict(), "epoch": epoch, "model": self.net.state_dict(),
                 "val": val},
                self.out_dir / checkpoint.BEST,
            )
        return {f"val_{k}": v for k, v in val.items() if k != "n_images"}

    def final(self) -> TrainResult:
        """Val and test at the checkpoint selected on val; test is never looked at before."""
        best = checkpoint.load(self.out_dir / checkpoint.BEST)
        self.net.load_state_dict(best["model"])
        stats, dev, t = self.splits.stats, self.device, self.cfg.train
        val, _ = evaluate(self.net, self.splits.val, stats, dev, t)
        test, rows = evaluate(self.net, self.splits.test, stats, dev, t)
        warning = degenerate_warning(self.history, test)
        if warning is not None:
            log.warning(warning)
        return TrainResult(best["epoch"], val, test, self.history, rows,
                           self.out_dir / checkpoint.BEST, [warning] if warning else [],
                           {**self.execution, "eval_every": self.eval_every})


def train(cfg: RunConfig, out_dir: Path | str, splits: Splits | None = None,
          on_epoch: EpochCallback | None = None) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (resuming from its last checkpoint) and return the result."""
    return Trainer(cfg, out_dir, splits, on_epoch).fit()
