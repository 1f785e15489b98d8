"""Optuna search over a study's [tune] space; every trial is a run in the runs database.

``space`` parses and validates the [tune] table, ``options`` holds what ``ablate tune`` was
asked (``TuneOptions``), ``session`` is the library the CLI calls (``search``, ``confirm``),
``objective`` turns a trial into a run through the run pipeline, ``storage`` picks and opens
Optuna's storage (and knows where its journal lives: ``journal_path``), ``search`` builds the
sampler, pruner and study, ``workers`` runs several processes, ``summary`` holds the result
(``tune_summary``).
"""

from ablate.tune.options import TuneOptions
from ablate.tune.space import TuneSpec, parse_tune
from ablate.tune.summary import tune_summary

__all__ = ["TuneOptions", "TuneSpec", "parse_tune", "tune_summary"]
