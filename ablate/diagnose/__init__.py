"""``ablate diagnose``: score a model's saved density maps with the official GAME protocol and
name the placement bug (flip, turn, transpose, view-for-permute, shift or roll, the other
camera's frame, stride, padding) or the count scale, only when one wins clearly image by image
on enough images (``evidence``); otherwise say that none is clearly indicated.

``diagnose(pred_dir, data_path, split)`` does the work; ``write_predictions`` exports an
ablate checkpoint's maps in the format it reads (one ``<id>.npy`` per image).
"""

from typing import Any

__all__ = ["WORST", "Diagnosis", "diagnose", "write_predictions"]

WORST = 6  # worst images ``overlays`` draws: enough to see a pattern, few enough to look at


def __getattr__(name: str) -> Any:
    # Both import torch (seconds): only when asked for, so that ``ablate diagnose --help``,
    # which shows WORST, stays light.
    if name == "write_predictions":
        from ablate.diagnose.export import write_predictions

        return write_predictions
    if name in ("Diagnosis", "diagnose"):
        from ablate.diagnose import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
