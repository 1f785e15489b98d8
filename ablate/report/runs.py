"""Which runs a report shows, and as which rows: the study's variants in study order, each
with its seeds, then tuned runs as rows of their own, each knowing its parent in the chain."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ablate.db import Run, RunStore
from ablate.errors import StudyError
from ablate.study.study import Study, load_study
from model.config import RunConfig
from model.metrics import selection_score

TUNED_SUFFIXES = ("-tune", "-best")


@dataclass
class VariantRow:
    key: str  # the row's name: "C", "G-best", "G-tune"
    label: str
    parent: str | None  # the row it is compared with ("which change moved which metric")
    runs: list[Run]  # one per seed, all with one config
    tuned: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        """The study variant this row belongs to ("G" for "G-best")."""
        for suffix in TUNED_SUFFIXES:
            if self.key.endswith(suffix):
                return self.key.removesuffix(suffix)
        return self.key


def resolve_study(store: RunStore, study: str | None) -> tuple[str, Study | None, list[str]]:
    """The study's name in the database, its definition (variant order, labels, the ``base``
    chain) and notes. ``study`` is a study file (its definition is used), a name (the
    definition recorded in the database), or None when the database holds exactly one study."""
    if study is not None and (study.endswith(".toml") or Path(study).is_file()):
        loaded = load_study(study)
        return loaded.name, loaded, []
    if study is None:
        names = store.study_names()
        if not names:
            raise StudyError(f"{store.display_url} holds no runs; run a study first: "
                             "ablate study run studies/demo.toml --seeds 3")
        if len(names) > 1:
            raise StudyError(f"{store.display_url} holds several studies ({', '.join(names)}); "
                             f"name one: ablate report {names[0]}")
        study = names[0]
    store.check_study(study)
    record = store.study_record(study)
    if record is not None:
        return study, Study.from_record(record), []
    if not store.list_runs(study):
        return study, None, []  # variant_rows says there is nothing to report
    return study, None, [
        f"the definition of study {study!r} is not recorded in {store.display_url} (its runs "
        "were made before ablate recorded it): variants are in the order their runs were "
        "created and each is compared with the one before; rerun `ablate study run FILE` "
        "to record it (its done runs are skipped, nothing is trained again)"]


def variant_rows(store: RunStore, name: str, study: Study | None,
                 best_trials: set[int] = frozenset(),
                 condition: str | None = None) -> list[VariantRow]:
    """Rows in study order; a study without done runs is an error that says how to run it.
    ``best_trials``: run ids the tuner reported as its best trials; ``condition``: only the
    runs of that study condition (None: every run)."""
    runs = store.list_runs(name, condition=condition)
    done = [run for run in runs if run.status == "done"]
    if not done:
        where = study.path if study is not None else f"studies/{name}.toml"
        others = Counter(run.status for run in runs)
        have = f" ({', '.join(f'{n} {s}' for s, n in sorted(others.items()))})" if runs else ""
        raise StudyError(f"study {name!r} has no done runs in {store.display_url}{have}; "
                          f"run it with: ablate study run {where} --seeds 3")
    buckets: dict[str, list[Run]] = defaultdict(list)
    for run in done:
        buckets[_row_key(run)].append(run)
    rows = [_row(key, bucket, study, best_trials) for key, bucket in buckets.items()]
    order = list(study.variants) if study is not None else []
    first_seen: dict[str, int] = {}
    for row in rows:
        first = min(run.id for run in row.runs)
        first_seen[row.base] = min(first_seen.get(row.base, first), first)

    def position(row: VariantRow) -> tuple:
        group = (order.index(row.base), 0) if row.base in order else (len(order),
                                                                       first_seen[row.base])
        return *group, row.tuned, row.key

    rows.sort(key=position)
    _link_parents(rows, study)
    return rows


def _row_key(run: Run) -> str:
    if run.trial_number is not None and not run.variant.endswith(TUNED_SUFFIXES):
        return f"{run.variant}-tune"
    return run.variant


def _row(key: str, runs: list[Run], study: Study | None, best_trials: set[int]) -> VariantRow:
    tuned = key.endswith(TUNED_SUFFIXES) or any(run.trial_number is not None for run in runs)
    notes: list[str] = []
    trials = [run for run in runs if run.trial_number is not None]
    if trials:
        chosen = [run for run in trials if run.id in best_trials]
        best = chosen[0] if chosen else _best_trial(trials)
        runs = [best]
        by = ("the tuner's objective" if chosen else
              f"val {best.config['train']['select_metric']}")
        label = f"tuned: best of {len(trials)} done trials (#{best.trial_number}, by {by})"
    else:
        runs, notes = _one_config(key, runs)
        variant = study.variants.get(key) if study is not None else None
        label = variant.label if variant is not None else (runs[-1].label or "")
    return VariantRow(key, label, None, runs, tuned, notes)


def _best_trial(trials: list[Run]) -> Run:
    """Chosen on val, never on test: the trial a tuner would report."""
    def score(run: Run) -> float:
        return selection_score(run.metrics("val"), run.config["train"]["select_metric"])
    return min(trials, key=lambda run: (score(run), run.id))


def _one_config(key: str, runs: list[Run]) -> tuple[list[Run], list[str]]:
    """The newest config's runs, newest run per seed: seeds of different configs (another
    --epochs, an edited study file) must not be averaged together."""
    newest = _without_seed(max(runs, key=lambda run: run.id))
    kept = [run for run in runs if _without_seed(run) == newest]
    per_seed = {run.seed: run for run in sorted(kept, key=lambda run: run.id)}
    notes = []
    if len(kept) < len(runs):
        notes.append(f"{key}: {len(runs) - len(kept)} done run(s) of an older config left out; "
                     "the newest config is shown")
    if len(per_seed) < len(kept):
        notes.append(f"{key}: reruns of a seed counted once (the newest)")
    return sorted(per_seed.values(), key=lambda run: run.seed), notes


def _without_seed(run: Run) -> str:
    """The run's experiment as text without its seed: what makes two runs seeds of one
    config. That is the config's identity (``RunConfig.identity``, which the config hash is
    made of: no execution settings such as ``on_device``, which change no result), or the
    stored config where it no longer parses."""
    try:
        config = RunConfig.from_dict(run.config).identity()
    except (ValueError, TypeError):
        config = run.config
    config.get("train", {}).pop("seed", None)
    return json.dumps(config, sort_keys=True, default=list)


def _link_parents(rows: list[VariantRow], study: Study | None) -> None:
    """Parent = the nearest ``base`` ancestor with a row; without a study file, the previous
    plain row. A tuned row's parent is the variant it tunes."""
    present = {row.key for row in rows}
    previous = None
    for row in rows:
        if row.tuned:
            row.parent = row.base if row.base in present and row.base != row.key else previous
            continue
        if study is not None and row.key in study.variants:
            parent = study.variants[row.key].parent
            while parent is not None and parent not in present:
                parent = study.variants[parent].parent
            row.parent = parent
        else:
            row.parent = previous
        previous = row.key
