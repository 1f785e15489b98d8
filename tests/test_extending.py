"""Extending ablate is one file or one place: an aligner, a metric and a dataset layout from one
plugin file, a variant from four lines of TOML; with them added, the quick checks still pass
(the lists they check are derived from the registries and the study files, not pinned)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.plugins import load_plugins
from ablate.study.plan import plan
from ablate.study.study import load_study
from model.config import RunConfig
from model.data import load_splits
from model.registry import unregister

ROOT = Path(__file__).resolve().parents[1]

# One file: an aligner (a learned global shift), a metric (the mean signed count error) and
# a dataset layout (one flat folder per split: <id>.rgb.png, <id>.ir.png, <id>.json).
PLUGIN = '''
import torch
from torch import nn

from model.data.layouts import Layout, PairFiles
from model.layers.offset_align import warp_by_flow
from model.metrics import metric
from model.registry import register


@register("aligner", "ext_shift", params=("offset_stage", "tv"))
class ShiftAlign(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(2))

    def forward(self, reference, moving):
        b, _, h, w = moving.shape
        displacement = self.shift.view(1, 2, 1, 1).expand(b, 2, h, w)
        return warp_by_flow(moving, displacement), displacement


metric("ext_bias", "Bias")(lambda columns: float(columns["error"].mean()))


def _scan(root, split):
    folder = root / split
    ids = sorted(p.name[: -len(".rgb.png")] for p in folder.glob("*.rgb.png"))
    pairs = [PairFiles(i, folder / f"{i}.rgb.png", folder / f"{i}.ir.png", folder / f"{i}.json")
             for i in ids]
    return pairs, ([] if pairs else [f"empty split: {folder}"])


register("layout", "ext_flat")(Layout("flat: <split>/<id>.rgb.png, <id>.ir.png, <id>.json",
                                      ("train", "val", "test"), _scan,
                                      lambda root: (root / "FLAT").exists()))
'''

# The quick checks: every test file that lists registry entries, metrics, layouts or variants.
QUICK = ("tests/test_choice_names.py", "tests/test_registry.py", "tests/test_config.py",
         "tests/test_metrics.py", "tests/test_study.py", "tests/test_data_readers.py",
         "tests/test_report.py")

VARIANT_H = '\n[variants.H]\nbase = "G"\nlabel = "G, deformable offsets"\naligner = "deform"\n'


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "ext.py"
    path.write_text(PLUGIN)
    load_plugins([str(path)])
    yield path
    for kind, name in (("aligner", "ext_shift"), ("metric", "ext_bias"),
                       ("layout", "ext_flat")):
        unregister(kind, name)


def _write_flat(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    (root / "FLAT").write_text("")
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True)
        for i in range(2):
            image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / f"{i}.rgb.png")
            Image.fromarray(255 - image).save(root / split / f"{i}.ir.png")
            (root / split / f"{i}.json").write_text(json.dumps({"points": [[10, 20], [30, 40]]}))
    return root


def test_a_plugin_layout_is_detected_and_read(plugin, tmp_path):
    splits = load_splits(RunConfig().with_overrides({"data_path": str(_write_flat(
        tmp_path / "flat"))}).data)
    assert splits.format == "ext_flat"
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [2, 2, 2]


def test_a_plugin_aligners_parameters_count_only_while_it_is_chosen(plugin):
    on = RunConfig().with_overrides({"aligner": "ext_shift"})
    assert on.with_overrides({"offset_stage": 2}).config_hash() != on.config_hash()
    off = RunConfig()
    assert off.with_overrides({"offset_stage": 2}).config_hash() == off.config_hash()


@pytest.mark.slow
def test_the_quick_checks_pass_with_a_new_aligner_metric_and_layout(tmp_path):
    path = tmp_path / "ext.py"
    path.write_text(PLUGIN)
    env = {**os.environ, "ABLATE_TEST_PLUGIN": str(path), "OMP_NUM_THREADS": "1"}
    junit = tmp_path / "quick.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider",
                           "-m", "not slow", f"--junitxml={junit}", *QUICK], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    ran = junit.read_text()
    # The registries the checks walk held the plugin's entries: they were checked too.
    assert "aligner-ext_shift" in ran


def test_a_variant_is_four_lines_of_toml(tmp_path):
    study_file = tmp_path / "demo.toml"
    study_file.write_text((ROOT / "studies" / "demo.toml").read_text() + VARIANT_H)
    study = load_study(study_file)
    assert list(study.variants)[-1] == "H" and study.variants["H"].parent == "G"
    h = study.config("H", 0)
    assert h.model.aligner == "deform" and h.config_hash() != study.config("G", 0).config_hash()
    specs = plan(study, study.select(None), [0], {}, tmp_path / "runs")
    assert [s.variant for s in specs] == list(study.variants)
    shown = CliRunner().invoke(app, ["study", "show", str(study_file)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "\n H " in shown.output.replace("│", " "), shown.output


def test_a_study_files_plugin_path_moves_with_it(tmp_path, monkeypatch):
    """``plugins = ["./ext.py"]`` is relative to the study file, wherever both are copied."""
    first = tmp_path / "a"
    first.mkdir()
    (first / "ext.py").write_text(PLUGIN)
    text = ('[study]\nname = "moved"\nplugins = ["./ext.py"]\n'
            '[variants.A]\nlabel = "shift"\naligner = "ext_shift"\n')
    (first / "s.toml").write_text(text)
    moved = tmp_path / "b" / "deeper"
    shutil.copytree(first, moved)
    monkeypatch.chdir(tmp_path)
    try:
        assert load_study(moved / "s.toml").config("A", 0).model.aligner == "ext_shift"
    finally:
        for kind, name in (("aligner", "ext_shift"), ("metric", "ext_bias"),
                           ("layout", "ext_flat")):
            unregister(kind, name)
