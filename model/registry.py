"""Named, switchable parts of the model: every choice a study file makes is a registry key.

``@register("aligner", "flow")`` files a class (or function) under a kind and a name;
``lookup("aligner", "flow")`` returns it, and an unknown name is a ``ConfigError`` listing the
valid ones. "Off" is an entry too (``"none"``), never a branch in ``forward``. A researcher's
own parts register the same way from a plugin module, which is imported before configs are
checked, so the new name is valid in a study file without editing ablate.

Each entry declares the config fields it reads (``params``): the config hash keeps a part's
parameters only while that part is chosen, so changing an off part's setting is the same
experiment. The built-in entries are known by name, module and parameters without importing
them (``BUILTINS``): checking a study file imports no torch; ``lookup`` imports the module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from model.errors import ConfigError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Builtin:
    """Where a built-in entry is registered, and the config fields it reads."""

    module: str
    params: tuple[str, ...] = ()


_STN, _ALIGN, _GRL = "model.layers.stn", "model.layers.offset_align", "model.layers.grl"
_HEADS, _FUSION, _LAYOUT = "model.layers.heads", "model.layers.fusion", "model.data.layouts"
_BACKBONES = "model.backbones"
_VGG = ("vgg16_bn", "vgg19")  # model.backbones.TORCHVISION_VGG
_ALIGNER_PARAMS = ("offset_stage", "tv")  # TV smooths the aligner's displacement field
_SYNTH_PARAMS = (
    "synth_n_train", "synth_n_val", "synth_n_test", "synth_height", "synth_width",
    "synth_min_people", "synth_max_people", "synth_shift", "synth_rotation", "synth_scale",
    "synth_local_warp", "synth_night_fraction", "synth_night_brightness", "synth_night_noise",
    "synth_decoys", "synth_max_decoys", "synth_thermal_blur", "synth_shared_scene",
    "synth_seed",
)

# Kinds whose built-ins are listed here by name; "metric" entries are made by a loop over the
# official metrics in model.metrics (numpy only), so that module is imported to list them.
BUILTINS: dict[str, dict[str, Builtin]] = {
    "backbone": {name: Builtin(_BACKBONES) for name in ("tiny", *_VGG)},
    "stn": {
        "none": Builtin(_STN),
        "affine": Builtin(_STN),
        "bounded": Builtin(_STN, ("stn_max_shift", "stn_max_rotation", "stn_max_scale")),
    },
    "aligner": {
        "none": Builtin(_ALIGN),
        "flow": Builtin(_ALIGN, _ALIGNER_PARAMS),
        "deform": Builtin(_ALIGN, _ALIGNER_PARAMS),
    },
    "domain_head": {"none": Builtin(_GRL), "grl": Builtin(_GRL, ("grl_lambda", "domain"))},
    "multiscale_head": {"none": Builtin(_HEADS),
                        "stride4": Builtin(_HEADS, ("multiscale_weight",))},
    "fusion": {"concat": Builtin(_FUSION), "sum": Builtin(_FUSION)},
    "density_loss": {
        "mse": Builtin("model.losses.density"),  # density_sigma: also the local-count target
        "bayesian": Builtin("model.losses.bayesian", ("bayes_sigma", "bayes_background_ratio")),
    },
    "layout": {
        "synthetic": Builtin(_LAYOUT, _SYNTH_PARAMS),
        "rgbtcc": Builtin(_LAYOUT),
        "dronergbt": Builtin(_LAYOUT, ("val_size",)),
    },
    "metric": {},
}
EAGER: dict[str, tuple[str, ...]] = {"metric": ("model.metrics",)}

_ENTRIES: dict[str, dict[str, Any]] = {kind: {} for kind in BUILTINS}
_PARAMS: dict[str, dict[str, tuple[str, ...]]] = {kind: {} for kind in BUILTINS}
_loaded: set[str] = set()


def _check_kind(kind: str) -> None:
    if kind not in BUILTINS:
        raise ConfigError(f"unknown registry kind {kind!r}; valid: {', '.join(BUILTINS)}")


def register(kind: str, name: str, params: tuple[str, ...] = ()) -> Callable[[T], T]:
    """Decorator filing ``obj`` as ``kind``/``name``, reading the config fields ``params``; a
    name registered twice is an error. A built-in's parameters come from ``BUILTINS``."""
    _check_kind(kind)
    if not isinstance(name, str) or not name.strip() or "," in name:
        raise ConfigError(f"registry name {name!r} is not valid; use a non-empty word")
    builtin = BUILTINS[kind].get(name)

    def add(obj: T) -> T:
        own_module = builtin is not None and getattr(obj, "__module__", None) == builtin.module
        if not own_module and getattr(obj, "__module__", None) not in EAGER.get(kind, ()):
            _load(kind)  # a plugin's entry comes after the built-ins, whatever loaded first
        entries = _ENTRIES[kind]
        if name in entries and entries[name] is not obj:
            raise ConfigError(f"{kind} {name!r} is registered twice ({entries[name]!r}, {obj!r})")
        entries[name] = obj
        _PARAMS[kind][name] = builtin.params if builtin is not None else tuple(params)
        return obj

    return add


def unregister(kind: str, name: str) -> None:
    """Remove an entry (tests that register a temporary part clean up with this)."""
    _ENTRIES[kind].pop(name, None)
    _PARAMS[kind].pop(name, None)


def _load(kind: str) -> dict[str, Any]:
    """Import every module that registers a built-in of ``kind`` (torch, for most kinds)."""
    _check_kind(kind)
    if kind not in _loaded:
        _loaded.add(kind)
        modules = {b.module: None for b in BUILTINS[kind].values()}
        for module in (*EAGER.get(kind, ()), *modules):
            importlib.import_module(module)
    return _ENTRIES[kind]


def _listed(kind: str) -> dict[str, tuple[str, ...]]:
    """Every name of ``kind`` with its parameters, built-ins first, without importing them."""
    _check_kind(kind)
    for module in EAGER.get(kind, ()):
        importlib.import_module(module)
    listed = {name: b.params for name, b in BUILTINS[kind].items()}
    listed.update(_PARAMS[kind])
    return listed


def names(kind: str) -> tuple[str, ...]:
    """The names of ``kind``, built-ins first, in registration order; imports no torch."""
    return tuple(_listed(kind))


def params(kind: str, name: str) -> tuple[str, ...]:
    """The config fields the entry ``kind``/``name`` reads (none for an unknown name)."""
    return _listed(kind).get(name, ())


def all_params(kind: str) -> set[str]:
    """Every config field some entry of ``kind`` reads."""
    return {p for declared in _listed(kind).values() for p in declared}


def lookup(kind: str, name: str) -> Any:
    """The entry ``kind``/``name``; an unknown name is a ConfigError listing the valid ones."""
    entries = _load(kind)
    if name not in entries:
        raise ConfigError(unknown_choice(kind, name, list(names(kind))))
    return entries[name]


def unknown_choice(what: str, value: Any, valid: list[str]) -> str:
    """``unknown aligner 'flwo'; did you mean flow? valid: none, flow, deform``."""
    hint = did_you_mean(value, valid)
    return f"unknown {what} {value!r}; {hint}valid: {', '.join(map(str, valid))}"
