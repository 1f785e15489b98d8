"""Opening a runs database: the default URL and SQLite settings, bad URLs as one line, and
read-only opening. Reading commands (`runs list`, `runs show`, `report`, `viz`) never create
or alter a database: a missing file stays missing, an empty file or another program's SQLite
file is one `Error:` line and stays byte for byte the same (no ablate tables, no WAL)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.db import SCHEMA_VERSION, ClaimSpec, RunStore
from ablate.errors import AblateError, DatabaseError

READERS = [("runs", "list"), ("runs", "show", "1"), ("report",), ("viz", "1")]


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def other_program_db(path: Path) -> None:
    """Someone else's SQLite file, in the default rollback-journal mode."""
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        con.execute("INSERT INTO notes (text) VALUES ('mine')")
    con.close()


def ablate_db(path: Path) -> None:
    with RunStore(str(path)) as store:
        store.record_study("demo", {"name": "demo", "variants": []})


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_missing_file_is_not_created(tmp_path, command):
    path = tmp_path / "none.db"
    line = one_error_line(invoke(*command, "--db", path))
    assert line.startswith(f"Error: no runs database at {path}; `ablate study run FILE` "
                           "creates one"), line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READERS, ids=" ".join)
@pytest.mark.parametrize("kind", ["empty", "other program", "text"])
def test_non_ablate_file_is_one_line_and_unchanged(tmp_path, command, kind):
    path = tmp_path / "other.db"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a database\n")
    else:
        other_program_db(path)
    before = path.read_bytes()
    line = one_error_line(invoke(*command, "--db", path))
    assert f"{path} is not an ablate runs database" in line, line
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal, no -journal
    if kind == "other program":
        with sqlite3.connect(path) as con:
            assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master")]
        con.close()
        assert tables == ["notes"]


def test_readonly_store_refuses_missing_and_writes(tmp_path):
    with pytest.raises(DatabaseError, match="^no runs database at "):
        RunStore(str(tmp_path / "none.db"), readonly=True)
    assert not (tmp_path / "none.db").exists()
    path = tmp_path / "runs.db"
    ablate_db(path)
    with RunStore(str(path), readonly=True) as store:
        assert store.study_names() == ["demo"]
        with pytest.raises(DatabaseError, match="readonly|read-only"):
            store.record_study("other", {"name": "other"})
    with RunStore(str(path)) as store:
        assert store.study_names() == ["demo"]


def test_readonly_keeps_the_journal_mode_of_an_ablate_file(tmp_path):
    """An ablate file copied in rollback-journal mode is read without switching it to WAL."""
    path = tmp_path / "runs.db"
    ablate_db(path)
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA journal_mode = DELETE")
    con.close()
    before = path.read_bytes()
    with RunStore(str(path), readonly=True) as store:
        assert store.list_runs() == []
    assert path.read_bytes() == before
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    con.close()


def test_newer_schema_is_refused_read_only(tmp_path):
    path = tmp_path / "runs.db"
    ablate_db(path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE ablate_meta SET value = ?", [str(SCHEMA_VERSION + 1)])
    con.close()
    with pytest.raises(DatabaseError, match="newer than this ablate's"):
        RunStore(str(path), readonly=True)


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_empty_db_option_names_the_value(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(invoke(*command, "--db", ""))
    assert line.startswith("Error: database '' is empty"), line
    assert list(tmp_path.iterdir()) == []


def test_runs_list_of_an_unknown_study_names_the_recorded_ones(tmp_path):
    path = tmp_path / "runs.db"
    ablate_db(path)
    with RunStore(str(path)) as store:
        store.claim(ClaimSpec("zeta", "A", 0, {"v": 1}, "h"))
    line = one_error_line(invoke("runs", "list", "--study", "nosuch", "--db", path))
    assert line == f"Error: no study 'nosuch' in sqlite:///{path}; recorded: demo, zeta"
    listed = invoke("runs", "list", "--study", "zeta", "--db", path, "--json")
    assert listed.exit_code == 0 and '"study": "zeta"' in listed.stdout


def test_default_url_and_sqlite_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with RunStore() as store:
        assert store.url.database == str(tmp_path / "runs.db")
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 10_000
    assert (tmp_path / "runs.db").is_file()
    with RunStore(f"sqlite:///{tmp_path}/b.db") as store:
        assert store.claim(ClaimSpec("demo", "A", 0, {"v": 1}, "h")).action == "new"


def _bad_urls(tmp_path: Path) -> list[str]:
    (tmp_path / "file.txt").write_text("x")
    return [
        "nosuchdb://host/x",
        "postgresql+psycopg://user:secret@127.0.0.1:1/ablate",
        str(tmp_path / "missing" / "runs.db"),
        str(tmp_path / "file.txt" / "runs.db"),
        str(tmp_path),
        "postgresql://user@host:notaport/db",
        "sqlite+nosuchdriver:///x.db",
    ]


def test_bad_urls_give_one_line_errors(tmp_path):
    for url in _bad_urls(tmp_path):
        with pytest.raises(AblateError) as info:
            RunStore(url)
        message = str(info.value)
        assert "\n" not in message and "secret" not in message, message
        assert message.startswith("cannot open database "), message
    assert "***" in _error_for("postgresql+psycopg://user:secret@127.0.0.1:1/ablate")


def _error_for(url: str) -> str:
    with pytest.raises(AblateError) as info:
        RunStore(url)
    return str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write any file")
def test_unwritable_file(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(str(path)).close()
    path.chmod(0o444)
    assert "not a writable file" in _error_for(str(path))



def test_empty_url_names_the_empty_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for readonly in (False, True):
        with pytest.raises(DatabaseError, match="^database '' is empty"):
            RunStore("", readonly=readonly)
    assert list(tmp_path.iterdir()) == []
