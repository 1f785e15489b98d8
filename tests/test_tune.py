"""``ablate tune``: trials are runs, resuming adds trials, pruning, parallel workers on a journal
file and on PostgreSQL, and every bad input refused before any trial exists."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy import MetaData, create_engine
from typer.testing import CliRunner

import ablate.run.execute
from ablate.cli.app import app
from ablate.db import RunStore
from ablate.db.host import hostname
from ablate.errors import AblateError
from ablate.study.study import Study, load_study
from ablate.tune import parse_tune, tune_summary
from ablate.tune.objective import Objective
from ablate.tune.options import TuneOptions
from ablate.tune.session import prepare, worker_jobs
from ablate.tune.storage import fail_dead_trials, journal_path
from ablate.tune.summary import EVALUATOR, importances
from ablate.tune.workers import gpu_slots, shares
from model.engine.trainer import TrainResult

TINY = """
[study]
name = "tiny"

[model]
backbone = "tiny"

[train]
epochs = 1
batch_size = 4

[variants.A]
label = "plain"

[tune]
variant = "A"
n_trials = 3
{extra_tune}

[tune.space.lr]
type = "float"
low = 1e-4
high = 1e-2
log = true

[tune.space.tv]
{tv}
"""
TV_OK = "type = \"float\"\nlow = 0.0\nhigh = 0.1"
SMALL = ["--set", "synth_n_train=8", "--set", "synth_n_val=4", "--set", "synth_n_test=4",
         "--set", "synth_height=64", "--set", "synth_width=64", "--set", "crop_size=64",
         "--epochs", "1", "--quiet"]
STUDY = "tiny-A-tune"


def write_study(tmp: Path, tv: str = TV_OK, extra_tune: str = "") -> Path:
    path = tmp / "tiny.toml"
    path.write_text(TINY.format(tv=tv, extra_tune=extra_tune))
    return path


def tune(*args: str):
    return CliRunner().invoke(app, ["tune", *map(str, args)])


def ok(*args: str):
    result = tune(*args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def tune_runs(db: str) -> list:
    with RunStore(db) as store:
        return [r for r in store.list_runs("tiny") if r.variant == "A-tune"]


def optuna_studies(db: Path) -> list[str]:
    """Optuna study names in a SQLite file, without creating Optuna's tables."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return [r[0] for r in con.execute("SELECT study_name FROM studies")] if (
            "studies" in tables) else []


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two workers on two cores
    return tmp_path


def test_trials_are_runs_and_a_rerun_adds_trials(in_tmp: Path) -> None:
    study = write_study(in_tmp)
    ok(study, "--db", "t.db", *SMALL)
    storage = "sqlite:///t.db"
    trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials()
    assert len(trials) == 3 and len(tune_runs("t.db")) == 3

    ok(study, "--db", "t.db", "--n-trials", "2", "--confirm-seeds", "2", *SMALL)
    trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials()
    runs = tune_runs("t.db")
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert sorted(r.trial_number for r in runs) == [0, 1, 2, 3, 4]
    by_run = {r.id: r for r in runs}
    for trial in trials:
        run = by_run[trial.user_attrs["run_id"]]
        assert run.tune_study == STUDY and run.params == trial.params
        assert run.config["train"]["lr"] == pytest.approx(trial.params["lr"])
        if trial.state == TrialState.COMPLETE:  # the objective is the run's val GAME3
            assert run.status == "done"
            assert trial.value == pytest.approx(run.as_dict()["val_game3"])
    summary = tune_summary(storage, STUDY)
    assert summary["importance_evaluator"] == "FanovaImportanceEvaluator"
    assert [h[0] for h in summary["history"]] == [0, 1, 2, 3, 4]
    assert summary["best_params"].keys() == {"lr", "tv"}
    assert summary["best_value"] == min(t.value for t in trials if t.value is not None)
    # 5 complete trials over two params: fANOVA runs and splits the importance between them.
    assert summary["importance_note"] is None
    assert summary["importances"].keys() == {"lr", "tv"}
    assert sum(summary["importances"].values()) == pytest.approx(1.0)
    with RunStore("t.db") as store:  # --confirm-seeds: the best params, seeds 0 and 1, tested
        best = [r for r in store.list_runs("tiny") if r.variant == "A-best"]
    assert [(r.seed, r.status) for r in best] == [(0, "done"), (1, "done")]
    assert all(r.as_dict()["game3"] is not None and r.trial_number is None for r in best)
    assert best[0].config["train"]["lr"] == pytest.approx(summary["best_params"]["lr"])
    with pytest.raises(AblateError, match="no Optuna study 'other'"):
        tune_summary(storage, "other")
    with RunStore("t.db") as store:  # the study's definition is in the runs database
        assert store.study_record("tiny") == load_study(study).to_record()


