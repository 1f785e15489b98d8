"""The run pipeline: ``plan`` resolves and checks every run before the database is touched,
``execute`` claims, trains, records and reports every outcome through its hooks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import ablate.run.execute
from ablate.db import RunStore
from ablate.errors import ConfigError, UsageError
from ablate.live.progress import outcome_line
from ablate.run.execute import execute
from ablate.run.hooks import Hooks, Pruned
from ablate.study.plan import PlanOptions, RunSpec, plan
from ablate.study.study import Study, load_study
from model.config import RunConfig
from model.engine.checkpoint import LAST
from model.engine.trainer import TrainResult
from model.metrics import metric_names

STUDY = """
[study]
name = "pipe"
[train]
epochs = 2
[variants.A]
label = "a"
[variants.B]
base = "A"
label = "b"
stn = true
"""


class FakeTrain:
    """Stands in for the trainer: every metric is 1.0; ``fail`` makes it raise."""

    def __init__(self) -> None:
        self.out_dirs: list[Path] = []
        self.fail = False

    def __call__(self, cfg, out_dir, splits, on_epoch=None) -> TrainResult:
        self.out_dirs.append(Path(out_dir))
        if self.fail:
            raise RuntimeError("the GPU fell off\nsecond line")
        metrics = {name: 1.0 for name in metric_names()}
        history = []
        for epoch in range(cfg.train.epochs):
            row = {"epoch": epoch, "loss": 0.5, **{f"val_{k}": v for k, v in metrics.items()}}
            history.append(row)
            on_epoch(epoch, row)
        return TrainResult(cfg.train.epochs - 1, metrics, metrics, history)


class NoData:
    def get(self, cfg):
        return None


class Recorder(Hooks):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_claimed(self, spec, outcome):
        self.calls.append(("claimed", outcome.run_id, outcome.action))

    def on_epoch(self, epoch, row):
        self.calls.append(("epoch", epoch))

    def on_finished(self, outcome):
        self.calls.append(("finished", outcome.status, outcome.action))


@pytest.fixture
def study(tmp_path: Path) -> Study:
    path = tmp_path / "pipe.toml"
    path.write_text(STUDY)
    return load_study(path)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTrain:
    trainer = FakeTrain()
    monkeypatch.setattr(ablate.run.execute, "train", trainer)
    return trainer


def test_plan_resolves_each_config_once_seeds_outer(study, tmp_path, monkeypatch):
    calls = []
    original = Study.config
    monkeypatch.setattr(Study, "config", lambda self, *a, **k: calls.append(a[:2]) or
                        original(self, *a, **k))
    specs = plan(study, ["A", "B"], [0, 1], {"epochs": 1}, tmp_path / "runs")
    assert calls == [("A", 0), ("B", 0), ("A", 1), ("B", 1)]
    assert [(s.variant, s.seed) for s in specs] == calls
    a0 = specs[0]
    assert a0.config.train.epochs == 1 and a0.config_hash == a0.config.config_hash()
    assert a0.save_dir == (tmp_path / "runs" / "pipe" / f"A-seed0-{a0.config_hash}").resolve()
    assert (a0.label, a0.study, a0.force) == ("a", "pipe", False)


def test_run_spec_round_trips_through_json(study, tmp_path):
    spec = plan(study, ["B"], [3], {"lr": 2e-3}, tmp_path, PlanOptions(force=True))[0]
    assert RunSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_plan_checks_the_weights_before_anything_is_claimed(study, tmp_path):
    missing = tmp_path / "nosuch.pth"
    with pytest.raises(ConfigError, match=f"not found at {missing}"):
        plan(study, ["A"], [0], {"backbone": "vgg16_bn", "pretrained": str(missing)}, tmp_path)


def test_force_into_an_exact_folder_with_a_checkpoint_is_refused(study, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / LAST).write_bytes(b"")
    with pytest.raises(UsageError, match="holds a last.pt"):
        plan(study, ["A"], [0], {}, tmp_path, PlanOptions(True, tmp_path / "out"))
    (spec,) = plan(study, ["A"], [0], {}, tmp_path, PlanOptions(exact_save_dir=tmp_path / "out"))
    assert spec.save_dir == (tmp_path / "out").resolve()


def test_done_then_skipped_each_reported_once(study, tmp_path, fake):
    (spec,) = plan(study, ["A"], [0], {}, tmp_path / "runs")
    hooks = Recorder()
    with RunStore(str(tmp_path / "t.db")) as store:
        first = execute(store, spec, hooks, NoData())
        run_id = first.run_id
        assert hooks.calls == [("claimed", run_id, "new"), ("epoch", 0), ("epoch", 1),
                               ("finished", "done", "new")]
        assert first.trained and first.test == {name: 1.0 for name in metric_names()}
        assert store.get_run(run_id).status == "done"
        hooks.calls.clear()
        again = execute(store, spec, hooks, NoData())
    assert (again.run_id, again.skipped, again.trained) == (run_id, True, False)
    assert hooks.calls == [("finished", "done", "skip-done")]
    assert fake.out_dirs == [spec.save_dir]


def test_failed_run_is_recorded_then_resumed_in_its_own_folder(study, tmp_path, fake):
    (spec,) = plan(study, ["A"], [0], {}, tmp_path / "runs")
    hooks = Recorder()
    with RunStore(str(tmp_path / "t.db")) as store:
        fake.fail = True
        failed = execute(store, spec, hooks, NoData())
        assert (failed.status, failed.error) == ("failed", "RuntimeError: the GPU fell off")
        assert hooks.calls[-1] == ("finished", "failed", "new")
        assert "Traceback" in store.get_run(failed.run_id).error
        fake.fail = False
        elsewhere = dataclasses.replace(spec, save_dir=tmp_path / "elsewhere")
        resumed = execute(store, elsewhere, hooks, NoData())
    assert (resumed.action, resumed.run_id, resumed.status) == ("resume", failed.run_id, "done")
    assert fake.out_dirs == [spec.save_dir, spec.save_dir], "a resumed run keeps its folder"


def test_pruned_and_busy_are_reported(study, tmp_path, fake):
    (spec,) = plan(study, ["A"], [0], {}, tmp_path / "runs")
    inner = Recorder()

    class PruneAtOnce(Recorder):
        def on_claimed(self, spec, outcome):
            super().on_claimed(spec, outcome)
            self.busy = execute(store, spec, inner, NoData())  # the same run, while it runs

        def on_epoch(self, epoch, row):
            raise Pruned("worse than the median")

    hooks = PruneAtOnce()
    with RunStore(str(tmp_path / "t.db")) as store:
        outcome = execute(store, spec, hooks, NoData())
        assert store.get_run(outcome.run_id).status == "pruned"
    assert outcome.status == "pruned" and hooks.calls[-1] == ("finished", "pruned", "new")
    assert (hooks.busy.status, hooks.busy.action) == ("busy", "skip-busy")
    assert inner.calls == [("finished", "busy", "skip-busy")]


def test_the_run_records_the_execution_settings_it_ran_with_and_its_warnings(study, tmp_path,
                                                                            monkeypatch):
    def degenerate(cfg, out_dir, splits, on_epoch=None) -> TrainResult:
        metrics = {name: 0.0 for name in metric_names()}
        return TrainResult(0, metrics, metrics, [], warnings=["loss reached 0"],
                           execution={"on_device": False, "num_workers": 3,
                                      "cudnn_benchmark": False})

    monkeypatch.setattr(ablate.run.execute, "train", degenerate)
    (spec,) = plan(study, ["A"], [0], {"on_device": True}, tmp_path / "runs")
    with RunStore(str(tmp_path / "runs.db")) as store:
        outcome = execute(store, spec, Hooks(), NoData())
        run = store.get_run(outcome.run_id)
    assert (run.config["data"]["on_device"], run.config["data"]["num_workers"]) == (False, 3)
    assert run.config_hash == spec.config_hash == RunConfig.from_dict(run.config).config_hash()
    assert outcome.warnings == ["loss reached 0"]
    assert "warning A seed 0: loss reached 0" in outcome_line(outcome)


def test_the_planner_names_the_trainers_checkpoint_without_importing_it():
    import ablate.study.plan

    assert ablate.study.plan.LAST == LAST
