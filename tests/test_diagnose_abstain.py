"""``ablate diagnose`` names a bug only when it wins clearly, at RGBT-CC's 640x480 and at the
synthetic set's 160x128.

The maps are label maps (``ablate.diagnose.synthetic``: heads blurred at stride 8) with the
corruptions issue 24 found misnamed: a roll by a quarter of the width, a quarter turn resized
back, half the resolution without rescaling, and a density never divided by the stride
squared; clean maps must get no name, and two images of a real bug must get "too few images"
with the number it would need.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ablate.diagnose import synthetic
from ablate.diagnose.evidence import decide, holm, images_needed, one_sided_p, weigh
from ablate.diagnose.hypotheses import apply
from ablate.diagnose.run import _official, judge
from ablate.diagnose.search import Scored
from ablate.diagnose.verdict import sentence
from model.metrics import aggregate

SIZES = {"160x128": ((128, 160), (5, 40)), "640x480": ((480, 640), (20, 120))}
N_IMAGES = 10  # one more than a unanimous win needs (images_needed: 9 for 14 hypotheses)


class Verdict:
    """``judge`` on the maps, with what the tests read."""

    def __init__(self, maps: list[torch.Tensor], truths: list) -> None:
        rows = _official(maps, truths)
        self.summary = aggregate(rows)
        self.scored, self.decision = judge(maps, truths, rows)
        self.chosen = self.decision.chosen
        self.text = sentence(self.summary, self.decision, self.scored)


@pytest.fixture(scope="module", params=list(SIZES))
def truths(request):
    size, people = SIZES[request.param]
    return synthetic.truths(N_IMAGES, size, people, seed=3)


@pytest.fixture(scope="module")
def clean(truths):
    return Verdict([synthetic.label_map(t) for t in truths], truths)


def _corrupted(truths, name: str) -> Verdict:
    return Verdict([synthetic.CORRUPTIONS[name](synthetic.label_map(t)) for t in truths], truths)


def test_clean_label_maps_name_nothing(clean):
    assert clean.chosen is None, clean.text
    assert clean.text.startswith("No placement bug is clearly indicated: ")


def test_a_quarter_width_roll_is_named_and_its_fix_restores_game0(truths, clean):
    result = _corrupted(truths, "roll")
    width = synthetic.label_map(truths[0]).shape[1]  # 20 samples at 160 px, 80 at 640
    assert result.chosen is not None and result.chosen.name == "roll", result.text
    assert result.chosen.params == {"dx": -(width // 4), "dy": 0}
    assert result.summary["game3"] > 3 * clean.summary["game3"]
    assert result.chosen.summary["game0"] == pytest.approx(clean.summary["game0"], abs=1e-6)
    assert result.chosen.summary["game3"] == pytest.approx(clean.summary["game3"], rel=1e-6)
    assert f"rolled (torch.roll: what leaves one side comes back on the other) by " \
           f"(+{width // 4}, +0) map samples" in result.text


@pytest.mark.parametrize("turn", ["rot90", "rot270"])
def test_a_quarter_turn_resized_back_is_named_as_the_turn(truths, clean, turn):
    result = _corrupted(truths, turn)
    assert result.chosen is not None and result.chosen.name == turn, result.text
    # The resize back and forth blurs the map; the turn still removes most of the gap.
    gap = result.summary["game3"] - clean.summary["game3"]
    assert result.chosen.summary["game3"] - clean.summary["game3"] < 0.4 * gap


def test_half_resolution_without_rescaling_names_the_count_scale(truths):
    result = _corrupted(truths, "half")
    assert result.chosen is not None and result.chosen.name == "count-scale", result.text
    assert result.chosen.params == {"factor": 0.25}
    assert result.text.startswith("The predicted totals are 1/4 of the true counts in every "
                                  "image (median ratio 0.2")
    # The ratio quoted is the protocol's (its bicubic resize moves a total by a fraction of a
    # per cent), not the rounded factor.
    quoted = float(result.text.split("median ratio ")[1].split(",")[0])
    assert quoted == pytest.approx(0.25, rel=0.02)


def test_a_density_not_divided_by_the_stride_squared_names_x64(truths):
    result = _corrupted(truths, "stride-squared")
    assert result.chosen is not None and result.chosen.params == {"factor": 64.0}, result.text
    assert "64 times the true counts" in result.text and "stride squared (8x8)" in result.text


def test_two_images_of_a_real_bug_are_too_few_and_say_how_many_would_do(truths):
    result = Verdict([synthetic.label_map(t).flip(-1) for t in truths[:2]], truths[:2])
    assert result.chosen is None and result.decision.leader.name == "hflip"
    assert result.decision.blocker == "too-few"
    assert "2 images are too few to tell, since naming a correction needs at least 9 images " \
           "(the best fit, hflip, takes GAME3 from" in result.text


def test_a_unanimous_win_is_named_from_the_images_needed_on(truths):
    flipped = [synthetic.label_map(t).flip(-1) for t in truths]
    needed = images_needed(len([s for s in Verdict(flipped[:1], truths[:1]).scored
                                if not s.bound]))
    assert needed == 9
    assert Verdict(flipped[:needed], truths[:needed]).chosen.name == "hflip"
    assert Verdict(flipped[:needed - 1], truths[:needed - 1]).decision.blocker == "too-few"


@pytest.mark.parametrize("n_images", [2, 30])
def test_clean_rgbtcc_sized_label_maps_name_nothing(n_images):
    truths = synthetic.truths(n_images, (480, 640), (20, 120), seed=11)
    result = Verdict([synthetic.label_map(t) for t in truths], truths)
    assert result.chosen is None, result.text
    assert result.text.startswith("No placement bug is clearly indicated")
    assert ("too few" in result.text and "at least 9" in result.text) is (n_images == 2)


def test_model_like_maps_without_a_bug_name_nothing():
    """Heads a few px off, counts off by ~10%, a faint background: what a trained model
    gives, at the synthetic set's size."""
    truths = synthetic.truths(30, (128, 160), (5, 40), seed=12)
    generator = torch.Generator().manual_seed(0)
    result = Verdict([synthetic.model_like(t, generator) for t in truths], truths)
    assert result.chosen is None, result.text


