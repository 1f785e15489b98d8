"""Names that become paths: ``ablate.paths`` keeps them inert and under their root, and
``ablate study run`` writes only under --save-dir whatever a study file names itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ok, runs_json, tiny_study_text

from ablate.errors import UsageError
from ablate.paths import MAX_NAME, inside, safe_name
from ablate.study.plan import choose_save_dir
from ablate.study.study import load_study
from ablate.tune import parse_tune
from ablate.tune.objective import Objective

HOSTILE = ["../../etc/x", "..", "~", "~root/x", "a/b/c", "nul\0byte", "x" * 300, ".hidden",
           "/abs/olute", "a\\..\\b", ""]


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_name_is_one_inert_component(name):
    part = safe_name(name)
    assert part and "/" not in part and "\\" not in part and "\0" not in part
    assert ".." not in part and not part.startswith((".", "~", "-"))
    assert len(part.encode()) <= MAX_NAME


def test_safe_name_keeps_plain_names_and_keeps_changed_ones_apart():
    assert safe_name("A-seed0-0123abcd") == "A-seed0-0123abcd"
    assert safe_name("a/b") != safe_name("a_b"), "a changed name carries a hash of the original"
    assert safe_name("x" * 300) != safe_name("x" * 301)


@pytest.mark.parametrize("name", HOSTILE)
def test_inside_stays_under_its_root(tmp_path, name):
    path = inside(tmp_path, name, "run")
    assert tmp_path.resolve() in path.parents


def test_inside_refuses_a_symlink_out_of_the_root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(UsageError, match="is not inside"):
        inside(tmp_path / "root", "link", "x")


@pytest.mark.parametrize("name", HOSTILE)
def test_every_run_folder_is_under_the_save_root(tmp_path, name):
    folder = choose_save_dir(tmp_path, (name, f"{name}-seed0-abc"))
    forced = choose_save_dir(tmp_path, (name, "A-seed0-abc"), force=True)
    for path in (folder, forced):
        assert tmp_path.resolve() in path.parents
    assert forced != choose_save_dir(tmp_path, (name, "A-seed0-abc"))


def _files(root: Path) -> set[Path]:
    return {Path(dirpath) / f for dirpath, _, files in os.walk(root) for f in files}


@pytest.mark.parametrize("name", ["../../etc/x", "ABSOLUTE", "a/b", "~", "x" * 300])
def test_study_run_writes_only_under_save_dir(tmp_path, monkeypatch, name):
    work = tmp_path / "d1" / "d2"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    if name == "ABSOLUTE":
        name = str(tmp_path / "elsewhere")
    text = tiny_study_text(name=f"name = {name!r}".replace("'", '"'))
    (work / "s.toml").write_text(text)
    before = _files(tmp_path)
    ok("study", "run", "s.toml", "--variants", "A", "--save-dir", "out", "--db", "r.db",
       "--quiet")
    (row,) = runs_json("r.db")
    assert row["study"] == name and row["status"] == "done"
    new = _files(tmp_path) - before
    outside = [p for p in new if (work / "out") not in p.parents and p.parent != work]
    assert not outside, outside
    assert any(p.name == "best.pt" for p in new)
    assert {p.name for p in new if p.parent == work} <= {"r.db", "r.db-wal", "r.db-shm"}


def test_tuning_trial_folders_stay_under_the_save_root(tmp_path):
    study_file = tmp_path / "s.toml"
    study_file.write_text('[study]\nname = "../../up"\n[variants.G]\nlabel = "g"\n'
                          '[tune]\n[tune.space.lr]\ntype = "float"\nlow = 1e-4\nhigh = 1e-2\n')
    study = load_study(study_file)
    objective = Objective(None, study, parse_tune(study), "../../../tune", {}, tmp_path / "r")
    spec = objective.trial_spec(7, {"lr": 1e-3})
    assert (tmp_path / "r").resolve() in spec.save_dir.parents
    assert spec.save_dir.name == f"trial-0007-{spec.config_hash}"
    assert (spec.variant, spec.force, spec.config.train.lr) == ("G-tune", True, 1e-3)
