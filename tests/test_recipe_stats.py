"""The recipe-level test (unit: the seed), the multiple-comparison correction and the
seed-level power: known answers against scipy and by hand, and simulated studies built as
runs databases (no training)."""

from __future__ import annotations

import itertools
import math
import shutil
import subprocess
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_report import add_run, metrics, two_variant_study
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.db import RunStore
from ablate.report import build_report, render_report
from ablate.report.family import adjust
from ablate.report.recipe import (
    diff_matrices,
    hierarchical_ci,
    recipe_test,
    seed_mde,
    seeds_needed,
)

# ---------------------------------------------------------------- known answers


def test_recipe_p_is_scipy_ttest_rel_over_the_per_seed_means():
    rng = np.random.default_rng(3)
    variant = rng.normal(10.0, 1.0, size=(5, 40)) + rng.normal(0, 0.5, size=(5, 1))
    other = rng.normal(10.4, 1.0, size=(5, 40)) + rng.normal(0, 0.5, size=(5, 1))
    test = recipe_test(variant - other)
    expected = stats.ttest_rel(variant.mean(axis=1), other.mean(axis=1))
    assert test.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert test.mean_diff == pytest.approx((variant - other).mean())
    assert test.n_seeds == 5 and test.n_images == 40
    wilcoxon = recipe_test(variant - other, method="wilcoxon")
    exact = stats.wilcoxon(variant.mean(axis=1) - other.mean(axis=1), method="exact")
    assert wilcoxon.p_value == pytest.approx(exact.pvalue)


def test_recipe_p_by_hand_with_three_seeds():
    # Per-seed differences -1, -2, -3: mean -2, sd 1, t = -2 / (1 / sqrt(3)) = -2 sqrt(3).
    # With 2 degrees of freedom the t distribution's CDF is 1/2 + t / (2 sqrt(2 + t^2)), so
    # the two-sided p = 1 - |t| / sqrt(2 + t^2) = 1 - sqrt(12 / 14).
    diff = np.array([[-1.0, -1.0], [-2.5, -1.5], [-3.0, -3.0]])
    assert recipe_test(diff).p_value == pytest.approx(1 - math.sqrt(12 / 14), rel=1e-9)


def test_every_seed_moving_by_the_same_amount_is_no_t_claim_but_an_exact_wilcoxon_p():
    """Three seeds that each moved by exactly 0.3: t divides by a zero spread (no claim, not
    p = 0), and the exact signed-rank p of three same-signed seeds is 2 / 2^3 = 0.25."""
    diff = np.tile([[0.3, 0.1, 0.5]], (3, 1))
    t = recipe_test(diff)
    assert math.isnan(t.p_value) and not t.claim and not t.significant
    assert "no seed-to-seed spread" in t.note
    wilcoxon = recipe_test(diff, method="wilcoxon")
    assert wilcoxon.claim and wilcoxon.p_value == pytest.approx(0.25)
    assert adjust(np.array([t.p_value, 0.01]), "holm")[1] == pytest.approx(0.01)  # left out
    same = recipe_test(np.zeros((3, 4)))
    assert same.claim and same.p_value == 1.0  # the same numbers: no difference at all


GAME = ("game0", "game1", "game2", "game3")


def _frame(values: dict[tuple[int, int], float]) -> pd.DataFrame:
    """A ``stats.seed_images`` frame: every GAME level ``value`` at (seed, image)."""
    index = pd.MultiIndex.from_tuples(list(values), names=["seed", "image_id"])
    rows = [{"true_count": 10.0, **dict.fromkeys(GAME, v)} for v in values.values()]
    return pd.DataFrame(rows, index=index)


def test_a_diverged_image_is_no_test_and_an_untested_one_is_left_out_of_every_seed():
    cells = {(seed, image): float(seed + image) for seed in range(3) for image in range(4)}
    other = _frame(dict.fromkeys(cells, 0.0))
    diverged = _frame({**cells, (1, 2): math.nan})
    assert diff_matrices(diverged, other) == (
        "non-finite game0 on 1 image(s) of seed(s) 1: a diverged model, no test")
    untested = _frame({cell: v for cell, v in cells.items() if cell != (1, 2)})
    wide = diff_matrices(untested, other)["game3"]
    assert wide.tolist() == [[0, 1, 3], [1, 2, 4], [2, 3, 5]]  # image 2 out of every seed


