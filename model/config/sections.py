"""The four sections of a run's config: the network, its losses, the data, the recipe.

Each is a frozen dataclass that declares the range (``BOUNDS``) and the valid values
(``CHOICES``) of its fields; building one runs ``check_section`` over every field. The choices
of a switchable part are read from its registry when a config is built, so a part registered
later (a plugin, a test) is a valid name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from model.config.validation import (
    AT_LEAST_1,
    FRACTION,
    FRACTION_BELOW_1,
    NON_NEGATIVE,
    POSITIVE,
    Bound,
    check_section,
    invalid,
)
from model.registry import names

REFERENCES = ("thermal", "rgb")
SCHEDULES = ("cosine", "step", "none")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
LOCAL_COUNT_LEVELS = (0, 1, 2, 3, 4)
SYNTH_SIDE = Bound("in [16, 4096]", lambda v: 16 <= v <= 4096)
CROP = Bound("in [1, 4096]", lambda v: 1 <= v <= 4096)  # a padded crop must fit in memory
SEED = Bound("in [0, 4294967295]", lambda v: 0 <= v < 2**32)  # numpy's seed range


def select_metrics() -> tuple[str, ...]:
    """Valid ``select_metric`` values: every registered metric and the sum of GAME0-3."""
    from model.metrics import metric_names  # metric plugins register after this module loads

    return (*metric_names(), "game_sum")


def _fixed(*valid: Any) -> Callable[[], Sequence[Any]]:
    return lambda: valid


def _registry(kind: str) -> Callable[[], Sequence[Any]]:
    return lambda: names(kind)


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "tiny"  # "tiny" keeps CPU tests and the demo study fast
    # None, a state-dict path, or "torchvision" (the torch cache; downloaded once when missing)
    pretrained: str | None = None
    shared_backbone: bool = False  # plan Option C: per-modality first conv, shared rest
    modality_norm: str = "shared"  # "separate": a shared backbone's batch norms per modality
    thermal_channels: int = 3  # RGBT-CC's thermal JPEG is 3-channel pseudo-colour
    reference: str = "thermal"  # RGBT-CC points live on the thermal image
    # Each switchable part is a registry name; "none" is off. An entry's own settings
    # (model.registry.params) count in the config hash only while it is chosen.
    stn: str = "none"  # "bounded" (pixels, bounded), "affine" (free, the first STN)
    stn_max_shift: float = 16.0  # px: the bounded STN's largest translation
    stn_max_rotation: float = 5.0  # degrees
    stn_max_scale: float = 0.05  # relative: scale within 1 +- this
    aligner: str = "none"  # feature-level alignment: "flow" (warp by offsets), "deform"
    offset_stage: int = 1  # the encoder stage whose features the aligner warps
    fusion: str = "concat"
    domain_head: str = "none"  # "grl": a domain classifier behind gradient reversal
    grl_lambda: float = 1.0
    downsample_ratio: int = 8  # the published protocol's output stride
    multiscale_head: str = "none"  # "stride4": an extra stride-4 density head

    BOUNDS: ClassVar[dict[str, Bound]] = {
        **dict.fromkeys(("grl_lambda", "stn_max_shift"), NON_NEGATIVE),
        "stn_max_rotation": Bound("in [0, 90]", lambda v: 0 <= v <= 90),
        "stn_max_scale": FRACTION_BELOW_1,
    }
    CHOICES: ClassVar[dict[str, Callable[[], Sequence[Any]]]] = {
        "backbone": _registry("backbone"),
        "modality_norm": _fixed("shared", "separate"),
        "stn": _registry("stn"),
        "reference": _fixed(*REFERENCES),
        "aligner": _registry("aligner"),
        "fusion": _registry("fusion"),
        "domain_head": _registry("domain_head"),
        "multiscale_head": _registry("multiscale_head"),
        "thermal_channels": _fixed(1, 3),
        "offset_stage": _fixed(1, 2),
        "downsample_ratio": _fixed(8, 16, 32),
    }

    def __post_init__(self) -> None:
        check_section(self)

    @property
    def moving(self) -> str:
        """The modality warped onto the reference frame."""
        return "rgb" if self.reference == "thermal" else "thermal"

    def stn_limits(self) -> dict[str, float]:
        """The bounds a bounded STN is built with (other entries ignore them)."""
        return {"max_shift": self.stn_max_shift, "max_rotation": self.stn_max_rotation,
                "max_scale": self.stn_max_scale}


@dataclass(frozen=True)
class LossConfig:
    density: str = "mse"  # "mse" on Gaussian maps or "bayesian" (Ma et al., ICCV 2019)
    density_sigma: float = 4.0  # Gaussian sigma in input pixels for the "mse" targets
    bayes_sigma: float = 8.0  # IADM/BM setting
    bayes_background_ratio: float = 0.15  # IADM/BM setting
    local_count: float = 0.0  # weight of the GAME-style per-cell count L1 (plan: 0.2)
    local_count_levels: tuple[int, ...] = (1, 2)
    local_count_level_weights: tuple[float, ...] = (1.0, 0.5)  # x local_count: plan's 0.2 / 0.1
    feat_l1: float = 0.0  # plan: 0.1
    tv: float = 0.0  # plan: 0.05
    domain: float = 0.0  # plan: 0.01 to 0.1
    multiscale_weight: float = 0.0  # density loss on the stride-4 head
    # Supervised alignment: the predicted sampling map against the known one (synthetic data's
    # true transform, or a displacement the warm-up injected), mean px at the grid points.
    align_loss: float = 0.0
    # Unsupervised registration: 1 - NCC of the gradient magnitudes of the STN-warped moving
    # image and the reference, for data whose displacement is unknown.
    align_ncc: float = 0.0

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "density_sigma": POSITIVE,
        "bayes_sigma": POSITIVE,
        "bayes_background_ratio": FRACTION_BELOW_1,
        **dict.fromkeys(("local_count", "local_count_level_weights", "feat_l1", "tv", "domain",
                         "multiscale_weight", "align_loss", "align_ncc"), NON_NEGATIVE),
    }
    CHOICES: ClassVar[dict[str, Callable[[], Sequence[Any]]]] = {
        "density": _registry("density_loss"),
    }

    def __post_init__(self) -> None:
        check_section(self)
        levels, weights = self.local_count_levels, self.local_count_level_weights
        for level in levels:
            if level not in LOCAL_COUNT_LEVELS:
                raise invalid("local_count_levels", levels, "every item must be one of "
                              f"{', '.join(map(str, LOCAL_COUNT_LEVELS))}")
        if len(levels) != len(weights):
            raise invalid("local_count_level_weights", weights, "give one weight per item of "
                          f"local_count_levels={levels!r}")
        if self.local_count > 0 and not levels:
            raise invalid("local_count_levels", levels,
                          f"local_count={self.local_count} needs at least one level, e.g. [1, 2]")


@dataclass(frozen=True)
class DataConfig:
    data_path: str | None = None  # None: the built-in synthetic dataset
    crop_size: int = 256
    hflip: bool = True
    val_size: int = 100  # DroneRGBT has no val split: this many train pairs are held out
    # On CUDA: keep the decoded uint8 splits on the GPU when they fit and crop there; where
    # they do not (or with false), DataLoader workers (persistent, pinned) cut the crops.
    on_device: bool = True
    num_workers: int = 0  # 0: in the main process (CUDA and not resident: chosen by the trainer)
    # Built-in synthetic data (ignored for data on disk, and left out of the hash then).
    synth_n_train: int = 48
    synth_n_val: int = 12
    synth_n_test: int = 64  # enough images for paired tests to have power
    synth_height: int = 128
    synth_width: int = 160
    synth_min_people: int = 5
    synth_max_people: int = 40
    synth_shift: float = 16.0  # max RGB translation in px: a GAME3 cell is 16 x 20 px
    synth_rotation: float = 3.0  # max degrees
    synth_scale: float = 0.03  # max relative scale change
    synth_local_warp: float = 0.0  # amplitude in px of a smooth local displacement
    synth_night_fraction: float = 0.25
    synth_night_brightness: float = 0.5  # mean RGB gain at night (drawn in [4/7, 10/7] x this)
    synth_night_noise: float = 0.03  # RGB sensor noise (std) at night; 0.015 by day
    # Warm person-shaped decoys (heaters, animals), seen only in thermal: only the RGB image
    # can reject them, so a model must use the misaligned RGB. synth_decoys per labelled
    # person (thermal alone then still gives the count, by discounting a fixed share), plus
    # a number drawn uniformly in [0, synth_max_decoys] that does not depend on the crowd.
    synth_decoys: float = 0.0
    synth_max_decoys: int = 40
    synth_thermal_blur: float = 0.0  # px (Gaussian sigma): a softer thermal image
    synth_shared_scene: float = 0.0  # weight in thermal of the texture the RGB ground shows
    synth_seed: int = 0

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "crop_size": CROP,
        **dict.fromkeys(("synth_n_train", "synth_n_val", "synth_n_test"), AT_LEAST_1),
        # At least the deepest encoder stride (evaluation runs on the whole image), and small
        # enough that the rendering canvas fits in memory.
        **dict.fromkeys(("synth_height", "synth_width"), SYNTH_SIDE),
        **dict.fromkeys(("val_size", "num_workers",
                         "synth_shift", "synth_rotation", "synth_scale", "synth_local_warp",
                         "synth_decoys", "synth_seed",
                         "synth_night_brightness", "synth_night_noise", "synth_thermal_blur",
                         "synth_shared_scene"),
                        NON_NEGATIVE),
        "synth_night_fraction": FRACTION,
        # One Gaussian each, rendered as (N, H) and (N, W) at once: more is a typo that
        # runs out of memory (and max + 1 must fit torch.randint's int64).
        **dict.fromkeys(("synth_min_people", "synth_max_people", "synth_max_decoys"),
                        Bound("in [0, 10000]", lambda v: 0 <= v <= 10_000)),
    }

    def __post_init__(self) -> None:
        check_section(self)
        if self.synth_min_people > self.synth_max_people:
            raise invalid("synth_min_people", self.synth_min_people,
                          f"it must be <= synth_max_people={self.synth_max_people}")
        if self.synth_scale >= 1:
            raise invalid("synth_scale", self.synth_scale, "it must be in [0, 1)")
        side = max(self.synth_height, self.synth_width)
        for name in ("synth_shift", "synth_local_warp"):  # the canvas grows with both
            if getattr(self, name) > side:
                raise invalid(name, getattr(self, name), f"it must be <= {side}, the larger "
                              "side of a synthetic image")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    batch_size: int = 8
    lr: float = 1e-4  # heads and alignment modules (plan section 5)
    backbone_lr: float = 1e-5  # shared backbone (plan section 5)
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    step_size: int = 50  # epochs between decays for schedule="step"
    freeze_epochs: int = 0  # freeze the lower backbone stages for this many epochs
    freeze_stages: int = 2
    align_warmup_epochs: int = 0  # plan priority 6: alignment on synthetic shifts first
    warmup_shift: float = 16.0  # px, the plan's warm-up translation
    warmup_rotation: float = 5.0  # degrees, the plan's warm-up rotation
    warmup_align_loss: float = 0.0  # weight of the supervised alignment term in the warm-up
    warmup_count_weight: float = 1.0  # x the counting terms in the warm-up (0: alignment only)
    local_count_ramp_epochs: int = 0  # raise local_count linearly from 25% over these epochs
    grad_clip: float = 10.0  # max grad norm, counting net and each aligner apart; 0: off
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool = True  # only applied on CUDA
    compile: bool = False
    device: str = "auto"
    select_metric: str = "game0"  # the public code's choice
    # Epochs between validations (selection sees only these and the last epoch); 0: as often
    # as keeps validation's compute at ~15% of training's, from the split sizes (1 on the
    # built-in synthetic set, 3 on RGBT-CC at crop 256).
    eval_every: int = 0
    eval_batch_size: int = 8  # same-size full images per evaluation batch
    # last.pt every this many epochs; 0: every epoch while a save takes under 0.25 s, else as
    # often as keeps saving under 5% of the training time. best.pt is written when val improves.
    checkpoint_every: int = 0
    # Also save last.pt once this many minutes have passed since the last save (0: off); with
    # checkpoint_every 0 it replaces the automatic rule.
    checkpoint_minutes: float = 0.0
    deterministic: bool = False  # deterministic kernels; else cudnn.benchmark picks the fastest
    seed: int = 0

    BOUNDS: ClassVar[dict[str, Bound]] = {
        **dict.fromkeys(("epochs", "batch_size", "step_size", "eval_batch_size"), AT_LEAST_1),
        **dict.fromkeys(("lr", "backbone_lr"), POSITIVE),
        **dict.fromkeys(("weight_decay", "freeze_epochs", "freeze_stages",
                         "align_warmup_epochs", "local_count_ramp_epochs", "grad_clip",
                         "warmup_shift", "warmup_rotation", "warmup_align_loss",
                         "warmup_count_weight", "eval_every", "checkpoint_every",
                         "checkpoint_minutes"), NON_NEGATIVE),
        "seed": SEED,
    }
    CHOICES: ClassVar[dict[str, Callable[[], Sequence[Any]]]] = {
        "schedule": _fixed(*SCHEDULES),
        "precision": _fixed(*PRECISIONS),
        "device": _fixed(*DEVICES),
        "select_metric": select_metrics,
    }

    def __post_init__(self) -> None:
        check_section(self)


