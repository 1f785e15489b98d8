"""``ablate data``: inspect a dataset on disk, or write the built-in synthetic one."""

import typer

app = typer.Typer(help="Check a dataset or write the synthetic one.", no_args_is_help=True)
