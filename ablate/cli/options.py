"""Options shared by ``ablate run``, ``ablate study run`` and ``ablate tune``, declared once.

``@with_run_options`` adds them to a command's signature and hands the command one frozen
``RunOptions``, so the three commands neither repeat the declarations nor pass eight values
around.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ablate.errors import DataError, UsageError
from ablate.study.study import PER_RUN_KEYS, Study

if TYPE_CHECKING:
    from ablate.run.hooks import Hooks

DataPath = Annotated[Path | None, typer.Option(
    "--data-path", help="RGBT-CC or DroneRGBT root. Default: the built-in synthetic data.")]
# The training commands' --data-path: one root for every run, or one per study condition.
RunDataPaths = Annotated[list[str] | None, typer.Option(
    "--data-path", help="RGBT-CC or DroneRGBT root, e.g. --data-path ~/RGBT-CC; in a study "
    "with conditions, NAME=PATH sets one condition's (repeatable), e.g. --data-path "
    "rgbtcc=/data/RGBT-CC --data-path drone=/data/DroneRGBT. Default: the built-in "
    "synthetic data.")]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Training epochs.")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", help="Pairs per training step.")]
Lr = Annotated[float | None, typer.Option("--lr", help="Learning rate of heads and alignment.")]
BackboneLr = Annotated[float | None, typer.Option("--backbone-lr",
                                                  help="Learning rate of the backbone.")]
SaveRoot = Annotated[Path, typer.Option(
    "--save-dir", help="Root of the per-run checkpoint directories.")]
Ratio = Annotated[int | None, typer.Option("--downsample-ratio",
                                           help="Output stride of the density map: 8, 16 or 32.")]
Device = Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")]
Db = Annotated[str | None, typer.Option(
    "--db", help="Runs database: a SQLite file or any SQLAlchemy URL. Default: ./runs.db.")]
Sets = Annotated[list[str] | None, typer.Option(
    "--set", help="Override any config field, e.g. --set stn=true (repeatable).")]
Plugins = Annotated[list[str] | None, typer.Option(
    "--plugin", help="Import this module or .py file first, e.g. to register an aligner "
    "(repeatable).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Log = Annotated[list[str] | None, typer.Option(
    "--log", help="Log every run live (repeatable): tensorboard (loss terms, val metrics, "
    "learning rate, the viz pictures every few epochs) into --log-dir/<study>/<variant>/seed<N>; "
    "mlflow (the same, one MLflow run per run, params and tags) to MLFLOW_TRACKING_URI, else to "
    "--log-dir/mlflow. E.g. --log tensorboard --log mlflow.")]
LogDir = Annotated[Path, typer.Option(
    "--log-dir", help="Root of the live logs; open one study's with: tensorboard --logdir "
    "runs/tensorboard/<study>. --log mlflow without MLFLOW_TRACKING_URI keeps its store here: "
    "mlflow ui --backend-store-uri sqlite:///runs/tensorboard/mlflow/mlflow.db.")]


@dataclass(frozen=True)
class RunOptions:
    """The shared options as given; None means "as the study file says"."""

    data_path: Path | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    backbone_lr: float | None = None
    downsample_ratio: int | None = None
    device: str | None = None
    db: str | None = None
    sets: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    quiet: bool = False
    log: tuple[str, ...] = ()
    log_dir: Path = Path("runs/tensorboard")
    # --data-path NAME=PATH: (condition, root) pairs, for ``ablate study run`` only.
    condition_paths: tuple[tuple[str, Path], ...] = ()

    def overrides(self) -> dict[str, Any]:
        """The options the user gave, as config overrides; ``--set`` wins over named options."""
        if self.condition_paths:
            name, path = self.condition_paths[0]
            raise UsageError(f"--data-path {name}={path} sets one study condition's data: only "
                             "`ablate study run` takes NAME=PATH; give --data-path PATH here")
        return self._overrides()

    def study_overrides(self, study: Study) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The overrides of every run, and those of each condition (``--data-path NAME=PATH``;
        a NAME that is not one of ``study``'s conditions is an error)."""
        per_condition: dict[str, dict[str, Any]] = {}
        for name, path in self.condition_paths:
            if name not in study.conditions:
                known = ", ".join(study.conditions) or "none"
                raise UsageError(f"--data-path {name}={path}: {study.path} has no condition "
                                 f"{name!r}; its conditions: {known}")
            per_condition[name] = {"data_path": checked_root(path, f"{name}={path}")}
        return self._overrides(), per_condition

    def _overrides(self) -> dict[str, Any]:
        path = self.data_path
        named = {
            "data_path": checked_root(path, str(path)) if path is not None else None,
            "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
            "backbone_lr": self.backbone_lr, "downsample_ratio": self.downsample_ratio,
            "device": self.device,
        }
        return {**{k: v for k, v in named.items() if v is not None}, **parse_sets(self.sets)}

    def live_logging(self) -> Hooks | None:
        """The hooks of ``--log`` (None without it); an unknown logger is a UsageError."""
        from ablate.live.tensorboard import live_logging  # imports the viz stack: only when asked

        return live_logging(self.log, self.log_dir) if self.log else None


