"""The fast paths keep the answers: batched validation scores like the per-image protocol,
validation and checkpoints on their schedule, resume exact to the last save, the data path
chosen per machine, and the two failure lines (a full disk, a degenerate run)."""

from __future__ import annotations

import errno
import math

import pytest
import torch
import torch.nn.functional as F
from test_engine import TINY, Stop, config, splits  # noqa: F401 (splits is a fixture)

from model.config import ModelConfig
from model.data import PairSet, Sample, compute_stats, normalize
from model.data.loader import EpochLoader, eval_batches, fits_on_device, stack_bytes
from model.engine import Trainer, checkpoint, train
from model.engine.evaluate import evaluate, pad_to
from model.engine.schedule import CheckpointClock, degenerate_warning, eval_interval
from model.errors import CheckpointError
from model.game import game_per_image
from model.output import ModelOutput


def mixed_sizes() -> PairSet:
    """Seven pairs of three sizes, interleaved, with ragged head counts (0 to 30)."""
    gen = torch.Generator().manual_seed(0)
    samples = []
    for i, (h, w) in enumerate([(64, 80), (48, 64), (64, 80), (64, 80), (40, 56), (48, 64),
                                (64, 80)]):
        n = [0, 3, 30, 1, 7, 12, 5][i]
        image = torch.randint(0, 255, (3, h, w), generator=gen, dtype=torch.uint8)
        points = torch.rand(n, 2, generator=gen) * torch.tensor([w, h])
        samples.append(Sample(f"p{i}", image, image.flip(-1).clone(), points))
    return PairSet("val", samples)


class Pooled(torch.nn.Module):
    """A batch-invariant stand-in network (each image's map depends on that image alone, in
    exact arithmetic order), so batched and per-image passes see the same densities."""

    cfg = ModelConfig()

    def forward(self, rgb, thermal):
        maps = (rgb.mean(1, keepdim=True) - thermal.mean(1, keepdim=True)).abs()
        return ModelOutput(density=F.avg_pool2d(maps, 8) * 0.1)


