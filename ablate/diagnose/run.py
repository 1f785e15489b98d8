"""``diagnose``: score saved maps with the official protocol, then every correction, then
decide whether one is clearly indicated (``evidence``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ablate.diagnose import moves, search
from ablate.diagnose.evidence import Decision, decide, weigh
from ablate.diagnose.hypotheses import apply, transposed
from ablate.diagnose.inputs import Prediction, read_prediction, scan
from ablate.diagnose.search import Scored
from ablate.diagnose.truth import SplitData, Truth
from ablate.diagnose.verdict import sentence
from ablate.errors import UsageError
from model.game import game_per_image
from model.metrics import GAME_LEVELS, aggregate

PAD_ALLOWANCE = 64  # input px a map may cover beyond the image (a padded input) and still fit
LISTED = 5  # problems of one kind listed one per line before the rest become a count


@dataclass
class Diagnosis:
    summary: dict[str, float]  # model.metrics.aggregate of the maps as given
    rows: list[dict[str, Any]]  # game_per_image per image, with "image_id"
    scored: list[Scored]  # every correction and the two split rows, by GAME3
    decision: Decision  # the leader, whether it is named, and if not why
    verdict: str
    notes: list[str]  # missing ids, extra files, maps that do not fit, one line each
    truths: list[Truth]
    maps: list[torch.Tensor]
    data: SplitData  # to decode the few pairs an overlay draws

    @property
    def chosen(self) -> Scored | None:
        """The correction the verdict names (None: no placement bug is clearly indicated)."""
        return self.decision.chosen

    def as_json(self) -> dict[str, Any]:
        games = {f"game{level}": self.summary[f"game{level}"] for level in GAME_LEVELS}
        hypotheses = [{"name": s.name, "params": s.params,
                       **{k: s.summary[k] for k in games}, "p": s.p, "helps": s.helps}
                      for s in self.scored]
        return {**games, "rmse": self.summary["rmse"], "n_images": self.summary["n_images"],
                "hypotheses": hypotheses, "named": self.chosen and self.chosen.name,
                "images_needed": self.decision.n_needed, "verdict": self.verdict}


def _stride_range(n_map: int, n_image: int) -> tuple[float, float]:
    """Strides at which ``n_image`` px (plus any padding) give ``n_map`` map samples."""
    high = (n_image + PAD_ALLOWANCE) / (n_map - 1) if n_map > 1 else math.inf
    return n_image / (n_map + 1), high


def fits(shape: tuple[int, int], image_size: tuple[int, int]) -> bool:
    """Whether one stride explains both sides, in either orientation (a transposed map fits:
    undoing that is one of the hypotheses)."""
    for size in (image_size, image_size[::-1]):
        (lo_r, hi_r), (lo_c, hi_c) = (_stride_range(m, n) for m, n in zip(shape, size,
                                                                             strict=True))
        if max(lo_r, lo_c) < min(hi_r, hi_c):
            return True
    return False


def _listed(kind: str, items: list[str]) -> list[str]:
    lines = [f"{kind}: {item}" for item in items[:LISTED]]
    if len(items) > LISTED:
        lines.append(f"{kind}: {len(items) - LISTED} more ({len(items)} in all)")
    return lines


def _match(data: SplitData, pred_dir: Path) -> tuple[list[Truth], list[Prediction], list[str]]:
    found, missing, extra = scan(pred_dir, data.ids)
    if not found:
        raise UsageError(f"{pred_dir} holds no prediction for any of the {len(data.ids)} "
                         f"{data.split} images (expected <id>.npy, .pt, .json or .txt, "
                         f"e.g. {data.ids[0] if data.ids else '0'}.npy)")
    predictions = {i: read_prediction(path) for i, path in found.items()}
    truths, kept, misfits, turned = [], [], [], 0
    for truth in data.truths(list(found)):
        pred = predictions[truth.id]
        shape = pred.shape
        if shape is not None and not fits(shape, truth.size):
            misfits.append(f"{pred.path.name} is {shape[0]}x{shape[1]} for a "
                           f"{truth.size[0]}x{truth.size[1]} image")
            continue
        turned += shape is not None and transposed(shape, truth.size) and shape[0] != shape[1]
        truths.append(truth)
        kept.append(pred)
    notes = (_listed(f"missing (no file for a {data.split} id)", missing)
             + _listed("extra file (ignored)", [p.name for p in extra])
             + _listed("aspect ratio does not match (skipped)", misfits))
    if turned:
        notes.append(f"{turned} maps are (w, h)-shaped: transposed or reshaped in the other "
                     "axis order (scored as given, then undone below)")
    if not truths:
        raise UsageError(f"{pred_dir}: no map matches its image's aspect ratio "
                         f"({len(misfits)} tried)")
    return truths, kept, notes


def diagnose(pred_dir: Path, data_path: Path | None = None, split: str = "test") -> Diagnosis:
    """Everything ``ablate diagnose`` prints: the score, each correction's score, the verdict.

    Runs on one thread: the work is thousands of tiny matrix products, and intra-op threads
    only add barriers that stall on a busy machine (measured: 10 us a product on one thread,
    60 ms on two loaded cores).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _diagnose(Path(pred_dir), data_path, split)
    finally:
        torch.set_num_threads(previous)


