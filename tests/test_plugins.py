"""Plugins: a researcher's own part, registered in a file of their own, is usable by name from
a study file (``[study] plugins``) or the command line (``--plugin``) without editing ablate."""

from __future__ import annotations

import pytest
from conftest import invoke, ok, runs_json

from ablate.errors import AblateError, PluginError
from ablate.plugins import load_plugins
from ablate.study.study import Study, load_study
from model import registry

# A learned constant shift of the moving features: zero (the identity) at init.
ALIGNER = '''
import torch
from torch import nn

from model.layers.offset_align import warp_by_flow
from model.registry import register


@register("aligner", "shift")
class ShiftAlign(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(2))  # (dx, dy) in feature pixels

    def forward(self, reference, moving):
        b, _, h, w = moving.shape
        displacement = self.shift.view(1, 2, 1, 1).expand(b, 2, h, w)
        return warp_by_flow(moving, displacement), displacement
'''

# Five lines of study, and a tiny synthetic set so one epoch trains in seconds.
STUDY = '''[study]
name = "shifted"
plugins = ["./align.py"]
[variants.A]
label = "+ learned shift"
offset_align = true
offset_mode = "shift"
[data]
crop_size = 64
synth_n_train = 4
synth_n_val = 2
synth_n_test = 2
synth_height = 64
synth_width = 64
[train]
batch_size = 4
'''


STUDY_ONLY = '[study]\nname = "t"\n'


def write(tmp_path, text: str):
    path = tmp_path / "t.toml"
    path.write_text(text)
    return path


@pytest.fixture
def shift_aligner():
    """Unregisters the test's aligner afterwards, so no other test sees it."""
    yield
    registry.unregister("aligner", "shift")


def test_a_plugin_aligner_trains_from_a_study_file(tmp_path, monkeypatch, shift_aligner):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "align.py").write_text(ALIGNER)
    study = tmp_path / "lab" / "shift.toml"  # the plugin path is relative to the study file
    study.write_text(STUDY)
    result = ok("run", "--study", study, "--variant", "A", "--epochs", "1", "--quiet")
    assert "1 trained, 0 skipped, 0 failed" in result.stdout
    (row,) = runs_json()
    assert (row["study"], row["variant"], row["status"]) == ("shifted", "A", "done")
    assert "shift" in registry.names("aligner")


def test_without_the_plugin_the_name_is_unknown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(STUDY.replace('plugins = ["./align.py"]\n', ""))
    result = invoke("study", "show", "s.toml")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert "aligner='shift'" in line and "flow" in line, line  # offset_mode's name today


def test_plugin_option_imports_before_the_study_is_checked(tmp_path, monkeypatch,
                                                           shift_aligner):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "align.py").write_text(ALIGNER)
    (tmp_path / "s.toml").write_text(STUDY.replace('plugins = ["./align.py"]\n', ""))
    result = ok("study", "show", "s.toml", "--plugin", "align.py", env={"COLUMNS": "200"})
    assert "shift@1" in result.stdout


@pytest.mark.parametrize("source, expected", [
    ("def broken(:\n", "SyntaxError: "),
    ("raise RuntimeError('no GPU here')\n", "RuntimeError: no GPU here"),
    ("import no_such_module_xyz\n", "ModuleNotFoundError: "),
    ("import sys\nsys.exit(0)\n", "it called sys.exit(0)"),
    ("raise SystemExit('bye')\n", "it called sys.exit('bye')"),
])
def test_a_plugin_that_fails_is_one_line_naming_it(tmp_path, monkeypatch, source, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(source)
    (tmp_path / "s.toml").write_text(STUDY)
    with pytest.raises(PluginError) as info:
        load_plugins(["bad.py"])
    message = str(info.value)
    assert message.startswith(f"plugin {tmp_path / 'bad.py'} failed to import: {expected}")
    assert "\n" not in message
    result = invoke("study", "show", "s.toml", "--plugin", "bad.py")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {message}"


def test_a_plugin_file_is_imported_once_per_process(tmp_path):
    path = tmp_path / "count.py"
    path.write_text("import builtins\nbuiltins.ablate_test_count = "
                    "getattr(builtins, 'ablate_test_count', 0) + 1\n")
    import builtins

    try:
        assert load_plugins([str(path)]) == load_plugins([str(path)]) == (str(path),)
        assert builtins.ablate_test_count == 1
    finally:
        del builtins.ablate_test_count


def test_module_plugins_and_missing_ones(tmp_path):
    assert load_plugins(["json"]) == ("json",)
    with pytest.raises(PluginError, match="plugin 'no_such_lab.aligners': no module named"):
        load_plugins(["no_such_lab.aligners"])
    with pytest.raises(PluginError, match=f"plugin file not found: {tmp_path / 'x.py'}"):
        load_plugins(["x.py"], base=tmp_path)


def test_record_round_trip_keeps_the_resolved_plugins(tmp_path):
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "noop.py").write_text("LOADED = True\n")
    header = STUDY_ONLY + 'plugins = ["./extra/noop.py", "json"]\n'
    study = load_study(write(tmp_path, header + '[variants.A]\nlabel = "a"\n'))
    assert study.plugins == (str(tmp_path / "extra" / "noop.py"), "json")
    record = study.to_record()
    assert record["plugins"] == list(study.plugins)
    assert Study.from_record(record) == study


@pytest.mark.parametrize("plugins, expected", [
    ('"./nosuch.py"', "plugin file not found: "),
    ('"no_such_module_xyz"', "plugin 'no_such_module_xyz': no module named"),
    ('"./extra"', "is a directory, not a .py file"),
    ("3", "plugins must be a list"),
])
def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path, plugins, expected):
    (tmp_path / "extra").mkdir()
    path = write(tmp_path, STUDY_ONLY + f"plugins = [{plugins}]\n".replace("[3]", "3")
                 + '[variants.A]\nlabel = "a"\n')
    with pytest.raises(AblateError) as info:
        load_study(path)
    assert str(path) in str(info.value) and expected in str(info.value)
    assert "\n" not in str(info.value)