def test_holm_and_benjamini_hochberg_on_a_known_vector():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04,
    # made non-decreasing: 0.02, 0.03, 0.06, 0.06. NaN is no test and not in the family.
    holm = adjust(p, "holm")
    assert holm[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and np.isnan(holm[4])
    bh = adjust(p, "bh")
    assert bh[:4] == pytest.approx(stats.false_discovery_control(p[:4], method="bh"))
    assert bh[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])  # 4p/rank, then step-up
    assert adjust(np.array([0.3, 0.9]), "holm") == pytest.approx([0.6, 0.9])  # capped at 1
    with pytest.raises(ValueError):
        adjust(p, "bonferonni")


def test_hierarchical_bootstrap_sees_the_seed_spread():
    rng = np.random.default_rng(0)
    offsets = rng.normal(0, 1.0, size=(5, 1))  # each seed's own shift
    diff = offsets + rng.normal(0, 0.2, size=(5, 60))
    low, high = hierarchical_ci(diff)
    images = diff.mean(axis=0)  # the image-level view: the seed spread averaged away
    image_low, image_high = np.percentile(
        images[rng.integers(0, 60, size=(10_000, 60))].mean(axis=1), [2.5, 97.5])
    assert low < diff.mean() < high
    assert high - low > 5 * (image_high - image_low)
    assert hierarchical_ci(np.full((3, 4), -2.0)) == pytest.approx((-2.0, -2.0))


def test_hierarchical_ci_holds_the_truth_about_95_percent_of_the_time_with_3_seeds():
    # A plain percentile interval over 3 seeds holds it in about 80% (too narrow).
    rng = np.random.default_rng(4)
    held = [low <= 0 <= high for low, high in (
        hierarchical_ci(rng.normal(0, 0.7, (3, 1)) + rng.normal(0, 1.1, (3, 64)), 1000, r)
        for r in range(200))]
    assert 0.9 < np.mean(held)


def test_seed_level_mde_is_found_80_percent_of_the_time():
    n, reps = 5, 4000
    mde = seed_mde(1.0, n)
    noise = np.random.default_rng(7).standard_normal((reps, n))

    def power(effect: float) -> float:
        return float(np.mean(stats.ttest_1samp(noise + effect, 0.0, axis=1).pvalue < 0.05))

    assert 0.77 < power(mde) < 0.83
    assert power(mde / 2) < 0.4
    # The exact noncentral t, not the normal approximation (z_0.975 + z_0.8) / sqrt(n).
    assert mde > 1.05 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / math.sqrt(n)


@pytest.mark.parametrize("n", [6, 8])
def test_the_wilcoxon_mde_is_found_80_percent_of_the_time_by_the_exact_test(n):
    """On few seeds the exact test's own power, not the t-test's MDE scaled by 3/pi (which
    found its MDE 64% of the time at 6 seeds); scipy's exact test is the judge."""
    mde = seed_mde(1.0, n, "wilcoxon")
    noise = np.random.default_rng(11).standard_normal((4000, n))
    found = stats.wilcoxon(noise + mde, axis=1, method="exact").pvalue < 0.05
    assert 0.77 < found.mean() < 0.84
    assert seeds_needed(1.0, mde, "wilcoxon") == n
    assert seeds_needed(1.0, mde * 0.999, "wilcoxon") > n


def test_seeds_needed_is_the_first_seed_count_whose_mde_reaches_the_effect():
    sd, effect = 0.9, 0.75
    n = seeds_needed(sd, effect)
    assert seed_mde(sd, n) <= effect < seed_mde(sd, n - 1)
    assert seeds_needed(sd, 100.0) == 3  # never below the three a claim needs
    assert seeds_needed(sd, 1e-4) is None  # beyond the search
    assert seeds_needed(sd, math.nan) is None
    assert seed_mde(1.0, 5, "wilcoxon") == math.inf  # exact Wilcoxon: 2/32 > 0.05


# ---------------------------------------------------------------- simulated studies

N_IMAGES = 64


def seed_images(rng, offset: float, level: float = 20.0) -> list[dict]:
    """One trained model's per-image results: the recipe's level, this model's own offset
    (what its seed did to it) and per-image noise, on GAME3 (GAME0-2 alike, lower)."""
    rows = []
    for i in range(N_IMAGES):
        g3 = level + offset + rng.normal(0, 0.8)
        rows.append({"split": "test", "image_id": str(i), "true_count": 10.0 + i,
                     "pred_count": 12.0, "game0": g3 / 4, "game1": g3 / 3, "game2": g3 / 2,
                     "game3": g3, "cells": {"1": [0.0, 0.0, 0.0, 0.0]}})
    return rows


