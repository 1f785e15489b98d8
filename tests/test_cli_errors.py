"""Bad input (issue 5): each gives one line starting "Error:" on stderr, exit code 1, no
traceback, and leaves the runs database as it was (not even created when it did not exist)."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import db_dump, invoke

from ablate.db import ClaimSpec, RunStore

BAD_TOML = '[study]\nname = "bad"\nthis is not toml\n'
PG_URL = "postgresql+psycopg://nobody@127.0.0.1:1/x"  # nothing listens on port 1

# (id, arguments, a regex the error line must match). "{tmp}" is the working directory.
CASES = [
    ("unknown-variant", ["study", "run", "tiny.toml", "--variants", "A,Z"],
     "unknown variant 'Z'; valid: A, B, C, D, E, F, G"),
    ("unknown-variant-run", ["run", "--study", "tiny.toml", "--variant", "Z"],
     "valid: A, B, C, D, E, F, G"),
    ("missing-study", ["study", "run", "nope.toml"], "study file not found: nope.toml"),
    ("missing-study-show", ["study", "show", "nope.toml"], "study file not found: nope.toml"),
    ("malformed-study", ["study", "run", "bad.toml"], "bad.toml"),
    ("unknown-set-key", ["study", "run", "tiny.toml", "--set", "stnn=true"], "did you mean stn"),
    ("set-not-key-value", ["study", "run", "tiny.toml", "--set", "stn"], "not key=value"),
    ("negative-lr", ["study", "run", "tiny.toml", "--set", "lr=-1"], "lr"),
    ("negative-lr-run", ["run", "--study", "tiny.toml", "--lr", "-1"], "lr"),
    ("zero-epochs", ["study", "run", "tiny.toml", "--epochs", "0"], "epochs"),
    ("zero-seeds", ["study", "run", "tiny.toml", "--seeds", "0"], "--seeds 0"),
    ("missing-data-path", ["study", "run", "tiny.toml", "--data-path", "/does/not/exist"],
     "/does/not/exist does not exist"),
    ("unknown-layout", ["study", "run", "tiny.toml", "--data-path", "{tmp}/empty"],
     "unrecognised dataset layout"),
    ("unknown-layout-run", ["run", "--data-path", "{tmp}/empty"], "unrecognised dataset layout"),
    ("cuda-absent", ["study", "run", "tiny.toml", "--device", "cuda"], "CUDA is not available"),
    ("db-unreachable", ["study", "run", "tiny.toml", "--variants", "A", "--db", PG_URL],
     "cannot open database " + re.escape(PG_URL)),
    ("db-missing-dir", ["study", "run", "tiny.toml", "--db", "{tmp}/missing/runs.db"],
     "does not exist"),
    ("db-missing-dir-list", ["runs", "list", "--db", "{tmp}/missing/runs.db"],
     "no runs database at .*/missing/runs.db"),
    ("runs-show-999", ["runs", "show", "999"], "no run with id 999|no runs database at"),
    ("eval-missing-checkpoint", ["eval", "nope.pt"], "nope.pt does not exist"),
    ("pretrained-missing",
     ["run", "--study", "tiny.toml", "--set", "backbone=vgg16_bn",
      "--set", "pretrained={tmp}/v.pth"],
     "pretrained weights for vgg16_bn"),
]


@pytest.fixture(params=["no-db", "db-with-a-run"])
def workdir(request, tiny_study, in_tmp):
    """The tiny study, an empty folder, a malformed study and, in one flavour, a runs.db that
    already holds a finished run (bad input must leave it byte for byte as it was)."""
    (in_tmp / "empty").mkdir()
    (in_tmp / "bad.toml").write_text(BAD_TOML)
    if request.param == "db-with-a-run":
        with RunStore() as store:
            claim = store.claim(ClaimSpec("tiny", "A", 0, {"lr": 1e-3}, "0123456789abcdef",
                                          label="A"))
            metrics = {m: 1.0 for m in ("game0", "game1", "game2", "game3", "rmse", "mae")}
            store.record_epoch(claim.run.id, 0, {"loss": 2.0})
            store.finish(claim.run.id, metrics, metrics, 0, [
                {"image_id": "1", "true_count": 3.0, "pred_count": 2.5}])
    return in_tmp


@pytest.mark.parametrize("args, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_1_and_changes_nothing(workdir, args, expected):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    db = workdir / "runs.db"
    before = db_dump(db)
    result = invoke(*(a.replace("{tmp}", str(workdir)) for a in args))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(expected, lines[0]), lines[0]
    assert result.stdout == "", "nothing ran, so nothing is reported"
    assert db_dump(db) == before, "the runs database changed"
    assert not (workdir / "runs").exists(), "no run directory is made"


def test_malformed_study_names_file_and_line(workdir):
    result = invoke("study", "run", "bad.toml")
    assert result.exit_code == 1
    assert "bad.toml" in result.stderr and "line 3" in result.stderr, result.stderr
