"""The control study's placebo: why P is A with a sham learning rate, not an exact copy.

An exact copy of A under another name trains again (the runs database keys a run by its
variant as well as its config hash) but, CPU training being deterministic for a seed, ends
bit-identical to A: its paired differences are all zero, which tests only the bookkeeping. A
sham change (lr x 1.0001) lets the run drift apart as any other recipe's does, so P against A
measures how often the test between recipes calls two equal recipes different.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import METRIC_KEYS, ok, runs_json, tiny_study_text

from ablate.study.study import load_study

CONTROL = Path(__file__).resolve().parent.parent / "studies" / "control.toml"


def test_the_placebo_is_a_with_a_sham_learning_rate_in_every_condition():
    study = load_study(CONTROL)
    assert "placebo" in study.variant("P").label
    for condition in study.conditions:
        a, p = (study.config(v, 0, condition=condition) for v in ("A", "P"))
        assert p.train.lr == pytest.approx(a.train.lr * 1.0001, rel=1e-12)
        assert p.with_overrides({"lr": a.train.lr}).config_hash() == a.config_hash()


def test_an_exact_copy_trains_again_and_reproduces_its_original(in_tmp):
    text = tiny_study_text() + (
        '\n[variants.A2]\nbase = "A"\nlabel = "A again"\n'
        '\n[variants.P]\nbase = "A"\nlabel = "placebo"\nlr = 1.0001e-3\n')
    (in_tmp / "tiny.toml").write_text(text)
    result = ok("study", "run", "tiny.toml", "--variants", "A,A2,P", "--quiet")
    assert "3 trained, 0 skipped" in result.output
    rows = {row["variant"]: row for row in runs_json()}
    assert rows["A2"]["config_hash"] == rows["A"]["config_hash"]
    metrics = {v: [rows[v][k] for k in METRIC_KEYS] for v in rows}
    assert metrics["A2"] == metrics["A"]  # bit for bit
    assert metrics["P"] != metrics["A"]  # the sham change is enough to drift apart
