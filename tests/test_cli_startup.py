"""``ablate --help`` and every command's ``--help`` import none of the heavy libraries.

Typer builds the options of every command for any help, so one heavy import at the top of a
``cli_*`` module (torch, Optuna, SQLAlchemy, ...) costs every command seconds of start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "torchvision", "optuna", "sqlalchemy", "matplotlib", "mlflow", "tensorboard")

# Run in a fresh interpreter (this one imported torch through conftest). The commands are found
# by walking the command tree, so a command added later is checked too.
RENDER_EVERY_HELP = """
import json, sys
import typer.main
from typer.testing import CliRunner
from ablate.cli import app

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


def test_every_help_imports_no_heavy_library():
    done = subprocess.run([sys.executable, "-c", RENDER_EVERY_HELP, *HEAVY],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"", "study run", "runs list", "launch slurm"} <= set(result["shown"])
    assert result["heavy"] == [], f"--help imported {', '.join(result['heavy'])}"
