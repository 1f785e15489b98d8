"""Optuna search over a study's [tune] space; every trial is a run in the runs database.

``space`` parses and validates the [tune] table, ``objective`` turns a trial into a run,
``storage`` picks and opens Optuna's storage, ``search`` builds the sampler, pruner and study,
``workers`` runs several processes, ``summary`` holds the result (``tune_summary``).
"""

from ablate.tune.space import TuneSpec, parse_tune
from ablate.tune.summary import tune_summary

__all__ = ["TuneSpec", "parse_tune", "tune_summary"]
