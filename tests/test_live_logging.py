"""``--log tensorboard`` on the commands that train (issue 13 item 5): event files per run;
a logger that does not exist is one line before any database is made."""

from __future__ import annotations

from conftest import TINY_NAME, invoke, ok
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def test_study_run_writes_event_files_per_run(tiny_study, in_tmp):
    ok("study", "run", tiny_study, "--variants", "A", "--log", "tensorboard", "--quiet")
    folder = in_tmp / "runs" / "tensorboard" / TINY_NAME / "A" / "seed0"
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "loss/total" in tags and "val/game3" in tags and "lr/backbone" in tags


def test_an_unknown_logger_is_one_line_and_no_database(tiny_study, in_tmp):
    result = invoke("study", "run", tiny_study, "--log", "wandb")
    assert result.exit_code == 1
    assert result.stderr == "Error: --log wandb is not valid; choose one of tensorboard, mlflow\n"
    assert not (in_tmp / "runs.db").exists()


def test_tune_refuses_live_logging(tiny_study, in_tmp):
    result = invoke("tune", tiny_study, "--log", "tensorboard")
    assert result.exit_code == 1 and result.stderr.startswith("Error: --log is for")
    assert not (in_tmp / "runs.db").exists()
