"""RGBT-CC and DroneRGBT readers, format detection, the data check, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, write_file

from model.config import DataConfig
from model.data import (
    RGBTCC_STATS,
    DataError,
    check_dataset,
    detect_format,
    load_first_pair,
    load_splits,
)
from model.data.io import torchvision_io

H, W = 24, 32


def _jpeg(path: Path, height: int = H, width: int = W, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    image = (torch.rand(3, height // 4, width // 4, generator=g) * 255).to(torch.uint8)
    image = image.repeat_interleave(4, 1).repeat_interleave(4, 2)  # blocky: JPEG-friendly
    path.parent.mkdir(parents=True, exist_ok=True)
    with torchvision_io():
        write_file(str(path), encode_jpeg(image, quality=95))


def _points(i: int) -> list[list[float]]:
    return [[1.5 + i, 2.25], [30.0, 20.5], [0.0, 0.0]][: 1 + i % 3]


def write_rgbtcc_fixture(root: Path, label: str = "json", counts=(3, 2, 2)) -> Path:
    """The published layout; labels as json (with extra keys) or npy N x 2 / N x 3."""
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            _jpeg(folder / f"{i}_RGB.jpg", seed=i)
            _jpeg(folder / f"{i}_T.jpg", seed=100 + i)
            pts = np.asarray(_points(i), dtype=np.float32)
            if label == "json":
                body = {"human_num": len(pts), "points": pts.tolist(), "image": f"{i}_RGB.jpg"}
                (folder / f"{i}_GT.json").write_text(json.dumps(body))
            else:
                if label == "npy3":
                    pts = np.concatenate([pts, np.full((len(pts), 1), 7.0, np.float32)], 1)
                np.save(folder / f"{i}_GT.npy", pts)
    return root


def _xml(points: list[list[float]]) -> str:
    objects = "".join(
        f"<object><name>person</name><point><x>{x}</x><y>{y}</y></point></object>"
        for x, y in points
    )
    return (
        f"<annotation><filename>x</filename><size><width>{W}</width></size>{objects}</annotation>"
    )


def write_drone_fixture(root: Path, counts=(6, 2)) -> Path:
    for split, n in zip(("train", "test"), counts, strict=True):
        for i in range(1, n + 1):
            _jpeg(root / split / "RGB" / f"{i}.jpg", seed=i)
            _jpeg(root / split / "Infrared" / f"{i}R.jpg", seed=50 + i)
            (root / split / "GT_").mkdir(parents=True, exist_ok=True)
            (root / split / "GT_" / f"{i}R.xml").write_text(_xml(_points(i)))
    return root


@pytest.mark.parametrize("label", ["json", "npy2", "npy3"])
def test_rgbtcc_reads_json_and_npy_labels(tmp_path, label):
    root = write_rgbtcc_fixture(tmp_path, label)
    assert detect_format(root) == "rgbtcc"
    splits = load_splits(DataConfig(data_path=str(root)))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3, 2, 2)
    assert splits.format == "rgbtcc" and splits.stats.rgb_mean == (0.407, 0.389, 0.396)
    s = splits.train[0]  # id "1": points (2.5, 2.25) and (30, 20.5)
    assert s.id == "1" and s.rgb.shape == (3, H, W) and s.rgb.dtype == torch.uint8
    assert s.thermal.shape == (3, H, W)
    assert s.points.dtype == torch.float32
    assert torch.equal(s.points, torch.tensor([[2.5, 2.25], [30.0, 20.5]]))
    assert splits.train[1].points.shape == (3, 2)  # (0, 0) is on the image: kept


def test_rgbtcc_ids_sort_numerically_and_json_wins_over_npy(tmp_path):
    root = write_rgbtcc_fixture(tmp_path, counts=(10, 1, 1))
    np.save(root / "train" / "2_GT.npy", np.zeros((5, 2), np.float32))
    splits = load_splits(DataConfig(data_path=str(root)))
    assert [s.id for s in splits.train] == [str(i) for i in range(1, 11)]
    assert len(splits.train[1].points) == 3  # from the json, not the 5-point npy


def test_points_outside_are_dropped_and_counted(tmp_path):
    root = write_rgbtcc_fixture(tmp_path)
    pts = [[5, 5], [-0.5, 3], [W, 3], [3, H + 2], [W - 0.01, H - 0.01]]
    (root / "train" / "1_GT.json").write_text(json.dumps({"points": pts}))
    s = load_splits(DataConfig(data_path=str(root))).train[0]
    assert s.points.tolist() == [[5.0, 5.0], [pytest.approx(W - 0.01), pytest.approx(H - 0.01)]]
    assert s.dropped == 3
    report = check_dataset(root)
    assert report["splits"]["train"]["points_outside"] == 3
    assert report["splits"]["train"]["points"] == 5 + 3 + 1  # ids 1, 2, 3
    assert report["problems"] == []


def test_thermal_channels_one_gives_grey_thermal(tmp_path):
    root = write_rgbtcc_fixture(tmp_path)
    splits = load_splits(DataConfig(data_path=str(root)), thermal_channels=1)
    assert splits.train[0].thermal.shape == (1, H, W)


def test_dronergbt_reads_xml_and_carves_a_deterministic_val(tmp_path):
    root = write_drone_fixture(tmp_path)
    assert detect_format(root) == "dronergbt"
    cfg = DataConfig(data_path=str(root), val_size=2)
    a, b = load_splits(cfg), load_splits(cfg)
    assert a.format == "dronergbt" and a.stats.rgb_mean == (0.485, 0.456, 0.406)
    assert [s.id for s in a.val] == [s.id for s in b.val] and len(a.val) == 2
    ids = {s.id for s in a.train} | {s.id for s in a.val}
    assert ids == {str(i) for i in range(1, 7)} and not {s.id for s in a.train} & {
        s.id for s in a.val
    }
    assert [s.id for s in a.test] == ["1", "2"]
    s = next(s for s in a.test if s.id == "1")
    assert torch.equal(s.points, torch.tensor([[2.5, 2.25], [30.0, 20.5]]))
    with pytest.raises(DataError, match="val_size=6"):
        load_splits(DataConfig(data_path=str(root), val_size=6))
    report = check_dataset(root)
    assert report["format"] == "dronergbt" and set(report["splits"]) == {"train", "test"}
    assert report["splits"]["train"]["pairs"] == 6


@pytest.mark.parametrize("layout", ["rgbtcc", "dronergbt", "synthetic"])
@pytest.mark.parametrize("split", ["val", "test"])
def test_first_pair_is_the_first_pair_load_splits_gives(tmp_path, layout, split):
    writers = {"rgbtcc": write_rgbtcc_fixture, "dronergbt": write_drone_fixture}
    root = writers[layout](tmp_path) if layout in writers else None
    cfg = DataConfig(data_path=None if root is None else str(root), val_size=3,
                     synth_n_train=2, synth_n_val=2, synth_n_test=2)
    splits = load_splits(cfg)
    sample, stats = load_first_pair(cfg, split)
    first = getattr(splits, split)[0]
    assert sample.id == first.id and torch.equal(sample.rgb, first.rgb)
    assert torch.equal(sample.points, first.points) and stats == splits.stats


def test_first_pair_of_a_missing_split_is_a_data_error(tmp_path):
    root = write_drone_fixture(tmp_path)
    with pytest.raises(DataError, match="has no train2 split"):
        load_first_pair(DataConfig(data_path=str(root)), "train2")
    assert load_first_pair(DataConfig(data_path=str(write_rgbtcc_fixture(tmp_path / "r"))),
                           "train")[1] == RGBTCC_STATS


def test_detect_format_rejects_unknown_layouts_and_missing_paths(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="RGBT-CC.*DroneRGBT") as err:
        detect_format(tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(DataError, match="does not exist") as err:
        detect_format(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        load_splits(DataConfig(data_path=str(tmp_path / "nope")))
    with pytest.raises(DataError, match="does not exist"):
        check_dataset(tmp_path / "nope")


def _break(root: Path, case: str) -> str:
    """Damage a valid RGBT-CC fixture; return the file name the error must mention."""
    train = root / "train"
    if case == "missing thermal":
        (train / "2_T.jpg").unlink()
        return "2_RGB.jpg"
    if case == "missing rgb":
        (train / "2_RGB.jpg").unlink()
        return "2_T.jpg"
    if case == "missing label":
        (train / "2_GT.json").unlink()
        return "2_GT.json"
    if case == "corrupt jpeg":
        (train / "2_RGB.jpg").write_bytes(b"not a jpeg at all" * 10)
        return "2_RGB.jpg"
    if case == "truncated jpeg":
        data = (train / "2_T.jpg").read_bytes()
        (train / "2_T.jpg").write_bytes(data[: len(data) // 2])
        return "2_T.jpg"
    if case == "empty jpeg":
        (train / "2_T.jpg").write_bytes(b"")
        return "2_T.jpg"
    if case == "label not json":
        (train / "2_GT.json").write_text("{points: oops")
        return "2_GT.json"
    if case == "no points key":
        (train / "2_GT.json").write_text(json.dumps({"human_num": 3}))
        return "2_GT.json"
    if case == "points not pairs":
        (train / "2_GT.json").write_text(json.dumps({"points": [[1, 2], [3]]}))
        return "2_GT.json"
    if case == "npy wrong shape":
        (train / "2_GT.json").unlink()
        np.save(train / "2_GT.npy", np.zeros((4, 4), np.float32))
        return "2_GT.npy"
    if case == "npy one-dimensional":
        (train / "2_GT.json").unlink()
        np.save(train / "2_GT.npy", np.zeros(6, np.float32))
        return "2_GT.npy"
    if case == "npy with nan":
        (train / "2_GT.json").unlink()
        np.save(train / "2_GT.npy", np.array([[1.0, 2.0], [np.nan, 3.0]], np.float32))
        return "2_GT.npy"
    if case == "size mismatch":
        _jpeg(train / "2_T.jpg", height=H + 8)
        return "2_T.jpg"
    if case == "empty split":
        for f in (root / "val").iterdir():
            f.unlink()
        return "val"
    if case == "missing split":
        for f in (root / "test").iterdir():
            f.unlink()
        (root / "test").rmdir()
        return "test"
    raise AssertionError(case)


BAD = [
    "missing thermal",
    "missing rgb",
    "missing label",
    "corrupt jpeg",
    "truncated jpeg",
    "empty jpeg",
    "label not json",
    "no points key",
    "points not pairs",
    "npy wrong shape",
    "npy one-dimensional",
    "npy with nan",
    "size mismatch",
    "empty split",
    "missing split",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_data_error_naming_the_file(tmp_path, case):
    root = write_rgbtcc_fixture(tmp_path)
    name = _break(root, case)
    with pytest.raises(DataError) as err:
        load_splits(DataConfig(data_path=str(root)))
    message = str(err.value)
    assert "\n" not in message and name in message and str(root) in message
    # The check lists the same problem instead of raising, and reports the rest.
    report = check_dataset(root)
    assert any(name in p for p in report["problems"]), report["problems"]
    assert report["splits"]["train"]["pairs"] >= (
        3 if case in ("empty split", "missing split") else 2
    )


def test_dronergbt_bad_inputs(tmp_path):
    root = write_drone_fixture(tmp_path)
    (root / "train" / "Infrared" / "3R.jpg").unlink()
    (root / "test" / "GT_" / "1R.xml").write_text("<annotation><object><point><x>1</x>")
    with pytest.raises(DataError, match=r"missing thermal partner for .*3\.jpg .*3R\.jpg"):
        load_splits(DataConfig(data_path=str(root), val_size=1))
    report = check_dataset(root)
    assert len(report["problems"]) == 2
    assert any("1R.xml" in p and "not valid XML" in p for p in report["problems"])
