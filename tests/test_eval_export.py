"""``ablate eval --save-predictions`` writes maps that ``ablate diagnose`` scores exactly as
``ablate eval`` does (issue 12 item 5): the export format is documented by this round trip."""

from __future__ import annotations

import json

import pytest
from conftest import DEMO, ok


@pytest.mark.slow
def test_eval_export_then_diagnose_gives_evals_numbers(in_tmp):
    ok("data", "synth", "d", "--n", "8", "--height", "64", "--width", "64")
    ok("run", "--study", DEMO, "--data-path", "d", "--variant", "A", "--epochs", "1", "--quiet",
       "--set", "crop_size=64", "--set", "batch_size=4", "--save-dir", "run")
    evaluated = json.loads(ok("eval", "run/best.pt", "--data-path", "d", "--json",
                              "--save-predictions", "preds").stdout)
    maps = sorted(p.name for p in (in_tmp / "preds").iterdir())
    assert len(maps) == evaluated["n_images"] and all(m.endswith(".npy") for m in maps)
    diagnosed = json.loads(ok("diagnose", "preds", "--data-path", "d", "--json").stdout)
    assert diagnosed["n_images"] == evaluated["n_images"]
    for key in ("game0", "game1", "game2", "game3", "rmse"):
        assert diagnosed[key] == pytest.approx(evaluated[key], abs=1e-6), key
    assert isinstance(diagnosed["verdict"], str) and diagnosed["verdict"]
