"""Known-answer tests for the official GAME protocol and a literal re-implementation of it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.data.batch import Batch
from model.game import MetricAccumulator, cell_sums, game_per_image, point_map, upsample_density
from model.metrics import aggregate, metric, metric_names
from model.registry import unregister


def _cubic(t: float, a: float = -0.75) -> list[float]:
    """OpenCV's four cubic weights for taps at offsets -1, 0, 1, 2."""
    def near(x: float) -> float:
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: float) -> float:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def reference_resize(src: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv2.resize(src, (W, H), INTER_CUBIC) for float maps, written out tap by tap."""
    h, w = src.shape
    out = np.zeros((height, width))
    for r in range(height):
        fy = (r + 0.5) * h / height - 0.5
        y0 = math.floor(fy)
        wy = _cubic(fy - y0)
        for c in range(width):
            fx = (c + 0.5) * w / width - 0.5
            x0 = math.floor(fx)
            wx = _cubic(fx - x0)
            for i in range(4):
                for j in range(4):
                    yy = min(max(y0 - 1 + i, 0), h - 1)
                    xx = min(max(x0 - 1 + j, 0), w - 1)
                    out[r, c] += wy[i] * wx[j] * src[yy, xx]
    return out


def reference_game(density: np.ndarray, points: np.ndarray, height: int, width: int) -> dict:
    """The official eval_game and RGBT-CC ground-truth rasterisation, line by line."""
    target = np.zeros((height, width))
    for x, y in points:
        if int(y) < height and int(x) < width:
            target[int(y), int(x)] = 1
    ratio = height / density.shape[0]
    output = reference_resize(density, height, width) / (ratio * ratio)
    result = {"cells": {}}
    for level in range(4):
        p = 2**level
        abs_error, signed = 0.0, []
        for i in range(p):
            for j in range(p):
                rows = slice(i * height // p, (i + 1) * height // p)
                cols = slice(j * width // p, (j + 1) * width // p)
                signed.append(output[rows, cols].sum() - target[rows, cols].sum())
                abs_error += abs(signed[-1])
        result[f"game{level}"] = abs_error
        result["cells"][level] = signed
    result["error"] = output.sum() - target.sum()
    return result


def test_upsample_matches_opencv_cubic_written_out():
    torch.manual_seed(0)
    density = torch.rand(5, 7, dtype=torch.float64)
    ours = upsample_density(density, (37, 53))
    expected = reference_resize(density.numpy(), 37, 53) / (37 / 5) ** 2
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10)


def test_upsample_matches_cv2_when_installed():
    cv2 = pytest.importorskip("cv2")
    density = np.random.default_rng(5).random((6, 8)).astype(np.float32)
    expected = cv2.resize(density, (53, 37), interpolation=cv2.INTER_CUBIC) / (37 / 6) ** 2
    ours = upsample_density(torch.from_numpy(density), (37, 53))
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_game_matches_literal_protocol_on_odd_sizes(seed):
    generator = torch.Generator().manual_seed(seed)
    height, width = 37, 53
    density = torch.rand(1, 1, 5, 7, generator=generator, dtype=torch.float64)
    # Points spread slightly beyond the right and bottom border, as RGBT-CC labels are.
    points = torch.rand(30, 2, generator=generator, dtype=torch.float64) * torch.tensor(
        [width + 2.0, height + 2.0]
    )
    ours = game_per_image(density, points, (height, width))
    expected = reference_game(density[0, 0].numpy(), points.numpy(), height, width)
    cells = expected.pop("cells")
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-4), key
    for level in (1, 2, 3):
        np.testing.assert_allclose(ours["cells"][level], cells[level], atol=1e-4)


def test_oracle_prediction_scores_zero_everywhere():
    points = torch.tensor([[3.2, 4.7], [20.9, 30.1], [47.5, 2.0], [12.0, 12.0]])
    truth = point_map(points, (40, 48))
    row = game_per_image(truth, points, (40, 48))
    assert [row[f"game{level}"] for level in range(4)] == [0.0, 0.0, 0.0, 0.0]
    assert row["error"] == 0.0 and row["true_count"] == 4.0
    assert all(e == 0.0 for level in (1, 2, 3) for e in row["cells"][level])


def test_oracle_pooled_to_stride_8_is_close_on_total_count():
    # Bicubic upsampling of a coarse map does not keep cell sums, so only the total is near 0.
    generator = torch.Generator().manual_seed(3)
    points = torch.rand(50, 2, generator=generator) * torch.tensor([63.0, 47.0]) + 0.5
    pooled = F.avg_pool2d(point_map(points, (48, 64))[None, None], 8) * 64
    row = game_per_image(pooled, points, (48, 64))
    assert row["pred_count"] == pytest.approx(50.0, abs=1.5)
    assert row["game0"] < 1.5


def test_blob_moved_across_a_cell_border_changes_game1_not_game0():
    points = torch.tensor([[7.2, 4.2]])  # pixel (row 4, col 7): left half of a 16x16 image
    inside = torch.zeros(16, 16)
    inside[4, 7] = 1.0
    moved = torch.zeros(16, 16)
    moved[4, 8] = 1.0  # one column right: the right GAME1 cell
    assert game_per_image(inside, points, (16, 16))["game1"] == 0.0
    row = game_per_image(moved, points, (16, 16))
    assert row["game0"] == 0.0
    assert (row["game1"], row["game2"], row["game3"]) == (2.0, 2.0, 2.0)
    assert row["cells"][1] == [-1.0, 1.0, 0.0, 0.0]


def test_shift_within_a_cell_leaves_game3_unchanged():
    points = torch.tensor([[0.5, 0.5]])
    density = torch.zeros(16, 16)
    density[1, 1] = 1.0  # same 2x2 GAME3 cell as pixel (0, 0)
    row = game_per_image(density, points, (16, 16))
    assert [row[f"game{level}"] for level in range(4)] == [0.0, 0.0, 0.0, 0.0]


def test_empty_image_with_zero_density_is_all_zero():
    row = game_per_image(torch.zeros(6, 8), torch.zeros(0, 2), (48, 64))
    assert [row[f"game{level}"] for level in range(4)] == [0.0, 0.0, 0.0, 0.0]
    assert row["error"] == 0.0 and row["true_count"] == 0.0


def test_empty_image_with_predicted_mass_scores_that_mass():
    density = torch.zeros(12, 12)
    density[2, 3], density[9, 9] = 1.0, 2.0
    row = game_per_image(density, torch.zeros(0, 2), (12, 12))
    assert row["game0"] == pytest.approx(3.0)
    assert row["game1"] == pytest.approx(3.0) and row["game3"] == pytest.approx(3.0)
    assert row["error"] == pytest.approx(3.0)


def test_point_map_border_rules_follow_python_int():
    points = torch.tensor([
        [9.0, 0.0],    # x = W - 1: kept
        [10.0, 1.0],   # x = W: dropped
        [9.5, 2.0],    # int(9.5) = 9 = W - 1: kept
        [-0.5, 3.0],   # int(-0.5) = 0: kept in column 0
        [-1.5, 4.0],   # int(-1.5) = -1: dropped, not wrapped to the last column
        [2.0, 7.9],    # int(7.9) = 7 = H - 1: kept
        [2.0, 8.0],    # y = H: dropped
    ])
    truth = point_map(points, (8, 10))
    assert truth.sum() == 4
    assert truth[0, 9] == 1 and truth[2, 9] == 1 and truth[3, 0] == 1 and truth[7, 2] == 1
    assert truth[4, 9] == 0


def test_duplicate_points_count_once_unless_count_all():
    points = torch.tensor([[3.2, 4.1], [3.7, 4.9], [5.0, 5.0]])
    assert point_map(points, (8, 8)).sum() == 2
    assert point_map(points, (8, 8))[4, 3] == 1
    assert point_map(points, (8, 8), count_all=True)[4, 3] == 2
    assert game_per_image(torch.zeros(8, 8), points, (8, 8), count_all=True)["true_count"] == 3


def test_cell_sums_match_slices_for_sizes_p_does_not_divide():
    generator = torch.Generator().manual_seed(4)
    grid = torch.rand(2, 3, 13, 6, generator=generator, dtype=torch.float64)
    for p in (1, 2, 4, 8):
        sums = cell_sums(grid, p)
        assert sums.shape == (2, 3, p, p)
        for i in range(p):
            for j in range(p):
                block = grid[..., i * 13 // p:(i + 1) * 13 // p, j * 6 // p:(j + 1) * 6 // p]
                torch.testing.assert_close(sums[..., i, j], block.sum(dim=(-2, -1)))


AGGREGATE_ROWS = [
    {"game0": 1.0, "game1": 2.0, "game2": 3.0, "game3": 4.0, "error": 1.0,
     "pred_count": 11.0, "true_count": 10.0},
    {"game0": 3.0, "game1": 4.0, "game2": 5.0, "game3": 8.0, "error": -3.0,
     "pred_count": 7.0, "true_count": 10.0},
]


def test_aggregate_known_answer():
    summary = aggregate(AGGREGATE_ROWS)
    assert set(summary) == {*metric_names(), "n_images"}
    assert summary["game0"] == summary["mae"] == 2.0
    assert (summary["game1"], summary["game2"], summary["game3"]) == (3.0, 4.0, 6.0)
    assert summary["rmse"] == pytest.approx(math.sqrt(5.0))
    assert summary["n_images"] == 2


def test_a_metric_registered_in_one_place_is_aggregated():
    @metric("test_relative_error", "REL")
    def relative(columns):
        return float(np.mean(np.abs(columns["error"]) / columns["true_count"]))

    try:
        assert metric_names()[:6] == ("game0", "game1", "game2", "game3", "rmse", "mae")
        assert metric_names()[-1] == "test_relative_error"
        assert aggregate(AGGREGATE_ROWS)["test_relative_error"] == pytest.approx(0.2)
        assert relative is not None  # the decorator hands the function back
    finally:
        unregister("metric", "test_relative_error")
    assert "test_relative_error" not in aggregate(AGGREGATE_ROWS)


def test_aggregate_rejects_empty_and_incomplete_rows():
    with pytest.raises(ValueError, match="per_image"):
        aggregate([])
    with pytest.raises(ValueError, match="error"):
        aggregate([{"game0": 1.0, "game1": 1.0, "game2": 1.0, "game3": 1.0}])


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="points"):
        point_map(torch.zeros(3, 3), (4, 4))
    with pytest.raises(ValueError, match="NaN"):
        point_map(torch.tensor([[float("nan"), 1.0]]), (4, 4))
    with pytest.raises(ValueError, match="image_size"):
        point_map(torch.zeros(0, 2), (0, 4))
    with pytest.raises(ValueError, match="density"):
        upsample_density(torch.zeros(2, 1, 4, 4), (8, 8))
    with pytest.raises(ValueError, match="p=0"):
        cell_sums(torch.zeros(4, 4), 0)


def test_accumulator_rows_and_summary():
    points = [torch.tensor([[1.0, 1.0], [6.0, 6.0]]), torch.zeros(0, 2)]
    batch = Batch(
        rgb=torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
        thermal=torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
        points=points,
        ids=["a", "b"],
    )
    density = torch.stack([point_map(points[0], (8, 8)), torch.full((8, 8), 1 / 64)])[:, None]
    accumulator = MetricAccumulator()
    accumulator.add_batch(density, batch)
    rows = accumulator.results()
    assert [r["image_id"] for r in rows] == ["a", "b"]
    assert rows[0]["game3"] == 0.0 and rows[1]["error"] == pytest.approx(1.0)
    summary = accumulator.summary()
    assert summary["game0"] == pytest.approx(0.5)
    assert summary["rmse"] == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError, match="image_id='a'"):
        accumulator.add(density[0], points[0], (8, 8), "a")


def test_selection_score_is_the_metric_or_the_sum_of_the_game_levels():
    from model.metrics import selection_score

    values = {"game0": 1.0, "game1": 2.0, "game2": 3.0, "game3": 4.5, "rmse": 7.0}
    assert selection_score(values, "game3") == 4.5
    assert selection_score(values, "game_sum") == 10.5
    assert selection_score({**values, "game2": None}, "game_sum") == float("inf")
    assert selection_score({}, "rmse") == float("inf")
