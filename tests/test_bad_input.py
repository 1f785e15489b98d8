"""Bad input, round two (issue 15): each case is one ``Error:`` line naming the value, exit
code 1, no traceback, the runs database byte for byte as it was and no run folder made."""

from __future__ import annotations

import re

import pytest
from conftest import copy_workdir, db_dump, invoke, ok, tiny_study_text

from ablate.db import ClaimSpec, RunStore

# (id, study-file line replacing the key's line, a regex the error line must match)
BAD_VALUES = [
    ("lr-nan", ("lr", "lr = nan"), r"lr=nan is not valid"),
    ("lr-inf", ("lr", "lr = inf"), r"lr=inf is not valid"),
    ("epochs-1e400", ("epochs", "epochs = 1e400"), r"epochs=inf is not valid"),
    ("epochs-1.5", ("epochs", "epochs = 1.5"), r"epochs=1\.5 is not valid"),
    ("epochs-ten", ("epochs", 'epochs = "ten"'), r"epochs='ten' is not valid"),
    ("crop-7", ("crop_size", "crop_size = 7"), r"crop_size=7 is not valid.*downsample_ratio"),
    ("levels-int", ("local_count_levels", "local_count_levels = 1"),
     r"local_count_levels=1 is not valid"),
    # Round three (issue 24): a file's string is a string, whatever --set would parse it to;
    # every integer fits numpy's and torch's int64.
    ("warmup-text", ("align_warmup_epochs", 'align_warmup_epochs = "5"'),
     r"align_warmup_epochs='5' is not valid; it must be an integer"),
    ("decoys-1e20", ("synth_n_test", "synth_n_test = 4\nsynth_max_decoys = 100000000000000000000"),
     r"synth_max_decoys=100000000000000000000 is not valid; it must be an integer in \[0, 10000\]"),
    ("synth-seed-2e64", ("synth_n_test", "synth_n_test = 4\nsynth_seed = 18446744073709551616"),
     r"synth_seed=18446744073709551616 is not valid; .*int64"),
]
# (id, --set value, a regex the error line must match)
BAD_SETS = [
    ("set-lr-nan", "lr=nan", r"lr=nan is not valid"),
    ("set-epochs-1.5", "epochs=1.5", r"epochs=1\.5 is not valid"),
    ("set-epochs-ten", "epochs=ten", r"epochs='ten' is not valid"),
    ("set-crop-7", "crop_size=7", r"crop_size=7 is not valid"),
    ("set-seed", "seed=3", r"seed is chosen per run: use --seed or --seeds"),
    ("set-grl-lambda-inf", "grl_lambda=inf", r"grl_lambda=inf is not valid"),
    ("set-decoys-1e20", "synth_max_decoys=100000000000000000000",
     r"synth_max_decoys=100000000000000000000 is not valid; it must be an integer in"),
    ("set-people-10001", "synth_max_people=10001", r"synth_max_people=10001 is not valid"),
    ("set-synth-seed-2e64", "synth_seed=18446744073709551616",
     r"synth_seed=18446744073709551616 is not valid; .*int64"),
]


@pytest.fixture(params=["no-db", "db-with-a-run"])
def workdir(request, in_tmp):
    (in_tmp / "tiny.toml").write_text(tiny_study_text())
    (in_tmp / "folder").mkdir()
    (in_tmp / "notes.txt").write_text("hello\n")
    if request.param == "db-with-a-run":
        with RunStore() as store:
            claim = store.claim(ClaimSpec("tiny", "A", 0, {"lr": 1e-3}, "0123456789abcdef",
                                          label="A"))
            metrics = {m: 1.0 for m in ("game0", "game1", "game2", "game3", "rmse", "mae")}
            store.finish(claim.run.id, metrics, metrics, 0, [])
    return in_tmp