def _crafted_study(values: list[tuple[float, float, float]]) -> optuna.Study:
    """Complete trials with params x, y and the given objective values."""
    search = optuna.create_study()
    dists = {"x": optuna.distributions.FloatDistribution(0, 1),
             "y": optuna.distributions.FloatDistribution(0, 1)}
    for x, y, value in values:
        search.add_trial(optuna.trial.create_trial(params={"x": x, "y": y}, distributions=dists,
                                                   value=value))
    return search


def test_importances_name_the_param_that_explains_the_objective() -> None:
    grid = [(x / 7, ((3 * x) % 8) / 8) for x in range(8)]
    search = _crafted_study([(x, y, 10 * x) for x, y in grid])  # only x matters
    result = importances(search, search.trials)
    assert result["note"] is None and result["n_complete"] == 8
    assert list(result["importances"]) == ["x", "y"], "sorted, most important first"
    assert result["importances"]["x"] > 0.9


def test_importances_explain_why_there_are_none() -> None:
    search = _crafted_study([(0.5, 0.5, 1.0)])
    result = importances(search, search.trials)
    assert result["importances"] == {}
    assert result["note"] == f"{EVALUATOR} needs at least 2 complete trials; 1 complete so far"


class FakeTrain:
    """Stands in for the trainer: val GAME3 per epoch is 100 for lr >= 5e-3, else 1."""

    def __init__(self) -> None:
        self.epochs_run: list[int] = []

    def __call__(self, cfg, out_dir, splits, on_epoch=None) -> TrainResult:
        value = 100.0 if cfg.train.lr >= 5e-3 else 1.0
        val = {m: value for m in ("game0", "game1", "game2", "game3", "rmse", "mae")}
        history = []
        for epoch in range(cfg.train.epochs):
            self.epochs_run.append(epoch)
            row = {"epoch": epoch, "loss": 1.0, **{f"val_{k}": v for k, v in val.items()}}
            history.append(row)
            on_epoch(epoch, row)
        return TrainResult(cfg.train.epochs - 1, val, val, history)


class NoData:
    def get(self, cfg):
        return None


def test_pruning_stops_a_trial_far_worse_than_the_median(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = load_study(write_study(tmp_path))
    spec = parse_tune(study)
    fake = FakeTrain()
    monkeypatch.setattr(ablate.run.execute, "train", fake)
    search = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for lr in (1e-4, 2e-4, 3e-4, 8e-3):
        search.enqueue_trial({"lr": lr, "tv": 0.05})
    with RunStore(str(tmp_path / "t.db")) as store:
        objective = Objective(store, study, spec, "crafted", {"epochs": 4}, tmp_path / "runs",
                              splits=NoData())
        search.optimize(objective, n_trials=4)
        runs = {r.trial_number: r for r in store.list_runs("tiny")}
    states = [t.state for t in search.trials]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    assert search.trials[3].last_step == 0 and fake.epochs_run[-1] == 0  # stopped at epoch 0
    assert runs[3].status == "pruned" and runs[3].epochs_done == 1
    assert [runs[n].status for n in range(3)] == ["done"] * 3


def trial_numbers_without_duplicates(trials: list, runs: list, n: int) -> None:
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(n)), numbers
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(r.trial_number for r in runs) == list(range(n))
    assert len({r.id for r in runs}) == n and all(r.status == "done" for r in runs)


