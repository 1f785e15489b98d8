"""Named, switchable parts of the model: every choice a study file makes is a registry key.

``@register("aligner", "flow")`` files a class (or function) under a kind and a name;
``lookup("aligner", "flow")`` returns it, and an unknown name is a ``ConfigError`` listing the
valid ones. "Off" is an entry too (``"none"``), never a branch in ``forward``. A researcher's
own parts register the same way from a plugin module, which is imported before configs are
checked, so the new name is valid in a study file without editing ablate.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from model.errors import ConfigError, did_you_mean

T = TypeVar("T")

# The modules that register the built-in entries of each kind, imported on first use so that
# importing the registry (as ``model.config`` does) pulls in no layer code.
BUILTINS: dict[str, tuple[str, ...]] = {
    "backbone": ("model.backbones",),
    "stn": ("model.layers.stn",),
    "aligner": ("model.layers.offset_align",),
    "fusion": ("model.layers.fusion",),
    "density_loss": ("model.losses.density", "model.losses.bayesian"),
    "metric": ("model.metrics",),
}

_ENTRIES: dict[str, dict[str, Any]] = {kind: {} for kind in BUILTINS}
_loaded: set[str] = set()


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator filing ``obj`` as ``kind``/``name``; a name registered twice is an error."""
    if kind not in _ENTRIES:
        raise ConfigError(f"unknown registry kind {kind!r}; valid: {', '.join(_ENTRIES)}")
    if not isinstance(name, str) or not name.strip() or "," in name:
        raise ConfigError(f"registry name {name!r} is not valid; use a non-empty word")

    def add(obj: T) -> T:
        if getattr(obj, "__module__", None) not in BUILTINS[kind]:
            _load(kind)  # a plugin's entry comes after the built-ins, whatever loaded first
        entries = _ENTRIES[kind]
        if name in entries and entries[name] is not obj:
            raise ConfigError(f"{kind} {name!r} is registered twice ({entries[name]!r}, {obj!r})")
        entries[name] = obj
        return obj

    return add


def unregister(kind: str, name: str) -> None:
    """Remove an entry (tests that register a temporary part clean up with this)."""
    _ENTRIES[kind].pop(name, None)


def _load(kind: str) -> dict[str, Any]:
    if kind not in _ENTRIES:
        raise ConfigError(f"unknown registry kind {kind!r}; valid: {', '.join(_ENTRIES)}")
    if kind not in _loaded:
        _loaded.add(kind)
        for module in BUILTINS[kind]:
            importlib.import_module(module)
    return _ENTRIES[kind]


def names(kind: str) -> tuple[str, ...]:
    """The registered names of ``kind``, built-ins first, in registration order."""
    return tuple(_load(kind))


def lookup(kind: str, name: str) -> Any:
    """The entry ``kind``/``name``; an unknown name is a ConfigError listing the valid ones."""
    entries = _load(kind)
    if name not in entries:
        raise ConfigError(unknown_choice(kind, name, list(entries)))
    return entries[name]


def unknown_choice(what: str, value: Any, valid: list[str]) -> str:
    """``unknown aligner 'flwo'; did you mean flow? valid: none, flow, deform``."""
    hint = did_you_mean(value, valid)
    return f"unknown {what} {value!r}; {hint}valid: {', '.join(map(str, valid))}"
