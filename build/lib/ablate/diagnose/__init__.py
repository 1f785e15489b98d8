"""``ablate diagnose``: score a model's saved density maps with the official GAME protocol and
name the placement bug (flip, transpose, view-for-permute, shift, the other camera's frame,
stride, padding) when GAME1-3 are far worse than GAME0.

``diagnose(pred_dir, data_path, split)`` does the work; ``write_predictions`` exports an
ablate checkpoint's maps in the format it reads (one ``<id>.npy`` per image).
"""

from ablate.diagnose.export import write_predictions
from ablate.diagnose.run import Diagnosis, diagnose

__all__ = ["Diagnosis", "diagnose", "write_predictions"]