def assert_one_line_and_unchanged(workdir, args, expected):
    db = workdir / "runs.db"
    before = db_dump(db)
    result = invoke(*args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(expected, lines[0]), lines[0]
    assert db_dump(db) == before, "the runs database changed"
    assert not (workdir / "runs").exists(), "no run folder is made"


@pytest.mark.parametrize("command", [["study", "show"], ["study", "run"]])
@pytest.mark.parametrize("line, expected", [c[1:] for c in BAD_VALUES],
                         ids=[c[0] for c in BAD_VALUES])
def test_bad_values_in_a_study_file_claim_nothing(workdir, command, line, expected):
    key, text = line
    (workdir / "bad.toml").write_text(tiny_study_text(**{key: text}))
    assert_one_line_and_unchanged(workdir, [*command, "bad.toml"], r"bad\.toml.*" + expected)


@pytest.mark.parametrize("value, expected", [c[1:] for c in BAD_SETS],
                         ids=[c[0] for c in BAD_SETS])
def test_bad_set_values_claim_nothing(workdir, value, expected):
    assert_one_line_and_unchanged(workdir, ["study", "run", "tiny.toml", "--set", value],
                                  expected)


@pytest.mark.parametrize("args, expected", [
    (["study", "run", "folder"], r"folder is a directory, not a study file"),
    (["study", "show", "folder"], r"folder is a directory, not a study file"),
    (["eval", "folder"], r"folder is a directory, not a checkpoint file"),
    (["eval", "notes.txt"], r"notes\.txt is not a checkpoint"),
    (["runs", "list", "--db", ""], r"database '' is empty"),
    (["viz", "-1"], r"ablate viz: No such option: -1"),
    # Round three (issue 24): the value given is named, as in every other one-line error.
    (["runs", "show", "abc"],
     r"^Error: ablate runs show: Invalid value for 'run_id': 'abc' is not valid; it should be "
     r"a valid integer.* \(see ablate runs show --help\)$"),
    (["study", "run", "tiny.toml", "--epochs", "1.5"],
     r"ablate study run: Invalid value for '--epochs': '1\.5' is not valid"),
], ids=["study-dir", "show-dir", "eval-dir", "eval-text", "db-empty", "viz-negative",
        "show-not-int", "epochs-not-int"])
def test_messages_name_the_culprit(workdir, args, expected):
    assert_one_line_and_unchanged(workdir, args, expected)


def test_runs_list_of_an_unknown_study_says_so(workdir):
    expected = (r"no study 'nosuch'" if (workdir / "runs.db").exists()
                else r"no runs database at")
    assert_one_line_and_unchanged(workdir, ["runs", "list", "--study", "nosuch"], expected)


@pytest.mark.parametrize("spec", ["exits.py", "exits_module"])
def test_a_plugin_that_exits_at_import_is_a_failing_plugin(workdir, monkeypatch, spec):
    """sys.exit(0) in a plugin ended ablate with exit code 0 and no word (issue 24)."""
    (workdir / "exits.py").write_text("import sys\nsys.exit(0)\n")
    (workdir / "exits_module.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(workdir))
    for command in (["study", "show"], ["study", "run"]):
        assert_one_line_and_unchanged(workdir, [*command, "tiny.toml", "--plugin", spec],
                                      rf"plugin .*{spec.removesuffix('.py')}.* failed to import: "
                                      r"it called sys\.exit\((0|3)\)")


# -- round three (issue 24): what a run writes, and every count, checked before any claim ----

@pytest.mark.parametrize("args, expected", [
    (["study", "run", "tiny.toml", "--save-dir", "notes.txt/runs"],
     r"--save-dir notes\.txt/runs: cannot write run files there: .*notes\.txt is a file"),
    (["run", "--study", "tiny.toml", "--save-dir", "notes.txt/one"],
     r"--save-dir notes\.txt/one: cannot write run files there: .*notes\.txt is a file"),
    (["study", "run", "tiny.toml", "--log", "tensorboard", "--log-dir", "notes.txt/tb"],
     r"--log-dir notes\.txt/tb: cannot write run files there"),
    (["tune", "tiny.toml", "--save-dir", "notes.txt/runs"],
     r"--save-dir notes\.txt/runs: cannot write run files there"),
    (["study", "run", "tiny.toml", "--seeds", "100000000000"],
     r"--seeds 100000000000 is not valid; it must be at most \d+"),
    (["study", "run", "tiny.toml", "--seeds", "auto", "--target-mde", "0.5", "--max-seeds",
      "100000000000"], r"--max-seeds 100000000000 is not valid; it must be at most \d+"),
    (["tune", "tiny.toml", "--confirm-seeds", "100000000000"],
     r"--confirm-seeds 100000000000 is not valid; it must be at most \d+"),
    (["study", "run", "tiny.toml", "--workers", "1000"],
     r"--workers 1000 is not valid; it must be at most \d+ \(\d+ per core"),
    (["tune", "tiny.toml", "--workers", "1000"], r"--workers 1000 is not valid"),
    (["tune", "tiny.toml", "--storage", "folder"],
     r"cannot open Optuna storage .*folder is a directory, not a file"),
    (["tune", "tiny.toml", "--storage", "folder/nosuch/t.journal"],
     r"cannot open Optuna storage .*t\.journal: directory .*nosuch does not exist"),
], ids=["save-dir-file", "run-save-dir-file", "log-dir-file", "tune-save-dir-file",
        "seeds-1e11", "max-seeds-1e11", "confirm-seeds-1e11", "workers-1000", "tune-workers-1000",
        "storage-dir", "storage-journal-no-dir"])
def test_unwritable_paths_and_unbounded_counts_claim_nothing(workdir, args, expected):
    assert_one_line_and_unchanged(workdir, args, expected)


@pytest.fixture
def no_worker_processes(monkeypatch):
    """Fails a test that starts a worker process."""
    import ablate.launch.local

    def refuse(*args, **kwargs):
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(ablate.launch.local.subprocess, "Popen", refuse)


def test_workers_with_nothing_left_to_do_start_none(done_study, in_tmp, no_worker_processes):
    """--workers 3 on a study already done hung at "study 0/1" while 3 processes loaded
    torch only to skip (and --workers 1000 never came back)."""
    copy_workdir(done_study, in_tmp)
    result = ok("study", "run", "tiny.toml", "--variants", "A,B", "--workers", "3", "--quiet")
    assert "0 trained, 2 skipped, 0 failed" in result.stdout


def test_workers_are_cut_to_the_runs_left(in_tmp, no_worker_processes):
    (in_tmp / "tiny.toml").write_text(tiny_study_text())
    result = ok("study", "run", "tiny.toml", "--variants", "A", "--workers", "3", "--quiet")
    assert "note: 3 workers for 1 run(s) left to do: starting 1" in result.stderr
    assert "1 trained, 0 skipped, 0 failed" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "Next: ablate report tiny"
