"""Dataset layouts, a registry kind: recognising a folder's layout and pairing its files.

Each layout is a ``Layout`` registered by name (``rgbtcc``, ``dronergbt``, and ``synthetic``
for the built-in generator, which reads no folder). A plugin adds its own layout with
``register("layout", NAME)(Layout(...))``; ``detect_format`` tries the plugins' layouts first,
then the built-ins. Pairing never decodes anything; it returns the matched file triples plus
one line per problem (a missing partner, a missing folder, an empty split), so the loader can
raise the first problem and the data check can list them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from model.data.errors import DataError
from model.registry import BUILTINS, lookup, names, register

Scan = Callable[[Path, str], tuple[list["PairFiles"], list[str]]]

RGBTCC_SPLITS = ("train", "val", "test")
DRONERGBT_SPLITS = ("train", "test")
RGBTCC_LAYOUT = (
    "RGBT-CC: train/, val/, test/ holding <id>_RGB.jpg, <id>_T.jpg, <id>_GT.json (or .npy)"
)
DRONERGBT_LAYOUT = (
    "DroneRGBT: train/ and test/ holding RGB/<n>.jpg, Infrared/<n>R.jpg, GT_/<n>R.xml"
)

_RGBTCC_FILE = re.compile(r"^(?P<id>.+)_(?P<kind>RGB|T|GT)\.(?P<ext>jpg|jpeg|json|npy)$", re.I)


@dataclass(frozen=True)
class PairFiles:
    id: str
    rgb: Path
    thermal: Path
    label: Path


def _sort_key(sample_id: str) -> tuple:
    # RGBT-CC ids are integers: order 2 before 10.
    return (0, int(sample_id), "") if sample_id.isdigit() else (1, 0, sample_id)


def _pair_up(rgbs: dict[str, Path], thermals: dict[str, Path], labels: dict[str, Path],
             expected: dict[str, Callable[[str], object]]) -> tuple[list[PairFiles], list[str]]:
    """Match the three files of each id; every incomplete id becomes a problem naming a file."""
    pairs, problems = [], []
    for i in sorted(set(rgbs) | set(thermals) | set(labels), key=_sort_key):
        rgb, thermal, label = rgbs.get(i), thermals.get(i), labels.get(i)
        if rgb is None and thermal is None:
            problems.append(f"label {label} has no images (expected {expected['RGB'](i)})")
        elif thermal is None:
            problems.append(f"missing thermal partner for {rgb} (expected {expected['T'](i)})")
        elif rgb is None:
            problems.append(f"missing RGB partner for {thermal} (expected {expected['RGB'](i)})")
        elif label is None:
            problems.append(f"missing label for {rgb} (expected {expected['GT'](i)})")
        else:
            pairs.append(PairFiles(i, rgb, thermal, label))
    return pairs, problems


def scan_rgbtcc(root: Path, split: str) -> tuple[list[PairFiles], list[str]]:
    folder = root / split
    if not folder.is_dir():
        return [], [f"missing split folder {folder} (expected by the RGBT-CC layout)"]
    found: dict[str, dict[str, Path]] = {}
    for f in folder.iterdir():
        match = _RGBTCC_FILE.match(f.name)
        if match and f.is_file():
            kind = match["kind"].upper()
            if kind == "GT" and match["ext"].lower() not in ("json", "npy"):
                continue
            if kind != "GT" and match["ext"].lower() not in ("jpg", "jpeg"):
                continue
            # json wins over npy when both exist: it is the published original.
            if kind == "GT" and "GT" in found.get(match["id"], {}) and f.suffix.lower() == ".npy":
                continue
            found.setdefault(match["id"], {})[kind] = f
    files = {k: {i: f[k] for i, f in found.items() if k in f} for k in ("RGB", "T", "GT")}
    pairs, problems = _pair_up(files["RGB"], files["T"], files["GT"], {
        "RGB": lambda i: folder / f"{i}_RGB.jpg",
        "T": lambda i: folder / f"{i}_T.jpg",
        "GT": lambda i: f"{folder / f'{i}_GT.json'} or .npy",
    })
    if not found:
        problems.append(f"empty split: {folder} holds no <id>_RGB.jpg / <id>_T.jpg / <id>_GT pairs")
    return pairs, problems


def scan_dronergbt(root: Path, split: str) -> tuple[list[PairFiles], list[str]]:
    folder = root / split
    dirs = {name: folder / name for name in ("RGB", "Infrared", "GT_")}
    missing = [str(d) for d in dirs.values() if not d.is_dir()]
    if missing:
        return [], [f"missing folder {', '.join(missing)} (expected by the DroneRGBT layout)"]

    def by_id(name: str, suffix: str, ext: str) -> dict[str, Path]:
        out = {}
        for f in dirs[name].iterdir():
            if f.is_file() and f.suffix.lower() == ext and f.stem.endswith(suffix):
                out[f.stem[: len(f.stem) - len(suffix)] if suffix else f.stem] = f
        return out

    rgbs, thermals, labels = (
        by_id("RGB", "", ".jpg"),
        by_id("Infrared", "R", ".jpg"),
        by_id("GT_", "R", ".xml"),
    )
    pairs, problems = _pair_up(rgbs, thermals, labels, {
        "RGB": lambda i: dirs["RGB"] / f"{i}.jpg",
        "T": lambda i: dirs["Infrared"] / f"{i}R.jpg",
        "GT": lambda i: dirs["GT_"] / f"{i}R.xml",
    })
    if not (rgbs or thermals or labels):
        problems.append(f"empty split: {folder} holds no RGB/<n>.jpg + Infrared/<n>R.jpg pairs")
    return pairs, problems


@dataclass(frozen=True)
class Layout:
    """A dataset layout: its split folders, how to pair their files, how to recognise it.

    ``val_from_train``: the layout has no val split; the loader holds ``val_size`` train pairs
    out (DroneRGBT). ``stats``: the name of its normalisation in ``model.data.sample``."""

    description: str
    splits: tuple[str, ...]
    scan: Scan | None  # None: the built-in generator, which reads no folder
    looks_like: Callable[[Path], bool]
    stats: str = "rgbtcc"
    val_from_train: bool = False


def _is_rgbtcc(root: Path) -> bool:
    folders = [root / split for split in RGBTCC_SPLITS]
    has_pair_files = any(
        _RGBTCC_FILE.match(f.name) for d in folders if d.is_dir() for f in d.iterdir()
    )
    return has_pair_files or all(d.is_dir() for d in folders)


def _is_dronergbt(root: Path) -> bool:
    return any((root / split / sub).is_dir()
               for split in DRONERGBT_SPLITS for sub in ("RGB", "Infrared"))


register("layout", "synthetic")(Layout("the built-in synthetic misaligned crowds",
                                       ("train", "val", "test"), None, lambda root: False))
register("layout", "rgbtcc")(Layout(RGBTCC_LAYOUT, RGBTCC_SPLITS, scan_rgbtcc, _is_rgbtcc))
register("layout", "dronergbt")(Layout(DRONERGBT_LAYOUT, DRONERGBT_SPLITS, scan_dronergbt,
                                       _is_dronergbt, stats="dronergbt", val_from_train=True))


def detect_format(path: str | Path) -> str:
    """The name of the layout of a dataset root; anything else is a DataError. The plugins'
    layouts are tried first (a layout of one's own is the more specific), then DroneRGBT
    (sub-folders), then RGBT-CC."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"data path {root} does not exist")
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder")
    builtin = ("dronergbt", "rgbtcc")
    order = [n for n in names("layout") if n not in BUILTINS["layout"]] + list(builtin)
    layouts = {name: lookup("layout", name) for name in order}
    for name, layout in layouts.items():
        if layout.scan is not None and layout.looks_like(root):
            return name
    expected = " or ".join(layouts[name].description for name in names("layout")
                           if name in layouts)
    raise DataError(f"unrecognised dataset layout at {root}; expected {expected}")


def layout_of(path: str | Path) -> Layout:
    """The registered layout of a dataset root (see ``detect_format``)."""
    return lookup("layout", detect_format(path))
