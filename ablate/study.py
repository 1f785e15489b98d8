"""Study files: one TOML file holds an ablation, its defaults and its named variants.

A variant stores only what it changes and may inherit another's resolved overrides with
``base``, so the file reads like the plan's table ("C = B + STN")::

    [study]
    name = "demo"

    [model]
    backbone = "tiny"

    [variants.B]
    label = "+ shared backbone"
    shared_backbone = true

    [variants.C]
    base = "B"
    label = "+ STN"
    stn = true

Every config key is a flat field name of ``model.config`` (``stn``) or its dotted form
(``model.stn``); ``Study.config`` turns (variant, seed, CLI overrides) into one RunConfig.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from ablate.errors import AblateError
from model.config import FIELD_SECTION, SECTIONS, SELECT_METRICS, RunConfig, unknown_key_error

TOP_LEVEL = ("study", *SECTIONS, "variants", "tune")
STUDY_KEYS = ("name", "description", "baseline", "select_metric", "requires")
VARIANT_KEYS = ("label", "base")
PER_RUN_KEYS = ("seed",)  # given to Study.config per run; a file value would be overwritten
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # no commas: "--variants A,C,G" splits on them
_TOML_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    parent: str | None  # the ``base`` variant, or None
    overrides: dict[str, Any]  # flat names: file defaults, then every ancestor, then changes
    changes: dict[str, Any]  # only the keys this variant sets itself


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    baseline: str  # name of the published reference row in reports ("BM")
    select_metric: str  # val metric that picks the checkpoint
    path: Path
    base_overrides: dict[str, Any]  # the [model]/[loss]/[data]/[train] defaults, flat
    variants: dict[str, Variant]  # file order
    tune: dict[str, Any] | None = None  # raw [tune] table, validated by the tuner
    requires: tuple[str, ...] = ()  # fields that must be given per run (e.g. data_path)

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            raise AblateError(f"{self.path}: {_unknown('variant', name, list(self.variants))}")
        return self.variants[name]

    def config(self, variant_name: str, seed: int,
               extra: dict[str, Any] | None = None) -> RunConfig:
        """Defaults, the variant's inherited overrides, ``extra`` (CLI options), then the seed.

        ``extra`` takes flat or dotted keys; strings (from ``--set key=value``) are parsed into
        the field's type. None is applied as a value (it is valid for data_path and pretrained).
        """
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise AblateError(f"seed={seed!r} is not valid; it must be an integer >= 0")
        overrides = dict(self.variant(variant_name).overrides)
        for key, value in (extra or {}).items():
            try:
                overrides[_flat_key(key)] = value
            except ValueError as exc:
                raise AblateError(str(exc)) from None
        missing = [key for key in self.requires if overrides.get(key) is None]
        if missing:
            options = ", ".join(f"--{key.replace('_', '-')}" for key in missing)
            raise AblateError(f"{self.path} needs {', '.join(missing)}: pass {options}")
        overrides["seed"] = seed
        try:
            return RunConfig().with_overrides(overrides)
        except (ValueError, TypeError) as exc:
            raise AblateError(f"{self.path} variant {variant_name}: {exc}") from None

    def to_record(self) -> dict[str, Any]:
        """The study's definition as JSON-able data, for the runs database: what a report
        needs (variant order, parents, labels, overrides) without the file."""
        return {
            "name": self.name,
            "description": self.description,
            "baseline": self.baseline,
            "select_metric": self.select_metric,
            "path": str(self.path),
            "base_overrides": self.base_overrides,
            "variants": [
                {"name": v.name, "label": v.label, "parent": v.parent,
                 "overrides": v.overrides, "changes": v.changes}
                for v in self.variants.values()
            ],
            "tune": self.tune,
            "requires": list(self.requires),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Study:
        """Inverse of ``to_record``."""
        variants = {
            v["name"]: Variant(v["name"], v["label"], v["parent"], dict(v["overrides"]),
                               dict(v["changes"]))
            for v in record["variants"]
        }
        return cls(
            name=record["name"],
            description=record.get("description", ""),
            baseline=record.get("baseline", "BM"),
            select_metric=record.get("select_metric", "game0"),
            path=Path(record.get("path", record["name"])),
            base_overrides=dict(record.get("base_overrides", {})),
            variants=variants,
            tune=record.get("tune"),
            requires=tuple(record.get("requires", ())),
        )

    def select(self, names: str | list[str] | None) -> list[str]:
        """Parse "A,C,G" (or a list of such strings); None means every variant. Study order."""
        if names is None:
            return list(self.variants)
        items = [names] if isinstance(names, str) else list(names)
        wanted = {part.strip() for item in items for part in item.split(",") if part.strip()}
        if not wanted:
            raise AblateError(f"no variants selected; choose from {', '.join(self.variants)}")
        for name in sorted(wanted):
            self.variant(name)
        return [name for name in self.variants if name in wanted]


def load_study(path: str | Path) -> Study:
    """Read, validate and resolve a study file; every problem is one AblateError line."""
    path = Path(path)
    raw = _read_toml(path)
    for key, value in raw.items():
        if key not in TOP_LEVEL:
            raise AblateError(f"{path}: {_unknown('top-level table', key, list(TOP_LEVEL))}")
        if not isinstance(value, dict):
            raise AblateError(f"{path}: {key!r} must be a table, written [{key}]")
    header = _header(raw.get("study"), path)
    defaults = _defaults(raw, path)
    metric = header["select_metric"] or defaults.get("select_metric", "game0")
    if defaults.setdefault("select_metric", metric) != metric:
        raise AblateError(
            f"{path}: [study] select_metric={metric!r} and [train] select_metric="
            f"{defaults['select_metric']!r} disagree; keep only the [study] one"
        )
    _validate(defaults, str(path), set(defaults), in_section=True)
    tables = raw.get("variants", {})
    if not tables:
        raise AblateError(f"{path}: no variants; add at least one [variants.NAME] table")
    return Study(
        name=header["name"],
        description=header["description"],
        baseline=header["baseline"],
        select_metric=metric,
        path=path,
        base_overrides=defaults,
        variants=_resolve_variants(tables, defaults, path),
        tune=raw.get("tune"),
        requires=header["requires"],
    )


def variant_switches(config: RunConfig) -> dict[str, str | bool]:
    """The ablation's switch matrix: False when off, True or a short detail when on."""
    m, loss = config.model, config.loss
    return {
        "shared_backbone": m.shared_backbone,
        "stn": m.stn,
        "offset_align": f"{m.offset_mode}@{m.offset_stage}" if m.offset_align else False,
        "fusion": m.fusion,
        "local_count": f"{loss.local_count:g}" if loss.local_count > 0 else False,
        "grl": f"{loss.domain:g}" if m.grl else False,  # the domain-loss weight it reverses
    }


