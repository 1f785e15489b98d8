"""Throughput of the engine: training pairs/s, evaluation images/s, the loader alone, the demo.

    python benchmarks/bench.py --quick                      # CI smoke run, ~20 s on 2 CPU cores
    python benchmarks/bench.py --device cpu --steps 3 --batch-size 4
    python benchmarks/bench.py --device cuda --compile --json cuda.json

Results and the commands that produced them are kept in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, run as a script

import torch  # noqa: E402
import torchvision  # noqa: E402

from ablate.study.study import load_study  # noqa: E402
from benchmarks import measure  # noqa: E402
from benchmarks.report import print_report, targets  # noqa: E402
from model.config import DataConfig  # noqa: E402
from model.engine.device import resolve_device  # noqa: E402
from model.registry import names as registry_names  # noqa: E402


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures; defaults depend on --quick and on the device."""

    device: torch.device
    backbones: tuple[str, ...]
    variants: tuple[str, ...]
    crop: int
    batch_size: int
    warmup: int
    steps: int
    repeats: int
    image_size: tuple[int, int]
    eval_images: int
    workers: tuple[int, ...]
    compile: bool
    reference: bool
    demo: bool
    quick: bool
    threads: int | None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny backbone, 64 crops, 96x128 images, 3 steps, demo on 8 pairs")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--backbones", help="default tiny,vgg16_bn (+ vgg19 on CUDA, the "
                   "reference's backbone); --quick: tiny")
    p.add_argument("--variants", default="A,B,G", help="variants of studies/demo.toml")
    p.add_argument("--crop", type=int, help="training crop (default 256; --quick 64)")
    p.add_argument("--batch-size", type=int, help="default 32 on CUDA, 4 on the CPU")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 5 CUDA, 1 CPU)")
    p.add_argument("--steps", type=int, help="timed steps (default 20 CUDA, 3 CPU)")
    p.add_argument("--repeats", type=int, default=1, help="timed epochs; the median is kept")
    p.add_argument("--image-size", help="HxW of eval/loader images (default 480x640)")
    p.add_argument("--eval-images", type=int, help="default 32 on CUDA, 4 on the CPU")
    p.add_argument("--workers", default="0", help="loader num_workers to try, e.g. 0,4")
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument("--reference", action=argparse.BooleanOptionalAction,
                   help="time the plain VGG19 reference (default: on CUDA only)")
    p.add_argument("--demo", action=argparse.BooleanOptionalAction, default=True,
                   help="time an epoch of the demo study's variant G on the CPU")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--json", type=Path, help="also write every number here")
    return p.parse_args(argv)


def settings(args: argparse.Namespace) -> Settings:
    device = resolve_device(args.device)
    cuda, quick = device.type == "cuda", args.quick
    default_backbones = "tiny" if quick else "tiny,vgg16_bn,vgg19" if cuda else "tiny,vgg16_bn"
    height, width = _size(args.image_size or ("96x128" if quick else "480x640"))
    s = Settings(
        device=device,
        backbones=_names(args.backbones or default_backbones),
        variants=_names(args.variants),
        crop=_pick(args.crop, 64 if quick else 256),
        batch_size=_pick(args.batch_size, 32 if cuda and not quick else 4),
        warmup=_pick(args.warmup, 5 if cuda and not quick else 1),
        steps=_pick(args.steps, 20 if cuda and not quick else 3),
        repeats=args.repeats,
        image_size=(height, width),
        eval_images=_pick(args.eval_images, 2 if quick else 32 if cuda else 4),
        workers=_workers(args.workers),
        compile=args.compile,
        reference=cuda if args.reference is None else args.reference,
        demo=args.demo,
        quick=quick,
        threads=args.threads,
    )
    for name in ("crop", "batch_size", "warmup", "steps", "repeats", "eval_images"):
        if getattr(s, name) < 1:
            raise ValueError(f"{name}={getattr(s, name)} is not valid; it must be >= 1")
    ratio = measure.study_config("A", {}).model.downsample_ratio
    if s.crop % ratio:
        raise ValueError(f"crop={s.crop} is not valid; it must be a multiple of {ratio}")
    _check_names("backbone", s.backbones, registry_names("backbone"))
    _check_names("variant", s.variants, tuple(load_study(measure.DEMO_STUDY).variants))
    if s.threads is not None and s.threads < 1:
        raise ValueError(f"threads={s.threads} is not valid; it must be >= 1")
    return s


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"image size {text!r} is not valid; write HxW, e.g. 480x640")
    return int(parts[0]), int(parts[1])


def _check_names(kind: str, names: tuple[str, ...], valid: tuple[str, ...]) -> None:
    for name in names:
        if name not in valid:
            raise ValueError(f"{kind} {name!r} is not valid; choose from {', '.join(valid)}")


