"""The HTML report as a reader sees it: headless Chromium at 1280x800 must show the main
table without a horizontal scroll bar and log no error. Skips where Chromium is absent
(.ci/run installs Debian's ``chromium``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ablate.db import RunStore
from ablate.report import build_report, render_report
from tests.test_report import add_run, images, metrics

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
WIDTH, HEIGHT = 1280, 800
# The real study's shape: seven variants, every switch, long labels.
STUDY = """
[study]
name = "wide"
[model]
backbone = "tiny"
[variants.A]
label = "separate backbones + concat"
[variants.B]
base = "A"
label = "+ shared backbone, sum fusion"
shared_backbone = true
fusion = "sum"
[variants.C]
base = "B"
label = "+ STN"
stn = true
[variants.D]
base = "C"
label = "+ offset alignment (TV, feature L1)"
offset_align = true
tv = 0.05
feat_l1 = 0.1
[variants.E]
base = "D"
label = "+ local-count loss"
local_count = 0.2
[variants.F]
base = "D"
label = "+ GRL domain loss"
grl = true
domain = 0.05
[variants.G]
base = "E"
label = "all (+ GRL, multiscale)"
grl = true
domain = 0.05
multiscale = true
multiscale_weight = 0.5
"""
# Measures the page once laid out, and reports it through the title --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const root = document.documentElement, table = document.querySelector("table");
  document.title = `probe ${root.scrollWidth} ${root.clientWidth} ${table.scrollWidth} `
    + `${table.getBoundingClientRect().right}`;
});
</script></body>"""


# The same variants trained on both datasets the papers report: one table, a column group each.
DATASETS = """
[conditions.rgbtcc]
[conditions.drone]
dataset = "dronergbt"
"""
OVERRIDES = {"A": {}, "B": {"shared_backbone": True, "fusion": "sum"}}
OVERRIDES["C"] = {**OVERRIDES["B"], "stn": "bounded"}
OVERRIDES["D"] = {**OVERRIDES["C"], "aligner": "flow", "tv": 0.05, "feat_l1": 0.1}
OVERRIDES["E"] = {**OVERRIDES["D"], "local_count": 0.2}
OVERRIDES["F"] = {**OVERRIDES["D"], "domain_head": "grl", "domain": 0.05}
OVERRIDES["G"] = {**OVERRIDES["E"], "domain_head": "grl", "domain": 0.05,
                  "multiscale_head": "stride4", "multiscale_weight": 0.5}


def _add_runs(store: RunStore, condition: str = "", scale: float = 1.0) -> None:
    for n, (variant, config) in enumerate(OVERRIDES.items()):
        for seed in (0, 1, 2):
            score = (12.345 - n * 0.61 + seed * 0.37) * scale
            add_run(store, "wide", variant, seed,
                    metrics(score, 15.5 + n, 19.25 - n, 131.75 - n, 17.5 + seed),
                    images(lambda i, n=n: (i % 3 - 1) * n * 0.5), config, condition=condition)


def _page(root: Path, html: str) -> Path:
    path = root / "wide.html"
    path.write_text(html.replace("</body>", PROBE, 1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML report of a seven-variant study, with every column filled (paired tests too)."""
    root = tmp_path_factory.mktemp("browser")
    (root / "wide.toml").write_text(STUDY)
    with RunStore(str(root / "runs.db")) as store:
        _add_runs(store)
        report = build_report(store, str(root / "wide.toml"), baselines="all")
    return _page(root, render_report(report, "html"))


@pytest.fixture(scope="module")
def grouped_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seven variants on RGBT-CC and DroneRGBT, with every published row of both."""
    root = tmp_path_factory.mktemp("browser-grouped")
    (root / "wide.toml").write_text(STUDY + DATASETS)
    with RunStore(str(root / "runs.db")) as store:
        _add_runs(store, "rgbtcc")
        _add_runs(store, "drone", scale=0.61)
        report = build_report(store, str(root / "wide.toml"), baselines="all")
    assert report.by_dataset
    return _page(root, render_report(report, "html"))


def _open(path: Path, profile: Path) -> subprocess.CompletedProcess:
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", "--enable-logging=stderr",
               "--v=0", "--virtual-time-budget=5000", "--dump-dom", path.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(BROWSER is None, reason="needs Chromium (apt-get install chromium)")
@pytest.mark.parametrize("which", ["page", "grouped_page"])
def test_main_table_fits_1280_wide_without_a_horizontal_scroll(which, request, tmp_path):
    done = _open(request.getfixturevalue(which), tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r"<title>probe (\d+) (\d+) (\d+) ([\d.]+)\s*</title>", done.stdout)
    assert found, f"the probe did not run:\n{done.stdout[:500]}\n{done.stderr[-2000:]}"
    page_width, viewport, table_width, table_right = (float(v) for v in found.groups())
    assert viewport <= WIDTH
    assert page_width <= viewport, f"page {page_width}px wide in a {viewport}px window"
    assert table_right <= viewport and table_width <= viewport
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], "\n".join(console)  # no script error, no failed resource
