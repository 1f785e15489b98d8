"""One validation pass over a config section, and the parsing of ``--set`` strings.

Every field is checked by its exact type hint (bool, int, float, str, str | None,
tuple[int, ...], tuple[float, ...]): its type, then finiteness for floats, then the range or
the choices the section declares. Each failure is one ``ConfigError`` line naming the field and
the value, e.g. ``epochs=1.5 is not valid; it must be an integer >= 1``, so that a bad value is
refused when the config is built, before anything is trained or recorded.

The check is the same wherever a value comes from: a study file's ``epochs = "5"`` is a string
and refused like ``align_loss = "heavy"``. Only text typed on a command line (``--set
epochs=5``, marked as ``SetText``) is parsed by the field's type first. Every integer lies in
int64, what numpy and torch accept, whatever range its section declares.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Union, get_args, get_origin, get_type_hints

from model.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Bound:
    """A range a number must lie in, with the words the error message uses for it."""

    text: str
    ok: Callable[[float], bool]


POSITIVE = Bound("> 0", lambda v: v > 0)
NON_NEGATIVE = Bound(">= 0", lambda v: v >= 0)
AT_LEAST_1 = Bound(">= 1", lambda v: v >= 1)
FRACTION = Bound("in [0, 1]", lambda v: 0 <= v <= 1)
FRACTION_BELOW_1 = Bound("in [0, 1)", lambda v: 0 <= v < 1)

_KIND = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
# numpy and torch hold integers in int64: a larger one fails deep in a run ("Overflow when
# unpacking long long"), after the run was claimed.
INT64 = Bound("in int64 (|value| < 2**63)", lambda v: -(2**63) <= v < 2**63)


class SetText(str):
    """Text typed as ``--set key=value``: parsed by its field's type (``parse_text``). Any
    other string (a study file's, a stored config's) is a string and checked as one."""


def invalid(name: str, value: Any, must: str) -> ConfigError:
    """``name=value is not valid; must`` as the one error type for a bad config value."""
    return ConfigError(f"{name}={value!r} is not valid; {must}")


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """The resolved type hint of every field of a config dataclass."""
    return get_type_hints(cls)


def _optional(hint: Any) -> Any | None:
    """``X`` for ``X | None``, else None."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1 and type(None) in get_args(hint):
            return args[0]
    return None


def _item_type(hint: Any) -> type | None:
    """``int`` for ``tuple[int, ...]``; None for every other hint."""
    if get_origin(hint) is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def _scalar(value: Any, kind: type) -> Any:
    """``value`` as ``kind``, or raise ``TypeError`` (turned into a message by the caller)."""
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, bool):
        pass  # True is an int to Python, never a number to a config
    elif kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)  # TOML's 10.0, JSON's 1e3: exact integers
    elif kind is float:
        if isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:
                raise TypeError from None
            if math.isfinite(number):
                return number
    elif isinstance(value, kind):
        return value
    raise TypeError


def normalise(name: str, value: Any, hint: Any, bound: Bound | None = None) -> Any:
    """The checked value of field ``name``: its type, finiteness and ``bound``."""
    inner = _optional(hint)
    if inner is not None:
        return None if value is None else normalise(name, value, inner, bound)
    item = _item_type(hint)
    if item is not None:
        return _normalise_items(name, value, item, bound)
    must = f"it must be {_KIND.get(hint, hint)}" + (f" {bound.text}" if bound else "")
    try:
        checked = _scalar(value, hint)
    except TypeError:
        raise invalid(name, value, must) from None
    if bound is not None and not bound.ok(checked):
        raise invalid(name, value, must)
    if hint is int and not INT64.ok(checked):
        raise invalid(name, value, f"{must} and {INT64.text}")
    return checked


def _normalise_items(name: str, value: Any, item: type, bound: Bound | None) -> tuple:
    example = "[1, 2]" if item is int else "[1.0, 0.5]"
    if not isinstance(value, list | tuple):
        raise invalid(name, value, f"give a list such as {example}")
    must = f"every item must be {_KIND[item]}" + (f" {bound.text}" if bound else "")
    try:
        items = tuple(_scalar(v, item) for v in value)
    except TypeError:
        raise invalid(name, value, must) from None
    if bound is not None and not all(bound.ok(v) for v in items):
        raise invalid(name, value, must)
    if item is int and not all(INT64.ok(v) for v in items):
        raise invalid(name, value, f"{must} and {INT64.text}")
    return items


def check_choice(name: str, value: Any, valid: Sequence[Any]) -> None:
    if value in valid:
        return
    hint = did_you_mean(value, valid, n=1)
    raise invalid(name, value, f"{hint}choose one of {', '.join(map(str, valid))}")


def check_section(section: Any) -> None:
    """Normalise and check every field of a frozen config dataclass in place.

    The section declares ``BOUNDS`` ({field: Bound}) and ``CHOICES`` ({field: () -> valid
    values}); choices are a function so that registry entries added later (plugins, tests)
    are valid names.
    """
    cls = type(section)
    bounds: dict[str, Bound] = getattr(cls, "BOUNDS", {})
    choices: dict[str, Callable[[], Sequence[Any]]] = getattr(cls, "CHOICES", {})
    for f in fields(cls):
        value = normalise(f.name, getattr(section, f.name), hints(cls)[f.name],
                          bounds.get(f.name))
        if f.name in choices:
            check_choice(f.name, value, choices[f.name]())
        object.__setattr__(section, f.name, value)  # frozen: 3 -> 3.0, [1, 2] -> (1, 2)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_text(hint: Any, text: str) -> Any:
    """A ``--set`` string (``SetText``) parsed by the field's exact hint; any other string is
    a value and returned as it is, for the validation pass to check its type. Text that does
    not parse is returned unchanged, so the validation pass names the field and the value in
    its one message."""
    return _parse(hint, str(text)) if isinstance(text, SetText) else text


def _parse(hint: Any, text: str) -> Any:
    lowered = text.strip().lower()
    inner = _optional(hint)
    if inner is not None:
        return None if lowered in ("none", "null") else _parse(inner, text)
    item = _item_type(hint)
    if item is not None:
        parts = [p for p in text.strip().strip("()[]").split(",") if p.strip()]
        return tuple(_parse(item, p) for p in parts)
    if hint is bool:
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    for kind in (int, float) if hint in (int, float) else ():
        # "1.5" for an int becomes 1.5 so that the message says epochs=1.5, not '1.5';
        # "nan" and "inf" become floats that the finiteness check then refuses.
        try:
            return kind(lowered)
        except ValueError:
            continue
    return text
