"""The ``ablate`` command: the Typer app (``app.py``), one module per command or command group,
the options they share (``options.py``) and the one place that turns an error into an exit code
(``errors.py``). Commands import torch, the runs database, Optuna and matplotlib when they run,
never at start-up."""