def checked_root(path: Path, shown: str) -> str:
    """A dataset root as the config stores it: absolute, so that eval, resume and the config
    hash do not depend on the cwd; a missing root or unknown layout fails before any claim."""
    if not path.exists():
        raise DataError(f"--data-path {shown} does not exist")
    from model.data import detect_format  # model.data imports torch (see ablate.cli.app)

    detect_format(path)
    return str(path.resolve())


def split_data_paths(values: list[str] | None) -> tuple[Path | None, tuple[tuple[str, Path], ...]]:
    """``--data-path`` values: one plain root (every run), or NAME=PATH pairs (one condition
    each). A value is a pair when it has '=' after a condition-like NAME and is no
    existing path itself."""
    plain: list[Path] = []
    named: dict[str, Path] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if sep and _CONDITION_NAME.match(name) and rest and not Path(value).exists():
            if name in named:
                raise UsageError(f"--data-path {name}=... is given twice")
            named[name] = Path(rest).expanduser()
        else:
            plain.append(Path(value).expanduser())
    if len(plain) > 1:
        raise UsageError(f"--data-path is given {len(plain)} times; give one root, or NAME=PATH "
                         "per study condition")
    if plain and named:
        raise UsageError(f"--data-path {plain[0]} (every run) and NAME=PATH (one condition) "
                         "cannot be mixed; give NAME=PATH for each condition")
    return (plain[0] if plain else None), tuple(named.items())


_CONDITION_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # as study.py's variant and condition names

# The Typer declaration of each RunOptions field given on the command line.
_DECLARED = {"data_path": RunDataPaths, "epochs": Epochs, "batch_size": BatchSize, "lr": Lr,
             "backbone_lr": BackboneLr, "downsample_ratio": Ratio, "device": Device, "db": Db,
             "sets": Sets, "plugins": Plugins, "quiet": Quiet, "log": Log, "log_dir": LogDir}


def with_run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command(..., options: RunOptions)`` as a Typer command taking the shared options."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    own = [p.replace(kind=keyword)
           for name, p in inspect.signature(command, eval_str=True).parameters.items()
           if name != "options"]
    # Typer's repeatable options default to None, not to RunOptions' empty tuple.
    declared = [f for f in fields(RunOptions) if f.name in _DECLARED]
    shared = [inspect.Parameter(f.name, keyword, annotation=_DECLARED[f.name],
                                default=None if f.default == () else f.default)
              for f in declared]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        given = {f.name: kwargs.pop(f.name) for f in declared}
        for name in ("sets", "plugins", "log"):
            given[name] = tuple(given[name] or ())
        given["data_path"], given["condition_paths"] = split_data_paths(given["data_path"])
        return command(**kwargs, options=RunOptions(**given))

    wrapper.__signature__ = inspect.Signature(own + shared)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper


def parse_sets(pairs: tuple[str, ...] | list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {pair!r} is not key=value (e.g. --set stn=true)")
        flat = key.rpartition(".")[2]
        if flat in PER_RUN_KEYS:
            raise UsageError(f"--set {pair}: {flat} is chosen per run: use {PER_RUN_KEYS[flat]}")
        out[key] = value.strip()
    return out
