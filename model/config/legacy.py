"""Keys and values of earlier releases, read as today's, so old study files, ``--set`` lines
and runs databases keep working.

Until every switchable part became a registry name, a part was a bool beside a name:
``stn = true`` with ``stn_mode = "affine"``, ``offset_align = true`` with
``offset_mode = "deform"``, ``grl = true``, ``multiscale = true``. ``map_legacy_keys``
turns those into ``stn = "affine"``, ``aligner = "deform"``, ``domain_head = "grl"``,
``multiscale_head = "stride4"``.
"""

from __future__ import annotations

from typing import Any

from model.errors import ConfigError

# Fields added after runs were first recorded, at the value that reproduces the code from before
# they existed: left out of the hash at that value, so a database's earlier runs stay recognised,
# and given to a stored config that lacks them (it was recorded before they existed).
LEGACY_VALUES: dict[str, Any] = {
    "align_loss": 0.0, "align_ncc": 0.0, "warmup_align_loss": 0.0,
    "warmup_count_weight": 1.0, "synth_max_decoys": 0, "synth_thermal_blur": 0.0,
    "synth_shared_scene": 0.0, "synth_night_brightness": 0.21, "synth_night_noise": 0.06,
    "modality_norm": "shared",
}

# old switch -> (today's field, the old key naming the entry, the entry an old "on" meant)
NAMED_SWITCHES = {
    "stn": ("stn", "stn_mode", "bounded"),
    "offset_align": ("aligner", "offset_mode", "flow"),
}
BOOL_SWITCHES = {"grl": ("domain_head", "grl"), "multiscale": ("multiscale_head", "stride4")}
OLD_NAME_KEYS = {mode: switch for switch, (_, mode, _) in NAMED_SWITCHES.items()}
OLD_KEYS = (*NAMED_SWITCHES, *OLD_NAME_KEYS, *BOOL_SWITCHES)
# Runs recorded before stn_mode existed trained the free affine STN.
RECORD_DEFAULTS = {"stn_mode": "affine"}



def section_of(name: str) -> str | None:
    """The section of a flat field name, today's or an earlier release's; None if unknown."""
    from model.config.run import FIELD_SECTION  # run imports this module

    return FIELD_SECTION.get(name) or ("model" if name in OLD_KEYS else None)


_TRUTH = {"true": True, "false": False}


def _as_bool(key: str, value: Any) -> bool | None:
    """An old switch's bool (``--set`` gives text); None when the value is not a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _TRUTH.get(value.strip().lower())
    return None


def is_legacy(key: str, value: Any) -> bool:
    """Whether ``key = value`` is written the way of an earlier release."""
    name = str(key).rpartition(".")[2]
    if name in OLD_NAME_KEYS or name in BOOL_SWITCHES or name == "offset_align":
        return True
    return name == "stn" and _as_bool(name, value) is not None


def map_legacy_keys(overrides: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with old keys replaced by today's; ``current`` is the flat config they
    apply to (an old name key such as ``stn_mode`` changes the part only where it is on)."""
    old = {str(k).rpartition(".")[2]: v for k, v in overrides.items() if is_legacy(k, v)}
    if not old:
        return overrides
    out = {k: v for k, v in overrides.items() if not is_legacy(k, v)}
    given = {str(k).rpartition(".")[2]: v for k, v in out.items()}
    now = {**current, **given}
    for switch, (field, mode_key, default) in NAMED_SWITCHES.items():
        on, mode = old.get(switch), old.get(mode_key)
        if mode is not None and not isinstance(mode, str):
            raise ConfigError(f"{mode_key}={mode!r} is not valid; it must be a string")
        if on is not None and _as_bool(switch, on) is None:
            raise ConfigError(f"{switch}={on!r} is not valid; it must be true or false")
        if on is not None and not _as_bool(switch, on):
            out[field] = "none"
        elif on is not None:
            out[field] = mode or (now[field] if now.get(field, "none") != "none" else default)
        elif mode is not None and field not in given and now.get(field, "none") != "none":
            out[field] = mode
    for switch, (field, entry) in BOOL_SWITCHES.items():
        if switch in old:
            on = _as_bool(switch, old[switch])
            if on is None:
                raise ConfigError(f"{switch}={old[switch]!r} is not valid; it must be true or "
                                  f"false (today: {field} = \"{entry}\" or \"none\")")
            out[field] = entry if on else "none"
    return out
