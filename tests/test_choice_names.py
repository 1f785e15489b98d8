"""Every choice is a name: each switchable part is a registry entry that declares its own
settings, the config hash keeps an entry's settings only while it is chosen, keys of earlier
releases still read, and runs recorded under the old keys are still found done."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from ablate.db import RunStore
from ablate.study.plan import plan
from ablate.study.study import load_study
from model.config import FIELD_SECTION, SECTIONS, RunConfig
from model.config.run import PARTS
from model.errors import ConfigError
from model.registry import BUILTINS, all_params, lookup, names, params

ROOT = Path(__file__).resolve().parents[1]
OLD_DB = Path(__file__).parent / "data" / "runs_schema3.db"  # written by commit eea1bf7

# The kinds a config chooses by name, and the field naming the choice (layout: data_path).
KINDS = {kind: name for name, kind in PARTS.items()}


def _default(name: str):
    return next(f.default for cls in SECTIONS.values() for f in fields(cls) if f.name == name)


def another_value(name: str, base: RunConfig):
    """A valid value of field ``name`` other than its value in ``base``."""
    current = base.flat()[name]
    candidates = ([2, 1] if name == "offset_stage" else [current + 1, current * 2 + 1]
                  if isinstance(current, int) and not isinstance(current, bool) else
                  [current * 0.5, current + 0.01] if isinstance(current, float) else [])
    for value in candidates:
        if value == current:
            continue
        try:
            return base.with_overrides({name: value})
        except ConfigError:
            continue
    raise AssertionError(f"no other valid value for {name}={current!r}")


def entries_with_base():
    """(kind, entry, a config that chooses it) for every entry that can be built from names."""
    cases = []
    for kind, field in KINDS.items():
        for entry in names(kind):
            cases.append((kind, entry, RunConfig().with_overrides({field: entry})))
    cases.append(("layout", "synthetic", RunConfig()))
    cases.append(("layout", None, RunConfig().with_overrides({"data_path": "/data/x"})))
    return cases


@pytest.mark.parametrize(("kind", "entry", "base"), entries_with_base(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_an_entrys_own_settings_count_and_every_other_entrys_do_not(kind, entry, base):
    own = set(params(kind, entry)) if entry else set()
    for name in sorted(all_params(kind)):
        other = another_value(name, base)
        differs = other.config_hash() != base.config_hash()
        assert differs == (name in own), (kind, entry, name)


def test_every_declared_parameter_is_a_config_field():
    for kind in BUILTINS:
        for name in all_params(kind):
            assert name in FIELD_SECTION, (kind, name)


def test_the_builtin_table_lists_exactly_what_the_modules_register():
    for kind, builtins in BUILTINS.items():
        if not builtins:
            continue
        for entry in builtins:
            assert lookup(kind, entry) is not None
        registered = set(names(kind))
        assert set(builtins) <= registered


def test_changing_the_aligner_stage_with_the_aligner_off_is_the_same_experiment():
    # The bug this issue found: offset_mode changed the hash with the aligner off.
    off = RunConfig()
    assert off.with_overrides({"offset_stage": 2}).config_hash() == off.config_hash()
    assert (off.with_overrides({"offset_align": False, "offset_mode": "deform"}).config_hash()
            == off.config_hash())
    on = RunConfig().with_overrides({"aligner": "flow"})
    assert on.with_overrides({"offset_stage": 2}).config_hash() != on.config_hash()


@pytest.mark.parametrize(("old", "new"), [
    ({"stn": True}, {"stn": "bounded"}),
    ({"stn": "true", "stn_mode": "affine"}, {"stn": "affine"}),
    ({"stn": False, "stn_mode": "affine"}, {"stn": "none"}),
    ({"offset_align": True}, {"aligner": "flow"}),
    ({"offset_align": "true", "offset_mode": "deform"}, {"aligner": "deform"}),
    ({"model.offset_align": False}, {"aligner": "none"}),
    ({"grl": True}, {"domain_head": "grl"}),
    ({"multiscale": "true"}, {"multiscale_head": "stride4"}),
])
def test_keys_of_earlier_releases_mean_todays_names(old, new):
    assert RunConfig().with_overrides(old) == RunConfig().with_overrides(new)


def test_an_old_mode_key_changes_a_part_only_where_it_is_on():
    bounded = RunConfig().with_overrides({"stn": "bounded"})
    assert bounded.with_overrides({"stn_mode": "affine"}).model.stn == "affine"
    assert RunConfig().with_overrides({"stn_mode": "affine"}).model.stn == "none"
    with pytest.raises(ConfigError, match="grl='maybe' is not valid"):
        RunConfig().with_overrides({"grl": "maybe"})


def test_a_study_file_in_the_old_keys_resolves_to_the_same_configs(tmp_path):
    old = (ROOT / "studies" / "demo.toml").read_text()
    for new_key, old_key in (('stn = "none"', "stn = false"), ('stn = "bounded"', "stn = true"),
                             ('aligner = "none"', "offset_align = false"),
                             ('aligner = "flow"', 'offset_align = true\noffset_mode = "flow"'),
                             ('domain_head = "none"', "grl = false"),
                             ('domain_head = "grl"', "grl = true"),
                             ('multiscale_head = "none"', "multiscale = false"),
                             ('multiscale_head = "stride4"', "multiscale = true")):
        old = old.replace(new_key, old_key)
    assert "offset_align = true" in old and "aligner" not in old
    (tmp_path / "old.toml").write_text(old)
    before, today = load_study(tmp_path / "old.toml"), load_study(ROOT / "studies" / "demo.toml")
    for variant in today.variants:
        assert before.config(variant, 0) == today.config(variant, 0)
        assert before.variants[variant].changes == today.variants[variant].changes


def test_runs_recorded_under_the_old_keys_are_still_done(tmp_path):
    db = tmp_path / "runs.db"
    shutil.copy(OLD_DB, db)
    store = RunStore(f"sqlite:///{db}")
    study = load_study(ROOT / "studies" / "demo.toml")
    specs = plan(study, list(study.variants), [0, 1], {}, tmp_path / "runs")
    actions = {}
    for spec in specs:
        claim = store.claim(spec)
        actions[(spec.variant, spec.seed)] = claim.action
    # The fixture left G running in both seeds; every other run is done.
    assert {k: a for k, a in actions.items() if k[0] != "G"} == {
        (v, s): "skip-done" for v in "ABCDEF" for s in (0, 1)}
    assert all(a != "skip-done" for k, a in actions.items() if k[0] == "G")
    stored = [run.config for run in store.list_runs(study="demo")]
    assert all("aligner" in c["model"] and "offset_align" not in c["model"] for c in stored)


def test_checking_a_study_imports_no_torch():
    code = ("import sys\nfrom ablate.study.study import load_study\n"
            "from model.registry import names\n"
            "s = load_study('studies/demo.toml')\n"
            "[s.config(v, 0).config_hash() for v in s.variants]\n"
            "assert names('stn') == ('none', 'affine', 'bounded'), names('stn')\n"
            "heavy = [m for m in ('torch', 'torchvision') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_default_of_every_part_is_off():
    assert {name: _default(name) for name in ("stn", "aligner", "domain_head",
                                               "multiscale_head")} == dict.fromkeys(
        ("stn", "aligner", "domain_head", "multiscale_head"), "none")


@pytest.mark.parametrize("command", [["study", "show", "studies/demo.toml"],
                                     ["report", "demo", "--format", "markdown"],
                                     ["runs", "list"]])
def test_reading_commands_import_no_torch(command, tmp_path):
    db = tmp_path / "runs.db"
    shutil.copy(OLD_DB, db)
    args = [*command, *(["--db", str(db)] if command[0] != "study" else []),
            *(["--out", str(tmp_path / "r.md")] if command[0] == "report" else [])]
    code = ("import sys\nfrom ablate.cli.app import main\nsys.argv = ['ablate', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "heavy = [m for m in ('torch', 'torchvision') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
