"""Checkpoints: the network is rebuilt from the config stored in the file, whatever the CLI's
defaults; anything that is not a loadable ablate checkpoint is one ``CheckpointError`` line
naming the file, from the library and through ``ablate eval``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.db.claim import ClaimSpec
from model.config import RunConfig
from model.engine import checkpoint
from model.engine.evaluate import evaluate_checkpoint
from model.errors import CheckpointError, ConfigError
from model.metrics import metric_names
from model.network import build_model

TINY = {"synth_n_train": 2, "synth_n_val": 1, "synth_n_test": 2, "synth_height": 64,
        "synth_width": 64, "crop_size": 64, "device": "cpu"}
# Far from the defaults: another aligner, stage, reference, thermal channels and fusion, so a
# network built from the defaults cannot load these weights.
OTHER = {**TINY, "stn": "bounded", "aligner": "deform", "offset_stage": 2,
         "reference": "rgb", "thermal_channels": 1, "shared_backbone": True, "fusion": "sum",
         "multiscale_head": "stride4", "domain_head": "grl"}


def write_checkpoint(path: Path, cfg: RunConfig, weights_of: RunConfig | None = None) -> Path:
    torch.manual_seed(0)
    net = build_model((weights_of or cfg).model)
    torch.save({"config": cfg.to_dict(), "epoch": 3, "model": net.state_dict()}, path)
    return path


@pytest.fixture
def other(tmp_path: Path) -> Path:
    return write_checkpoint(tmp_path / "best.pt", RunConfig().with_overrides(OTHER))


def eval_cli(*args: str):
    return CliRunner().invoke(app, ["eval", *args])


def test_a_checkpoint_of_another_config_is_rebuilt_from_its_own(other):
    loaded = checkpoint.load_model(other)
    assert loaded.config == RunConfig().with_overrides(OTHER)
    assert loaded.epoch == 3 and not loaded.net.training
    assert type(loaded.net.offset).__name__ == "DeformAlign"
    weights = torch.load(other, weights_only=True)["model"]
    assert all(torch.equal(v, weights[k]) for k, v in loaded.net.state_dict().items())


def test_eval_of_another_config_prints_every_metric(other):
    summary, rows = evaluate_checkpoint(other, "test")
    assert summary["n_images"] == len(rows) == 2
    result = eval_cli(str(other), "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {*metric_names(), "n_images"}
    assert printed == pytest.approx(summary)


def test_overrides_move_the_data_but_a_bad_override_is_a_config_error(other):
    loaded = checkpoint.load_model(other, {"device": "cpu", "synth_n_test": 1})
    assert loaded.config.data.synth_n_test == 1
    with pytest.raises(ConfigError, match="device='tpu' is not valid"):
        checkpoint.load_model(other, {"device": "tpu"})
    with pytest.raises(ConfigError, match="split='dev' is not valid"):
        evaluate_checkpoint(other, "dev")


def foreign_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, the message it must give)."""
    default = RunConfig().with_overrides(TINY)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a checkpoint\n")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    folder = tmp_path / "run_dir"
    folder.mkdir()
    tensors = tmp_path / "tensors.pt"
    torch.save({"weights": torch.zeros(3)}, tensors)
    real = write_checkpoint(tmp_path / "real.pt", default)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(real.read_bytes()[:300])
    mismatched = write_checkpoint(tmp_path / "mismatched.pt", default,
                                  weights_of=RunConfig().with_overrides(OTHER))
    stranger = tmp_path / "stranger.pt"
    record = default.to_dict()
    record["model"]["aligner"] = "cross_attention"  # a plugin that is not loaded
    torch.save({"config": record, "model": {}}, stranger)
    return {
        "directory": (folder, f"{folder} is a directory, not a checkpoint file"),
        "missing": (tmp_path / "gone.pt", f"checkpoint {tmp_path / 'gone.pt'} does not exist"),
        "text": (text, f"{text} is not a checkpoint (not a PyTorch file)"),
        "empty": (empty, f"{empty} is not a checkpoint (not a PyTorch file)"),
        "truncated": (truncated, f"{truncated} is not a readable checkpoint: "),
        "no ablate keys": (tensors, f"{tensors} is not an ablate checkpoint (no model or "
                                    "config inside)"),
        "weights of another model": (mismatched, f"{mismatched} does not fit the model built "
                                                 "from its own config: "),
        "unknown part": (stranger, f"{stranger} holds a config this version cannot build: "
                                   "aligner='cross_attention' is not valid"),
    }


CASES = ["directory", "missing", "text", "empty", "truncated", "no ablate keys",
         "weights of another model", "unknown part"]


@pytest.mark.parametrize("case", CASES)
def test_a_file_that_is_no_loadable_checkpoint_is_one_line_naming_it(tmp_path, case):
    path, message = foreign_files(tmp_path)[case]
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_model(path)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("case", CASES)
def test_eval_reports_each_bad_checkpoint_as_one_error_line(tmp_path, case):
    path, message = foreign_files(tmp_path)[case]
    result = eval_cli(str(path))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {message}")
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_the_mismatch_message_counts_what_does_not_fit(tmp_path):
    path, _ = foreign_files(tmp_path)["weights of another model"]
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_model(path)
    text = str(err.value)
    assert "missing weights (first: stn." not in text  # stn is in the weights, not the model
    assert "unexpected weights (first: stn." in text
    assert "weights of another shape (first: encoder.stem_thermal.weight)" in text


def test_viz_loads_a_run_through_the_same_loader(tmp_path):
    from ablate.db import RunStore
    from ablate.viz.infer import load_run

    cfg = RunConfig().with_overrides(OTHER)
    (tmp_path / "run").mkdir()
    write_checkpoint(tmp_path / "run" / checkpoint.BEST, cfg)
    (tmp_path / "bad").mkdir()
    bad = write_checkpoint(tmp_path / "bad" / checkpoint.BEST, RunConfig(), weights_of=cfg)
    with RunStore(str(tmp_path / "runs.db")) as store:
        good = store.claim(ClaimSpec("s", "G", 0, cfg.to_dict(), cfg.config_hash(),
                           save_dir=str(tmp_path / "run"))).run
        other = store.claim(ClaimSpec("s", "A", 0, cfg.to_dict(), cfg.config_hash(),
                            save_dir=str(tmp_path / "bad"))).run
        loaded = load_run(store, good.id)
        assert loaded.config == cfg and loaded.epoch == 3
        assert type(loaded.net.offset).__name__ == "DeformAlign"
        with pytest.raises(CheckpointError, match=f"^{bad} does not fit the model"):
            load_run(store, other.id)
