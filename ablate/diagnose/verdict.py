"""The verdict in one sentence: the bug and how sure, or why none is named.

A named correction quotes its evidence (how many images it helps, its adjusted p, the
explanation it beat); an abstention says which rule of ``evidence`` stopped it and, where the
sample is too small, how many images would do.
"""

from __future__ import annotations

import numpy as np

from ablate.diagnose.evidence import GAME0_SLACK, MARGIN, MARGIN_NEXT, Decision, judged_on
from ablate.diagnose.search import Scored, ratio_text

SOURCES = {"dataset": "from the dataset", "estimated": "estimated from the image pair"}
SIDES = {"start": "top/left", "centre": "both sides", "end": "bottom/right"}
FIXED = {
    "hflip": "the maps are flipped left-right",
    "vflip": "the maps are flipped upside down",
    "rot180": "the maps are rotated by 180 degrees",
    "rot90": "the maps are rotated by 90 degrees (torch.rot90 with k=1, counter-clockwise), "
             "then resized to the image's shape",
    "rot270": "the maps are rotated by 270 degrees (torch.rot90 with k=3, clockwise), then "
              "resized to the image's shape",
    "transpose": "the maps are transposed (rows and columns swapped)",
    "reshape": "the maps were reshaped in the other axis order (view where permute was meant)",
}


def _format_p(p: float | None) -> str:
    return "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _count_scale(s: Scored) -> str:
    factor = s.params["factor"]
    # The rows hold the corrected totals; the maps as given had ``factor`` times them.
    ratios = np.array([factor * r["pred_count"] / r["true_count"] for r in s.rows
                       if r["true_count"]])
    measured = (f" (median ratio {np.median(ratios):.3g}, {np.min(ratios):.3g} to "
                f"{np.max(ratios):.3g} over images)") if len(ratios) else ""
    k = round(abs(np.log2(factor)))
    if factor < 1:
        size = (f"1/{2 ** (k // 2)} of its size per side (1/{2 ** k} of its area)"
                if k % 2 == 0 else f"1/{2 ** k} of its area")
        return (f"the predicted totals are 1/{2 ** k} of the true counts in every image"
                f"{measured}, as from a map resized to {size} without rescaling its values "
                "(or pooled by averaging)")
    stride = f" ({2 ** (k // 2)}x{2 ** (k // 2)})" if k % 2 == 0 else ""
    return (f"the predicted totals are {2 ** k} times the true counts in every image"
            f"{measured}, as from a density not divided by the stride squared{stride}, or a "
            "map enlarged without rescaling its values")


def _move(s: Scored) -> str:
    dx, dy = -s.params["dx"], -s.params["dy"]
    how = ("rolled (torch.roll: what leaves one side comes back on the other)"
           if s.name == "roll" else "shifted with zero fill (a crop or pad on the wrong side)")
    return f"the maps are {how} by ({dx:+d}, {dy:+d}) map samples (x, y)"


def describe(s: Scored) -> str:
    """What the bug is, given the correction that undoes it."""
    p = s.params
    if s.name in FIXED:
        return FIXED[s.name]
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
    if s.name in ("roll", "padded-shift"):
        return _move(s)
    if s.name == "count-scale":
        return _count_scale(s)
    return f"the maps need the {s.name} correction"


def _named(base: dict[str, float], d: Decision) -> str:
    s, n = d.chosen, int(base["n_images"])
    text, metric = describe(s), judged_on(s.name)
    lowers = f"GAME3 from {base['game3']:.2f} to {s.summary['game3']:.2f}"
    if metric != "game3":
        lowers = (f"{metric.upper()} from {base[metric]:.2f} to {s.summary[metric]:.2f} and "
                  f"{lowers}")
    ahead = "" if d.runner_up is None else (
        f"; ahead of the next explanation, {d.runner_up.name} ({metric.upper()} "
        f"{d.runner_up.summary[metric]:.2f}), by {MARGIN_NEXT:.0%} per image: p "
        f"{_format_p(d.p_next)}")
    undo = "Undoing it"
    if s.name == "count-scale":
        factor = s.params["factor"]
        undo = (f"Multiplying the maps by {round(1 / factor)}" if factor < 1 else
                f"Dividing the maps by {round(factor)}")
    return (f"{text[0].upper()}{text[1:]}. {undo} lowers {lowers} ({metric.upper()} "
            f"{MARGIN:.0%} or more lower on {s.helps} of {n} images, adjusted p "
            f"{_format_p(s.p)}{ahead}).")


def _why_not(base: dict[str, float], d: Decision) -> str:
    s, n = d.leader, int(base["n_images"])
    if d.blocker == "nothing" or s is None:
        few = (f" (and {n} image{'s' if n != 1 else ''} would be too few to name one: at "
               f"least {d.n_needed} are needed)") if n < d.n_needed else ""
        return f"no correction lowers GAME3 from {base['game3']:.2f}{few}"
    params = _short(s)
    best = (f"the best fit, {s.name}{f' ({params})' if params else ''}, takes GAME3 from "
            f"{base['game3']:.2f} to {s.summary['game3']:.2f}")
    if d.blocker == "too-few":
        return (f"{n} image{'s' if n != 1 else ''} are too few to tell, since naming a "
                f"correction needs at least {d.n_needed} images ({best} on these)")
    if d.blocker == "game0":
        return (f"{best} but worsens GAME0 from {base['game0']:.2f} to "
                f"{s.summary['game0']:.2f} (more than {GAME0_SLACK:.0%} of the mean count), "
                "so it removes people rather than placing them")
    if d.blocker == "not-clear":
        return (f"{best}, but {_metric(s)} is {MARGIN:.0%} or more lower on only {s.helps} "
                f"of {n} images (adjusted p {_format_p(s.p)})")
    return (f"{best}, but {d.runner_up.name} fits almost as well (GAME3 "
            f"{d.runner_up.summary['game3']:.2f}; p {_format_p(d.p_next)} that {s.name} is "
            f"{MARGIN_NEXT:.0%} better per image)")


def _metric(s: Scored) -> str:
    return judged_on(s.name).upper()


def _short(s: Scored) -> str:
    if s.name == "count-scale":
        return ratio_text(s.params["factor"])
    return ", ".join(f"{k}={v}" for k, v in s.params.items())


def sentence(base: dict[str, float], decision: Decision, scored: list[Scored]) -> str:
    if decision.chosen is not None:
        return _named(base, decision)
    bounds = {s.name: s.summary["game3"] for s in scored if s.bound}
    floor = (f" With the true placement at the predicted counts GAME3 would be "
             f"{bounds['true-placement']:.2f}.") if "true-placement" in bounds else ""
    return f"No placement bug is clearly indicated: {_why_not(base, decision)}.{floor}"
