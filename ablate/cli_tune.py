"""``ablate tune``: Optuna search over loss weights and learning rates (being built)."""

import typer


def tune_command(study_file: str = typer.Argument(..., help="Study file with a [tune] table.")):
    """Search the [tune] space of a study with Optuna.

    Example: ablate tune studies/demo.toml --n-trials 10
    """
    raise NotImplementedError("ablate tune is not built yet")
