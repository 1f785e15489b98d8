"""``ablate.diagnose``: known corruptions of ground-truth maps are named and undone.

The dataset is the synthetic one written to disk, with each label file cut to the people seen
well inside both cameras' frames: a corruption that moves content then loses none of it over
the border, so undoing it must give back the uncorrupted maps' GAME3 (within 5%). Twelve
images: a correction is named from 9 on (``evidence.images_needed``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ablate.diagnose import search
from ablate.diagnose.camera import estimate_shift
from ablate.diagnose.inputs import read_map
from ablate.diagnose.run import diagnose, fits
from ablate.diagnose.scoring import image_row, map_cells, truth_cells
from ablate.diagnose.truth import SplitData
from ablate.errors import AblateError, DataError, UsageError
from model.config import DataConfig
from model.data import write_rgbtcc
from model.data.synth import synthetic_pairs
from model.game import game_per_image, point_map
from model.targets import gaussian_density

HEIGHT, WIDTH, STRIDE, MARGIN, N_PAIRS = 64, 88, 8, 16, 12
CFG = DataConfig(synth_height=HEIGHT, synth_width=WIDTH, synth_shift=6, synth_rotation=2,
                 synth_scale=0.02, synth_min_people=30, synth_max_people=45, synth_seed=5)


def _well_inside(points: torch.Tensor) -> torch.Tensor:
    x, y = points[:, 0], points[:, 1]
    return (x >= MARGIN) & (x < WIDTH - MARGIN) & (y >= MARGIN) & (y < HEIGHT - MARGIN)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """(dataset root, [(id, thermal-frame points, RGB-frame points)]) of 12 test pairs."""
    root = tmp_path_factory.mktemp("diagnose") / "data"
    test = synthetic_pairs(CFG, "test", N_PAIRS)
    write_rgbtcc(test, root)
    kept = []
    for s in test:
        keep = _well_inside(s.points) & _well_inside(s.meta["rgb_points"])
        label = root / "test" / f"{s.id}_GT.json"
        record = json.loads(label.read_text())
        record["points"] = s.points[keep].tolist()
        label.write_text(json.dumps(record))
        kept.append((s.id, s.points[keep], s.meta["rgb_points"][keep]))
    return root, kept


def _gaussian(points: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    return gaussian_density([points], (HEIGHT, WIDTH), stride, 2.0)[0, 0].double()


def _padded_start(m: torch.Tensor) -> torch.Tensor:
    # An input padded on the left to a multiple of 64 (88 -> 128 px, 5 samples), never cropped.
    return F.pad(m, (5, 0))


def _finer_buffer(m: torch.Tensor) -> torch.Tensor:
    # A stride-8 map written into the top-left of a buffer sized for stride 4.
    return F.pad(m, (0, m.shape[1], 0, m.shape[0]))


CORRUPTIONS = {
    "hflip": lambda m: m.flip(-1),
    "vflip": lambda m: m.flip(-2),
    "rot180": lambda m: m.flip(-2, -1),
    "transpose": lambda m: m.T,
    "reshape": lambda m: m.T.contiguous().reshape(m.shape),  # view where permute was meant
    "stride": _finer_buffer,
    "padding": _padded_start,
    "shift": lambda m: F.pad(m, (-1, 1, 1, -1)),  # 8 px left and 8 px down
    # Padded on the left to a multiple of 16 (88 -> 96 px), then cropped at the top-left as if
    # the padding were on the right: the content sits one sample to the right.
    "padding-cropped": lambda m: F.pad(m, (1, -1)),
}


def _write(folder, pairs, make) -> None:
    folder.mkdir()
    for sample_id, points, rgb_points in pairs:
        np.save(folder / f"{sample_id}.npy", make(points, rgb_points).numpy())


def _diagnosed(folder, pairs, make):
    root, kept = pairs
    _write(folder, kept, make)
    return diagnose(folder, root, "test")


@pytest.fixture(scope="module")
def clean(pairs, tmp_path_factory):
    return _diagnosed(tmp_path_factory.mktemp("clean") / "pred", pairs, lambda p, _: _gaussian(p))


def _assert_named_and_undone(result, name, clean) -> None:
    assert result.chosen is not None and result.chosen.name == name, result.verdict
    assert result.summary["game3"] > 1.1 * clean.summary["game3"]
    assert result.chosen.summary["game3"] <= 1.05 * clean.summary["game3"]
    assert f"GAME3 from {result.summary['game3']:.2f} to " \
           f"{result.chosen.summary['game3']:.2f} (" in result.verdict
    assert f"on {N_PAIRS} of {N_PAIRS} images, adjusted p " in result.verdict


def test_uncorrupted_maps_get_the_model_verdict(clean):
    assert clean.chosen is None
    assert clean.verdict.startswith("No placement bug is clearly indicated: ")
    assert clean.summary["n_images"] == N_PAIRS and clean.notes == []


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_is_named_first_and_undone(name, pairs, clean, tmp_path):
    result = _diagnosed(tmp_path / "pred", pairs, lambda p, _: CORRUPTIONS[name](_gaussian(p)))
    _assert_named_and_undone(result, name.split("-")[0], clean)


def test_maps_in_the_rgb_frame_are_named_and_undone(pairs, tmp_path):
    """The model predicted where heads appear in the RGB image. At stride 8 the cell
    quantisation of the RGB-frame splat alone costs GAME3 here (the 8 px cells are the GAME3
    cells), so both maps are at stride 2."""
    fine = _diagnosed(tmp_path / "clean", pairs, lambda p, _: _gaussian(p, 2))
    assert fine.chosen is None, fine.verdict
    result = _diagnosed(tmp_path / "pred", pairs, lambda _, q: _gaussian(q, 2))
    _assert_named_and_undone(result, "camera", fine)
    assert result.chosen.params == {"frame": "rgb", "source": "dataset"}


def test_the_shift_found_is_the_one_applied(pairs, tmp_path):
    root, kept = pairs
    _write(tmp_path / "pred", kept, lambda p, _: CORRUPTIONS["shift"](_gaussian(p)))
    result = diagnose(tmp_path / "pred", root, "test")
    assert result.chosen.params == {"dx": 8, "dy": -8}
    assert "shifted by (-8, +8) px" in result.verdict


def test_padding_names_its_multiple_and_side(pairs, tmp_path):
    result = _diagnosed(tmp_path / "pred", pairs,
                        lambda p, _: CORRUPTIONS["padding-cropped"](_gaussian(p)))
    assert result.chosen.params == {"multiple": 16, "side": "start"}
    assert "padded to a multiple of 16 at the top/left" in result.verdict


def test_phase_correlation_finds_a_known_translation():
    generator = torch.Generator().manual_seed(1)
    scene = F.avg_pool2d(torch.rand(3, 96, 128, generator=generator)[None], 5, 1, 2)[0]
    thermal = (scene * 255).to(torch.uint8)
    rgb = torch.roll(thermal, shifts=(-3, 5), dims=(1, 2))  # content 5 px right, 3 px up
    assert estimate_shift(rgb, thermal).tolist() == [5.0, -3.0]


def test_without_a_recorded_displacement_it_is_estimated(pairs, tmp_path):
    root, kept = pairs
    label = root / "test" / f"{kept[0][0]}_GT.json"
    copy = tmp_path / "test"
    copy.mkdir()
    for suffix in ("_RGB.jpg", "_T.jpg"):
        (copy / f"{kept[0][0]}{suffix}").write_bytes((root / "test" / f"{kept[0][0]}{suffix}")
                                                     .read_bytes())
    (copy / label.name).write_text(json.dumps({"points": json.loads(label.read_text())["points"]}))
    (truth,) = SplitData(tmp_path, "test").truths([kept[0][0]])
    assert truth.affine_source == "estimated"
    assert torch.equal(truth.affine[:, :2], torch.eye(2, dtype=torch.float64))
    recorded = next(SplitData(root, "test").truths([kept[0][0]]))
    assert recorded.affine_source == "dataset"


def test_json_has_exactly_the_documented_keys_sorted_by_game3(clean):
    report = clean.as_json()
    assert set(report) == {"game0", "game1", "game2", "game3", "rmse", "n_images",
                           "hypotheses", "named", "images_needed", "verdict"}
    assert report["named"] is None and report["images_needed"] == 9
    games = [h["game3"] for h in report["hypotheses"]]
    assert games == sorted(games)
    assert all(set(h) == {"name", "params", "game0", "game1", "game2", "game3", "p", "helps"}
               for h in report["hypotheses"])
    names = {h["name"] for h in report["hypotheses"]}
    assert names == {"hflip", "vflip", "rot180", "rot90", "rot270", "transpose", "reshape",
                     "stride", "padding", "camera", "shift", "roll", "padded-shift",
                     "count-scale", "true-placement", "true-counts"}
    for h in report["hypotheses"]:
        bound = h["name"].startswith("true-")
        assert (h["p"] is None) == bound and (h["helps"] is None) == bound
        assert bound or (0 <= h["p"] <= 1 and 0 <= h["helps"] <= N_PAIRS)
    json.dumps(report)


@pytest.mark.parametrize(("shape", "ok"), [
    ((60, 80), True),  # stride 8
    ((30, 40), True),  # stride 16
    ((61, 81), True),  # stride 8 with the map rounded up
    ((64, 80), True),  # an input padded to 512 x 640, not cropped back
    ((80, 60), True),  # transposed: scored, and undone by a hypothesis
    ((60, 60), False),
    ((30, 5), False),
])
def test_which_map_shapes_fit_a_480x640_image(shape, ok):
    assert fits(shape, (480, 640)) is ok


def test_fast_scoring_equals_the_official_protocol():
    generator = torch.Generator().manual_seed(0)
    for (h, w), (height, width) in [((60, 80), (480, 640)), ((8, 11), (64, 88)),
                                    ((7, 9), (61, 75)), ((64, 88), (64, 88))]:
        density = torch.rand(h, w, generator=generator, dtype=torch.float64)
        points = torch.rand(50, 2, generator=generator) * torch.tensor([width, height])
        official = game_per_image(density, points, (height, width))
        fast = image_row(map_cells(density, (height, width)),
                         truth_cells(point_map(points, (height, width))))
        for key, value in fast.items():
            assert value == pytest.approx(official[key], abs=1e-9), key


def test_count_placement_split_known_answer(pairs):
    """Twice the true map: all error is count (the true placement at the predicted totals
    keeps every bit of it at every level, GAME-L = |pred - true|); scaling the prediction to
    the true totals leaves exactly the placement error of the Gaussian spread."""
    root, kept = pairs
    truths = list(SplitData(root, "test").truths([k[0] for k in kept]))
    maps = [2 * point_map(t.points, t.size).double() for t in truths]
    true_placement, true_counts = search.count_placement(maps, truths)
    counts = np.array([float(t.cells.sum()) for t in truths])
    for level in range(4):
        assert true_placement.summary[f"game{level}"] == pytest.approx(counts.mean())
        assert true_counts.summary[f"game{level}"] == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize(("content", "message"), [
    (b"not an array", "is not a readable array"),
    (np.full((8, 11), np.nan), "NaN or infinite"),
    (-np.ones((8, 11)), "negative total count"),
    (np.ones((2, 8, 11)), r"has shape \(2, 8, 11\); expected \(h, w\)"),
])
def test_bad_map_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "3.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    with pytest.raises(DataError, match=message) as raised:
        read_map(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_missing_extra_and_misfit_files_are_listed_and_skipped(pairs, tmp_path):
    root, kept = pairs
    folder = tmp_path / "pred"
    _write(folder, kept[:5], lambda p, _: _gaussian(p))
    np.save(folder / f"{kept[5][0]}.npy", np.ones((30, 5)))
    (folder / "notes.md").write_text("hello")
    (folder / f"{kept[0][0]}.json").write_text("[[1, 2]]")  # the .npy of this id wins
    result = diagnose(folder, root, "test")
    assert result.summary["n_images"] == 5
    text = "\n".join(result.notes)
    assert f"missing (no file for a test id): {kept[6][0]}" in text
    assert "extra file (ignored): notes.md" in text
    assert f"extra file (ignored): {kept[0][0]}.json" in text
    assert f"aspect ratio does not match (skipped): {kept[5][0]}.npy is 30x5" in text


def test_many_missing_ids_become_a_count_and_pt_maps_read_like_npy(pairs, clean, tmp_path):
    root, kept = pairs
    folder = tmp_path / "pred"
    folder.mkdir()
    sample_id, points, _ = kept[0]
    torch.save(_gaussian(points)[None, None].float(), folder / f"{sample_id}.pt")
    result = diagnose(folder, root, "test")
    assert result.summary["game3"] == pytest.approx(clean.rows[0]["game3"], rel=1e-5)
    missing = [n for n in result.notes if n.startswith("missing")]
    assert missing == [f"missing (no file for a test id): {k[0]}" for k in kept[1:6]] + \
        [f"missing (no file for a test id): {N_PAIRS - 6} more ({N_PAIRS - 1} in all)"]


def test_points_files_are_scored_like_their_point_map(pairs, tmp_path):
    root, kept = pairs
    folder = tmp_path / "pred"
    folder.mkdir()
    for index, (sample_id, points, _) in enumerate(kept):
        if index % 2:
            (folder / f"{sample_id}.txt").write_text(
                "\n".join(f"{x:.3f},{y:.3f}" for x, y in points.tolist()))
        else:
            (folder / f"{sample_id}.json").write_text(json.dumps({"points": points.tolist()}))
    result = diagnose(folder, root, "test")
    assert result.summary["game3"] == pytest.approx(0, abs=1e-9)


def test_folders_that_cannot_be_diagnosed(pairs, tmp_path):
    root, _ = pairs
    with pytest.raises(UsageError, match="does not exist"):
        diagnose(tmp_path / "nope", root, "test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no prediction for any of the 12 test images"):
        diagnose(tmp_path / "empty", root, "test")
    with pytest.raises(AblateError, match="unrecognised dataset layout at .*empty"):
        diagnose(tmp_path / "empty", tmp_path / "empty", "test")
