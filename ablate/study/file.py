"""Reading a study file: TOML whose syntax errors name the file and line, and the checks of
its keys and values, each failure one ``StudyError`` naming the file, table and key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from ablate.errors import StudyError
from model.config import FIELD_SECTION, RunConfig, unknown_key_error
from model.config.legacy import map_legacy_keys, section_of

# Fields chosen per run, and the option that chooses them: a study file or --set value would
# be overwritten, so both are refused.
PER_RUN_KEYS = {"seed": "--seed or --seeds"}
# A variant's or condition's NAME; no commas: "--variants A,C,G" splits on them.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def read_toml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise StudyError(f"{path} is a directory, not a study file")
    if not path.is_file():
        siblings = sorted(str(p) for p in path.parent.glob("*.toml"))
        hint = f" (found: {', '.join(siblings)})" if siblings else ""
        raise StudyError(f"study file not found: {path}{hint}")
    text = path.read_bytes()
    try:
        return tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StudyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_AT.search(message)
        reason = _TOML_AT.sub("", message) if match else message
        if match and match.group(1):
            where = f"line {match.group(1)}, column {match.group(2)}"
        else:
            where = f"line {len(text.splitlines()) or 1} (end of file)"
        raise StudyError(f"{path} {where}: {reason}") from None


def checked_key(key: str, where: str) -> str:
    try:
        name = flat_key(key)
    except ValueError as exc:
        raise StudyError(f"{where}: {exc}") from None
    check_per_run(name, where)
    return name


def flat_key(key: str) -> str:
    """``stn`` or ``model.stn`` -> ``stn``; anything else is an unknown key. Keys of earlier
    releases (``offset_align``) are read too (``model.config.legacy``)."""
    section, _, name = str(key).rpartition(".")
    owner = section_of(name)
    if owner is None:
        raise unknown_key_error(str(key), list(FIELD_SECTION))
    if section and section != owner:
        raise ValueError(f"unknown config key {key!r}; {name} is in the "
                         f"{owner} section: write {name} or {owner}.{name}")
    return name


def check_per_run(key: str, where: str) -> None:
    if key in PER_RUN_KEYS:
        raise StudyError(f"{where}: {key} is chosen per run: use {PER_RUN_KEYS[key]}")


def validate(overrides: dict[str, Any], where: str, own: set[str],
              in_section: bool = False) -> None:
    """Build the config once so a bad value fails at load time, naming the key."""
    try:
        RunConfig().with_overrides(overrides)
    except (ValueError, TypeError) as exc:
        named = [k for k in overrides if re.search(rf"(?<![\w.]){re.escape(k)}\b", str(exc))]
        named.sort(key=lambda k: k not in own)  # blame this variant's own keys first
        if named and in_section:
            where = f"{where} [{FIELD_SECTION.get(named[0], 'model')}] {named[0]}"
        elif named:
            where = f"{where}, key {named[0]!r}"
        raise StudyError(f"{where}: {exc}") from None


def today_keys(changes: dict[str, Any], base: dict[str, Any], where: str) -> dict[str, Any]:
    """``changes`` in today's keys: an earlier release's (``offset_align = true``) mapped
    over ``base``, the flat overrides they apply to."""
    try:
        current = RunConfig().with_overrides(base).flat()
    except (ValueError, TypeError):
        current = RunConfig().flat()  # the base's own error is reported by ``validate``
    try:
        return map_legacy_keys(changes, current)
    except ValueError as exc:
        raise StudyError(f"{where}: {exc}") from None


def table_changes(table: dict[str, Any], where: str, reserved: tuple[str, ...]) -> dict[str, Any]:
    """A variant's (or condition's) own config keys, flattened, leaving out its ``reserved``
    ones (label, base; dataset): ``stn = true`` and ``model.stn = true`` are the same."""
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in reserved:
            continue
        pairs = ([(f"{key}.{k}", v) for k, v in value.items()] if isinstance(value, dict)
                 else [(key, value)])
        for dotted, item in pairs:
            name = checked_key(dotted, where)
            if name in changes:
                raise StudyError(f"{where}: {name!r} is set twice")
            changes[name] = item
    return changes