def test_the_turn_corrections_undo_the_turns_exactly():
    density = torch.rand(6, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name, k in (("rot90", 1), ("rot270", 3)):
        turned = torch.rot90(density, k, (0, 1))  # (8, 6): not resized back
        assert torch.equal(apply(name, {}, turned, (48, 64)), density)


def _rows(game0: list[float], game3: list[float]) -> list[dict]:
    return [{"game0": g0, "game1": g3, "game2": g3, "game3": g3, "error": g0,
             "pred_count": 10 + g0, "true_count": 10.0}
            for g0, g3 in zip(game0, game3, strict=True)]


def _scored(name: str, game0: list[float], game3: list[float]) -> Scored:
    rows = _rows(game0, game3)
    return Scored(name, {}, rows, held_out=rows)


def _decision(base: list[dict], fixes: list[Scored]):
    weigh(base, fixes)
    return decide(aggregate(base), fixes)


def test_a_fix_that_worsens_game0_is_never_named():
    n = 12
    base = _rows([0.0] * n, [50.0] * n)
    cropping = _scored("padding", [3.0] * n, [10.0] * n)  # 3 people lost of 10: 30%
    decision = _decision(base, [cropping, _scored("hflip", [0.0] * n, [60.0] * n)])
    assert decision.chosen is None and decision.blocker == "game0"
    assert "worsens GAME0 from 0.00 to 3.00" in sentence(aggregate(base), decision, [cropping])
    gentle = _scored("padding", [0.1] * n, [10.0] * n)  # 1% of the count: zero-filled borders
    assert _decision(base, [gentle, _scored("hflip", [0.0] * n, [60.0] * n)]).chosen is gentle


def test_two_explanations_that_fit_alike_are_not_a_verdict():
    n = 12
    rng = np.random.default_rng(0)
    base = _rows([0.0] * n, [50.0] * n)
    one = (10 + rng.random(n)).tolist()
    other = (10 + rng.random(n)).tolist()
    hflip, rot180 = _scored("hflip", [0.0] * n, one), _scored("rot180", [0.0] * n, other)
    decision = _decision(base, [hflip, rot180])
    assert decision.chosen is None and decision.blocker == "tie"
    # Within one family the most specific is named instead: a shift mimics a padding offset.
    padding, shift = _scored("padding", [0.0] * n, one), _scored("shift", [0.0] * n, one)
    assert _decision(base, [shift, padding]).chosen is padding


def test_a_small_gain_on_most_images_is_not_clear():
    n = 30
    base = _rows([0.0] * n, [10.0] * n)
    shift = _scored("shift", [0.0] * n, [9.5] * n)  # 5% on every image: under the margin
    decision = _decision(base, [shift, _scored("hflip", [0.0] * n, [20.0] * n)])
    assert decision.chosen is None and decision.blocker == "not-clear"
    assert shift.helps == 0 and shift.p == 1.0


def test_paired_test_and_holm_known_answers():
    # Sign test: 5 images all better by the margin give 2**-5, 4 of 5 give 6/32.
    assert one_sided_p(np.full(5, 1.0), np.full(5, 2.0), 0.1) == pytest.approx(1 / 32)
    assert one_sided_p(np.array([1.0, 1, 1, 1, 1.9]), np.full(5, 2.0), 0.1) == \
        pytest.approx(6 / 32)
    assert one_sided_p(np.full(5, 2.0), np.full(5, 2.0), 0.0) == 1.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert images_needed(14) == 9 and images_needed(1) == 5
