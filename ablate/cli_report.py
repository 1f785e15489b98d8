"""``ablate report`` and ``ablate viz`` (being built)."""

import typer


def report_command(study: str = typer.Argument(None, help="Study name.")):
    """Render the results table against Broker-Modality.

    Example: ablate report demo --format html
    """
    raise NotImplementedError("ablate report is not built yet")


def viz_command(run_id: int = typer.Argument(..., help="Run id.")):
    """Write the debugging pictures of one run.

    Example: ablate viz 7 --out reports/viz
    """
    raise NotImplementedError("ablate viz is not built yet")