def _workers(text: str) -> tuple[int, ...]:
    items = _names(text)
    if not items or not all(w.isdigit() for w in items):
        raise ValueError(f"workers={text!r} is not valid; give counts >= 0, e.g. 0,4")
    return tuple(int(w) for w in items)


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def machine(device: torch.device, argv: list[str]) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo()
                if line.startswith("model name")), platform.processor())
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "command": " ".join(["python", "benchmarks/bench.py", *argv]),
    }


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def run_training(s: Settings, pairs, eval_pairs, results: dict) -> None:
    """Training rates for every backbone x variant x mode; evaluation once per eager model."""
    data_cfg = DataConfig(crop_size=s.crop, on_device=s.device.type == "cuda")
    warmup = measure.crop_batches(pairs, data_cfg, s.batch_size, s.warmup, s.device)
    timed_batches = measure.crop_batches(pairs, data_cfg, s.batch_size, s.steps, s.device)
    splits = measure.bench_splits(pairs, eval_pairs)
    for backbone in s.backbones:
        for variant in s.variants:
            for compiled in (False, True) if s.compile else (False,):
                cfg = measure.study_config(variant, {
                    "backbone": backbone, "crop_size": s.crop, "batch_size": s.batch_size,
                    "device": s.device.type, "compile": compiled})
                row, trainer = measure.train_rate(cfg, splits, warmup, timed_batches, s.repeats)
                key = {"backbone": backbone, "variant": variant,
                       "mode": "compile" if compiled else "eager"}
                results["train"].append({**key, "batch_size": s.batch_size, "crop": s.crop,
                                         "warmup_steps": s.warmup, "steps": s.steps, **row})
                _progress(f"train {backbone} {variant} {key['mode']}: "
                          f"{row['pairs_per_s']:.1f} pairs/s")
                if not compiled:  # evaluate() runs the eager net even when training compiles
                    ev = measure.eval_rates(trainer.net, eval_pairs, splits.stats, s.device,
                                            cfg.train)
                    results["eval"].append({**key, "height": s.image_size[0],
                                            "width": s.image_size[1], **ev})
                del trainer
                if s.device.type == "cuda":
                    torch.cuda.empty_cache()


def run_data(s: Settings, pairs, results: dict) -> None:
    # on_device=False: on CUDA these paths would otherwise be the resident one (the default).
    paths = [("in-process" if w == 0 else f"workers={w}", DataConfig(
        crop_size=s.crop, num_workers=w, on_device=False)) for w in s.workers]
    if s.device.type == "cuda":
        paths.append(("on_device", DataConfig(crop_size=s.crop, on_device=True)))
    for name, cfg in paths:
        rate = measure.data_rate(pairs, cfg, s.batch_size, s.device)
        results["data"].append({"path": name, "batch_size": s.batch_size, "crop": s.crop,
                                "height": s.image_size[0], "width": s.image_size[1],
                                "pairs_per_s": rate})
        _progress(f"data {name}: {rate:.1f} pairs/s")


def run_reference(s: Settings, results: dict) -> None:
    for shared in (False, True):
        row = measure.reference_rate(shared, s.batch_size, s.crop, s.warmup, s.steps, s.device)
        name = "vgg19 shared (2B batch)" if shared else "vgg19 two streams"
        results["reference"].append({"name": name, "batch_size": s.batch_size, "crop": s.crop,
                                     **row})
        _progress(f"reference {name}: {row['pairs_per_s']:.1f} pairs/s")


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def run(s: Settings, argv: list[str]) -> dict:
    results: dict = {"meta": machine(s.device, argv), "settings": _settings_dict(s), "train": [],
                     "eval": [], "data": [], "reference": [], "demo": None}
    height, width = s.image_size
    rendered = measure.render_pairs(height, width, 2 if s.quick else 8)
    pairs = measure.repeat_pairs(rendered, max(8 * s.batch_size, 16))
    eval_pairs = measure.repeat_pairs(rendered, s.eval_images)
    run_data(s, pairs, results)
    run_training(s, pairs, eval_pairs, results)
    if s.reference:
        run_reference(s, results)
    if s.demo:
        results["demo"] = measure.demo_epoch(reduced=s.quick)
        _progress(f"demo G epoch 0: {results['demo']['epoch0_train_s']:.2f} s")
    results["meta"]["load_average_end"] = list(os.getloadavg())
    results["targets"] = targets(results)
    return results


def _settings_dict(s: Settings) -> dict:
    out = {k: v for k, v in s.__dict__.items() if k != "device"}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        s = settings(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if s.threads:
        torch.set_num_threads(s.threads)
    results = run(s, argv)
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
