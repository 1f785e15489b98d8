"""The benchmark script runs end to end in --quick mode and reports every number; no timing
is asserted (speeds are recorded in BENCHMARKS.md, never tested)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench.py"


def run_bench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def positive(row: dict, *keys: str) -> None:
    for key in keys:
        assert row[key] > 0, (key, row)


@pytest.mark.slow
def test_quick_run_reports_every_number(tmp_path):
    out = tmp_path / "bench.json"
    done = run_bench("--quick", "--device", "cpu", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "Training" in done.stdout and "Targets" in done.stdout
    results = json.loads(out.read_text())

    assert set(results) == {"meta", "settings", "train", "eval", "data", "reference", "demo",
                            "targets"}
    meta = results["meta"]
    assert meta["device"] == "cpu" and meta["torch"] == torch.__version__
    assert meta["command"].endswith("--json " + str(out))

    assert {(r["backbone"], r["variant"], r["mode"]) for r in results["train"]} == {
        ("tiny", v, "eager") for v in "ABG"}
    for row in results["train"]:
        assert row["crop"] == 64 and row["steps"] == 3
        positive(row, "pairs_per_s", "step_ms", "loss_ms", "warmup_s", "timed_pairs")
    assert len(results["eval"]) == 3
    for row in results["eval"]:
        positive(row, "forward_images_per_s", "metric_images_per_s", "evaluate_images_per_s",
                 "images")
    assert [r["path"] for r in results["data"]] == ["in-process"]
    positive(results["data"][0], "pairs_per_s")
    assert results["reference"] == []  # CUDA only unless --reference

    demo = results["demo"]
    assert demo["reduced"] is True and demo["train_pairs"] == 8
    positive(demo, "data_s", "build_s", "epoch0_train_s", "epoch1_train_s", "val_s")

    names = [t["name"] for t in results["targets"]]
    assert "G / B, tiny eager" in names
    assert any(n.startswith("loader in-process") for n in names)
    for target in results["targets"]:
        assert isinstance(target["met"], bool) and target["value"] > 0


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "steps=0 is not valid"),
    (["--threads", "0"], "threads=0 is not valid"),
])
def test_bad_settings_exit_with_one_line(args, message):
    done = run_bench("--quick", "--device", "cpu", *args, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {message}; it must be >= 1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_requested_but_absent_is_an_error():
    done = run_bench("--quick", "--device", "cuda", timeout=120)
    assert done.returncode == 2
    assert "CUDA is not available" in done.stderr


def test_reference_net_is_stride_16():
    sys.path.insert(0, str(ROOT))  # benchmarks/ is a folder of scripts, not an installed package
    from benchmarks.measure import PlainTwoStream

    for shared in (False, True):
        net = PlainTwoStream(shared)
        density = net(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64))
        assert density.shape == (2, 1, 4, 4)
    assert sum(p.numel() for p in PlainTwoStream(True).parameters()) < sum(
        p.numel() for p in PlainTwoStream(False).parameters())


SCALE = ROOT / "benchmarks" / "bench_scale.py"


@pytest.mark.slow
def test_scale_mode_runs_the_study_path_at_rgbtcc_shape(tmp_path):
    """--quick: 4 + 2 pairs of 640x480 JPEG in RGBT-CC's layout through studies/rgbtcc.toml's
    variants A, B and G (tiny backbone); every number is reported, none is asserted."""
    out = tmp_path / "scale.json"
    done = subprocess.run([sys.executable, str(SCALE), "--quick", "--device", "cpu", "--json",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("RGBT-CC shape: 4 + 2 pairs of 640x480")
    results = json.loads(out.read_text())
    assert results["settings"]["backbone"] == "tiny"
    assert 40 <= results["heads_per_pair"] <= 100  # ~68, as RGBT-CC
    assert [r["variant"] for r in results["variants"]] == ["A", "B", "G"]
    for row in results["variants"]:
        positive(row, "pairs_per_s", "eval_images_per_s", "loader_pairs_per_s", "last_bytes",
                 "best_bytes", "epoch_s", "peak_memory_mib", "eval_every", "save_every")
        shares = row["share_data"] + row["share_val"] + row["share_checkpoint"]
        assert 0 < shares < 1
    assert results["variants"][2]["last_bytes"] > results["variants"][1]["last_bytes"]


def test_scale_mode_refuses_a_bad_count():
    done = subprocess.run([sys.executable, str(SCALE), "--quick", "--train-pairs", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: train_pairs=0 is not valid; it must be >= 1"