# Each trained model's own offset on every image (what its seed did to it), as draws of
# N(0, 0.5) would give: the same recipe, yet the five B models average 0.26 GAME3 below the
# five A models, far beyond what the per-image noise explains.
OFFSETS = {"A": [0.3, -0.4, 0.5, 0.1, -0.2], "B": [-0.5, 0.3, -0.4, -0.6, 0.2]}


def identical_recipes(tmp_path, n_seeds: int) -> str:
    """A and B are one recipe; each trained model has its offset (OFFSETS) and image noise."""
    study = tmp_path / "same.toml"
    study.write_text(two_variant_study("same"), encoding="utf-8")
    url = str(tmp_path / "runs.db")
    rng = np.random.default_rng(5)
    with RunStore(url) as store:
        for seed in range(n_seeds):
            for variant, config in (("A", None), ("B", {"stn": True})):
                add_run(store, "same", variant, seed, metrics(5, 6, 10, 20, 7),
                        seed_images(rng, OFFSETS[variant][seed]), config)
    return str(study)


def test_two_identical_recipes_over_5_seeds_are_not_called_significant(tmp_path):
    study = identical_recipes(tmp_path, 5)
    with RunStore(str(tmp_path / "runs.db")) as store:
        rep = build_report(store, study)
    test = rep.test("B", "parent")
    assert test.image.p_value < 0.001  # the trained models do differ, image by image...
    assert test.recipe.n_seeds == 5 and test.recipe.claim
    assert test.recipe.p_value > 0.05 and not test.significant  # ...the recipes do not
    assert test.recipe.p_adjusted >= test.recipe.p_value
    md = render_report(rep, "markdown")
    b_row = next(line for line in md.splitlines() if line.startswith("| B |"))
    assert "**" not in b_row.split("|")[-2]  # the significance cell is not bold
    assert f"p={test.recipe.p_value:.3f}, adj. {test.recipe.p_adjusted:.3f}; MDE" in b_row
    latex = render_report(rep, "latex")
    b_tex = next(line for line in latex.splitlines() if line.startswith("B &"))
    assert "^{*" not in b_tex  # no stars


def test_two_seeds_make_no_recipe_level_claim(tmp_path):
    study = identical_recipes(tmp_path, 2)
    with RunStore(str(tmp_path / "runs.db")) as store:
        rep = build_report(store, study)
    assert not rep.test("B", "parent").recipe.claim and rep.family_size == 0
    for fmt in ("markdown", "html", "latex"):
        text = render_report(rep, fmt)
        assert "no claim (2 seeds)" in text
        assert "with fewer than 3 seeds no recipe-level claim can be made" in text
        assert "No recipe-level test: no comparison has 3 seeds or more" in text
        if fmt != "latex":  # the main table's cell; LaTeX prints the difference alone there
            assert "| -0.10; 2 seeds: no recipe-level claim (needs 3 or more)" in text.replace(
                "<td class=\"sig\">", "| ")
    frame = pd.read_csv(StringIO(render_report(rep, "csv"))).set_index("row")
    assert np.isnan(frame.at["B", "game3_vs_parent_recipe_p_value"])


def test_one_seed_has_no_spread_so_no_mde_and_no_seed_count(tmp_path):
    study = identical_recipes(tmp_path, 1)
    with RunStore(str(tmp_path / "runs.db")) as store:
        md = render_report(build_report(store, study), "markdown")
    line = next(line for line in md.splitlines() if line.startswith("| B | A (parent) | GAME3"))
    assert "| no claim (1 seed) |  |  |  |" in line  # adj. p, MDE, seeds: unknown


def test_seeds_run_with_another_execution_setting_are_one_config(tmp_path):
    """on_device (where the data lives) is not in the config hash, so ``study run`` counts
    such a run as done; the report must count it as a seed of the same recipe too."""
    study = identical_recipes(tmp_path, 3)
    with RunStore(str(tmp_path / "runs.db")) as store:
        for seed in (3, 4):
            for variant, config in (("A", {"on_device": False}),
                                    ("B", {"stn": True, "on_device": False})):
                add_run(store, "same", variant, seed, metrics(5, 6, 10, 20, 7),
                        seed_images(np.random.default_rng(seed), 0.0), config)
        rep = build_report(store, study)
    assert rep.table.at["A", "n"] == 5 and rep.test("B", "parent").recipe.n_seeds == 5
    assert not any("older config" in note for note in rep.notes)


