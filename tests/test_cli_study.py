"""`ablate study run|show`, `ablate runs list|show`, `ablate eval`, `ablate check-eval` and
the user's historical `ablate run` command, driven through the CLI on the tiny demo study."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer.main
from conftest import (
    METRIC_KEYS,
    TINY_NAME,
    VARIANTS,
    copy_workdir,
    db_dump,
    invoke,
    ok,
    runs_json,
    tiny_study_text,
)

from ablate.cli.app import app
from ablate.db import RunStore
from ablate.study.study import load_study

LIST_KEYS = {"id", "study", "variant", "seed", "status", "config_hash", *METRIC_KEYS}
N = len(VARIANTS)


def _done(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["status"] == "done"]


def _keys(rows: list[dict]) -> list[tuple[str, int]]:
    return sorted((r["variant"], r["seed"]) for r in rows)


def _flat(config: dict) -> dict:
    """The stored config is sectioned (model, loss, data, train); field names are unique."""
    return {key: value for section in config.values() for key, value in section.items()}


@pytest.fixture
def study_copy(done_study: Path, in_tmp: Path) -> Path:
    copy_workdir(done_study, in_tmp)
    return in_tmp


def test_demo_study_gives_one_done_run_per_variant_with_finite_metrics(study_copy):
    rows = runs_json()
    assert len(rows) == N
    assert _keys(rows) == [(v, 0) for v in VARIANTS]
    for row in rows:
        assert LIST_KEYS <= set(row), LIST_KEYS - set(row)
        assert row["study"] == TINY_NAME and row["status"] == "done"
        for key in METRIC_KEYS:
            assert isinstance(row[key], float) and math.isfinite(row[key]), (row["variant"], key)
    assert len({r["config_hash"] for r in rows}) == N, "every variant has its own config"


def _files(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its modification time (ns)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file()}


def test_rerun_adds_nothing_and_trains_nothing(study_copy):
    before = runs_json()
    tables = ("ablate_runs", "ablate_epochs")
    rows_before = {t: db_dump(study_copy / "runs.db")[t] for t in tables}
    files_before = _files(study_copy / "runs")
    result = ok("study", "run", "tiny.toml")  # not quiet: the skips are printed
    assert f"0 trained, {N} skipped, 0 failed" in result.stdout
    for variant in VARIANTS:
        assert f"skip {variant} seed 0: already done" in result.stderr
    assert runs_json() == before, "rows (incl. ended_at, heartbeat) must be untouched"
    rows_after = db_dump(study_copy / "runs.db")
    assert {t: rows_after[t] for t in tables} == rows_before, "no run or epoch was added"
    assert _files(study_copy / "runs") == files_before, "no checkpoint was written"


def test_seeds_2_gives_two_done_runs_per_variant(study_copy):
    before = {r["id"]: r for r in runs_json()}
    result = ok("study", "run", "tiny.toml", "--seeds", "2", "--quiet")
    assert f"{N} trained, {N} skipped, 0 failed" in result.stdout
    rows = runs_json()
    assert len(rows) == 2 * N
    assert _keys(_done(rows)) == sorted((v, s) for v in VARIANTS for s in (0, 1))
    for row in rows:
        if row["id"] in before:
            assert row == before[row["id"]], "a done seed-0 run was touched"


def test_variants_option_runs_only_those(tiny_study, in_tmp):
    result = ok("study", "run", tiny_study, "--variants", "A,G", "--seed", "3", "--quiet")
    assert "2 trained, 0 skipped, 0 failed" in result.stdout
    rows = runs_json()
    assert _keys(rows) == [("A", 3), ("G", 3)]
    assert all(r["status"] == "done" for r in rows)


def test_force_reruns_into_new_rows(study_copy):
    before = runs_json()
    result = ok("study", "run", "tiny.toml", "--variants", "B", "--force", "--quiet")
    assert "1 trained, 0 skipped, 0 failed" in result.stdout
    rows = runs_json()
    assert rows[:N] == before, "the earlier runs stay as they were"
    (new,) = rows[N:]
    old = next(r for r in before if r["variant"] == "B")
    assert (new["variant"], new["seed"], new["status"]) == ("B", 0, "done")
    assert new["config_hash"] == old["config_hash"]
    assert new["save_dir"] != old["save_dir"], "a forced rerun must not resume the old run"


def test_a_failing_variant_is_recorded_and_the_study_goes_on(in_tmp):
    # X comes first in the file and diverges in its second epoch (lr 1e30 -> NaN loss).
    diverges = '[variants.X]\nlabel = "diverges"\nlr = 1e30\nbackbone_lr = 1e30\n\n'
    text = tiny_study_text().replace("[variants.A]", diverges + "[variants.A]", 1)
    (in_tmp / "fail.toml").write_text(text)
    args = ["study", "run", "fail.toml", "--variants", "X,A", "--epochs", "2", "--quiet"]
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert "1 trained, 0 skipped, 1 failed" in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: failed runs: X/seed 0 (run 1)"), line
    failed, done = runs_json()
    assert (failed["variant"], failed["status"], done["variant"], done["status"]) == (
        "X", "failed", "A", "done")
    with RunStore() as store:
        assert "became nan" in store.get_run(failed["id"]).error
    again = invoke(*args)  # the failed run is tried again, the done one is not
    assert again.exit_code == 1 and "0 trained, 1 skipped, 1 failed" in again.stdout
    assert [r["id"] for r in runs_json()] == [failed["id"], done["id"]]


def test_run_force_into_a_used_save_dir_is_refused(tiny_study, in_tmp):
    """The trainer resumes from save_dir/last.pt, so a forced rerun into the same folder
    would "finish" at once with the old weights: refused before the database is touched."""
    args = ["run", "--study", tiny_study, "--variant", "A", "--save-dir", "out", "--quiet"]
    ok(*args)
    before = runs_json()
    result = invoke(*args, "--force")
    assert result.exit_code == 1 and result.stderr.startswith("Error: --force: out holds"), (
        result.output)
    assert runs_json() == before
    last = in_tmp / "out2" / "last.pt"
    ok(*args[:-3], "--save-dir", "out2", "--quiet", "--force")
    assert last.is_file() and len(runs_json()) == 2


@pytest.mark.parametrize("command", [
    ["study", "run", "tiny.toml"], ["run", "--study", "tiny.toml", "--variant", "A"]])
def test_set_seed_is_refused_and_names_the_option(tiny_study, in_tmp, command):
    result = invoke(*command, "--set", "seed=3", "--quiet")
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: ") and "seed is chosen per run: use --seed or --seeds" in line
    assert not (in_tmp / "runs.db").exists() and not (in_tmp / "runs").exists()


def test_a_directory_given_as_study_file_is_named(in_tmp):
    (in_tmp / "studies.toml").mkdir()
    result = invoke("study", "show", "studies.toml")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: studies.toml is a directory, not a study file"


def test_a_bad_value_claims_nothing(tiny_study, in_tmp):
    """Every value is checked when the runs are planned, before the database is opened."""
    for option in (["--set", "lr=nan"], ["--set", "crop_size=7"], ["--epochs", "0"]):
        result = invoke("study", "run", tiny_study, "--variants", "A", *option, "--quiet")
        assert result.exit_code == 1, (option, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (in_tmp / "runs.db").exists() and not (in_tmp / "runs").exists()


def test_study_show_prints_every_variant(tiny_study):
    text = ok("study", "show", tiny_study, env={"COLUMNS": "200"}).stdout
    study = load_study(tiny_study)
    assert text.count(study.description) == 1, "the description is the table's title, once"
    lines = [line.strip() for line in text.splitlines()]
    rows = [line for line in lines if line.split(" ", 1)[0] in VARIANTS]
    assert [row.split()[0] for row in rows] == VARIANTS
    for row, variant in zip(rows, study.variants.values(), strict=True):
        assert row.split(None, 1)[1].startswith(f"{variant.label} ")
    d = rows[VARIANTS.index("D")]
    assert "flow@1" in d and "0.05" in d, "D adds flow alignment with TV 0.05"


SWITCHES = ("backbone", "shared", "STN", "offset", "fusion", "local count", "feat L1", "TV",
            "GRL/domain", "multiscale")


def test_study_show_fits_80_columns_without_cutting(tiny_study):
    """Issue 24: at 80 columns every header was cut ("loc…", "f…"); the table is now turned
    (a row per switch, a column per variant) and the labels listed below it."""
    text = ok("study", "show", tiny_study, env={"COLUMNS": "80"}).stdout
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    lines = [line.strip() for line in text.splitlines()]
    assert all(any(line.startswith(f"{name} ") for line in lines) for name in SWITCHES)
    for variant in load_study(tiny_study).variants.values():
        assert f"{variant.name} {variant.label}" in [" ".join(line.split()) for line in lines]


def test_runs_list_fits_80_columns_without_cutting(study_copy, monkeypatch):
    """Two studies, conditions, 4-digit ids and metrics over 100: every header and number
    whole in 80 columns (the study and condition name each table)."""
    wide = [{"id": 1000 + i, "study": study, "condition": condition, "variant": "G-best",
             "seed": 12, "status": "interrupted", **dict.fromkeys(METRIC_KEYS, 1234.5678)}
            for i, (study, condition) in enumerate([("paper", "rgbtcc"), ("control", "misaligned"),
                                                    ("paper", "drone")])]
    monkeypatch.setattr(RunStore, "run_dicts", lambda self, study=None, condition=None: wide)
    text = ok("runs", "list", env={"COLUMNS": "80"}).stdout
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    for title in ("runs of paper, condition rgbtcc", "runs of control, condition misaligned"):
        assert title in text
    header = "id variant seed status GAME0 GAME1 GAME2 GAME3 RMSE MAE"
    assert sum(" ".join(line.split()) == header for line in text.splitlines()) == 3
    assert text.count("1234.6") == 3 * len(METRIC_KEYS)


def test_study_run_ends_by_naming_the_report(study_copy):
    result = ok("study", "run", f"{TINY_NAME}.toml", "--variants", "A")
    assert result.stdout.strip().splitlines()[-1] == f"Next: ablate report {TINY_NAME}"


def test_runs_show(study_copy):
    row = next(r for r in runs_json() if r["variant"] == "D")
    text = ok("runs", "show", str(row["id"])).stdout
    assert f"run {row['id']}" in text and f"{TINY_NAME} / D seed 0" in text and "done" in text
    assert row["config_hash"] in text and "test:" in text
    info = json.loads(ok("runs", "show", str(row["id"]), "--json").stdout)
    # Every registered metric, plus the alignment at the heads that synthetic data allows.
    keys = (*METRIC_KEYS, "align_residual_px", "align_baseline_px")
    assert info["test"] == {k: row[k] for k in keys}
    cfg = _flat(info["config"])
    assert cfg["aligner"] == "flow" and cfg["tv"] == 0.05
    assert [e["epoch"] for e in info["epochs"]] == [0]


def test_eval_of_best_checkpoint_matches_stored_test_metrics(study_copy):
    row = next(r for r in runs_json() if r["variant"] == "G")
    summary = json.loads(ok("eval", Path(row["save_dir"]) / "best.pt", "--json").stdout)
    assert summary["n_images"] == 4
    for key in METRIC_KEYS:
        assert summary[key] == pytest.approx(row[key], rel=1e-6, abs=1e-9), key


def test_check_eval_oracle_is_exact(in_tmp):
    rows = json.loads(ok("check-eval", "--json").stdout)
    assert rows[0]["shift_px"] == 0
    assert all(rows[0][key] == pytest.approx(0, abs=1e-6) for key in METRIC_KEYS), rows[0]
    assert rows[-1]["game3"] > rows[-1]["game0"], "a shift must cost more at finer grids"
    assert not (in_tmp / "runs.db").exists()


def test_historical_enhanced_loss_command(in_tmp):
    data = in_tmp / "D"
    ok("data", "synth", data, "--n", "8", "--height", "64", "--width", "64")
    result = ok("run", "--data-path", data, "--batch-size", "8", "--lr", "1e-4", "--epochs", "1",
                "--save-dir", "./Results/shared_enhanced", "--enable-enhanced-loss",
                "--downsample-ratio", "32", "--quiet",
                # studies/rgbtcc.toml wants ImageNet VGG weights (tests never have them) and
                # 256 px crops (a 64 px image padded to 256 costs VGG 16x the time).
                "--set", "pretrained=none", "--set", "crop_size=64")
    assert "1 trained, 0 skipped, 0 failed" in result.stdout
    assert (in_tmp / "Results" / "shared_enhanced" / "best.pt").is_file()
    (row,) = runs_json()
    assert row["status"] == "done"
    with RunStore() as store:
        cfg = _flat(store.get_run(row["id"]).config)
    assert (cfg["local_count"], cfg["feat_l1"], cfg["tv"]) == (0.2, 0.1, 0.05)
    assert cfg["downsample_ratio"] == 32 and cfg["lr"] == 1e-4 and cfg["batch_size"] == 8
    assert cfg["data_path"] == str(data)


def _is_group(command) -> bool:
    return hasattr(command, "commands")  # typer vendors click: no isinstance(click.Group)


def _walk(group, prefix: tuple[str, ...] = ()):
    """(path, click command) of every command and group under ``group``, depth first."""
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if _is_group(command):
            yield from _walk(command, (*prefix, name))


ROOT = typer.main.get_group(app)
COMMANDS = {" ".join(p): c for p, c in _walk(ROOT) if not _is_group(c)}
GROUPS = {" ".join(p): c for p, c in _walk(ROOT) if _is_group(c)}


def test_every_expected_command_is_registered():
    expected = {"run", "study run", "study show", "runs list", "runs show", "eval", "check-eval",
                "data check", "data synth", "tune", "report", "viz"}
    assert expected <= set(COMMANDS), expected - set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_an_example_and_every_option_help(command):
    result = ok(*command.split(), "--help")
    assert "Example:" in result.stdout, f"`ablate {command} --help` has no example"
    for param in COMMANDS[command].params:
        if param.name != "help":
            assert (getattr(param, "help", None) or "").strip(), f"{command}: {param.name}"


def test_root_and_every_group_have_help():
    assert "Example:" in ok("--help").stdout
    for name, group in GROUPS.items():
        assert (group.help or "").strip(), f"`ablate {name}` has no help text"
