"""When a correction is named: it must win clearly, image by image, on enough images.

A wrong verdict costs the user a day of looking for a bug that is not there, so the verdict
abstains unless every one of these holds for the correction with the lowest GAME3 (the
leader):

1. it lowers the set's GAME3 at all;
2. there are enough images for a unanimous win to be significant after the correction for
   the number of hypotheses tried (``images_needed``);
3. it does not worsen GAME0 by more than ``GAME0_SLACK`` of the mean true count (a fix that
   crops people out of the map is not a fix);
4. it lowers each image's GAME3 (GAME0 for a count scale, ``judged_on``) by at least
   ``MARGIN`` against the maps as given: a one-sided sign test over the images, at the
   leave-one-out params (``search.fit``), Holm-adjusted over all hypotheses, at ``ALPHA``;
5. it beats the best correction of another family (``hypotheses.FAMILY``) by ``MARGIN_NEXT``
   per image, by the same test: two different explanations that fit alike are not a verdict.

The margins keep the test from naming what merely suits the resampling: on sound maps the
best correction, usually a shift of a pixel or two, gains a few per cent, while a real
coordinate bug removes most of GAME3 (flipped maps: about 88 against 8 once undone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ablate.diagnose.hypotheses import FAMILY, ORDER
from ablate.diagnose.search import Scored

ALPHA = 0.05
MARGIN = 0.10  # a correction helps an image when it removes a tenth of its GAME3
MARGIN_NEXT = 0.05  # and it is ahead of another explanation by a twentieth of that one's
GAME0_SLACK = 0.02  # of the mean true count: what zero-filled borders may cost a real fix
TIE = 0.02  # within a family, corrections this close in GAME3 count as equally good


def one_sided_p(fixed: np.ndarray, other: np.ndarray, margin: float) -> float:
    """p of "``fixed`` < (1 - margin) * ``other`` per image": the exact one-sided sign test,
    which counts the images where it holds, so the p belongs to the "helps k of n" the table
    shows. The signed-rank test would weigh a few large gains over many images, and needs a
    slow permutation null where images tie (as a map's many zero-gain images do). 1 when no
    image differs."""
    diff = (1 - margin) * other - fixed
    diff = diff[np.abs(diff) > 1e-12 * (1 + np.abs(other))]  # float noise is no difference
    if len(diff) == 0:
        return 1.0
    return float(stats.binomtest(int((diff > 0).sum()), len(diff), 0.5,
                                 alternative="greater").pvalue)


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error at the nominal level); scipy offers
    only false-discovery-rate adjustments (``false_discovery_control``)."""
    values = np.asarray(p, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    steps = (len(values) - np.arange(len(values))) * values[order]
    adjusted = np.empty_like(values)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted.tolist()


def images_needed(n_hypotheses: int, alpha: float = ALPHA) -> int:
    """The fewest images on which a correction that helps every one of them can be named:
    the sign test's p of n unanimous images is 2**-n, and the leader's Holm factor is the
    number of hypotheses."""
    return max(1, math.ceil(math.log2(n_hypotheses / alpha)))


def judged_on(name: str) -> str:
    """The metric a correction must lower: a count scale claims totals (GAME0, where the
    placement noise of a small crowd cannot drown it), every other correction placement."""
    return "game0" if name == "count-scale" else "game3"


def _values(rows: Sequence[dict], metric: str) -> np.ndarray:
    return np.array([r[metric] for r in rows], dtype=np.float64)


def weigh(base_rows: Sequence[dict], scored: Sequence[Scored]) -> None:
    """Set each correction's adjusted p against the maps as given, and how many images it
    helps (its held-out metric, ``judged_on``, at least ``MARGIN`` lower)."""
    fixes = [s for s in scored if not s.bound]
    raw, helps = [], []
    for s in fixes:
        base, fixed = (_values(rows, judged_on(s.name)) for rows in (base_rows, s.held_out))
        raw.append(one_sided_p(fixed, base, MARGIN))
        helps.append(int((fixed <= (1 - MARGIN) * base - 1e-12).sum()))
    for s, p, k in zip(fixes, holm(raw), helps, strict=True):
        s.p, s.helps = p, k


@dataclass
class Decision:
    chosen: Scored | None  # the correction named, or None
    leader: Scored | None  # the correction with the lowest GAME3
    runner_up: Scored | None  # the best correction of another family
    p_next: float | None  # one-sided p of the leader beating the runner-up by MARGIN_NEXT
    blocker: str | None  # why the leader is not named (a key of verdict.BLOCKERS)
    n_needed: int


def _leader(fixes: Sequence[Scored]) -> Scored:
    """The lowest GAME3; within its family, the most specific correction that is as good."""
    best = min(fixes, key=lambda s: s.summary["game3"])
    family = FAMILY.get(best.name, best.name)
    close = [s for s in fixes if FAMILY.get(s.name, s.name) == family
             and s.summary["game3"] <= best.summary["game3"] * (1 + TIE) + 1e-9]
    return min(close, key=lambda s: ORDER.index(s.name))


def decide(summary: dict[str, float], scored: Sequence[Scored]) -> Decision:
    """Apply the rules of this module's docstring, in order; ``weigh`` must have run."""
    fixes = [s for s in scored if not s.bound]
    n, needed = int(summary["n_images"]), images_needed(max(1, len(fixes)))
    if not fixes:
        return Decision(None, None, None, None, "nothing", needed)
    leader = _leader(fixes)
    family = FAMILY.get(leader.name, leader.name)
    others = [s for s in fixes if FAMILY.get(s.name, s.name) != family]
    runner = min(others, key=lambda s: s.summary["game3"]) if others else None
    metric = judged_on(leader.name)
    p_next = None if runner is None else one_sided_p(
        _values(leader.held_out, metric), _values(runner.held_out, metric), MARGIN_NEXT)
    mean_count = float(np.mean([r["true_count"] for r in leader.rows]))
    checks = (
        ("nothing", leader.summary["game3"] >= summary["game3"] - 1e-9),
        ("too-few", n < needed),
        ("game0", leader.summary["game0"] > summary["game0"] + GAME0_SLACK * mean_count),
        ("not-clear", leader.p is None or leader.p > ALPHA),
        ("tie", p_next is not None and p_next > ALPHA),
    )
    blocker = next((key for key, failed in checks if failed), None)
    return Decision(None if blocker else leader, leader, runner, p_next, blocker, needed)
