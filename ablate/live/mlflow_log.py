"""Live logging to MLflow (``--log mlflow``): every run this worker trains as an MLflow run,
written while it trains.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set (a server, a database), else a local
SQLite store under ``--log-dir`` (``<log-dir>/mlflow/mlflow.db``, artifacts beside it)::

    MLFLOW_TRACKING_URI=sqlite:///runs/mlflow.db ablate study run studies/demo.toml --log mlflow
    mlflow ui --backend-store-uri sqlite:///runs/mlflow.db

One experiment per study, one run per (variant, seed, condition), named ``A/seed0`` or
``A/seed0/night``. Params: the run's flat config (the whole of it as the ``config.json``
artifact); tags: study, variant, seed, condition, config_hash, ablate_run_id. Metrics, step =
epoch, named as the TensorBoard tags (``ablate.live.tags``); the test metrics at the end; the
pictures of ``ablate.live.pictures`` as ``val_image/<name>/epoch0003.png``. A run ends
FINISHED, FAILED, or KILLED when a tuner pruned it.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ablate.errors import UsageError
from ablate.live.pictures import IMAGE_EVERY, FirstValPictures, picture_epoch
from ablate.live.tags import scalars
from ablate.paths import safe_name
from ablate.run.hooks import Hooks, RunOutcome
from ablate.study.plan import RunSpec
from model.config import RunConfig

MISSING = "--log mlflow needs the mlflow package: pip install 'ablate[mlflow]' (or mlflow-skinny)"
try:  # only --log mlflow imports this module, so a missing package is that option's error
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
except ImportError:
    raise UsageError(MISSING) from None

MAX_PARAM = 500  # characters of a param value that every MLflow server version accepts
MAX_TAG = 5000  # characters of the error tag; servers accept 5000 or more
BATCH = 100  # params per log_batch call, MLflow's limit
STATUS = {"done": "FINISHED", "failed": "FAILED", "pruned": "KILLED"}


def mlflow_hooks(log_dir: Path, image_every: int = IMAGE_EVERY) -> MlflowHooks:
    """Hooks logging to ``MLFLOW_TRACKING_URI``, else to ``<log_dir>/mlflow``; a store that
    cannot be reached is a UsageError now, before any run is claimed."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    artifacts = None
    if not uri:
        folder = Path(log_dir).resolve() / "mlflow"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--log-dir {log_dir}: cannot create {folder}: {exc}") from None
        uri, artifacts = f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts"
    try:
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    # MLflow raises its own, requests' or SQLAlchemy's errors, depending on the store.
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"--log mlflow: the tracking store {uri} cannot be used: {first}"
        raise UsageError(message) from None
    return MlflowHooks(client, image_every, artifacts)


def run_name(spec: RunSpec) -> str:
    """``A/seed0``, with ``/<condition>`` in a study with conditions."""
    return f"{spec.variant}/seed{spec.seed}" + (f"/{spec.condition}" if spec.condition else "")


def run_params(config: RunConfig) -> dict[str, str]:
    """The flat config as MLflow params: strings of at most ``MAX_PARAM`` characters."""
    return {key: _cut(str(value), MAX_PARAM) for key, value in config.flat().items()}


def run_tags(spec: RunSpec, outcome: RunOutcome) -> dict[str, str]:
    tags = {"study": spec.study, "variant": spec.variant, "seed": str(spec.seed),
            "config_hash": spec.config_hash, "ablate_run_id": str(outcome.run_id),
            "action": outcome.action}
    if spec.condition:
        tags["condition"] = spec.condition
    if spec.label:
        tags["mlflow.note.content"] = spec.label  # the variant's label as the description
    return tags


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class MlflowHooks(Hooks):
    """Logs every run this worker trains through ``client``; ``artifact_root`` places the
    artifacts of the experiments it creates (None: where the tracking server says)."""

    def __init__(self, client: MlflowClient, image_every: int = IMAGE_EVERY,
                 artifact_root: Path | None = None) -> None:
        if image_every < 0:
            raise UsageError(f"image_every={image_every} is not valid; it must be >= 0")
        self.client, self.image_every, self.artifact_root = client, image_every, artifact_root
        self.run_id: str | None = None
        self.spec: RunSpec | None = None
        self.last_epoch = -1
        self.drawer = FirstValPictures()
        self._experiments: dict[str, str] = {}

    def on_claimed(self, spec: RunSpec, outcome: RunOutcome) -> None:
        self.end("KILLED")  # a run whose on_finished never came (interrupted) stays no longer
        run = self.client.create_run(self._experiment(spec.study), run_name=run_name(spec),
                                     tags=run_tags(spec, outcome))
        self.run_id, self.spec, self.last_epoch = run.info.run_id, spec, -1
        params = [Param(key, value) for key, value in run_params(spec.config).items()]
        for start in range(0, len(params), BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + BATCH])
        self.client.log_dict(self.run_id, spec.config.to_dict(), "config.json")

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        if self.run_id is None or self.spec is None:
            return
        self._metrics(scalars(row), epoch)
        self.last_epoch = epoch
        if picture_epoch(epoch, self.spec.config.train.epochs, self.image_every):
            self.pictures(epoch)

    def on_finished(self, outcome: RunOutcome) -> None:
        if self.run_id is None:  # not claimed here: skipped, or busy in another worker
            return
        test = {f"test/{name}": float(value) for name, value in outcome.test.items()}
        self._metrics(test, max(self.last_epoch, 0))
        if outcome.error:
            self.client.set_tag(self.run_id, "error", _cut(outcome.error, MAX_TAG))
        for key, value in outcome.execution.items():  # params say what was asked; tags, what ran
            self.client.set_tag(self.run_id, f"ran.{key}", str(value))
        self.end(STATUS.get(outcome.status, "FAILED"))

    def end(self, status: str) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status)
        self.run_id = self.spec = None

    def pictures(self, epoch: int) -> None:
        """The ``ablate viz`` pictures of the first val image at this epoch's checkpoint."""
        assert self.run_id is not None and self.spec is not None
        with tempfile.TemporaryDirectory() as folder:
            for name, png in self.drawer.draw(self.spec.save_dir, epoch, Path(folder)).items():
                named = png.replace(Path(folder) / f"epoch{epoch:04d}.png")
                self.client.log_artifact(self.run_id, str(named), f"val_image/{name}")

    def _metrics(self, values: dict[str, float], step: int) -> None:
        if values and self.run_id is not None:
            stamp = int(time.time() * 1000)
            metrics = [Metric(key, value, stamp, step) for key, value in values.items()]
            self.client.log_batch(self.run_id, metrics=metrics)

    def _experiment(self, study: str) -> str:
        """The id of the study's experiment, made if new."""
        if study not in self._experiments:
            self._experiments[study] = self._find(study) or self._create(study)
        return self._experiments[study]

    def _find(self, study: str) -> str | None:
        found = self.client.get_experiment_by_name(study)
        return found.experiment_id if found is not None else None

    def _create(self, study: str) -> str:
        location = None
        if self.artifact_root is not None:
            location = (self.artifact_root / safe_name(study)).as_uri()
        try:
            return self.client.create_experiment(study, location)
        except MlflowException:  # another worker made it between _find and here
            made = self._find(study)
            if made is None:
                raise
            return made