def _official(maps: list[torch.Tensor], truths: list[Truth]) -> list[dict[str, Any]]:
    """Per-image rows from the very code ``ablate eval`` uses (``game_per_image``)."""
    return [{"image_id": t.id, **game_per_image(m, t.points, t.size)}
            for m, t in zip(maps, truths, strict=True)]


def grids(maps: list[torch.Tensor], truths: list[Truth]) -> list[search.Grid]:
    """Every correction's scores on every image at every params value."""
    found = [*search.discrete(maps, truths), moves.fine_shift(maps, truths),
             moves.whole_map(maps, truths, circular=True),
             moves.whole_map(maps, truths, circular=False), search.count_scale(maps, truths)]
    return [g for g in found if g is not None]


def judge(maps: list[torch.Tensor], truths: list[Truth], rows: list[dict[str, Any]],
          scores: list[search.Grid] | None = None) -> tuple[list[Scored], Decision]:
    """Every correction fitted (sorted by GAME3, the two split rows among them) and the
    decision on them. ``rows`` are the maps' own per-image rows; ``scores``, the ``grids`` of
    these images when already computed (benchmarks/diagnose_fpr.py draws many subsets)."""
    scores = grids(maps, truths) if scores is None else scores
    scored = [search.fit(g, truths) for g in scores]
    weigh(rows, scored)
    scored += search.count_placement(maps, truths)
    scored.sort(key=lambda s: s.summary["game3"])
    return scored, decide(aggregate(rows), scored)


def _diagnose(pred_dir: Path, data_path: Path | None, split: str) -> Diagnosis:
    data = SplitData(data_path, split)
    truths, predictions, notes = _match(data, Path(pred_dir))
    maps = [p.as_map(t.size) for p, t in zip(predictions, truths, strict=True)]
    rows = _official(maps, truths)
    summary = aggregate(rows)
    scored, decision = judge(maps, truths, rows)
    chosen = decision.chosen
    if chosen is not None:
        # The numbers the verdict quotes come from the official code too (the matrix form
        # that ranked the corrections agrees with it to 1e-9; this keeps that visible).
        fixed = [apply(chosen.name, chosen.params, m, t.size, t.affine)
                 for m, t in zip(maps, truths, strict=True)]
        chosen.rows = _official(fixed, truths)
        chosen.summary = aggregate(chosen.rows)
    return Diagnosis(summary, rows, scored, decision, sentence(summary, decision, scored),
                     notes, truths, maps, data)
