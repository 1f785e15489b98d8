"""The minimum detectable effect (MDE) of every paired comparison: a hand-computed case, a
simulation that the Wilcoxon test does find an effect of that size 80% of the time, and the
figure in every report format."""

from __future__ import annotations

import math
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_report import STUDY_TOML, add_run, images, metrics

from ablate.db import RunStore
from ablate.report import build_report, fmt, render_report
from ablate.report.stats import minimum_detectable, paired_test


def test_mde_known_answer_by_hand():
    # d = -1, -3, 0, -2, -4, -2: mean -2, squared deviations 1 + 1 + 4 + 0 + 4 + 0 = 10, so
    # sd = sqrt(10 / 5) = sqrt(2). Student quantiles with 5 degrees of freedom (table):
    # t_0.975 = 2.5705818, t_0.80 = 0.9195438. Wilcoxon efficiency 3/pi: n_eff = 18/pi.
    by_hand = (2.5705818 + 0.9195438) * math.sqrt(2) / math.sqrt(18 / math.pi)  # = 2.06203
    diff = np.array([-1.0, -3.0, 0.0, -2.0, -4.0, -2.0])
    assert minimum_detectable(diff) == pytest.approx(by_hand, rel=1e-6)
    assert minimum_detectable(diff) == pytest.approx(2.06203, abs=1e-5)
    assert paired_test(diff).mde == pytest.approx(by_hand, rel=1e-6)


def test_mde_edge_cases():
    assert math.isnan(minimum_detectable(np.array([3.0])))  # no spread to estimate
    # Five images: all five moving the same way gives exact p = 2 / 32 > 0.05, so nothing
    # is detectable; six: 2 / 64 < 0.05.
    assert minimum_detectable(np.arange(5.0)) == math.inf
    assert math.isfinite(minimum_detectable(np.arange(6.0)))
    assert stats.wilcoxon(-np.arange(1.0, 6.0)).pvalue > 0.05
    assert minimum_detectable(np.full(6, -2.0)) == 0.0  # every image moved alike
    # The spread sets the scale: ten times the spread, ten times the MDE.
    diff = np.array([0.5, -1.0, 2.0, 0.0, 1.5, -0.5])
    assert minimum_detectable(10 * diff) == pytest.approx(10 * minimum_detectable(diff))


def test_an_effect_of_the_mde_is_found_about_80_percent_of_the_time():
    n, reps = 16, 2000
    unit = np.random.default_rng(1).standard_normal(n)
    unit = (unit - unit.mean()) / unit.std(ddof=1)  # sd exactly 1
    mde = minimum_detectable(unit)
    noise = np.random.default_rng(2).standard_normal((reps, n))

    def power(effect: float) -> float:
        p = stats.wilcoxon(noise + effect, axis=1, alternative="two-sided").pvalue
        return float(np.mean(p < 0.05))

    assert 0.75 < power(mde) < 0.85
    assert power(mde / 2) < 0.4  # half the MDE is usually missed


@pytest.fixture
def db(tmp_path):
    """B's GAME3 is lower than A's by i + 1 on image i of 10 (as in test_report)."""
    study = tmp_path / "mini.toml"
    study.write_text(STUDY_TOML.format(label="c").replace("'", '"'), encoding="utf-8")
    url = str(tmp_path / "runs.db")
    with RunStore(url) as store:
        for seed in (0, 1):
            add_run(store, "mini", "A", seed, metrics(10.0, 14.0, 18.0, 30.0, 15.0),
                    images(lambda i: 0))
            add_run(store, "mini", "B", seed, metrics(8.0, 15.0, 19.0, 29.0, 20.0),
                    images(lambda i: i + 1), {"stn": "bounded"})
    with RunStore(url) as store:
        return build_report(store, str(study))


# d = -1..-10: sd = sqrt(55/6) = 3.0276504; t_0.975 and t_0.80 at 9 degrees of freedom
# (2.2621572, 0.8834039); n_eff = 30/pi.
B_MDE = (2.2621572 + 0.8834039) * math.sqrt(55 / 6) / math.sqrt(30 / math.pi)  # 3.08190


def test_every_format_shows_the_mde_next_to_the_test(db):
    assert db.test("B", "parent").image.mde == pytest.approx(B_MDE, rel=1e-6)
    md = render_report(db, "markdown")
    b_row = next(line for line in md.splitlines()
                 if line.startswith("| B | A (parent) | GAME3 |"))
    assert b_row.endswith("| 0.002 | 3.08 |")  # the image-level test's p and MDE
    assert '"no difference" reads "smaller than the MDE, if any"' in md
    html = render_report(db, "html")
    assert "<td>0.002</td><td>3.08</td>" in html
    assert "smaller than the MDE, if any" in html
    latex = render_report(db, "latex")
    assert "& $0.002$ & $3.08$ \\\\" in latex and "MDE from the per-image spread" in latex
    frame = pd.read_csv(StringIO(render_report(db, "csv"))).set_index("row")
    assert frame.at["B", "game3_vs_parent_image_mde"] == pytest.approx(B_MDE, rel=1e-5)
    assert frame.at["B", "game3_vs_first_image_mde"] == pytest.approx(B_MDE, rel=1e-5)
    # GAME0 differs by nothing on every image: any difference would have been seen.
    assert frame.at["B", "game0_vs_parent_image_mde"] == 0.0


def test_too_few_images_print_an_infinite_mde():
    test = paired_test(np.array([-1.0, -2.0, -3.0, -4.0, -5.0]))
    assert fmt.test_text(test).endswith("; MDE ∞")
    assert fmt.Latex.test(test).endswith(r"; MDE $\infty$")
