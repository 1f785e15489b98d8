"""The RGBT-CC study at its real shape: where an epoch's time goes, through the study's own path.

A synthetic dataset of RGBT-CC's shape (640x480 JPEG pairs in its layout, ~68 heads a pair) is
written to disk and read back by the study's loader; variants A, B and G of
studies/rgbtcc.toml (pretrained none) train one epoch each. Reported per variant: training
pairs/s, evaluation images/s, the loader alone, the checkpoint writes (bytes and seconds), and
each phase's share of an epoch under the run's own schedule (validation every ``eval_every``
epochs, last.pt on the checkpoint clock), and the peak memory. On the CPU it measures the
pipeline's overhead; on a GPU, the real speed.

    python benchmarks/bench_scale.py --quick                  # CI: tiny backbone, 4 pairs
    OMP_NUM_THREADS=2 python benchmarks/bench_scale.py --train-pairs 16 --val-pairs 8
    python benchmarks/bench_scale.py --device cuda --train-pairs 1030 --val-pairs 200 --compile

Runs with the code of an older checkout too (copy this file into its benchmarks/): what the
older code lacks (the validation interval, the checkpoint clock) counts as "every epoch".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root, run as a script

import torch  # noqa: E402

from ablate.study.study import load_study  # noqa: E402
from model.config import DataConfig  # noqa: E402
from model.data import PairSet, load_splits, synth_sample, train_batches  # noqa: E402
from model.data.write import write_rgbtcc  # noqa: E402
from model.engine import Trainer, checkpoint, evaluate  # noqa: E402
from model.engine.device import resolve_device  # noqa: E402

STUDY = ROOT / "studies" / "rgbtcc.toml"
HEIGHT, WIDTH = 480, 640
SCENES = 4  # distinct rendered scenes, cycled: the cost depends on the shape, not the content


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny backbone, 4 + 2 pairs (CI)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--backbone", help="vgg16_bn (the study's, default) or vgg19; --quick: tiny")
    p.add_argument("--variants", default="A,B,G", help="variants of studies/rgbtcc.toml")
    p.add_argument("--train-pairs", type=int, help="default 1030 (RGBT-CC); --quick 4")
    p.add_argument("--val-pairs", type=int, help="default 200 (RGBT-CC); --quick 2")
    p.add_argument("--heads", type=int, default=68, help="mean heads per pair (RGBT-CC: 68)")
    p.add_argument("--compile", action="store_true", help="train with torch.compile")
    p.add_argument("--json", type=Path, help="also write every number here")
    return p.parse_args(argv)


def write_dataset(root: Path, n_train: int, n_val: int, heads: int) -> float:
    """RGBT-CC's layout at 640x480; returns the seconds spent rendering and encoding."""
    start = time.perf_counter()
    cfg = DataConfig(synth_height=HEIGHT, synth_width=WIDTH, synth_min_people=heads // 2,
                     synth_max_people=heads * 3 // 2)
    scenes = [synth_sample(cfg, "train", i) for i in range(SCENES)]
    for split, n in (("train", n_train), ("val", n_val), ("test", 1)):
        samples = [scenes[i % SCENES] for i in range(n)]
        write_rgbtcc(PairSet(split, [_renamed(s, f"{split}{i}") for i, s in
                                     enumerate(samples)]), root)
    return time.perf_counter() - start


def _renamed(sample, new_id: str):
    # No synthetic meta: RGBT-CC's labels say nothing of the true misalignment.
    return dataclasses.replace(sample, id=new_id, meta={})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def loader_seconds(trainer: Trainer) -> float:
    """One epoch of the loader alone, batches on the device (the in-training share of data)."""
    cfg, device = trainer.cfg, trainer.device
    generator = torch.Generator().manual_seed(1)
    return timed(lambda: sum(len(b.ids) for b in train_batches(
        trainer.splits.train, cfg.data, cfg.train.batch_size, generator, device=device)),
        device)[0]


def checkpoint_costs(trainer: Trainer, out: Path, device: torch.device) -> dict:
    """Seconds and bytes of one last.pt (the full training state) and one best.pt (weights)."""
    last_s, _ = timed(lambda: checkpoint.save_keeping_previous(trainer._state(0), out), device)
    best = {"config": trainer.cfg.to_dict(), "epoch": 0, "model": trainer.net.state_dict()}
    best_s, _ = timed(lambda: checkpoint.save_atomic(best, out / checkpoint.BEST), device)
    return {"last_s": last_s, "last_bytes": (out / checkpoint.LAST).stat().st_size,
            "best_s": best_s, "best_bytes": (out / checkpoint.BEST).stat().st_size}


def schedule(trainer: Trainer, train_s: float, val_s: float, last_s: float) -> dict:
    """Epochs between validations and between last.pt saves, as this code schedules them."""
    try:
        from model.engine import schedule as rules
    except ImportError:  # an older checkout: both every epoch
        return {"eval_every": 1, "save_every": 1.0}
    every = rules.eval_interval(trainer.cfg, trainer.splits)
    if last_s < rules.CHEAP_SAVE_S:
        return {"eval_every": every, "save_every": 1.0}
    epoch_s = train_s + val_s / every
    return {"eval_every": every, "save_every": max(1.0, last_s / rules.SAVE_SHARE / epoch_s)}


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB


def measure_variant(variant: str, extra: dict, splits, device: torch.device) -> dict:
    cfg = load_study(STUDY).config(variant, 0, extra)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(cfg, folder, splits)
        data_s = loader_seconds(trainer)
        train_s, _ = timed(lambda: trainer._train_epoch(0), device)
        val_s, _ = timed(lambda: evaluate(trainer.net, splits.val, splits.stats, device,
                                          cfg.train), device)
        saves = checkpoint_costs(trainer, Path(folder), device)
    plan = schedule(trainer, train_s, val_s, saves["last_s"])
    # One epoch as the run spends it: training every epoch, validation (and at most one
    # best.pt) every eval_every epochs, last.pt every save_every epochs.
    val_part = (val_s + saves["best_s"]) / plan["eval_every"]
    save_part = saves["last_s"] / plan["save_every"]
    epoch_s = train_s + val_part + save_part
    n_train, n_val = len(splits.train), len(splits.val)
    return {"variant": variant, "pairs_per_s": n_train / train_s,
            "eval_images_per_s": n_val / val_s, "loader_pairs_per_s": n_train / data_s,
            "train_s": train_s, "val_s": val_s, "data_s": data_s, **saves, **plan,
            "epoch_s": epoch_s, "share_data": data_s / epoch_s, "share_val": val_part / epoch_s,
            "share_checkpoint": save_part / epoch_s,
            "peak_memory_mib": peak_memory_mib(device)}


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    device = resolve_device(args.device)
    backbone = args.backbone or ("tiny" if args.quick else "vgg16_bn")
    n_train = args.train_pairs or (4 if args.quick else 1030)
    n_val = args.val_pairs or (2 if args.quick else 200)
    results: dict = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "device": str(device),
                              "torch": torch.__version__, "threads": torch.get_num_threads(),
                              "command": " ".join(["python", "benchmarks/bench_scale.py",
                                                   *argv])},
                     "settings": {"backbone": backbone, "train_pairs": n_train,
                                  "val_pairs": n_val, "size": [HEIGHT, WIDTH],
                                  "heads": args.heads, "compile": args.compile}}
    if device.type == "cuda":
        results["meta"]["device_name"] = torch.cuda.get_device_name(device)
    with tempfile.TemporaryDirectory() as root:
        results["write_s"] = write_dataset(Path(root), n_train, n_val, args.heads)
        # The recipe's epochs after the warm-up and the freeze: the ones the 200 are made of.
        extra = {"data_path": root, "backbone": backbone, "pretrained": None,
                 "device": device.type, "align_warmup_epochs": 0, "freeze_epochs": 0,
                 **({"compile": True} if args.compile else {})}
        cfg = load_study(STUDY).config("A", 0, extra)
        results["read_s"], splits = timed(lambda: load_splits(cfg.data,
                                                              cfg.model.thermal_channels),
                                          torch.device("cpu"))
        results["heads_per_pair"] = splits.train.num_points / len(splits.train)
        results["variants"] = []
        for variant in args.variants.split(","):
            row = measure_variant(variant.strip(), extra, splits, device)
            results["variants"].append(row)
            print(f"  {variant}: {row['pairs_per_s']:.2f} pairs/s", file=sys.stderr, flush=True)
    return results


