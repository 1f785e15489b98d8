"""Which correction explains the gap, in one sentence.

A correction "helps" when it removes at least ``HELPS`` (a tenth) of the uncorrected GAME3. A
real coordinate bug removes most of it (flipped RGBT-CC maps: GAME3 about 68 against 24 once
undone), while on sound maps the best candidate, usually a shift of a pixel or two that happens
to suit the resampling, gains a few per cent at most; a tenth sits between the two and still
catches a small bug such as a one-sample padding offset. Corrections
within ``TIE`` of the best count as equally good and the most specific one (``ORDER``) is named:
a global shift can imitate a padding offset, never the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence

from ablate.diagnose.hypotheses import ORDER
from ablate.diagnose.search import Scored

HELPS = 0.1
TIE = 0.02
SOURCES = {"dataset": "from the dataset", "estimated": "estimated from the image pair"}
SIDES = {"start": "top/left", "centre": "both sides", "end": "bottom/right"}


def choose(base_game3: float, scored: Sequence[Scored]) -> Scored | None:
    """The correction the verdict names, or None when no correction helps."""
    fixes = [s for s in scored if not s.bound]
    if not fixes:
        return None
    best = min(s.summary["game3"] for s in fixes)
    close = [s for s in fixes if s.summary["game3"] <= best * (1 + TIE) + 1e-9]
    chosen = min(close, key=lambda s: ORDER.index(s.name))
    gain = base_game3 - chosen.summary["game3"]
    return chosen if gain > 0 and gain >= HELPS * base_game3 else None


def describe(s: Scored) -> str:
    """What the bug is, given the correction that undoes it."""
    p = s.params
    text = {
        "hflip": "the maps are flipped left-right",
        "vflip": "the maps are flipped upside down",
        "rot180": "the maps are rotated by 180 degrees",
        "transpose": "the maps are transposed (rows and columns swapped)",
        "reshape": "the maps were reshaped in the other axis order (view where permute was "
                   "meant)",
    }.get(s.name)
    if text:
        return text
    if s.name == "stride":
        return f"the maps are at stride {p.get('stride')}, not the stride their shape implies"
    if s.name == "padding":
        return (f"the maps come from an input padded to a multiple of {p.get('multiple')} at the "
                f"{SIDES.get(p.get('side'), p.get('side'))} and cropped from the wrong side")
    if s.name == "camera":
        frame = "RGB camera's frame" if p.get("frame") == "rgb" else "other frame"
        source = SOURCES.get(p.get("source"), "from the dataset or the image pair")
        return (f"the maps are in the {frame}, not the labels' (undone with each image's "
                f"RGB-thermal displacement {source})")
    if s.name == "shift":
        return f"the maps are shifted by ({-p['dx']:+d}, {-p['dy']:+d}) px (x, y)"
    return f"the maps need the {s.name} correction"


def sentence(base_game3: float, scored: Sequence[Scored]) -> str:
    chosen = choose(base_game3, scored)
    if chosen is not None:
        return (f"{describe(chosen)[0].upper()}{describe(chosen)[1:]}: undoing it lowers GAME3 "
                f"from {base_game3:.2f} to {chosen.summary['game3']:.2f}.")
    fixes = sorted((s for s in scored if not s.bound), key=lambda s: s.summary["game3"])
    bounds = {s.name: s.summary["game3"] for s in scored if s.bound}
    best = f" (none lowers GAME3 from {base_game3:.2f})"
    if fixes and fixes[0].summary["game3"] < base_game3 - 1e-9:
        best = (f" (the best, {fixes[0].name}, only takes GAME3 from {base_game3:.2f} to "
                f"{fixes[0].summary['game3']:.2f})")
    floor = (f"; with the true placement at the predicted counts GAME3 would be "
             f"{bounds['true-placement']:.2f}") if "true-placement" in bounds else ""
    return f"No placement hypothesis helps{best}: the error is in the model{floor}."