def three_recipes(tmp_path) -> str:
    """A; B = A + STN, 1.5 GAME3 better in every seed; C = A + offset, like A. Five seeds."""
    study = tmp_path / "three.toml"
    study.write_text(two_variant_study("three") + '[variants.C]\nbase = "A"\nlabel = "+ '
                     'offset"\noffset_align = true\n', encoding="utf-8")
    url = str(tmp_path / "runs.db")
    rng = np.random.default_rng(11)
    with RunStore(url) as store:
        for seed in range(5):
            shared = rng.normal(0, 0.5)  # a seed's shared init moves every variant alike
            for variant, shift, config in (("A", 0.0, None), ("B", -1.5, {"stn": True}),
                                           ("C", 0.0, {"offset_align": True})):
                add_run(store, "three", variant, seed, metrics(5, 6, 10, 20, 7),
                        seed_images(rng, shared + shift + rng.normal(0, 0.2)), config)
    return str(study)


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_the_family_is_every_comparison_shown_once_and_is_adjusted(tmp_path, correction):
    study = three_recipes(tmp_path)
    with RunStore(str(tmp_path / "runs.db")) as store:
        rep = build_report(store, study, correction=correction)
    # B and C against A, as parent and as first variant: 2 comparisons x 4 GAME levels.
    assert rep.family_size == 8
    sig = rep.significance.drop_duplicates(["row", "against_key", "metric"])
    raw = sig["recipe_p_value"].to_numpy()
    assert sig["recipe_p_adjusted"].to_numpy() == pytest.approx(adjust(raw, correction))
    assert rep.test("B", "parent").significant and not rep.test("C", "parent").significant
    frame = pd.read_csv(StringIO(render_report(rep, "csv"))).set_index("row")
    b = rep.test("B", "first").recipe
    assert frame.at["B", "game3_vs_first_recipe_p_adjusted"] == pytest.approx(b.p_adjusted,
                                                                              rel=1e-5)
    assert frame.at["B", "game3_vs_first_recipe_p_value"] == pytest.approx(b.p_value, rel=1e-5)
    name = {"holm": "Holm", "bh": "Benjamini-Hochberg"}[correction]
    c = rep.test("C", "first").recipe
    assert 0.001 < c.p_value <= c.p_adjusted <= 1  # both printed to 3 digits
    for fmt in ("markdown", "html", "latex"):
        text = render_report(rep, fmt)
        assert "the 8 recipe-level tests of this report" in text and name in text, fmt
        assert f"{c.p_value:.3f}" in text and f"{c.p_adjusted:.3f}" in text, fmt


def test_latex_tests_table_keeps_every_column(tmp_path):
    study = three_recipes(tmp_path)
    with RunStore(str(tmp_path / "runs.db")) as store:
        latex = render_report(build_report(store, study), "latex")
    header = next(line for line in latex.splitlines() if line.startswith("Variant & Against"))
    assert [c.strip() for c in header.rstrip("\\ ").split("&")] == [
        "Variant", "Against", "Level", r"$\Delta$ [95\% CI]", "$p$", r"adj.\ $p$", "MDE",
        r"Seeds 5\%", r"$\Delta$ [95\% CI]", "$p$", "MDE"]
    lines = [line for line in latex.splitlines() if line.startswith(("B & A", "C & A"))]
    assert len(lines) == 2 * 2 * 4  # (B, C) x (parent, first) x GAME0-3
    assert all(line.count("&") == 10 for line in lines)
    assert {line.split("&")[2].strip() for line in lines} == {"GAME0", "GAME1", "GAME2",
                                                              "GAME3"}
    # Both tables are scaled down to the line width (of the page in table*) when wider.
    assert latex.count(r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}") == 2


