"""``ablate study run --seeds auto --target-mde X``: rounds of seeds until every comparison's
seed-level MDE reaches X or the cap; here the training is a stand-in that records runs with a
known seed spread (no network is trained)."""

from __future__ import annotations

import numpy as np
import pytest
from test_recipe_stats import seed_images
from test_report import add_run, metrics, two_variant_study
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.db import RunStore
from ablate.errors import UsageError
from ablate.report.recipe import seed_mde
from ablate.study.sizing import Sizing, check_sizing, parse_seeds, size_study, study_mde

# B's per-seed advantage over A, GAME3: a seed-to-seed spread of about 0.5.
B_SHIFT = [-1.0, -0.2, -1.1, -0.4, -0.9, -0.1, -0.8, -0.5, -1.2, -0.3, -0.7, -0.6]


def fake_training(tmp_path):
    """A ``train(seeds)`` that records the done runs of A and B for seeds not yet run, and
    the list of seed lists it was asked for."""
    tmp_path.mkdir(exist_ok=True)
    study = tmp_path / "sized.toml"
    study.write_text(two_variant_study("sized"), encoding="utf-8")
    db = str(tmp_path / "runs.db")
    asked: list[list[int]] = []

    def train(seeds: list[int]) -> None:
        asked.append(seeds)
        with RunStore(db) as store:
            done = {run.seed for run in store.list_runs("sized")}
            for seed in sorted(set(seeds) - done):
                rng = np.random.default_rng(seed)
                add_run(store, "sized", "A", seed, metrics(5, 6, 10, 20, 7),
                        seed_images(rng, 0.0))
                add_run(store, "sized", "B", seed, metrics(5, 6, 10, 20, 7),
                        seed_images(rng, B_SHIFT[seed]), {"stn": True})

    return db, train, asked


def test_seeds_are_added_in_rounds_until_the_mde_reaches_the_target(tmp_path):
    db, train, asked = fake_training(tmp_path)
    lines: list[str] = []
    n = size_study("sized", train, Sizing(target_mde=0.6, max_seeds=12), db, lines.append)
    assert lines[-1] == f"target reached with {n} seeds"
    assert study_mde("sized", db, 0.6)[0] <= 0.6 < float(lines[0].split("MDE ")[1].split()[0])
    # Round 1: 3 seeds; round 2 goes to the seeds that 3 seeds' spread says the target needs.
    again, train_again, _ = fake_training(tmp_path / "again")
    train_again([0, 1, 2])
    worst, wanted = study_mde("sized", again, 0.6)
    assert worst > 0.6 and asked[:2] == [[0, 1, 2], list(range(max(4, wanted)))]
    # B's seed-to-seed spread is the MDE's scale: by hand at these seeds.
    spread = float(np.std(np.array(B_SHIFT[:3]), ddof=1))
    assert worst == pytest.approx(seed_mde(spread, 3), rel=0.25)  # plus the image noise


def test_the_cap_stops_the_rounds_and_says_so(tmp_path):
    db, train, asked = fake_training(tmp_path)
    lines: list[str] = []
    assert size_study("sized", train, Sizing(target_mde=0.01, max_seeds=4), db,
                      lines.append) == 4
    assert asked == [[0, 1, 2], [0, 1, 2, 3]]
    assert lines[-1].startswith("stopped at --max-seeds 4: the MDE is still above the target")
    assert "raise --max-seeds" in lines[-1] or "more than 1000" in lines[-1]


def test_parse_and_check():
    assert parse_seeds("5") == 5 and parse_seeds("auto") == "auto" and parse_seeds(None) is None
    with pytest.raises(UsageError, match="--seeds 'many' is not valid"):
        parse_seeds("many")
    assert check_sizing("auto", 0.5, 10, False) == Sizing(0.5, 10)
    assert check_sizing(3, None, 10, False) is None
    for args, message in ((("auto", None, 10, False), "--seeds auto needs --target-mde"),
                          ((3, 0.5, 10, False), "--target-mde needs --seeds auto"),
                          (("auto", 0.5, 2, False), "--max-seeds 2 is not valid"),
                          (("auto", -1.0, 10, False), "--seeds auto needs --target-mde"),
                          (("auto", 0.5, 10, True), "--force retrains every round")):
        with pytest.raises(UsageError, match=message):
            check_sizing(*args)


@pytest.mark.parametrize(("args", "message"), [
    (("--seeds", "auto"), "Error: --seeds auto needs --target-mde X > 0"),
    (("--seeds", "3", "--target-mde", "0.5"), "Error: --target-mde needs --seeds auto"),
    (("--seeds", "lots"), "Error: --seeds 'lots' is not valid"),
])
def test_cli_bad_sizing_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(app, ["study", "run", "studies/demo.toml", "--db",
                                      str(tmp_path / "x.db"), *args])
    assert result.exit_code == 1 and result.output.startswith(message), result.output
    assert result.output.count("\n") == 1


def test_cli_rounds_print_the_next_command_once_at_the_end(tmp_path, monkeypatch):
    """Each round prints its counts and MDE; ``Next: ablate report`` comes once, last."""
    db, train, asked = fake_training(tmp_path)

    def stand_in(study, specs, options, slots=None, save_dir=None):
        train(sorted({spec.seed for spec in specs}))
        print(f"{len(specs)} planned")

    monkeypatch.setattr("ablate.cli.study.train_and_summarise", stand_in)
    result = CliRunner().invoke(app, ["study", "run", str(tmp_path / "sized.toml"), "--db", db,
                                      "--seeds", "auto", "--target-mde", "0.01",
                                      "--max-seeds", "4"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 0, result.output
    assert asked == [[0, 1, 2], [0, 1, 2, 3]] and lines.count("6 planned") == 1
    assert [line for line in lines if line.startswith("Next:")] == [lines[-1]]
    assert lines[-1] == f"Next: ablate report sized --db {db}"


def test_a_tuned_row_of_one_run_does_not_stall_the_rounds(tmp_path):
    """A tuned row holds its best trial only: one seed, an unknown MDE that no round can
    change. Sizing is on the comparisons the rounds add seeds to."""
    db, train, _ = fake_training(tmp_path)
    train([0, 1, 2])
    with RunStore(db) as store:
        add_run(store, "sized", "B", 0, metrics(5, 6, 10, 20, 7),
                seed_images(np.random.default_rng(9), -0.5), {"stn": True, "lr": 3e-4}, trial=0)
    worst, wanted = study_mde("sized", db, 0.6)
    spread = float(np.std(np.array(B_SHIFT[:3]), ddof=1))
    assert worst == pytest.approx(seed_mde(spread, 3), rel=0.25) and wanted is not None
