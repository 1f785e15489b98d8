"""Reports: the study's variants against the published baselines (BM first), with mean and
spread over seeds, paired tests between recipes (unit: the seed, corrected over every
comparison shown) and between trained models (unit: the test image), and charts; HTML, LaTeX,
Markdown or CSV.

    from ablate.db import RunStore
    from ablate.report import build_report, write_report
    with RunStore("runs.db", readonly=True) as store:
        report = build_report(store, "demo", baselines="BM,IADM", correction="bh")
    write_report(report, "latex")  # reports/demo.tex
"""

from ablate.report.baselines import Baseline, load_baselines
from ablate.report.build import Report, ReportOptions, build_report
from ablate.report.recipe import Comparison, RecipeTest, recipe_test
from ablate.report.render import FORMATS, default_path, render_report, write_report
from ablate.report.stats import PairedTest, paired_test

__all__ = [
    "FORMATS",
    "Baseline",
    "Comparison",
    "PairedTest",
    "RecipeTest",
    "Report",
    "ReportOptions",
    "build_report",
    "default_path",
    "load_baselines",
    "paired_test",
    "recipe_test",
    "render_report",
    "write_report",
]