def test_cli_correction_and_bad_values(tmp_path):
    study = three_recipes(tmp_path)
    db = str(tmp_path / "runs.db")
    out = tmp_path / "r.md"
    result = CliRunner().invoke(app, ["report", study, "--db", db, "-f", "markdown", "-o",
                                      str(out), "--correction", "bh", "--effect", "0.1"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "Benjamini-Hochberg" in text and "seeds for 10%" in text
    for args, message in ((("--correction", "bonf"), "Error: --correction 'bonf' is not valid; "
                           "choose one of holm, bh"),
                          (("--effect", "5"), "Error: --effect 5.0 is not valid"),
                          (("--recipe-test", "z"), "Error: --recipe-test 'z' is not valid")):
        result = CliRunner().invoke(app, ["report", study, "--db", db, *args])
        assert result.exit_code == 1 and result.output.startswith(message), result.output
        assert result.output.count("\n") == 1


def test_difference_between_conditions_is_tested_over_seeds_and_in_the_family(tmp_path):
    """A and B in a registered and a misaligned condition, 3 seeds: the recipe-level test
    of (misaligned - registered) is ttest_rel of the per-seed means, corrected with the rest."""
    study = tmp_path / "cond.toml"
    study.write_text(two_variant_study("cond") + "[conditions.registered]\nsynth_shift = 0\n"
                     "[conditions.misaligned]\nsynth_shift = 12\n", encoding="utf-8")
    rng = np.random.default_rng(2)
    per_seed = {}
    with RunStore(str(tmp_path / "runs.db")) as store:
        for seed in range(3):
            for condition, cost in (("registered", 0.0), ("misaligned", 2.0)):
                for variant, config in (("A", None), ("B", {"stn": True})):
                    offset = cost * (variant == "A") + rng.normal(0, 0.4)
                    rows = seed_images(rng, offset)
                    per_seed[condition, variant, seed] = np.mean([r["game3"] for r in rows])
                    add_run(store, "cond", variant, seed, metrics(5, 6, 10, 20, 7), rows,
                            {**(config or {}), "synth_shift": 12 * (cost > 0)},
                            condition=condition)
        rep = build_report(store, str(study))
    cross = {row.key: row for row in rep.cross}
    a = cross["A"].recipe["game3"]
    expected = stats.ttest_rel([per_seed["misaligned", "A", s] for s in range(3)],
                               [per_seed["registered", "A", s] for s in range(3)])
    assert a.n_seeds == 3 and a.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    # Family: per condition B against A (parent = first) at 4 levels, plus A and B across
    # the conditions at 4 levels: 2 x 4 + 2 x 4.
    assert rep.family_size == 16
    assert a.p_value <= a.p_adjusted <= 1
    assert f"p={a.p_value:.3f}, adj. {a.p_adjusted:.3f}" in render_report(rep, "markdown")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_every_latex_table_fits_a_two_column_paper(tmp_path):
    """The demo's long labels, the alignment table and two conditions: no overfull box."""
    study = tmp_path / "wide.toml"
    study.write_text(
        two_variant_study("wide").replace('"plain"', '"separate backbones + concat"')
        .replace('"+ STN"', '"+ offset alignment (TV, feature L1), shared backbone"')
        + "[conditions.registered]\nsynth_shift = 0\n[conditions.misaligned]\nsynth_shift = 12\n",
        encoding="utf-8")
    rng = np.random.default_rng(8)
    with RunStore(str(tmp_path / "runs.db")) as store:
        for seed, condition, (variant, config) in itertools.product(
                range(3), ("registered", "misaligned"), (("A", None), ("B", {"stn": True}))):
            add_run(store, "wide", variant, seed,
                    {**metrics(5, 6, 10, 20, 7), "align_residual_px": 2.5,
                     "align_baseline_px": 11.87},
                    seed_images(rng, rng.normal(0, 0.3)),
                    {**(config or {}), "synth_shift": 12 * (condition == "misaligned")},
                    condition=condition)
        rep = build_report(store, str(study), baselines="all")
    table = tmp_path / "t.tex"
    table.write_text(render_report(rep, "latex"), encoding="utf-8")
    assert r"demo-align" not in table.read_text() and "-align}" in table.read_text()
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n"
                   "\\usepackage{graphicx}\n\\begin{document}\n\\input{t.tex}\n"
                   "\\end{document}\n", encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log, log[log.find("Overfull"):][:400]


def test_the_image_level_tests_name_a_diverged_model_instead_of_dropping_its_images():
    from ablate.report.conditions import paired_across
    from ablate.report.stats import compare, per_seed_image

    cells = {(seed, image): float(seed + image) for seed in range(3) for image in range(4)}
    other = _frame(dict.fromkeys(cells, 0.0))
    diverged = _frame({**cells, (1, 2): math.nan})
    averaged = per_seed_image(diverged)
    assert math.isnan(averaged.loc[2, "game3"]) and averaged.loc[1, "game3"] == 2.0
    reason = "non-finite game0 on 1 image(s): a diverged model, no test"
    assert compare(averaged, per_seed_image(other)) == reason
    assert paired_across(diverged, other)["game0"] == reason
    assert compare(per_seed_image(_frame(cells)), per_seed_image(other))["game3"].n_images == 4
