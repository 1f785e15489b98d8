"""The README as a contract: every command and option it shows exists, every command that
exists is in its table, and every command's help ends with an example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from ablate.cli.app import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
ROOT = typer.main.get_command(app)
_OPTION = re.compile(r"^-{1,2}[A-Za-z][\w-]*")


def _snippets() -> list[str]:
    """Every command line of the README: lines of fenced blocks and inline code spans."""
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", README, flags=re.S)
    joined = [re.sub(r"\\\n\s*", " ", block) for block in blocks]  # continued lines
    lines = [line for block in joined for line in block.splitlines()]
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", README, flags=re.S))
    return [text for text in lines + inline if re.search(r"(^|\s)ablate\s", text)]


def _command_and_options(snippet: str):
    """(the click command an ``ablate ...`` snippet names, the options it uses)."""
    tokens = snippet[snippet.index("ablate") + len("ablate"):].split("#")[0].split()
    command, path, options = ROOT, ["ablate"], []
    for token in tokens:
        if token in ("|", "&&", ";", "\\|"):
            break
        word = token.strip("[]()`,")
        subcommands = getattr(command, "commands", {})
        if not options and word in subcommands:
            command = subcommands[word]
            path.append(word)
        elif _OPTION.match(word):
            options.append(_OPTION.match(word).group(0))
    return command, " ".join(path), options


def _documented() -> list[tuple[str, str]]:
    pairs = set()
    for snippet in _snippets():
        command, path, options = _command_and_options(snippet)
        pairs.update((path, option) for option in options)
        pairs.add((path, ""))
    return sorted(pairs)


def _all_commands(command=ROOT, path="ablate"):
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, f"{path} {name}")
    if not getattr(command, "commands", None):
        yield path, command


def _lookup(path: str):
    command = ROOT
    for word in path.split()[1:]:
        command = command.commands[word]
    return command


@pytest.mark.parametrize("path, option", _documented())
def test_every_command_and_option_in_the_readme_exists(path, option):
    command = _lookup(path)
    if not option:
        return
    names = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    names |= {"--help"}
    assert option in names, f"README shows `{path} {option}`, which `{path} --help` lacks"


@pytest.mark.parametrize("path", [p for p, _ in _all_commands()])
def test_every_command_is_in_the_readme_and_has_an_example(path):
    assert f"`{path}" in README, f"`{path}` is not documented in the README"
    assert "Example: ablate" in (_lookup(path).help or ""), f"`{path} --help` has no example"


def test_the_readme_shows_the_commands_it_is_checked_against():
    paths = {path for path, _ in _documented()}
    assert {"ablate study run", "ablate report", "ablate tune"} <= paths


def _block(language: str, marker: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


@pytest.mark.slow
def test_the_readme_plugin_example_trains(tmp_path, monkeypatch):
    """The "Extending ablate" example, copied from the README as written, trains one epoch."""
    from model.registry import unregister

    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "align.py").write_text(_block("python", '"aligner", "shift"'))
    (tmp_path / "my_study.toml").write_text(_block("toml", "plugins = "))
    monkeypatch.chdir(tmp_path)
    small = ["--set", "synth_n_train=4", "--set", "synth_n_val=2", "--set", "synth_n_test=2",
             "--set", "crop_size=64", "--set", "synth_height=64", "--set", "synth_width=64"]
    try:
        result = CliRunner().invoke(app, ["run", "--study", "my_study.toml", "--variant", "A",
                                          "--epochs", "1", "--quiet", *small])
    finally:
        unregister("aligner", "shift")
    assert result.exit_code == 0, result.output
    assert "1 trained" in result.stdout
