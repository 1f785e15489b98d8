"""Typed, frozen configuration for the network, its losses, the data and the training recipe.

Every field name is global: study files, ``--set key=value``, the runs database and Optuna
search spaces all use the same flat names, so no two sections share a field name. Building a
section checks every field (``model.validation``): its type, finiteness, range and choices,
where the choices of a switchable part are the names in its registry (``model.registry``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from model.errors import ConfigError
from model.registry import names
from model.validation import (
    AT_LEAST_1,
    FRACTION,
    FRACTION_BELOW_1,
    NON_NEGATIVE,
    POSITIVE,
    Bound,
    check_section,
    hints,
    invalid,
    parse_text,
)

REFERENCES = ("thermal", "rgb")
SCHEDULES = ("cosine", "step", "none")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
LOCAL_COUNT_LEVELS = (0, 1, 2, 3, 4)
# How a run is executed, not what it computes: left out of the config hash, so the same
# experiment on another machine, worker count or memory layout is recognised as done.
EXECUTION_FIELDS = ("device", "num_workers", "on_device", "compile", "channels_last")
SYNTH_SIDE = Bound("in [16, 4096]", lambda v: 16 <= v <= 4096)


def select_metrics() -> tuple[str, ...]:
    """Valid ``select_metric`` values: every registered metric and the sum of GAME0-3."""
    from model.metrics import metric_names  # the metric registry imports torch: load lazily

    return (*metric_names(), "game_sum")


def __getattr__(name: str) -> Any:
    # SELECT_METRICS is read when used, so a metric registered after import is selectable.
    if name == "SELECT_METRICS":
        return select_metrics()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fixed(*valid: Any) -> Callable[[], Sequence[Any]]:
    return lambda: valid


def _registry(kind: str) -> Callable[[], Sequence[Any]]:
    return lambda: names(kind)


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "tiny"  # "tiny" keeps CPU tests and the demo study fast
    pretrained: str | None = None  # None, a state-dict path, or "torchvision" (local cache only)
    shared_backbone: bool = False  # plan Option C: per-modality first conv, shared rest
    thermal_channels: int = 3  # RGBT-CC's thermal JPEG is 3-channel pseudo-colour
    reference: str = "thermal"  # RGBT-CC points live on the thermal image
    stn: bool = False  # the "affine" entry of the stn registry, else "none"
    offset_align: bool = False  # the aligner named offset_mode, else "none"
    offset_stage: int = 1
    offset_mode: str = "flow"  # a name in the aligner registry
    fusion: str = "concat"
    grl: bool = False
    grl_lambda: float = 1.0
    downsample_ratio: int = 8  # the published protocol's output stride
    multiscale: bool = False  # extra stride-4 density head

    BOUNDS: ClassVar[dict[str, Bound]] = {"grl_lambda": NON_NEGATIVE}
    CHOICES: ClassVar[dict[str, Callable[[], Sequence[Any]]]] = {
        "backbone": _registry("backbone"),
        "reference": _fixed(*REFERENCES),
        "offset_mode": _registry("aligner"),
        "fusion": _registry("fusion"),
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

    @property
    def stn_name(self) -> str:
        """The stn registry entry this config builds."""
        return "affine" if self.stn else "none"

    @property
    def aligner_name(self) -> str:
        """The aligner registry entry this config builds."""
        return self.offset_mode if self.offset_align else "none"


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

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "density_sigma": POSITIVE,
        "bayes_sigma": POSITIVE,
        "bayes_background_ratio": FRACTION_BELOW_1,
        **dict.fromkeys(("local_count", "local_count_level_weights", "feat_l1", "tv", "domain",
                         "multiscale_weight"), NON_NEGATIVE),
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
    on_device: bool = False  # keep the decoded set on the GPU and crop there
    num_workers: int = 0
    # Built-in synthetic data (ignored for data on disk, and left out of the hash then).
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

    BOUNDS: ClassVar[dict[str, Bound]] = {
        **dict.fromkeys(("crop_size", "synth_n_train", "synth_n_val", "synth_n_test"),
                        AT_LEAST_1),
        # At least the deepest encoder stride (evaluation runs on the whole image), and small
        # enough that the rendering canvas fits in memory.
        **dict.fromkeys(("synth_height", "synth_width"), SYNTH_SIDE),
        **dict.fromkeys(("val_size", "num_workers", "synth_min_people", "synth_max_people",
                         "synth_shift", "synth_rotation", "synth_scale", "synth_local_warp",
                         "synth_decoys", "synth_seed"), NON_NEGATIVE),
        "synth_night_fraction": FRACTION,
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
    local_count_ramp_epochs: int = 0  # raise local_count linearly from 25% over these epochs
    grad_clip: float = 10.0  # 0 disables
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool = True  # only applied on CUDA
    compile: bool = False
    device: str = "auto"
    select_metric: str = "game0"  # the public code's choice
    eval_every: int = 1
    seed: int = 0

    BOUNDS: ClassVar[dict[str, Bound]] = {
        **dict.fromkeys(("epochs", "batch_size", "step_size", "eval_every"), AT_LEAST_1),
        **dict.fromkeys(("lr", "backbone_lr"), POSITIVE),
        **dict.fromkeys(("weight_decay", "freeze_epochs", "freeze_stages",
                         "align_warmup_epochs", "local_count_ramp_epochs", "grad_clip",
                         "warmup_shift", "warmup_rotation", "seed"), NON_NEGATIVE),
    }
    CHOICES: ClassVar[dict[str, Callable[[], Sequence[Any]]]] = {
        "schedule": _fixed(*SCHEDULES),
        "precision": _fixed(*PRECISIONS),
        "device": _fixed(*DEVICES),
        "select_metric": select_metrics,
    }

    def __post_init__(self) -> None:
        check_section(self)


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
    """A ``--set`` string parsed by the field's exact type hint; any other value (TOML, JSON)
    is left to the section's validation, which also turns lists into tuples."""
    return parse_text(hints(cls)[name], value) if isinstance(value, str) else value