# (column header, config keys behind it, cell text from a RunConfig)
_COLUMNS = (
    ("backbone", ("backbone", "pretrained"), lambda c: c.model.backbone),
    ("shared", ("shared_backbone",), lambda c: _on(c.model.shared_backbone)),
    ("STN", ("stn",), lambda c: _on(c.model.stn)),
    ("offset", ("offset_align", "offset_mode", "offset_stage"),
     lambda c: f"{c.model.offset_mode}@{c.model.offset_stage}" if c.model.offset_align else "-"),
    ("fusion", ("fusion",), lambda c: c.model.fusion),
    ("local count", ("local_count", "local_count_levels", "local_count_level_weights"),
     lambda c: _weight(c.loss.local_count)),
    ("feat L1", ("feat_l1",), lambda c: _weight(c.loss.feat_l1)),
    ("TV", ("tv",), lambda c: _weight(c.loss.tv)),
    ("GRL/domain", ("grl", "grl_lambda", "domain"),
     lambda c: f"{c.model.grl_lambda:g}/{c.loss.domain:g}" if c.model.grl
     else f"-/{c.loss.domain:g}" if c.loss.domain > 0 else "-"),
    ("multiscale", ("multiscale", "multiscale_weight"),
     lambda c: f"{c.loss.multiscale_weight:g}" if c.model.multiscale else "-"),
)


def variant_table(study: Study) -> Table:
    """One row per variant with its switches; cells the variant itself changes are bold."""
    title = f"{study.name}: {study.description}" if study.description else study.name
    table = Table(title=escape(title),
                  caption=f"reference row: {study.baseline}; checkpoint selection: val "
                  f"{study.select_metric}; GRL/domain is lambda/weight")
    for header in ("variant", "label", "base", *(column[0] for column in _COLUMNS)):
        table.add_column(header)
    for variant in study.variants.values():
        config = RunConfig().with_overrides({**variant.overrides, "seed": 0})
        cells = [
            f"[bold]{text}[/bold]" if set(keys) & set(variant.changes) else text
            for _, keys, cell in _COLUMNS
            for text in [cell(config)]
        ]
        table.add_row(variant.name, escape(variant.label), variant.parent or "", *cells)
    return table


def _on(flag: bool) -> str:
    return "yes" if flag else "-"


def _weight(value: float) -> str:
    return f"{value:g}" if value > 0 else "-"


def _unknown(kind: str, name: Any, valid: list[str]) -> str:
    close = difflib.get_close_matches(str(name), valid, n=3)
    close = close or [v for v in valid if v.lower() == str(name).lower()]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"unknown {kind} {name!r}; {hint}valid: {', '.join(valid)}"


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        siblings = sorted(str(p) for p in path.parent.glob("*.toml"))
        hint = f" (found: {', '.join(siblings)})" if siblings else ""
        raise AblateError(f"study file not found: {path}{hint}")
    text = path.read_bytes()
    try:
        return tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise AblateError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_AT.search(message)
        reason = _TOML_AT.sub("", message) if match else message
        if match and match.group(1):
            where = f"line {match.group(1)}, column {match.group(2)}"
        else:
            where = f"line {len(text.splitlines()) or 1} (end of file)"
        raise AblateError(f"{path} {where}: {reason}") from None