def test_a_dead_workers_trial_is_failed_and_retried(tmp_path: Path) -> None:
    """Journal files have no Optuna heartbeat: a trial whose worker process is gone is failed
    and queued again with the same params (the retry then resumes the run's checkpoint)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s.journal")))
    search = optuna.create_study(storage=storage)
    alive, orphan = search.ask(), search.ask()
    for trial, pid in ((alive, os.getpid()), (orphan, dead.pid)):
        trial.suggest_float("lr", 1e-4, 1e-2)
        for key, value in (("host", hostname()), ("pid", pid), ("trial", trial.number)):
            trial.set_user_attr(key, value)
    with RunStore(str(tmp_path / "t.db")) as store:
        assert fail_dead_trials(search, store) == [orphan.number]
        assert fail_dead_trials(search, store) == []
    states = [t.state for t in search.get_trials()]
    assert states == [TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING]
    assert search.trials[2].params == search.trials[1].params


def test_shares_add_up_to_the_trials_asked() -> None:
    assert shares(5, 2) == [3, 2] and shares(1, 3) == [1] and sum(shares(7, 4)) == 7


@pytest.mark.parametrize(("count", "visible", "slots"), [
    (0, None, [None, None]), (1, None, [None, None]), (2, None, ["0", "1", "0"]),
    (2, "4,5", ["4", "5", "4"])])
def test_one_gpu_per_worker_when_several(monkeypatch: pytest.MonkeyPatch, count: int,
                                         visible: str | None, slots: list) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert gpu_slots(len(slots)) == slots


@pytest.mark.slow
def test_two_workers_share_one_journal_file(in_tmp: Path) -> None:
    study = write_study(in_tmp)
    ok(study, "--db", "t.db", "--n-workers", "2", "--n-trials", "3", *SMALL)
    journal = in_tmp / "t.optuna.journal"
    assert journal.exists() and optuna_studies(in_tmp / "t.db") == []
    storage = JournalStorage(JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials()
    trial_numbers_without_duplicates(trials, tune_runs("t.db"), 3)


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get("ABLATE_TEST_PG_URL")
    if not url:
        pytest.skip("ABLATE_TEST_PG_URL is not set")
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        meta.drop_all(engine)  # ablate_ and Optuna tables of earlier runs
    finally:
        engine.dispose()
    return url


@pytest.mark.slow
def test_two_workers_on_postgresql(in_tmp: Path, pg_url: str) -> None:
    study = write_study(in_tmp)
    ok(study, "--db", pg_url, "--storage", pg_url, "--n-workers", "2", "--n-trials", "3", *SMALL)
    trials = optuna.load_study(study_name=STUDY, storage=pg_url).get_trials()
    trial_numbers_without_duplicates(trials, tune_runs(pg_url), 3)
    assert tune_summary(pg_url, STUDY)["best_trial"] is not None


BAD_SPACES = {
    "inverted": ('type = "float"\nlow = 0.2\nhigh = 0.1', "inverted range"),
    "empty": ('type = "float"\nlow = 0.1\nhigh = 0.1', "empty range"),
    "log at 0": ('type = "float"\nlow = 0.0\nhigh = 0.1\nlog = true', "log range needs low > 0"),
    "unknown type": ('type = "floaty"\nlow = 0.0\nhigh = 0.1', "type is 'floaty'"),
    "no choices": ('type = "categorical"\nchoices = []', "needs choices"),
    "nan low": ('type = "float"\nlow = nan\nhigh = 0.1', "low=nan is not a finite number"),
    "inf high": ('type = "float"\nlow = 0.0\nhigh = inf', "high=inf is not a finite number"),
    "nan step": ('type = "float"\nlow = 0.0\nhigh = 0.1\nstep = nan',
                 "step=nan is not a finite number"),
    "nan choice": ('type = "categorical"\nchoices = [0.1, nan]',
                   "choice nan is not a finite number"),
}


@pytest.mark.parametrize("case", BAD_SPACES)
def test_bad_space_is_one_line_and_creates_no_trial(in_tmp: Path, case: str) -> None:
    tv, message = BAD_SPACES[case]
    study = write_study(in_tmp, tv=tv)
    refused(tune(study, "--db", "t.db", *SMALL), f"{study} [tune.space.tv]: {message}", in_tmp)


def test_unknown_field_suggests_the_close_one(in_tmp: Path) -> None:
    study = write_study(in_tmp)
    study.write_text(study.read_text().replace("[tune.space.tv]", "[tune.space.tvv]"))
    refused(tune(study, "--db", "t.db", *SMALL), "did you mean tv", in_tmp)


def test_choice_that_is_no_valid_config(in_tmp: Path) -> None:
    study = write_study(in_tmp)
    study.write_text(study.read_text() + '\n[tune.space.offset_stage]\ntype = "categorical"\n'
                     "choices = [1, 3]\n")
    refused(tune(study, "--db", "t.db", *SMALL), "offset_stage=3", in_tmp)


BAD_OPTIONS = {
    "pruner": (["--pruner", "fast"], "unknown pruner 'fast'"),
    "sampler": (["--sampler", "grid"], "unknown sampler 'grid'"),
    "multi-objective pruned": (["--pruner", "median"], "cannot prune"),
    "storage scheme": (["--storage", "nosuch://x/y"], "cannot open Optuna storage"),
    "storage server": (["--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/x"],
                       "cannot open Optuna storage"),
    "journal dir": (["--storage", "missing/dir/s.journal"], "cannot open Optuna storage"),
    "n-trials": (["--n-trials", "0"], "--n-trials 0"),
    "set seed": (["--set", "seed=3"], "seed is chosen per run: use --seed or --seeds"),
    "set nan": (["--set", "lr=nan"], "lr=nan"),
}


@pytest.mark.parametrize("case", BAD_OPTIONS)
def test_bad_option_is_one_line_and_creates_no_trial(in_tmp: Path, case: str) -> None:
    args, message = BAD_OPTIONS[case]
    multi = 'objectives = ["game0", "game3"]' if case == "multi-objective pruned" else ""
    study = write_study(in_tmp, extra_tune=multi)
    result = tune(study, "--db", "t.db", *args, *SMALL)
    refused(result, message, in_tmp)
    assert "secret" not in result.output


def refused(result, message: str, tmp: Path) -> None:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert message in lines[0] and "Traceback" not in result.output
    assert optuna_studies(tmp / "t.db") == []
    assert not list(tmp.glob("*.journal")) and not (tmp / "runs").exists()


def test_workers_get_the_study_and_options_as_data_not_set_strings(tmp_path: Path) -> None:
    (tmp_path / "align.py").write_text("VALUE = 1\n")
    path = write_study(tmp_path)
    path.write_text(path.read_text().replace('name = "tiny"', 'name = "tiny"\nplugins = '
                                             '["./align.py"]'))
    study = load_study(path)
    options = TuneOptions(n_trials=5, n_workers=2, db=str(tmp_path / "t.db"),
                          save_root=Path("runs"), extra={"epochs": 1, "lr": 2e-3})
    setup = prepare(study, options)
    with RunStore(options.db) as store:
        jobs = worker_jobs(study, options, setup, store)
    assert [job["options"]["n_trials"] for job in jobs] == [3, 2]
    for job in jobs:
        back = TuneOptions.from_json(json.loads(json.dumps(job["options"])))
        assert back.extra == {"epochs": 1, "lr": 2e-3} and back.worker and back.n_workers == 1
        assert back.storage == str(tmp_path / "t.optuna.journal") == setup.target.url
        assert back.study_name == STUDY and back.save_root.is_absolute()
        assert job["study"]["plugins"] == [str(tmp_path / "align.py")]
        assert Study.from_record(job["study"]) == study


def test_journal_path_is_next_to_a_sqlite_runs_database(in_tmp: Path) -> None:
    assert journal_path("t.db") == in_tmp / "t.optuna.journal"
    assert journal_path(f"sqlite:///{in_tmp}/sub/r.db") == in_tmp / "sub" / "r.optuna.journal"
    assert journal_path("sqlite://") is None
    assert journal_path("postgresql+psycopg://u:pw@host/ablate") is None


def test_importances_warn_when_the_trials_are_too_few_or_too_alike() -> None:
    """Issue 24: fANOVA shares were printed as if they meant something on 3 trials, or on
    trials whose objective did not change."""
    grid = [(x / 11, ((5 * x) % 12) / 12) for x in range(12)]
    varied = _crafted_study([(x, y, 10 * x + 1) for x, y in grid])
    assert importances(varied, varied.trials)["warning"] is None
    few = _crafted_study([(x, y, 10 * x + 1) for x, y in grid[:4]])
    assert importances(few, few.trials)["warning"].startswith("only 4 complete trials")
    alike = _crafted_study([(x, y, 5.0 + 0.001 * x) for x, y in grid])
    warning = importances(alike, alike.trials)["warning"]
    assert warning.startswith("the objective hardly varies over the 12 complete trials")


def test_the_optuna_study_names_its_objective(tmp_path: Path) -> None:
    """optuna-dashboard labels its plots with the study's metric names (issue 24)."""
    from ablate.tune.search import create_or_load
    from ablate.tune.space import parse_tune

    spec = parse_tune(load_study(write_study(tmp_path)))
    storage = optuna.storages.InMemoryStorage()
    found = create_or_load(storage, "s", spec, optuna.samplers.RandomSampler(),
                           optuna.pruners.NopPruner())
    assert found.metric_names == [f"val_{spec.label}"] == ["val_game3"]
    again = optuna.load_study(study_name="s", storage=storage)
    assert again.metric_names == ["val_game3"]
