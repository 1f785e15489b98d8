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

Conditions are a second axis (``[conditions.NAME]``, see ``ablate.study.conditions``):
settings applied on top of every variant, so ``study run`` trains variants x conditions x
seeds.

``[study] plugins = ["my_lab.aligners", "./align.py"]`` imports a researcher's own parts
(``ablate.plugins``) before any value is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ablate.errors import PluginError, StudyError
from ablate.plugins import load_plugins
from ablate.study.conditions import CONDITION_KEYS, DATASET_HINTS, Condition, parse_conditions
from ablate.study.file import (
    NAME_PATTERN,
    PER_RUN_KEYS,
    check_per_run,
    checked_key,
    read_toml,
    table_changes,
    today_keys,
    validate,
)
from ablate.study.table import variant_switches, variant_table
from model import config as config_module
from model.config import SECTIONS, RunConfig, unknown_key_error
from model.config.legacy import section_of
from model.config.validation import SetText
from model.registry import unknown_choice as unknown  # one wording for every unknown name

__all__ = ["CONDITION_KEYS", "DATASET_HINTS", "PER_RUN_KEYS", "Condition", "Study", "Variant",
           "load_study", "variant_switches", "variant_table"]

TOP_LEVEL = ("study", *SECTIONS, "variants", "conditions", "tune")
STUDY_KEYS = ("name", "description", "baseline", "select_metric", "requires", "plugins")
VARIANT_KEYS = ("label", "base")


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
    plugins: tuple[str, ...] = ()  # resolved plugin specs (module names, absolute .py paths)
    conditions: dict[str, Condition] = field(default_factory=dict)  # file order; {}: none

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            raise StudyError(f"{self.path}: {unknown('variant', name, list(self.variants))}")
        return self.variants[name]

    def condition(self, name: str) -> Condition:
        if name not in self.conditions:
            known = list(self.conditions)
            if not known:
                raise StudyError(f"{self.path} has no conditions; {name!r} names none "
                                 "(add a [conditions.NAME] table)")
            raise StudyError(f"{self.path}: {unknown('condition', name, known)}")
        return self.conditions[name]

    def config(self, variant_name: str, seed: int, extra: dict[str, Any] | None = None,
               condition: str | None = None) -> RunConfig:
        """Defaults, the variant's inherited overrides, the condition's settings, ``extra``
        (CLI options), then the seed.

        ``extra`` takes flat or dotted keys; strings (from ``--set key=value``) are parsed into
        the field's type. None is applied as a value (it is valid for data_path and pretrained).
        """
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise StudyError(f"seed={seed!r} is not valid; it must be an integer >= 0")
        overrides = dict(self.variant(variant_name).overrides)
        if condition:
            overrides.update(self.condition(condition).settings)
        for key, value in (extra or {}).items():
            name = checked_key(key, "--set")
            # CLI text, parsed by the field's type; a study file's strings are not parsed
            overrides[name] = SetText(value) if isinstance(value, str) else value
        self._check_required(overrides, condition)
        overrides["seed"] = seed
        try:
            return RunConfig().with_overrides(overrides)
        except (ValueError, TypeError) as exc:
            where = f" condition {condition}" if condition else ""
            raise StudyError(f"{self.path} variant {variant_name}{where}: {exc}") from None

    def _check_required(self, overrides: dict[str, Any], condition: str | None) -> None:
        """``requires`` holds per condition: each condition's run needs its own value."""
        missing = [key for key in self.requires if overrides.get(key) is None]
        if not missing:
            return
        if condition:
            options = ", ".join(f"--data-path {condition}=PATH" if key == "data_path"
                                else f"--set {key}=..." for key in missing)
            raise StudyError(f"{self.path} condition {condition} needs {', '.join(missing)}: "
                             f"pass {options}, or set it in [conditions.{condition}]")
        options = ", ".join(f"--{key.replace('_', '-')}" for key in missing)
        raise StudyError(f"{self.path} needs {', '.join(missing)}: pass {options}")

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
            "plugins": list(self.plugins),
            "conditions": [{"name": c.name, "settings": c.settings, "dataset": c.dataset}
                           for c in self.conditions.values()],
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
            plugins=tuple(record.get("plugins", ())),
            conditions={c["name"]: Condition(c["name"], dict(c["settings"]), c.get("dataset"))
                        for c in record.get("conditions", [])},
        )

    def select(self, names: str | list[str] | None) -> list[str]:
        """Parse "A,C,G" (or a list of such strings); None means every variant. Study order."""
        if names is None:
            return list(self.variants)
        items = [names] if isinstance(names, str) else list(names)
        wanted = {part.strip() for item in items for part in item.split(",") if part.strip()}
        if not wanted:
            raise StudyError(f"no variants selected; choose from {', '.join(self.variants)}")
        for name in sorted(wanted):
            self.variant(name)
        return [name for name in self.variants if name in wanted]

    def select_conditions(self, names: list[str] | None) -> list[str]:
        """Parse ``--condition`` values ("a,b" or repeated); None means every condition, and
        [""] (the one unnamed condition) for a study without any. Study order."""
        if names is None:
            return list(self.conditions) or [""]
        wanted = {part.strip() for item in names for part in item.split(",") if part.strip()}
        for name in sorted(wanted):
            self.condition(name)
        if not wanted:
            raise StudyError(f"no conditions selected; choose from {', '.join(self.conditions)}")
        return [name for name in self.conditions if name in wanted]


