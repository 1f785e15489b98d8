"""When a run validates and when it writes ``last.pt``: often enough to select well and to
lose little to a kill, rarely enough that neither costs the GPU much of an epoch."""

from __future__ import annotations

import math
import time

from model.config import RunConfig
from model.data import Splits
from model.metrics import GAME_LEVELS

VAL_SHARE = 0.15  # validation's compute, at most, as a share of training's
CHEAP_SAVE_S = 0.25  # a save this fast is made every epoch (tiny models, the tests)
SAVE_SHARE = 0.05  # otherwise saves take at most this share of the wall time
# A forward pass costs about a third of a training step (forward + backward).
FORWARD_SHARE = 1 / 3


def eval_interval(cfg: RunConfig, splits: Splits) -> int:
    """``eval_every``, or for 0 the interval that keeps validation's compute (forward passes
    over the full val images) at ``VAL_SHARE`` of an epoch's (steps over the train crops).
    It depends on the data and config only, never on the machine, so a run selects its
    checkpoint from the same epochs wherever it trains (RGBT-CC: 200 val images of 640x480
    against 1,030 crops of 256: every 3rd epoch)."""
    if cfg.train.eval_every > 0:
        return cfg.train.eval_every
    val = sum(h * w for h, w in (s.size for s in splits.val)) * FORWARD_SHARE
    train = len(splits.train) * cfg.data.crop_size**2
    return max(1, math.ceil(val / (VAL_SHARE * train)))


def validates(epoch: int, interval: int, epochs: int) -> bool:
    """Every ``interval`` epochs and always at the last one."""
    return (epoch + 1) % interval == 0 or epoch == epochs - 1


class CheckpointClock:
    """Decides after each epoch whether ``last.pt`` is written (see TrainConfig)."""

    def __init__(self, every: int, minutes: float) -> None:
        self.every, self.minutes = every, minutes
        self.last_write = time.monotonic()
        self.write_s = 0.0  # how long the latest save took

    def due(self, epoch: int, epochs: int) -> bool:
        if epoch == epochs - 1:
            return True
        since = time.monotonic() - self.last_write
        if self.minutes > 0 and since >= 60 * self.minutes:
            return True
        if self.every > 0:
            return (epoch + 1) % self.every == 0
        return self.minutes == 0 and (self.write_s < CHEAP_SAVE_S
                                      or self.write_s <= SAVE_SHARE * since)

    def record(self, seconds: float) -> None:
        self.write_s, self.last_write = seconds, time.monotonic()


def degenerate_warning(history: list[dict[str, float]], test: dict[str, float]) -> str | None:
    """A line when training's loss reached 0 while GAME0..3 came out equal: every cell errs
    the same way, as when the network predicts no one anywhere, which a healthy model on
    labelled crowds never does. The labels most likely never reached the training crops."""
    losses = [row["loss"] for row in history if "loss" in row]
    games = [test.get(f"game{level}") for level in GAME_LEVELS]
    if not losses or min(losses) != 0 or None in games or len(set(games)) > 1:
        return None
    return (f"Warning: the training loss reached 0 and GAME0 = GAME1 = GAME2 = GAME3 = "
            f"{games[0]:.4g} on test: every cell errs the same way, as a model that predicts no "
            "one anywhere does; check that the labels reach the training crops (the points' "
            "frame and layout, `ablate data check`)")
