"""Live logging: a real two-epoch run writes TensorBoard event files that TensorBoard's own
reader finds every scalar and picture in."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ablate.cli.options import RunOptions
from ablate.db import RunStore
from ablate.errors import UsageError
from ablate.live.tensorboard import TensorBoardHooks, live_logging, scalar_tag
from ablate.run.execute import execute
from ablate.run.hooks import Chain, Hooks
from ablate.study.plan import plan
from ablate.study.study import load_study
from tests.conftest import tiny_study_text

# Tiny pairs keep the two epochs and the pictures within a few seconds on one thread.
SMALL = {"epochs": 2, "synth_n_train": 4, "synth_n_val": 2, "synth_n_test": 2, "crop_size": 32,
         "synth_height": 48, "synth_width": 48, "batch_size": 4}


class Rows(Hooks):
    """Keeps what the trainer reported, to compare with what the event files hold."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        self.rows.append(dict(row))


def _events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Rows]]:
    """Variants A (no STN) and D (STN and offsets) of the tiny study, two epochs each,
    pictures at every epoch."""
    root = tmp_path_factory.mktemp("tb")
    (root / "tiny.toml").write_text(tiny_study_text())
    study = load_study(root / "tiny.toml")
    specs = plan(study, ["A", "D"], [0], SMALL, root / "runs")
    rows = {}
    hooks = TensorBoardHooks(root / "logs", image_every=1)
    with RunStore(str(root / "runs.db")) as store:
        for spec in specs:
            rows[spec.variant] = Rows()
            outcome = execute(store, spec, Chain(rows[spec.variant], hooks))
            assert outcome.status == "done", outcome.error
    return root / "logs" / "tiny", rows


def test_every_loss_term_and_val_metric_is_a_scalar_per_epoch(logged):
    folder, rows = logged
    assert sorted(p.name for p in folder.iterdir()) == ["A", "D"]  # runs named variant/seed
    for variant in ("A", "D"):
        events = _events(folder / variant / "seed0")
        tags = set(events.Tags()["scalars"])
        reported = rows[variant].rows
        assert len(reported) == 2
        for key, value in reported[-1].items():
            tag = scalar_tag(key)
            if tag is None:
                continue
            assert tag in tags, (variant, key)
            logged_values = [e.value for e in events.Scalars(tag)]
            assert [e.step for e in events.Scalars(tag)] == [0, 1]
            assert logged_values[-1] == pytest.approx(value, rel=1e-6)
        assert {"loss/total", "loss/density", "val/game0", "val/game3", "val/rmse",
                "lr/head", "test/game3"} <= tags
    d_tags = set(_events(folder / "D" / "seed0").Tags()["scalars"])
    assert {"loss/tv", "loss/feat_l1"} <= d_tags  # the terms D switches on


def test_viz_pictures_are_images_at_every_epoch_only_where_the_module_is_on(logged):
    folder, _ = logged
    a, d = _events(folder / "A" / "seed0"), _events(folder / "D" / "seed0")
    assert set(a.Tags()["images"]) == {"val_image/density", "val_image/cells"}
    assert set(d.Tags()["images"]) == {"val_image/density", "val_image/cells", "val_image/stn",
                                       "val_image/offsets"}
    pictures = d.Images("val_image/stn")
    assert [p.step for p in pictures] == [0, 1]
    assert pictures[0].width > 100 and pictures[0].height > 100
    assert pictures[0].encoded_image_string.startswith(b"\x89PNG")
    assert "config" in "".join(d.Tags()["tensors"])  # the resolved config as text


def test_row_keys_map_to_grouped_tags():
    assert [scalar_tag(k) for k in ("epoch", "loss", "loss_tv", "val_game3", "lr",
                                    "lr_backbone", "pairs_per_s", "grad_norm")] == [
        None, "loss/total", "loss/tv", "val/game3", "lr/head", "lr/backbone",
        "speed/pairs_per_s", "other/grad_norm"]


def test_unknown_logger_is_a_usage_error_and_no_log_is_no_hook(tmp_path):
    with pytest.raises(UsageError,
                       match="--log wandb is not valid; choose one of tensorboard, mlflow"):
        live_logging(("wandb",), tmp_path)
    assert RunOptions().live_logging() is None
    hooks = RunOptions(log=("tensorboard",), log_dir=tmp_path / "tb").live_logging()
    assert isinstance(hooks, TensorBoardHooks) and hooks.log_dir == tmp_path / "tb"
    assert not (tmp_path / "tb").exists()  # nothing is written before a run is claimed
