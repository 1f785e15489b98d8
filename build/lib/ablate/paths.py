"""The one way a name from a study file or the command line becomes part of a path.

A study file someone sends you names its study, variants and conditions; those names become
folder and file names. ``safe_name`` keeps them readable but inert (no ``/``, ``..``, ``~``,
NUL, no leading dot, bounded length), and ``inside`` guarantees that the resolved result lies
under its root, so nothing a study file says can write anywhere but under ``--save-dir``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ablate.errors import UsageError

MAX_NAME = 100  # bytes of a name part; file systems allow 255, leave room for suffixes
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=-]+")


def safe_name(text: str, fallback: str = "unnamed") -> str:
    """``text`` as one path component: runs of other characters become ``_``; leading dots and
    underscores are dropped (no ``..``, no hidden files); a name cut to ``MAX_NAME`` or changed
    at all keeps a short hash of the original so two names never meet in one folder."""
    cleaned = _UNSAFE.sub("_", str(text)).lstrip("._-").rstrip("._")
    cleaned = re.sub(r"\.{2,}", ".", cleaned) or fallback
    if cleaned == text and len(cleaned) <= MAX_NAME:
        return cleaned
    digest = hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[:MAX_NAME - 9]}-{digest}"


def inside(root: Path, *names: str) -> Path:
    """``root / safe_name(n1) / safe_name(n2) ...``, resolved, and checked to lie under
    ``root`` (a symlink inside root that points elsewhere is refused too)."""
    base = Path(root).expanduser().resolve()
    path = base.joinpath(*(safe_name(name) for name in names)).resolve()
    if path != base and base not in path.parents:
        raise UsageError(f"{path} is not inside {base}; refusing to write there")
    return path


# The shipped study files and published baselines: package data, so a non-editable install
# has them too (the repository's top-level studies/ is a link to this folder).
STUDIES_DIR = Path(__file__).resolve().parent / "studies"
