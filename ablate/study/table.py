"""The ablation's switch matrix and ``ablate study show``'s table of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.markup import escape
from rich.table import Table

from model.config import RunConfig

if TYPE_CHECKING:
    from ablate.study.study import Study


def variant_switches(config: RunConfig) -> dict[str, str | bool]:
    """The ablation's switch matrix: False when off, True or a short detail when on."""
    m, loss = config.model, config.loss
    return {
        "shared_backbone": m.shared_backbone,
        "stn": _part(m.stn) or False,
        "aligner": f"{m.aligner}@{m.offset_stage}" if _part(m.aligner) else False,
        "fusion": m.fusion,
        "local_count": f"{loss.local_count:g}" if loss.local_count > 0 else False,
        # the domain-loss weight the head reverses
        "domain_head": f"{loss.domain:g}" if _part(m.domain_head) else False,
    }


# (column header, config keys behind it (today's and earlier releases'), cell text)
_COLUMNS = (
    ("backbone", ("backbone", "pretrained"), lambda c: c.model.backbone),
    ("shared", ("shared_backbone", "modality_norm"), lambda c: _shared(c.model)),
    ("STN", ("stn", "stn_mode", "stn_max_shift", "stn_max_rotation", "stn_max_scale"),
     lambda c: _part(c.model.stn) or "-"),
    ("offset", ("aligner", "offset_align", "offset_mode", "offset_stage"),
     lambda c: f"{c.model.aligner}@{c.model.offset_stage}" if _part(c.model.aligner) else "-"),
    ("fusion", ("fusion",), lambda c: c.model.fusion),
    ("local count", ("local_count", "local_count_levels", "local_count_level_weights"),
     lambda c: _weight(c.loss.local_count)),
    ("feat L1", ("feat_l1",), lambda c: _weight(c.loss.feat_l1)),
    ("TV", ("tv",), lambda c: _weight(c.loss.tv)),
    ("GRL/domain", ("domain_head", "grl", "grl_lambda", "domain"),
     lambda c: f"{c.model.grl_lambda:g}/{c.loss.domain:g}" if _part(c.model.domain_head)
     else f"-/{c.loss.domain:g}" if c.loss.domain > 0 else "-"),
    ("multiscale", ("multiscale_head", "multiscale", "multiscale_weight"),
     lambda c: f"{c.loss.multiscale_weight:g}" if _part(c.model.multiscale_head) else "-"),
)


def variant_table(study: Study) -> Table:
    """One row per variant with its switches; cells the variant itself changes are bold."""
    title = f"{study.name}: {study.description}" if study.description else study.name
    table = Table(title=escape(title), box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  collapse_padding=True,
                  caption=f"reference row: {study.baseline}; checkpoint selection: val "
                  f"{study.select_metric}; GRL/domain is lambda/weight")
    table.add_column("variant", no_wrap=True)
    table.add_column("label", min_width=16)  # the one free-text column: it wraps, not the rest
    table.add_column("base", no_wrap=True)
    for header, _, _ in _COLUMNS:  # headers break at spaces and slashes, cells never
        table.add_column(header.replace(" ", "\n").replace("/", "/\n"), no_wrap=True)
    for variant in study.variants.values():
        config = RunConfig().with_overrides({**variant.overrides, "seed": 0})
        cells = [
            f"[bold]{text}[/bold]" if set(keys) & set(variant.changes) else text
            for _, keys, cell in _COLUMNS
            for text in [cell(config)]
        ]
        table.add_row(variant.name, escape(variant.label), variant.parent or "", *cells)
    return table


def condition_table(study: Study) -> Table:
    """One row per condition: the settings it applies over every variant, and its dataset."""
    table = Table(title=escape(f"{study.name}: conditions (each variant runs in each)"),
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  caption="first condition: the reference of the report's differences")
    for column in ("condition", "dataset", "settings"):
        table.add_column(column, no_wrap=column != "settings")
    for condition in study.conditions.values():
        settings = ", ".join(f"{k} = {v!r}" for k, v in condition.settings.items())
        table.add_row(condition.name, condition.dataset or "-", escape(settings or "-"))
    return table


def _part(name: str) -> str:
    """A part's registry name, or "" when it is off."""
    return "" if name == "none" else name


def _shared(model) -> str:
    """"yes" for a shared backbone, "sep. BN" when each modality keeps its own batch norm."""
    if not model.shared_backbone:
        return "-"
    return "sep. BN" if model.modality_norm == "separate" else "yes"


def _on(flag: bool) -> str:
    return "yes" if flag else "-"


def _weight(value: float) -> str:
    return f"{value:g}" if value > 0 else "-"
