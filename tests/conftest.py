"""Shared fixtures for the CLI tests: a tiny copy of the demo study and a scratch directory.

The tiny study is studies/demo.toml with its data shrunk (8/4/4 synthetic 64x64 pairs, crop
64, one epoch), so all its variants train in seconds on two CPU cores while every switch of
the real ablation is still exercised.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.study.study import load_study

# The tests' tensors are tiny: a second intra-op thread only adds synchronisation, and on a
# shared or busy 2-core machine it made the tiny study 10x slower (15 s against 1.6 s).
torch.set_num_threads(1)

# tests/test_extending.py runs the quick checks with a plugin of its own registered first: a
# new aligner, metric or layout must break no test.
if os.environ.get("ABLATE_TEST_PLUGIN"):
    from ablate.plugins import load_plugins

    load_plugins([os.environ["ABLATE_TEST_PLUGIN"]])

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "studies" / "demo.toml"
VARIANTS = list(load_study(DEMO).variants)  # the demo's variants, in file order
METRIC_KEYS = ("game0", "game1", "game2", "game3", "rmse", "mae")
TINY_NAME = "tiny"

# (pattern, replacement) applied to demo.toml; each must match exactly once, so a change to
# the demo study breaks this fixture loudly instead of silently training the full size.
_SHRINK = [
    (r'(?m)^name = "demo"$', f'name = "{TINY_NAME}"'),
    (r"(?m)^crop_size = \d+$", "crop_size = 64"),
    (r"(?m)^synth_n_train = \d+$", "synth_n_train = 8\nsynth_height = 64\nsynth_width = 64"),
    (r"(?m)^synth_n_val = \d+$", "synth_n_val = 4"),
    (r"(?m)^synth_n_test = \d+$", "synth_n_test = 4"),
    (r"(?m)^epochs = \d+$", "epochs = 1"),
    (r"(?m)^align_warmup_epochs = \d+$", "align_warmup_epochs = 0"),
    (r"(?m)^batch_size = \d+$", "batch_size = 8"),
]


def tiny_study_text(**replace: str) -> str:
    """demo.toml shrunk as above; ``replace`` maps a line-start key to a new ``key = value``."""
    text = DEMO.read_text()
    for pattern, repl in _SHRINK + [(rf"(?m)^{k} = .*$", v) for k, v in replace.items()]:
        text, n = re.subn(pattern, repl, text)
        assert n == 1, f"{pattern!r} matched {n} times in {DEMO}"
    return text


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_study_text())
    return path


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path, so the default runs.db and runs/ land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None):
    """Run the CLI in-process. Click 8.2+ keeps result.stdout and result.stderr apart and
    interleaves both in result.output."""
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def ok(*args: str, env: dict[str, str] | None = None):
    result = invoke(*args, env=env)
    assert result.exit_code == 0, (
        f"ablate {' '.join(map(str, args))} exited {result.exit_code}\n{result.output}"
        f"{result.exception!r}"
    )
    return result


def runs_json(db: str | Path | None = None) -> list[dict]:
    result = ok("runs", "list", "--json", *(["--db", str(db)] if db else []))
    return json.loads(result.stdout)


def db_dump(path: Path) -> dict[str, list[tuple]] | None:
    """Every row of every ablate_ table, or None when the file does not exist."""
    if not path.exists():
        return None
    with sqlite3.connect(path) as con:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}


def copy_workdir(src: Path, dst: Path) -> None:
    """Copy a finished study's runs.db and runs/ (save dirs are stored relative to the cwd)."""
    for name in ("runs.db", "runs.db-wal", "runs.db-shm"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    shutil.copytree(src / "runs", dst / "runs")
    shutil.copy2(src / "tiny.toml", dst / "tiny.toml")


def cli_env() -> dict[str, str]:
    """Environment for ``ablate`` subprocesses: one torch thread each, as in-process above."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


# What the `ablate` console script runs, with this interpreter whatever the PATH says.
ABLATE = [sys.executable, "-c", "from ablate.cli.app import main; main()"]


@pytest.fixture(scope="session")
def done_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where the tiny study has run once (one done run per variant). Read-only for
    tests: copy it with ``copy_workdir`` before changing anything."""
    root = tmp_path_factory.mktemp("done_study")
    (root / "tiny.toml").write_text(tiny_study_text())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        ok("study", "run", "tiny.toml", "--quiet")
    return root