def print_report(results: dict) -> None:
    s = results["settings"]
    print(f"RGBT-CC shape: {s['train_pairs']} + {s['val_pairs']} pairs of {s['size'][1]}x"
          f"{s['size'][0]}, {results['heads_per_pair']:.0f} heads/pair, {s['backbone']}; "
          f"{results['meta']['device']}, {results['meta']['threads']} threads")
    print(f"dataset written in {results['write_s']:.1f} s, read (decoded) in "
          f"{results['read_s']:.1f} s")
    head = ("variant", "pairs/s", "eval img/s", "loader pairs/s", "last.pt MB", "last.pt s",
            "val every", "save every", "data %", "val %", "ckpt %", "peak MiB")
    print(" | ".join(head))
    for r in results["variants"]:
        cells = (r["variant"], f"{r['pairs_per_s']:.2f}", f"{r['eval_images_per_s']:.2f}",
                 f"{r['loader_pairs_per_s']:.1f}", f"{r['last_bytes'] / 1e6:.0f}",
                 f"{r['last_s']:.2f}", str(r["eval_every"]), f"{r['save_every']:.1f}",
                 f"{100 * r['share_data']:.1f}", f"{100 * r['share_val']:.1f}",
                 f"{100 * r['share_checkpoint']:.1f}", f"{r['peak_memory_mib']:.0f}")
        print(" | ".join(cells))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    for name in ("train_pairs", "val_pairs", "heads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"error: {name}={value} is not valid; it must be >= 1", file=sys.stderr)
            return 2
    results = run(args, argv)
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
