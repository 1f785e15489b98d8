"""``RunConfig``: the four sections together, flat ``key=value`` overrides, and the hash that
identifies an experiment in the runs database."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from model.config.legacy import LEGACY_VALUES, RECORD_DEFAULTS, is_legacy, map_legacy_keys
from model.config.sections import DataConfig, LossConfig, ModelConfig, TrainConfig
from model.config.validation import hints, invalid, parse_text
from model.errors import ConfigError, did_you_mean
from model.registry import all_params, params

# How a run is executed, not what it computes: left out of the config hash, so the same
# experiment on another machine, worker count or memory layout is recognised as done.
EXECUTION_FIELDS = ("device", "num_workers", "on_device", "compile", "channels_last",
                    "eval_batch_size", "checkpoint_every", "checkpoint_minutes", "deterministic")

# The switchable parts: config field -> registry kind. A part's own settings (its registry
# entry's ``params``) count in the hash only while it is the chosen entry.
PARTS = {"backbone": "backbone", "stn": "stn", "aligner": "aligner", "fusion": "fusion",
         "domain_head": "domain_head", "multiscale_head": "multiscale_head",
         "density": "density_loss"}

# A field that acts only while a boolean switch is on: with the switch off it is no part of
# the experiment (each modality's own backbone has its own batch norms anyway).
REQUIRES = {"modality_norm": "shared_backbone"}

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
    hint = did_you_mean(key, valid).rstrip() or f"valid keys: {', '.join(sorted(valid))}"
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

    def chosen_parts(self) -> dict[str, str | None]:
        """Registry kind -> the entry this config uses; the dataset layout is "synthetic" for
        the built-in data and unknown (None) until a folder is read."""
        flat = self.flat()
        chosen: dict[str, str | None] = {kind: flat[name] for name, kind in PARTS.items()}
        chosen["layout"] = "synthetic" if self.data.data_path is None else None
        return chosen

    def identity(self) -> dict[str, dict[str, Any]]:
        """``to_dict`` less what cannot change the result: the execution settings, the
        settings of every part not chosen (``model.registry.params``), fields whose switch is
        off (``REQUIRES``), and later fields at their ``LEGACY_VALUES``."""
        sections = self.to_dict()
        unused = set(EXECUTION_FIELDS)
        for kind, name in self.chosen_parts().items():
            unused |= all_params(kind) - set(params(kind, name) if name else ())
        unused |= {name for name, switch in REQUIRES.items()
                   if not sections[FIELD_SECTION[switch]][switch]}
        for name in unused:
            sections[FIELD_SECTION[name]].pop(name, None)
        for name, legacy in LEGACY_VALUES.items():
            if sections[FIELD_SECTION[name]].get(name, object()) == legacy:
                del sections[FIELD_SECTION[name]][name]
        return sections

    def config_hash(self) -> str:
        """Identifies the experiment: equal for runs that must give the same result."""
        text = json.dumps(self.identity(), sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Apply flat (``stn``) or dotted (``model.stn``) keys; unknown keys are errors. Keys
        of earlier releases (``offset_align = true``) are mapped to today's
        (``model.config.legacy``)."""
        grouped: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        for key, value in map_legacy_keys(overrides, self.flat()).items():
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

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> RunConfig:
        """A config as a runs database stored it: a field it lacks was recorded before the
        field existed, so it takes its ``LEGACY_VALUES`` value, not today's default."""
        given = {k: v for key, value in data.items()
                 for k, v in (value if key in SECTIONS and isinstance(value, dict)
                              else {key: value}).items()}
        defaults = {**LEGACY_VALUES, **(RECORD_DEFAULTS if is_legacy("stn", given.get("stn"))
                                        else {})}
        missing = {name: value for name, value in defaults.items() if name not in given}
        return cls.from_dict({**missing, **data})


for _name in EXECUTION_FIELDS:
    assert _name in FIELD_SECTION, f"EXECUTION_FIELDS names {_name}, which is no field"