def unknown_key_error(key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=3)
    if close:
        hint = f"did you mean {', '.join(close)}?"
    else:
        hint = f"valid keys: {', '.join(sorted(valid))}"
    return ConfigError(f"unknown config key {key!r}; {hint}")


# The largest encoder stride: a crop smaller than this leaves the deepest stage no pixel.
MIN_CROP = 16


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run. Its hash identifies a run in the database."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"RunConfig.{name} must be a {cls.__name__}, "
                                  f"not {type(getattr(self, name)).__name__}")
        self._check_crop()

    def _check_crop(self) -> None:
        crop, ratio = self.data.crop_size, self.model.downsample_ratio
        if crop % ratio:
            raise invalid("crop_size", crop, f"it must be divisible by downsample_ratio={ratio}")
        if crop < max(MIN_CROP, ratio):
            raise invalid("crop_size", crop, f"it must be >= {max(MIN_CROP, ratio)}, the "
                          "deepest stride of the network")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def flat(self) -> dict[str, Any]:
        return {k: v for section in self.to_dict().values() for k, v in section.items()}

    def identity(self) -> dict[str, dict[str, Any]]:
        """``to_dict`` less what cannot change the result: the execution settings, and the
        synthetic-data settings when the data comes from disk."""
        sections = self.to_dict()
        for name in EXECUTION_FIELDS:
            del sections[FIELD_SECTION[name]][name]
        if self.data.data_path is not None:
            sections["data"] = {k: v for k, v in sections["data"].items()
                                if not k.startswith("synth_")}
        return sections

    def config_hash(self) -> str:
        """Identifies the experiment: equal for runs that must give the same result."""
        text = json.dumps(self.identity(), sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Apply flat (``stn``) or dotted (``model.stn``) keys; unknown keys are errors."""
        grouped: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        for key, value in overrides.items():
            section, _, name = str(key).rpartition(".")
            if not section:
                section = FIELD_SECTION.get(name, "")
            if section not in SECTIONS or FIELD_SECTION.get(name) != section:
                raise unknown_key_error(str(key), list(FIELD_SECTION))
            grouped[section][name] = _coerce(SECTIONS[section], name, value)
        parts = {
            section: dataclasses.replace(getattr(self, section), **changes)
            for section, changes in grouped.items()
        }
        return RunConfig(**parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of ``to_dict`` (also accepts a flat dict)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a table of sections, not {type(data).__name__}")
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key in SECTIONS and isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return cls().with_overrides(flat)


for _name in EXECUTION_FIELDS:
    assert _name in FIELD_SECTION, f"EXECUTION_FIELDS names {_name}, which is no field"
