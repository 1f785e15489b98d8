"""The one error formatter (issue 10 item 7, issue 15 item 6): user errors and bad arguments
are one ``Error:`` line with exit code 1; anything else is a bug, exit code 2, traceback kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ablate.cli.app import _OneLineErrors, app
from ablate.errors import ConfigError, DataError

demo = typer.Typer(cls=_OneLineErrors)


@demo.command()
def boom(kind: str, count: int = 1) -> None:
    """Raise what ``kind`` names."""
    if kind == "config":
        raise ConfigError("lr=nan is not valid; it must be a finite number > 0")
    if kind == "data":
        raise DataError("data/x_GT.json: not JSON\nsecond line")
    if kind == "bug":
        raise ValueError("an internal invariant broke")


@demo.command()
def other() -> None:
    """A second command, so that the app is a group."""


def run(*args: str):
    return CliRunner().invoke(demo, list(args))


def test_user_errors_are_one_line_exit_1():
    result = run("boom", "config")
    assert result.exit_code == 1
    assert result.stderr == "Error: lr=nan is not valid; it must be a finite number > 0\n"
    data = run("boom", "data")
    assert data.exit_code == 1
    assert data.stderr == "Error: data/x_GT.json: not JSON; second line\n"


def test_a_bug_is_exit_2_with_the_traceback_in_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    result = run("boom", "bug")
    assert result.exit_code == 2
    assert result.stderr.startswith("Bug: ValueError: an internal invariant broke\n")
    path = Path(re.search(r"traceback is in (\S+)", result.stderr).group(1))
    assert path.parent == tmp_path
    text = path.read_text()
    assert "Traceback (most recent call last)" in text and "an internal invariant broke" in text


@pytest.mark.parametrize("args, expected", [
    (["boom", "config", "--count", "x"], r"^Error: \S+ boom: Invalid value for '--count'"),
    (["boom"], r"^Error: \S+ boom: Missing argument 'kind'"),
    (["boom", "config", "--nope"], r"^Error: \S+ boom: No such option: --nope"),
    (["nosuch"], r"^Error: \S+: No such command 'nosuch'"),
])
def test_bad_arguments_are_one_line_exit_1_without_a_box(args, expected):
    result = run(*args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(expected, lines[0]), result.stderr
    assert "--help" in lines[0] and "╭" not in result.output


@pytest.mark.parametrize("args", [["viz", "-1"], ["runs", "show", "abc"], ["study", "run"],
                                  ["nosuch"], ["report", "--format"]])
def test_the_real_cli_formats_argument_errors_the_same_way(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"Error: ablate[ :]", lines[0]), result.stderr
    assert "╭" not in result.output and "Traceback" not in result.output


def test_a_group_without_a_command_shows_its_help():
    result = CliRunner().invoke(app, ["study"])
    assert result.exit_code == 0
    assert "Usage:" in result.stdout and "run" in result.stdout
