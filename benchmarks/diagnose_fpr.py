"""How often ``ablate diagnose`` names a bug that is not there, and how often it finds one that is.

A pool of ``--pool`` synthetic images (``ablate.diagnose.synthetic``) gets model-like maps
without any coordinate bug: heads a few pixels off, a per-image count error, a faint
background. ``--subsets`` random subsets of 5 to 30 of them are diagnosed as a user's split
would be; a subset whose verdict names any correction is a false positive. The same subsets
with a real bug applied to every map (``--bug``, a quarter-width roll by default) measure
the detection rate. Every correction is scored once on the whole pool and each subset
re-decides on its images' scores: the same numbers ``diagnose`` computes on that subset
(the params are fitted on the subset alone), without re-scoring it 200 times.

    python benchmarks/diagnose_fpr.py                      # 640x480, 60 images, 200 subsets
    python benchmarks/diagnose_fpr.py --size 128 160 --people 5 40
    python benchmarks/diagnose_fpr.py --jitter 0 --count-sd 0 --background 0   # label maps
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ablate.diagnose import synthetic  # noqa: E402
from ablate.diagnose.evidence import images_needed  # noqa: E402
from ablate.diagnose.hypotheses import FAMILY  # noqa: E402
from ablate.diagnose.run import _official, grids, judge  # noqa: E402


def verdicts(maps: list[torch.Tensor], truths: list,
             subsets: list[list[int]]) -> tuple[list[str], list[float]]:
    """The name each subset's verdict gives ("" when none is named) and its leader's
    adjusted p (how close the subset came to naming it)."""
    rows, scores = _official(maps, truths), grids(maps, truths)
    named, leader_p = [], []
    for images in subsets:
        _, decision = judge([maps[i] for i in images], [truths[i] for i in images],
                            [rows[i] for i in images], [g.take(images) for g in scores])
        named.append(decision.chosen.name if decision.chosen else "")
        leader_p.append(decision.leader.p if decision.leader else 1.0)
    return named, leader_p


def summary(found: tuple[list[str], list[float]], sizes: np.ndarray, needed: int,
            want: set[str] | None) -> dict:
    """Share of subsets naming anything (want=None) or one of ``want``, overall and from
    ``needed`` images on (smaller subsets abstain by construction), and the smallest
    adjusted p of a leader among the subsets that named nothing."""
    named, leader_p = found
    hit = np.array([(n in want) if want else bool(n) for n in named])
    big = sizes >= needed
    quiet = [p for p, n, b in zip(leader_p, named, big, strict=True) if b and not n]
    return {"rate": float(hit.mean()), "hits": int(hit.sum()), "subsets": len(hit),
            "rate_from_needed": float(hit[big].mean()) if big.any() else None,
            "subsets_from_needed": int(big.sum()), "names": dict(Counter(n for n in named if n)),
            "closest_p_of_the_rest": min(quiet) if quiet else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    parser.add_argument("--people", type=int, nargs=2, default=(20, 120), metavar=("LO", "HI"))
    parser.add_argument("--pool", type=int, default=60)
    parser.add_argument("--subsets", type=int, default=200)
    parser.add_argument("--smallest", type=int, default=5)
    parser.add_argument("--largest", type=int, default=30)
    parser.add_argument("--bug", default="roll", choices=sorted(synthetic.CORRUPTIONS))
    parser.add_argument("--jitter", type=float, default=3.0, help="head position error, px")
    parser.add_argument("--count-sd", type=float, default=0.1, help="log count error sd")
    parser.add_argument("--background", type=float, default=0.05, help="share of the count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    truths = synthetic.truths(args.pool, tuple(args.size), tuple(args.people), args.seed)
    generator = torch.Generator().manual_seed(args.seed + 1)
    clean = [synthetic.model_like(t, generator, args.jitter, args.count_sd, args.background)
             for t in truths]
    buggy = [synthetic.CORRUPTIONS[args.bug](m) for m in clean]
    rng = np.random.default_rng(args.seed)
    sizes = rng.integers(args.smallest, args.largest + 1, args.subsets)
    subsets = [sorted(rng.choice(args.pool, int(n), replace=False).tolist()) for n in sizes]
    needed = images_needed(len(grids(clean[:1], truths[:1])))
    # A one-sample shift is named by whichever move fits it best (a padding offset, a
    # shift); the other bugs by their own name.
    offsets = {name for name, family in FAMILY.items() if family == "offset"}
    expected = {"half": {"count-scale"}, "stride-squared": {"count-scale"},
                "shift": offsets}.get(args.bug, {args.bug})
    result = {"size": list(args.size), "people": list(args.people), "pool": args.pool,
              "jitter": args.jitter, "count_sd": args.count_sd, "background": args.background,
              "subset_sizes": [args.smallest, args.largest], "images_needed": needed,
              "false_positive": summary(verdicts(clean, truths, subsets), sizes, needed, None),
              "bug": args.bug,
              "detected": summary(verdicts(buggy, truths, subsets), sizes, needed, expected),
              "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