def test_batched_validation_equals_per_image_game():
    pairs, net = mixed_sizes(), Pooled()
    stats = compute_stats(pairs)
    summary, rows = evaluate(net, pairs, stats, torch.device("cpu"),
                             config(eval_batch_size=4).train)
    assert [row["image_id"] for row in rows] == [s.id for s in pairs], "the split's order"
    assert [len(b.ids) for b in eval_batches(pairs, batch_size=4)] == [4, 2, 1]
    for sample, row in zip(pairs, rows, strict=True):
        one = normalize(next(eval_batches(PairSet("one", [sample]))), stats)
        density = net(pad_to(one.rgb, 8), pad_to(one.thermal, 8)).density
        h, w = sample.size
        expected = game_per_image(density[0, :, : -(-h // 8), : -(-w // 8)], sample.points,
                                  (h, w))
        assert expected["pred_count"] > 1, "a prediction with something to score"
        for key in ("game0", "game1", "game2", "game3", "error", "pred_count", "true_count"):
            assert row[key] == pytest.approx(expected[key], abs=1e-6), (sample.id, key)
        for level in (1, 2, 3):
            assert row["cells"][level] == pytest.approx(expected["cells"][level], abs=1e-6)
    assert summary["n_images"] == len(pairs)


def test_a_non_finite_point_is_refused_by_the_batched_metric():
    from model.game import game_batch

    with pytest.raises(ValueError, match="NaN or infinite"):
        game_batch(torch.zeros(2, 1, 4, 4), [torch.zeros(1, 2), torch.tensor([[math.nan, 1]])],
                   (32, 32))


def test_validation_interval_is_a_share_of_training_compute(splits):  # noqa: F811
    # TINY: 4 val images of 64x80 (forward) against 16 crops of 64 (steps): every epoch.
    assert eval_interval(config(), splits) == 1
    assert eval_interval(config(eval_every=4), splits) == 4
    # RGBT-CC's shape: 200 val images of 480x640 against 1,030 crops of 256.
    fake = type("S", (), {"val": [type("P", (), {"size": (480, 640)})] * 200,
                          "train": [None] * 1030})
    interval = eval_interval(config(crop_size=256), fake)
    assert interval == 3
    val_share = 200 * 480 * 640 / 3 / (interval * 1030 * 256**2)
    assert val_share <= 0.15 < val_share * interval / (interval - 1)


def test_the_checkpoint_clock(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("model.engine.schedule.time.monotonic", lambda: now[0])
    every3 = CheckpointClock(every=3, minutes=0)
    assert [e for e in range(10) if every3.due(e, 10)] == [2, 5, 8, 9]
    auto = CheckpointClock(every=0, minutes=0)
    assert auto.due(0, 10)  # nothing measured yet: save
    auto.record(2.0)  # a 2 s save (a 350 MB state): at most 5% of the wall time
    now[0] = 30.0
    assert not auto.due(1, 10)
    now[0] = 40.0
    assert auto.due(2, 10) and auto.due(9, 10)
    timed = CheckpointClock(every=0, minutes=1.0)
    timed.record(0.01)
    now[0] = 80.0
    assert not timed.due(3, 10)
    now[0] = 101.0
    assert timed.due(4, 10)


def test_resume_after_a_kill_between_checkpoints_loses_only_unsaved_epochs(tmp_path, splits):  # noqa: F811
    """last.pt every 2nd epoch, validation every 2nd: killed after epoch 2 (saved at 1), the
    run goes on from epoch 2 and ends with the uninterrupted run's weights and metrics."""
    cfg = config(epochs=5, checkpoint_every=2, eval_every=2, stn="bounded")
    whole = train(cfg, tmp_path / "whole", splits)
    seen = []

    def kill_after_epoch_2(epoch, row):
        seen.append(epoch)
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        Trainer(cfg, tmp_path / "cut", splits, on_epoch=kill_after_epoch_2).fit()
    assert checkpoint.load(tmp_path / "cut" / checkpoint.LAST)["epoch"] == 1
    resumed = Trainer(cfg, tmp_path / "cut", splits)
    assert resumed.resume() and resumed.start_epoch == 2, "only epoch 2 is lost"
    result = resumed.fit()
    assert result.best_epoch == whole.best_epoch
    assert result.test == pytest.approx(whole.test, abs=1e-6)
    assert [r["loss"] for r in result.history] == pytest.approx(
        [r["loss"] for r in whole.history])
    assert ["val_game0" in r for r in whole.history] == [False, True, False, True, True]


def test_a_full_disk_names_the_checkpoint_and_the_cause(tmp_path, monkeypatch):
    def disk_full(payload, path):
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(CheckpointError) as err:
        checkpoint.save_keeping_previous({"model": {}}, tmp_path)
    text = str(err.value)
    assert text == (f"could not write checkpoint {tmp_path / checkpoint.LAST}: "
                    "No space left on device (errno 28)")
    assert list(tmp_path.iterdir()) == [], "no partial file is left behind"

    def zip_writer(payload, path):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . unexpected pos 96512 "
                           "vs 96408")

    monkeypatch.setattr(checkpoint.torch, "save", zip_writer)
    with pytest.raises(CheckpointError) as err:
        checkpoint.save_atomic({"model": {}}, tmp_path / checkpoint.BEST)
    text = str(err.value)
    assert text.startswith(f"could not write checkpoint {tmp_path / checkpoint.BEST}: the write "
                           "stopped short (")
    assert "MiB free on its disk: is the disk full or over quota?" in text and "\n" not in text


def test_a_full_disk_during_training_fails_the_run_with_that_line(tmp_path, splits, monkeypatch):  # noqa: F811
    monkeypatch.setattr(checkpoint.torch, "save", lambda payload, path: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(CheckpointError, match=r"best\.pt: No space left on device \(errno 28\)"):
        train(config(epochs=1), tmp_path, splits)


def test_a_degenerate_run_ends_with_a_warning(tmp_path, caplog):
    """No heads anywhere and a loss forced to 0: every GAME level is the predicted count."""
    cfg = config(epochs=1, synth_min_people=0, synth_max_people=0)
    trainer = Trainer(cfg, tmp_path)
    trainer.loss_fn.forward = lambda out, batch, phase=None: (out.density.sum() * 0, {})
    result = trainer.fit()
    assert len({result.test[f"game{k}"] for k in range(4)}) == 1
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("Warning: the training loss reached 0 and GAME0 = "
                                         "GAME1 = GAME2 = GAME3 = ")
    assert result.warnings[0] in caplog.text


def test_a_healthy_run_has_no_warning(splits):  # noqa: F811
    history = [{"loss": 1.2}, {"loss": 0.4}]
    assert degenerate_warning(history, {"game0": 3.0, "game1": 3.5, "game2": 4,
                                        "game3": 5}) is None
    assert degenerate_warning([{"loss": 0.0}], {"game0": 3.0, "game1": 3.5, "game2": 4,
                                                "game3": 5}) is None
    assert degenerate_warning([{"loss": 0.5}], dict.fromkeys(("game0", "game1", "game2",
                                                              "game3"), 2.0)) is None
    assert degenerate_warning([{"loss": 0.0}], dict.fromkeys(("game0", "game1", "game2",
                                                              "game3"), 2.0)) is not None


def test_the_data_path_is_chosen_per_machine_and_recorded(tmp_path, splits):  # noqa: F811
    # RGBT-CC: 1,030 + 200 pairs of 480x640, RGB and 3-channel thermal, as uint8: 2.3 GB.
    rgbtcc = [PairSet("x", [Sample("a", torch.zeros(3, 480, 640, dtype=torch.uint8),
                                   torch.zeros(3, 480, 640, dtype=torch.uint8),
                                   torch.zeros(0, 2))] * n) for n in (1030, 200)]
    assert stack_bytes(rgbtcc[0]) == 1030 * 6 * 480 * 640
    assert fits_on_device(rgbtcc, free_bytes=140 * 2**30)  # an H200
    assert not fits_on_device(rgbtcc, free_bytes=8 * 2**30)  # a small GPU: workers instead
    trainer = Trainer(config(epochs=1, num_workers=1), tmp_path, splits)
    assert trainer.execution == {"on_device": False, "num_workers": 1,
                                 "cudnn_benchmark": False}
    assert trainer.cfg.data.on_device is False  # the recorded config says what ran
    result = trainer.fit()
    stored = checkpoint.load(tmp_path / checkpoint.LAST)["config"]["data"]
    assert stored["on_device"] is False and stored["num_workers"] == 1
    assert result.execution["eval_every"] == 1


def test_one_persistent_loader_serves_every_epoch(splits):  # noqa: F811
    cfg = config(num_workers=1).data
    loader = EpochLoader(splits.train, cfg, 8)
    first = loader._loader
    gen = torch.Generator().manual_seed(0)
    a = [b.ids for b in loader.epoch(gen)]
    b = [b.ids for b in loader.epoch(gen)]
    assert loader._loader is first and first.persistent_workers
    assert sorted(sum(a, [])) == sorted(s.id for s in splits.train) and a != b
    # The same generator draws the same epochs as the in-process path.
    plain = EpochLoader(splits.train, config().data, 8)
    gen = torch.Generator().manual_seed(0)
    assert [b.ids for b in plain.epoch(gen)] == a


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resident_validation_batches_equal_the_host_ones():
    from model.data.loader import make_resident

    pairs, cuda = mixed_sizes(), torch.device("cuda")
    host = list(eval_batches(pairs, cuda, batch_size=3))
    make_resident(pairs, cuda)
    resident = list(eval_batches(pairs, cuda, batch_size=3))
    for a, b in zip(host, resident, strict=True):
        assert a.ids == b.ids and torch.equal(a.rgb, b.rgb) and torch.equal(a.thermal, b.thermal)
