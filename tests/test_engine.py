"""The training engine on tiny synthetic data: learning, resuming, NaN stops, selection."""

import math

import pytest
import torch

from model.config import RunConfig, TrainConfig
from model.data import load_splits
from model.engine import Trainer, TrainingError, oracle_check, train
from model.engine import checkpoint as ckpt
from model.engine.device import resolve_device
from model.engine.evaluate import evaluate_checkpoint
from model.errors import ConfigError

TINY = {
    "synth_n_train": 16, "synth_n_val": 4, "synth_n_test": 4,
    "synth_height": 64, "synth_width": 80, "crop_size": 64,
    "batch_size": 8, "lr": 1e-3, "backbone_lr": 1e-3, "device": "cpu",
}


def config(**overrides) -> RunConfig:
    return RunConfig().with_overrides({**TINY, **overrides})


@pytest.fixture(scope="module")
def splits():
    return load_splits(config().data)


def test_loss_decreases_over_training(tmp_path, splits):
    result = train(config(epochs=6, schedule="none"), tmp_path, splits)
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 6
    assert losses[-1] < losses[0]
    assert all(math.isfinite(result.test[k]) for k in ("game0", "game3", "rmse", "mae"))
    assert len(result.image_results) == len(splits.test)


class Stop(Exception):
    pass


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, splits):
    cfg = config(epochs=3, stn="bounded", shared_backbone=True, fusion="sum")
    whole = Trainer(cfg, tmp_path / "whole", splits)
    whole.fit()

    def crash_after_first(epoch, row):
        if epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        Trainer(cfg, tmp_path / "cut", splits, on_epoch=crash_after_first).fit()
    resumed = Trainer(cfg, tmp_path / "cut", splits)
    assert resumed.resume()
    assert resumed.start_epoch == 1
    resumed.fit()
    for (name, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values(),
                                strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    assert [r["loss"] for r in whole.history] == pytest.approx([r["loss"] for r in resumed.history])


def test_a_foreign_checkpoint_in_the_output_directory_is_refused(tmp_path, splits):
    train(config(epochs=1), tmp_path, splits)
    with pytest.raises(TrainingError, match="another config"):
        train(config(epochs=1, stn="bounded"), tmp_path, splits)


def test_nan_loss_stops_the_run_naming_epoch_and_term(tmp_path, splits):
    trainer = Trainer(config(epochs=3, tv=0.05, aligner="flow"), tmp_path, splits)
    real = trainer.loss_fn.forward

    def poisoned(out, batch, phase=None):
        total, terms = real(out, batch, phase=phase)
        if trainer.history:  # from the second epoch on
            terms["tv"] = terms["tv"] * float("nan")
            total = total + terms["tv"]
        return total, terms

    trainer.loss_fn.forward = poisoned
    with pytest.raises(TrainingError, match=r"'tv' became nan at epoch 1"):
        trainer.fit()


def test_selection_is_on_val_and_test_is_evaluated_once_at_the_selected_epoch(
    tmp_path, splits, monkeypatch
):
    import model.engine.trainer as trainer_module

    calls = []
    real = trainer_module.evaluate

    def spy(net, pairs, *args, **kwargs):
        calls.append((pairs.name, {k: v.clone() for k, v in net.state_dict().items()}))
        return real(net, pairs, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate", spy)
    result = train(config(epochs=4, select_metric="game3"), tmp_path, splits)
    names = [name for name, _ in calls]
    assert names.count("test") == 1 and names[-1] == "test"
    val_scores = [row["val_game3"] for row in result.history]
    assert result.best_epoch == min(range(4), key=val_scores.__getitem__)
    assert result.val["game3"] == pytest.approx(val_scores[result.best_epoch])
    best = ckpt.load(tmp_path / ckpt.BEST)
    assert best["epoch"] == result.best_epoch
    for name, value in best["model"].items():
        assert torch.equal(calls[-1][1][name], value)


def test_saved_checkpoint_evaluates_to_the_reported_test_metrics(tmp_path, splits):
    result = train(config(epochs=1), tmp_path, splits)
    summary, rows = evaluate_checkpoint(str(result.checkpoint), "test")
    assert summary["game0"] == pytest.approx(result.test["game0"], rel=1e-5)
    assert len(rows) == len(splits.test)


def test_oracle_is_zero_unshifted_and_shifts_cost_game3(splits):
    rows = oracle_check(splits.test, stride=1, shifts=(0, 8))
    assert all(rows[0][f"game{k}"] < 1e-6 for k in range(4))
    assert rows[1]["game3"] > 1.0
    assert rows[1]["game0"] < 1.0  # only points merged at the clamped border differ
    coarse = oracle_check(splits.test, stride=8, shifts=(0,))[0]
    # Bicubic resampling is not exactly count-preserving: a small remainder is the protocol.
    assert coarse["game0"] < 0.5 and coarse["game3"] < rows[1]["game3"]


def test_cuda_requested_but_absent_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.parametrize(
    ("field", "value"),
    [("lr", 0.0), ("lr", -1e-4), ("epochs", 0), ("batch_size", 0), ("select_metric", "game9")],
)
def test_invalid_training_values_are_named(field, value):
    with pytest.raises(ConfigError, match=f"^{field}={value!r} is not valid"):
        TrainConfig(**{field: value})


def test_crop_not_divisible_by_the_stride_is_refused_before_training(splits, tmp_path):
    with pytest.raises(ConfigError, match="^crop_size=60 is not valid; it must be divisible"):
        config(crop_size=60)
    assert not any(tmp_path.iterdir())


def test_an_aligners_large_gradient_does_not_shrink_the_counting_networks_step(tmp_path, splits):
    trainer = Trainer(config(stn="bounded", aligner="flow", grad_clip=1.0), tmp_path, splits)
    counting, stn, offset = trainer.clip_groups
    assert [id(p) for p in stn] == [id(p) for p in trainer.net.stn.parameters()]
    assert [id(p) for p in offset] == [id(p) for p in trainer.net.offset.parameters()]
    everything = [id(p) for p in trainer.net.parameters()]
    assert sorted(id(p) for group in trainer.clip_groups for p in group) == sorted(everything)

    small = 0.5 / math.sqrt(sum(p.numel() for p in counting))  # counting norm 0.5: unclipped
    total = (small * sum(p.sum() for p in counting)
             + 1000.0 * sum(p.sum() for p in stn + offset))
    trainer.optimizer.step = lambda: None  # keep the gradients to look at them
    assert trainer._step(total)
    assert all(torch.allclose(p.grad, torch.full_like(p, small)) for p in counting)
    for group in (stn, offset):
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in group]))
        assert norm.item() == pytest.approx(1.0, rel=1e-3)
