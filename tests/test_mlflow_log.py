"""``--log mlflow`` (issue 13 item 5): a real two-epoch study run becomes MLflow runs that
MLflow's own client reads back (name, tags, params, per-epoch metrics, pictures); a failed
run ends FAILED, a pruned one KILLED; no mlflow package or a bad store is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ablate.db import RunStore
from ablate.errors import UsageError
from ablate.live.mlflow_log import (
    MAX_PARAM,
    MISSING,
    MlflowHooks,
    mlflow_hooks,
    run_name,
    run_params,
)
from ablate.live.tags import scalar_tag
from ablate.run.execute import execute
from ablate.run.hooks import Chain, Hooks, Pruned, RunOutcome
from ablate.study.plan import RunSpec, plan
from ablate.study.study import load_study
from model.config import RunConfig
from tests.conftest import TINY_NAME, invoke, ok, tiny_study_text

# As tests/test_tensorboard.py: two epochs of tiny pairs in a few seconds on one thread.
SMALL = {"epochs": 2, "synth_n_train": 4, "synth_n_val": 2, "synth_n_test": 2, "crop_size": 32,
         "synth_height": 48, "synth_width": 48, "batch_size": 4}


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory):
    """``ablate study run`` of variant D (STN and offsets on) for two epochs, logged to an
    MLflow SQLite store and to TensorBoard at once: (folder, the MLflow run, its client)."""
    root = tmp_path_factory.mktemp("mlflow")
    (root / "tiny.toml").write_text(tiny_study_text())
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        ok("study", "run", "tiny.toml", "--variants", "D", "--epochs", "2", "--log", "mlflow",
           "--log", "tensorboard", "--quiet", env={"MLFLOW_TRACKING_URI": uri})
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(TINY_NAME)
    (run,) = client.search_runs([experiment.experiment_id])
    return root, run, client


def _ablate_run(root: Path):
    with RunStore(str(root / "runs.db")) as store:
        (run,) = store.list_runs()
        return run, store.epochs(run.id)


def test_each_run_is_a_named_tagged_mlflow_run_of_the_study_experiment(logged):
    root, run, _ = logged
    ablate, _ = _ablate_run(root)
    assert run.info.run_name == "D/seed0" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert {k: tags[k] for k in ("study", "variant", "seed", "config_hash", "ablate_run_id",
                                 "action")} == {
        "study": TINY_NAME, "variant": "D", "seed": "0", "config_hash": ablate.config_hash,
        "ablate_run_id": str(ablate.id), "action": "new"}
    assert "condition" not in tags  # the tiny study has no conditions
    ran = RunConfig.from_dict(ablate.config)
    asked = ran.with_overrides({"on_device": True})  # the default; on CPU nothing is resident
    assert run.data.params == run_params(asked)
    assert tags["ran.on_device"] == str(ran.data.on_device) == "False"
    assert run.data.params["stn"] == "bounded" and run.data.params["epochs"] == "2"


def test_every_epoch_value_is_a_metric_per_epoch_and_the_test_metrics_at_the_end(logged):
    root, run, client = logged
    ablate, epochs = _ablate_run(root)
    assert [row["epoch"] for row in epochs] == [0, 1]
    for key in epochs[-1]:
        tag = scalar_tag(key)
        if tag is None or epochs[-1][key] is None:
            continue
        history = client.get_metric_history(run.info.run_id, tag)
        assert [m.step for m in history] == [0, 1], key
        assert [m.value for m in history] == pytest.approx([row[key] for row in epochs])
    metrics = run.data.metrics
    assert {"loss/total", "loss/density", "loss/tv", "loss/feat_l1", "val/game0", "val/game3",
            "val/rmse", "lr/head", "lr/backbone", "speed/pairs_per_s"} <= set(metrics)
    for name in ("game0", "game1", "game2", "game3", "rmse"):
        assert metrics[f"test/{name}"] == pytest.approx(ablate.metric("test", name))


def test_pictures_and_config_are_artifacts(logged, tmp_path):
    _, run, client = logged
    run_id = run.info.run_id
    kinds = {a.path for a in client.list_artifacts(run_id, "val_image")}
    assert kinds == {f"val_image/{k}" for k in ("density", "cells", "stn", "offsets")}
    # image_every 10: epoch 0, and epoch 1 as the last
    assert [a.path for a in client.list_artifacts(run_id, "val_image/stn")] == [
        "val_image/stn/epoch0000.png", "val_image/stn/epoch0001.png"]
    png = Path(client.download_artifacts(run_id, "val_image/stn/epoch0001.png", str(tmp_path)))
    assert png.read_bytes().startswith(b"\x89PNG")
    config = json.loads(Path(client.download_artifacts(run_id, "config.json",
                                                       str(tmp_path))).read_text())
    assert config["model"]["stn"] == "bounded" and config["train"]["epochs"] == 2


def test_tensorboard_logs_the_same_run_beside_mlflow(logged):
    root, _, _ = logged
    events = EventAccumulator(str(root / "runs" / "tensorboard" / TINY_NAME / "D" / "seed0"))
    events.Reload()
    assert {"loss/total", "val/game3", "test/game3"} <= set(events.Tags()["scalars"])


class Stop(Hooks):
    """Training fails (seed 0) or is pruned (seed 1) at epoch 0."""

    def on_claimed(self, spec: RunSpec, outcome: RunOutcome) -> None:
        self.seed = spec.seed

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        raise RuntimeError("the loss is NaN") if self.seed == 0 else Pruned()


def test_a_failed_run_ends_failed_and_a_pruned_one_killed(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "tiny.toml").write_text(tiny_study_text())
    specs = plan(load_study(tmp_path / "tiny.toml"), ["A"], [0, 1], SMALL, tmp_path / "runs")
    hooks = mlflow_hooks(tmp_path / "logs", image_every=0)
    assert (tmp_path / "logs" / "mlflow" / "mlflow.db").is_file()  # the local store
    with RunStore(str(tmp_path / "runs.db")) as store:
        assert [execute(store, s, Chain(hooks, Stop())).status for s in specs] == [
            "failed", "pruned"]
    client = hooks.client
    experiment = client.get_experiment_by_name(TINY_NAME)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert {name: r.info.status for name, r in runs.items()} == {
        "A/seed0": "FAILED", "A/seed1": "KILLED"}
    failed = runs["A/seed0"]
    assert failed.data.tags["error"] == "RuntimeError: the loss is NaN"
    history = client.get_metric_history(failed.info.run_id, "val/game3")
    assert [m.step for m in history] == [0]  # logged before it failed, nothing after
    assert "test/game3" not in failed.data.metrics


def test_names_carry_the_condition_and_params_are_cut_to_what_mlflow_takes():
    config = RunConfig().with_overrides({"data_path": "/d" * 400})
    spec = RunSpec("s", "C", 2, "", config, config.config_hash(), Path("x"), condition="night")
    assert run_name(spec) == "C/seed2/night"
    params = run_params(config)
    assert params["data_path"] == ("/d" * 400)[:MAX_PARAM - 3] + "..."
    assert len(params["data_path"]) == MAX_PARAM == 500
    assert params["stn"] == "none" and params["pretrained"] == "None"
    assert len(params) == len(config.flat())


def test_without_the_mlflow_package_it_is_one_line_and_no_database(tiny_study, in_tmp,
                                                                    monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "mlflow"] + ["mlflow"]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it fails as if absent
    monkeypatch.delitem(sys.modules, "ablate.live.mlflow_log", raising=False)
    result = invoke("study", "run", tiny_study, "--log", "mlflow")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {MISSING}\n"
    assert MISSING == ("--log mlflow needs the mlflow package: pip install 'ablate[mlflow]' "
                       "(or mlflow-skinny)")
    assert not (in_tmp / "runs.db").exists()


def test_an_unusable_tracking_uri_is_one_line_before_any_run(tiny_study, in_tmp):
    result = invoke("study", "run", tiny_study, "--log", "mlflow",
                    env={"MLFLOW_TRACKING_URI": "nosuch://x"})
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: --log mlflow: the tracking store nosuch://x cannot be used: ")
    assert result.stderr.count("\n") == 1
    assert not (in_tmp / "runs.db").exists()


def test_help_and_other_loggers_do_not_import_mlflow():
    code = ("import sys; from typer.testing import CliRunner; from ablate.cli.app import app; "
            "from ablate.cli.options import RunOptions; "
            "CliRunner().invoke(app, ['study', 'run', '--help']); "
            "RunOptions(log=('tensorboard',)).live_logging(); "
            "print('mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "False", done.stderr


def test_hooks_refuse_a_negative_picture_interval():
    with pytest.raises(UsageError, match="image_every=-1 is not valid"):
        MlflowHooks(None, image_every=-1)  # type: ignore[arg-type]