def load_study(path: str | Path, plugins: tuple[str, ...] | list[str] = ()) -> Study:
    """Read, validate and resolve a study file; every problem is one StudyError line.

    ``plugins`` (``--plugin``, relative to the working directory) and the file's own
    ``[study] plugins`` (relative to its folder) are imported before any value is checked,
    so the parts they register are valid names here.
    """
    path = Path(path)
    raw = read_toml(path)
    for key, value in raw.items():
        if key not in TOP_LEVEL:
            raise StudyError(f"{path}: {unknown('top-level table', key, list(TOP_LEVEL))}")
        if not isinstance(value, dict):
            raise StudyError(f"{path}: {key!r} must be a table, written [{key}]")
    loaded = _plugins(raw.get("study") or {}, path, plugins)
    header = _header(raw.get("study"), path)
    defaults = _defaults(raw, path)
    metric = header["select_metric"] or defaults.get("select_metric", "game0")
    if defaults.setdefault("select_metric", metric) != metric:
        raise StudyError(
            f"{path}: [study] select_metric={metric!r} and [train] select_metric="
            f"{defaults['select_metric']!r} disagree; keep only the [study] one"
        )
    validate(defaults, str(path), set(defaults), in_section=True)
    tables = raw.get("variants", {})
    if not tables:
        raise StudyError(f"{path}: no variants; add at least one [variants.NAME] table")
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
        plugins=loaded,
        conditions=parse_conditions(raw.get("conditions", {}), defaults, path),
    )


def _plugins(table: dict[str, Any], path: Path, given: tuple[str, ...] | list[str]) -> tuple:
    """Import the command line's plugins, then the file's; their resolved specs, in order."""
    loaded = load_plugins(given)
    listed = table.get("plugins", [])
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise StudyError(f"{path} [study]: plugins must be a list of module names or .py files, "
                         'e.g. plugins = ["./align.py"]')
    try:
        loaded += load_plugins(listed, base=path.resolve().parent)
    except PluginError as exc:
        raise PluginError(f"{path} [study] plugins: {exc}") from None
    return tuple(dict.fromkeys(loaded))  # a plugin given twice is imported and kept once


def _header(table: dict[str, Any] | None, path: Path) -> dict[str, Any]:
    if table is None:
        raise StudyError(f'{path}: missing [study] table; it needs at least name = "..."')
    for key in table:
        if key not in STUDY_KEYS:
            raise StudyError(f"{path} [study]: {unknown('key', key, list(STUDY_KEYS))}")
    header = {"name": table.get("name"), "description": table.get("description", ""),
              "baseline": table.get("baseline", "BM"),
              "select_metric": table.get("select_metric")}  # None: [train]'s, else game0
    for key, value in header.items():
        if key == "select_metric" and value is None:
            continue
        if not isinstance(value, str) or (key != "description" and not value.strip()):
            raise StudyError(f"{path} [study]: {key} must be a non-empty string, got {value!r}")
    valid = config_module.SELECT_METRICS  # read now: plugins may have added a metric
    if header["select_metric"] not in (None, *valid):
        raise StudyError(f"{path} [study]: select_metric={header['select_metric']!r} is not "
                         f"valid; choose one of {', '.join(valid)}")
    requires = table.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(k, str) for k in requires):
        raise StudyError(f"{path} [study]: requires must be a list of field names")
    header["requires"] = tuple(checked_key(k, f"{path} [study] requires") for k in requires)
    return header


def _defaults(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        for key, value in raw.get(section, {}).items():
            owner = section_of(key)
            if owner != section:
                reason = (f"{key!r} belongs in [{owner}], not [{section}]" if owner
                          else str(unknown_key_error(key, [f.name for f in fields(cls)])))
                raise StudyError(f"{path} [{section}]: {reason}")
            check_per_run(key, f"{path} [{section}]")
            defaults[key] = value
    return today_keys(defaults, {}, str(path))


def _resolve_variants(tables: dict[str, Any], defaults: dict[str, Any],
                      path: Path) -> dict[str, Variant]:
    resolved: dict[str, Variant] = {}

    def visit(name: str, chain: list[str]) -> Variant:
        if name in resolved:
            return resolved[name]
        if name in chain:
            raise StudyError(f"{path}: variants inherit in a cycle: {' -> '.join([*chain, name])}")
        where = f"{path} variant {name}"
        table = tables[name]
        if not NAME_PATTERN.match(name) or not isinstance(table, dict):
            raise StudyError(f"{where}: a variant is a [variants.NAME] table, NAME made of "
                              "letters, digits, '_' or '-'")
        label, parent = table.get("label"), table.get("base")
        if not isinstance(label, str) or not label.strip():
            raise StudyError(f'{where}: needs label = "..." (a short human description)')
        if parent is not None and (not isinstance(parent, str) or parent not in tables):
            raise StudyError(f"{where}: base {unknown('variant', parent, list(tables))}")
        inherited = visit(parent, [*chain, name]).overrides if parent is not None else defaults
        changes = today_keys(table_changes(table, where, VARIANT_KEYS), inherited, where)
        overrides = {**inherited, **changes}
        validate(overrides, where, set(changes))
        resolved[name] = Variant(name, label, parent, overrides, changes)
        return resolved[name]

    for name in tables:
        visit(name, [])
    return {name: resolved[name] for name in tables}
