"""``ablate --help`` and every command's ``--help`` import none of the heavy libraries, and the
commands that only read the runs database import none but SQLAlchemy.

Typer builds the options of every command for any help, so one heavy import at the top of a
``cli_*`` module (torch, Optuna, SQLAlchemy, ...) costs every command seconds of start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ablate.db import ClaimSpec, RunStore
from model.config import RunConfig

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "optuna", "sqlalchemy", "matplotlib", "mlflow", "tensorboard")

# Run in a fresh interpreter (this one imported torch through conftest). The commands are found
# by walking the command tree, so a command added later is checked too.
RENDER_EVERY_HELP = """
import json, sys
import typer.main
from typer.testing import CliRunner
from ablate.cli.app import app

def paths(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, (*path, name))

runner = CliRunner()
shown = []
for path in paths(typer.main.get_command(app)):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output, (path, result.output)
    shown.append(" ".join(path))
loaded = {name.partition(".")[0] for name in sys.modules}
print(json.dumps({"shown": shown, "heavy": sorted(loaded & set(sys.argv[1:]))}))
"""

# The runs database is argv[1]; the libraries to look for follow it.
READ_THE_RUNS = """
import json, sys
from typer.testing import CliRunner
import ablate.db
from ablate.cli.app import app

db = sys.argv[1]
with ablate.db.RunStore(db, readonly=True) as store:
    runs = [(run["id"], run["variant"], run["game0"]) for run in store.run_dicts()]
exits = [CliRunner().invoke(app, [*command, "--db", db]).exit_code
         for command in (["runs", "list"], ["runs", "show", "1"])]
loaded = {name.partition(".")[0] for name in sys.modules}
print(json.dumps({"runs": runs, "exits": exits, "heavy": sorted(loaded & set(sys.argv[2:]))}))
"""


def fresh(script: str, *args: str) -> dict:
    """What ``script`` printed as JSON, run in a fresh interpreter in the repository."""
    done = subprocess.run([sys.executable, "-c", script, *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_help_imports_no_heavy_library():
    result = fresh(RENDER_EVERY_HELP, *HEAVY)
    assert {"", "study run", "runs list", "launch slurm"} <= set(result["shown"])
    assert result["heavy"] == [], f"--help imported {', '.join(result['heavy'])}"


def test_reading_the_runs_database_imports_only_sqlalchemy(tmp_path):
    db = str(tmp_path / "runs.db")
    config = RunConfig()
    metrics = {"game0": 10.5, "game1": 12.0, "game2": 14.25, "game3": 17.0, "rmse": 15.5,
               "mae": 10.5}
    with RunStore(db) as store:
        run = store.claim(ClaimSpec("demo", "A", 0, config.to_dict(), config.config_hash())).run
        store.finish(run.id, metrics, metrics, 1, [])
    others = [name for name in HEAVY if name != "sqlalchemy"]
    result = fresh(READ_THE_RUNS, db, *others)
    assert result["runs"] == [[1, "A", 10.5]]
    assert result["exits"] == [0, 0]
    assert result["heavy"] == [], f"reading the runs imported {', '.join(result['heavy'])}"
