"""A metric registered in one place (here, in the test) is stored with every run, printed by
`ablate runs show --json` and shown by the report, with no edit anywhere in ablate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import ablate.db
from ablate.cli.app import app
from ablate.db import ClaimSpec, RunStore
from ablate.report import build_report, render_report
from model import registry
from model.config import RunConfig
from model.metrics import aggregate, metric, metric_names

NAME, HEADER = "count_bias", "Bias"
METRICS = {"game0": 10.5, "game1": 12.0, "game2": 14.25, "game3": 17.0, "rmse": 15.5, "mae": 10.5}


@pytest.fixture
def count_bias():
    """Mean signed count error over the images: positive = the model over-counts."""
    metric(NAME, HEADER)(lambda cols: float(cols["error"].mean()))
    yield
    registry.unregister("metric", NAME)


@pytest.fixture
def store(tmp_path):
    with RunStore(str(tmp_path / "runs.db")) as opened:
        yield opened


def _claim(store: RunStore):
    cfg = RunConfig()
    return store.claim(ClaimSpec("demo", "A", 0, cfg.to_dict(), cfg.config_hash()))


def per_image(errors: list[float]) -> list[dict]:
    return [{"image_id": str(i), "game0": abs(e), "game1": abs(e), "game2": abs(e),
             "game3": abs(e), "error": e, "pred_count": 10.0 + e, "true_count": 10.0}
            for i, e in enumerate(errors)]


def invoke(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def shown(db: str, run_id: int) -> dict:
    return json.loads(invoke("runs", "show", str(run_id), "--json", "--db", db).stdout)


def test_a_registered_metric_is_stored_listed_and_reported(tmp_path, count_bias):
    db = str(tmp_path / "runs.db")
    cfg = RunConfig()
    test, val = aggregate(per_image([1.0, 2.0, -1.5])), aggregate(per_image([-3.0, 1.0]))
    assert (test[NAME], val[NAME]) == (pytest.approx(0.5), pytest.approx(-1.0))
    with RunStore(db) as store:
        run_id = store.claim(ClaimSpec("bias", "A", 0, cfg.to_dict(), cfg.config_hash())).run.id
        store.finish(run_id, val, test, 1, [])
    info = shown(db, run_id)
    assert info[NAME] == pytest.approx(0.5) and info[f"val_{NAME}"] == pytest.approx(-1.0)
    assert info["test"][NAME] == pytest.approx(0.5) and info["game0"] == pytest.approx(1.5)
    listed = json.loads(invoke("runs", "list", "--json", "--db", db).stdout)
    assert listed[0][NAME] == pytest.approx(0.5)
    with RunStore(db, readonly=True) as store:
        report = build_report(store, "bias")
    markdown = render_report(report, "markdown")
    header = next(line for line in markdown.splitlines() if line.startswith("| Method |"))
    assert header.split(" | ")[-3:-2] == [HEADER]  # the last metric column, before the tests
    row = next(line for line in markdown.splitlines() if line.startswith("| A |"))
    assert row.endswith("| **0.50** |  |  |")  # the only value in its column: the best
    html = render_report(report, "html")
    assert f"<th>{HEADER}</th>" in html and ">0.50<" in html


def test_a_trained_run_records_the_metric(tmp_path, monkeypatch, count_bias):
    """One epoch of the tiny demo's variant A: the trainer's metrics include the new one, and
    its value is the mean signed error of the stored per-image test results."""
    from conftest import tiny_study_text

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(tiny_study_text())
    invoke("run", "--study", "tiny.toml", "--variant", "A", "--quiet")
    info = shown("runs.db", 1)
    assert info["status"] == "done" and info[NAME] is not None
    with RunStore("runs.db", readonly=True) as store:
        images = store.image_results(1)
    errors = np.array([row["pred_count"] - row["true_count"] for row in images])
    assert info[NAME] == pytest.approx(errors.mean(), abs=1e-6)
    with RunStore("runs.db", readonly=True) as store:
        html = render_report(build_report(store), "html")
    assert f"<th>{HEADER}</th>" in html


def test_metric_accessor_and_version_1_attribute_names(store):
    run_id = _claim(store).run.id
    store.finish(run_id, {**METRICS, "game3": 1.25, "loss": 0.5}, METRICS, 1, [])
    run = store.get_run(run_id)
    assert run.metric("val", "game3") == 1.25 and run.metric("test", "game3") == 17.0
    assert (run.val_game3, run.test_rmse) == (1.25, 15.5)  # schema version 1's attributes
    with pytest.raises(KeyError, match="unknown metric 'loss'"):
        run.metric("val", "loss")  # not a registered metric: not stored
    with pytest.raises(ValueError, match="split 'train'"):
        run.metric("train", "game0")
    assert not hasattr(run, "val_nosuch") and not hasattr(run, "train_game0")
    assert ablate.db.METRICS == metric_names()


def test_a_metric_registered_later_is_stored_and_an_unloaded_one_still_shown(store):
    metric("p90", "P90")(lambda cols: float(np.percentile(np.abs(cols["error"]), 90)))
    try:
        run_id = _claim(store).run.id
        store.finish(run_id, {**METRICS, "p90": 2.0}, {**METRICS, "p90": 3.0}, 1, [])
        row = store.run_dicts()[0]
        assert (row["p90"], row["val_p90"]) == (3.0, 2.0)
        keys = list(row)
        first = keys.index("game0")
        assert "condition" in keys[:first] and "config_hash" in keys[:first]  # key fields first
        assert keys[first:first + 7] == [*METRICS, "p90"]  # then the metrics, before val_
    finally:
        registry.unregister("metric", "p90")
    run = store.get_run(run_id)  # the plugin is not loaded now: its values are not hidden
    assert run.metrics("test") == {**METRICS, "p90": 3.0}