def _header(table: dict[str, Any] | None, path: Path) -> dict[str, Any]:
    if table is None:
        raise AblateError(f'{path}: missing [study] table; it needs at least name = "..."')
    for key in table:
        if key not in STUDY_KEYS:
            raise AblateError(f"{path} [study]: {_unknown('key', key, list(STUDY_KEYS))}")
    header = {"name": table.get("name"), "description": table.get("description", ""),
              "baseline": table.get("baseline", "BM"),
              "select_metric": table.get("select_metric")}  # None: [train]'s, else game0
    for key, value in header.items():
        if key == "select_metric" and value is None:
            continue
        if not isinstance(value, str) or (key != "description" and not value.strip()):
            raise AblateError(f"{path} [study]: {key} must be a non-empty string, got {value!r}")
    if header["select_metric"] not in (None, *SELECT_METRICS):
        raise AblateError(f"{path} [study]: select_metric={header['select_metric']!r} is not "
                          f"valid; choose one of {', '.join(SELECT_METRICS)}")
    requires = table.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(k, str) for k in requires):
        raise AblateError(f"{path} [study]: requires must be a list of field names")
    header["requires"] = tuple(_checked_key(k, f"{path} [study] requires") for k in requires)
    return header


def _defaults(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        for key, value in raw.get(section, {}).items():
            owner = FIELD_SECTION.get(key)
            if owner != section:
                reason = (f"{key!r} belongs in [{owner}], not [{section}]" if owner
                          else str(unknown_key_error(key, [f.name for f in fields(cls)])))
                raise AblateError(f"{path} [{section}]: {reason}")
            _check_per_run(key, f"{path} [{section}]")
            defaults[key] = value
    return defaults


def _resolve_variants(tables: dict[str, Any], defaults: dict[str, Any],
                      path: Path) -> dict[str, Variant]:
    resolved: dict[str, Variant] = {}

    def visit(name: str, chain: list[str]) -> Variant:
        if name in resolved:
            return resolved[name]
        if name in chain:
            raise AblateError(f"{path}: variants inherit in a cycle: {' -> '.join([*chain, name])}")
        where = f"{path} variant {name}"
        table = tables[name]
        if not _VARIANT_NAME.match(name) or not isinstance(table, dict):
            raise AblateError(f"{where}: a variant is a [variants.NAME] table, NAME made of "
                              "letters, digits, '_' or '-'")
        label, parent = table.get("label"), table.get("base")
        if not isinstance(label, str) or not label.strip():
            raise AblateError(f'{where}: needs label = "..." (a short human description)')
        if parent is not None and (not isinstance(parent, str) or parent not in tables):
            raise AblateError(f"{where}: base {_unknown('variant', parent, list(tables))}")
        inherited = visit(parent, [*chain, name]).overrides if parent is not None else defaults
        changes = _changes(table, where)
        overrides = {**inherited, **changes}
        _validate(overrides, where, set(changes))
        resolved[name] = Variant(name, label, parent, overrides, changes)
        return resolved[name]

    for name in tables:
        visit(name, [])
    return {name: resolved[name] for name in tables}


def _changes(table: dict[str, Any], where: str) -> dict[str, Any]:
    """A variant's own keys, flattened: ``stn = true`` and ``model.stn = true`` are the same."""
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in VARIANT_KEYS:
            continue
        pairs = ([(f"{key}.{k}", v) for k, v in value.items()] if isinstance(value, dict)
                 else [(key, value)])
        for dotted, item in pairs:
            name = _checked_key(dotted, where)
            if name in changes:
                raise AblateError(f"{where}: {name!r} is set twice")
            changes[name] = item
    return changes


def _checked_key(key: str, where: str) -> str:
    try:
        name = _flat_key(key)
    except ValueError as exc:
        raise AblateError(f"{where}: {exc}") from None
    _check_per_run(name, where)
    return name


def _flat_key(key: str) -> str:
    """``stn`` or ``model.stn`` -> ``stn``; anything else is an unknown key."""
    section, _, name = str(key).rpartition(".")
    if name not in FIELD_SECTION:
        raise unknown_key_error(str(key), list(FIELD_SECTION))
    if section and section != FIELD_SECTION[name]:
        raise ValueError(f"unknown config key {key!r}; {name} is in the "
                         f"{FIELD_SECTION[name]} section: write {name} or "
                         f"{FIELD_SECTION[name]}.{name}")
    return name


def _check_per_run(key: str, where: str) -> None:
    if key in PER_RUN_KEYS:
        raise AblateError(f"{where}: {key} is chosen per run (--seed/--seeds), not in a study file")


def _validate(overrides: dict[str, Any], where: str, own: set[str],
              in_section: bool = False) -> None:
    """Build the config once so a bad value fails at load time, naming the key."""
    try:
        RunConfig().with_overrides(overrides)
    except (ValueError, TypeError) as exc:
        named = [k for k in overrides if re.search(rf"(?<![\w.]){re.escape(k)}\b", str(exc))]
        named.sort(key=lambda k: k not in own)  # blame this variant's own keys first
        if named and in_section:
            where = f"{where} [{FIELD_SECTION[named[0]]}] {named[0]}"
        elif named:
            where = f"{where}, key {named[0]!r}"
        raise AblateError(f"{where}: {exc}") from None
