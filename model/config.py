"""Typed, frozen configuration for the network, its losses, the data and the training recipe.

Every field name is global: study files, ``--set key=value``, the runs database and Optuna
search spaces all use the same flat names, so no two sections share a field name.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

BACKBONES = ("tiny", "vgg16_bn", "vgg19")
REFERENCES = ("thermal", "rgb")
OFFSET_MODES = ("flow", "deform")
FUSIONS = ("concat", "sum")
DENSITY_LOSSES = ("mse", "bayesian")
SCHEDULES = ("cosine", "step", "none")
SELECT_METRICS = ("game0", "game1", "game2", "game3", "game_sum", "rmse")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        valid = ", ".join(map(str, choices))
        raise ValueError(f"{name}={value!r} is not valid; choose one of {valid}")


def _positive(name: str, value: float, strict: bool = True) -> None:
    if value is None or (value <= 0 if strict else value < 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{name}={value!r} is not valid; it must be {bound}")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "tiny"  # "tiny" keeps CPU tests and the demo study fast
    pretrained: str | None = None  # None, a state-dict path, or "torchvision" (local cache only)
    shared_backbone: bool = False  # plan Option C: per-modality first conv, shared rest
    thermal_channels: int = 3  # RGBT-CC's thermal JPEG is 3-channel pseudo-colour
    reference: str = "thermal"  # RGBT-CC points live on the thermal image
    stn: bool = False
    offset_align: bool = False
    offset_stage: int = 1
    offset_mode: str = "flow"
    fusion: str = "concat"
    grl: bool = False
    grl_lambda: float = 1.0
    downsample_ratio: int = 8  # the published protocol's output stride
    multiscale: bool = False  # extra stride-4 density head

    def __post_init__(self) -> None:
        _choice("backbone", self.backbone, BACKBONES)
        _choice("reference", self.reference, REFERENCES)
        _choice("offset_mode", self.offset_mode, OFFSET_MODES)
        _choice("fusion", self.fusion, FUSIONS)
        _choice("thermal_channels", self.thermal_channels, (1, 3))
        _choice("offset_stage", self.offset_stage, (1, 2))
        _choice("downsample_ratio", self.downsample_ratio, (8, 16, 32))
        _positive("grl_lambda", self.grl_lambda, strict=False)

    @property
    def moving(self) -> str:
        """The modality warped onto the reference frame."""
        return "rgb" if self.reference == "thermal" else "thermal"


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

    def __post_init__(self) -> None:
        _choice("density", self.density, DENSITY_LOSSES)
        _positive("density_sigma", self.density_sigma)
        _positive("bayes_sigma", self.bayes_sigma)
        if not 0 <= self.bayes_background_ratio < 1:
            raise ValueError(
                f"bayes_background_ratio={self.bayes_background_ratio!r} is not valid; "
                "it must be in [0, 1)"
            )
        for name in ("local_count", "feat_l1", "tv", "domain", "multiscale_weight"):
            _positive(name, getattr(self, name), strict=False)
        if len(self.local_count_levels) != len(self.local_count_level_weights):
            raise ValueError(
                f"local_count_levels={self.local_count_levels!r} and local_count_level_weights="
                f"{self.local_count_level_weights!r} must have the same length"
            )
        for level in self.local_count_levels:
            _choice("local_count_levels item", level, (0, 1, 2, 3, 4))


@dataclass(frozen=True)
class DataConfig:
    data_path: str | None = None  # None: the built-in synthetic dataset
    crop_size: int = 256
    hflip: bool = True
    val_size: int = 100  # DroneRGBT has no val split: this many train pairs are held out
    on_device: bool = False  # keep the decoded set on the GPU and crop there
    num_workers: int = 0
    # Built-in synthetic data (ignored for data on disk).
    synth_n_train: int = 48
    synth_n_val: int = 12
    synth_n_test: int = 16
    synth_height: int = 128
    synth_width: int = 160
    synth_min_people: int = 5
    synth_max_people: int = 40
    synth_shift: float = 8.0  # max RGB translation in px against the thermal labels
    synth_rotation: float = 3.0  # max degrees
    synth_scale: float = 0.03  # max relative scale change
    synth_local_warp: float = 0.0  # amplitude in px of a smooth local displacement
    synth_night_fraction: float = 0.5
    # Warm person-shaped decoys (heaters, animals) per labelled person, seen only in thermal:
    # only the RGB image can reject them, so a model must use the misaligned RGB.
    synth_decoys: float = 0.5
    synth_seed: int = 0

    def __post_init__(self) -> None:
        _positive("crop_size", self.crop_size)
        _positive("val_size", self.val_size, strict=False)
        _positive("num_workers", self.num_workers, strict=False)
        for name in ("synth_n_train", "synth_n_val", "synth_n_test", "synth_height", "synth_width"):
            _positive(name, getattr(self, name))
        if not 0 <= self.synth_min_people <= self.synth_max_people:
            raise ValueError(
                f"synth_min_people={self.synth_min_people} and synth_max_people="
                f"{self.synth_max_people} must satisfy 0 <= min <= max"
            )
        for name in ("synth_shift", "synth_rotation", "synth_scale", "synth_local_warp",
                     "synth_decoys"):
            _positive(name, getattr(self, name), strict=False)
        if not 0 <= self.synth_night_fraction <= 1:
            raise ValueError(
                f"synth_night_fraction={self.synth_night_fraction!r} must be in [0, 1]"
            )


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
    local_count_ramp_epochs: int = 0  # raise local_count linearly from 25% over these epochs
    grad_clip: float = 10.0  # 0 disables
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool = True  # only applied on CUDA
    compile: bool = False
    device: str = "auto"
    select_metric: str = "game0"  # the public code's choice
    eval_every: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        _positive("lr", self.lr)
        _positive("backbone_lr", self.backbone_lr)
        _positive("weight_decay", self.weight_decay, strict=False)
        _positive("step_size", self.step_size)
        _positive("eval_every", self.eval_every)
        for name in ("freeze_epochs", "freeze_stages", "align_warmup_epochs",
                     "local_count_ramp_epochs", "grad_clip", "warmup_shift", "warmup_rotation"):
            _positive(name, getattr(self, name), strict=False)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("device", self.device, DEVICES)
        _choice("select_metric", self.select_metric, SELECT_METRICS)


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "loss": LossConfig,
    "data": DataConfig,
    "train": TrainConfig,
}


def field_section() -> dict[str, str]:
    """Map every flat field name to the section that owns it."""
    owner: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            assert f.name not in owner, f"field {f.name} defined twice"
            owner[f.name] = section
    return owner


FIELD_SECTION = field_section()


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Parse strings from the command line and lists from TOML into the field's type."""
    hint = get_type_hints(cls)[name]
    text = str(hint)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if hint is bool:
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{name}={value!r} is not a boolean; use true or false")
        if lowered in ("none", "null") and "None" in text:
            return None
        try:
            if hint is int:
                return int(value)
            if hint is float:
                return float(value)
            if "tuple" in text:
                items = [v for v in value.strip("()[] ").split(",") if v.strip()]
                kind = int if "int" in text else float
                return tuple(kind(v) for v in items)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a valid {text}") from None
        return value
    if "tuple" in text and isinstance(value, list):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not a boolean; use true or false")
    if hint in (int, float) and isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not a number")
    return value


def unknown_key_error(key: str, valid: list[str]) -> ValueError:
    close = difflib.get_close_matches(key, valid, n=3)
    if close:
        hint = f"did you mean {', '.join(close)}?"
    else:
        hint = f"valid keys: {', '.join(sorted(valid))}"
    return ValueError(f"unknown config key {key!r}; {hint}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run. Its hash identifies a run in the database."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def flat(self) -> dict[str, Any]:
        return {k: v for section in self.to_dict().values() for k, v in section.items()}

    def config_hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Apply flat (``stn``) or dotted (``model.stn``) keys; unknown keys are errors."""
        grouped: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        for key, value in overrides.items():
            section, _, name = key.rpartition(".")
            if not section:
                section = FIELD_SECTION.get(name, "")
            if section not in SECTIONS or FIELD_SECTION.get(name) != section:
                raise unknown_key_error(key, list(FIELD_SECTION))
            grouped[section][name] = _coerce(SECTIONS[section], name, value)
        parts = {
            section: dataclasses.replace(getattr(self, section), **changes)
            for section, changes in grouped.items()
        }
        return RunConfig(**parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of ``to_dict`` (also accepts a flat dict)."""
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key in SECTIONS and isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return cls().with_overrides(flat)
