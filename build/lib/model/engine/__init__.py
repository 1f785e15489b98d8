"""Training and evaluation: the recipe, official-protocol evaluation, checkpoints."""

from model.engine.evaluate import evaluate, oracle_check
from model.engine.trainer import Trainer, TrainingError, TrainResult, train

__all__ = ["TrainResult", "Trainer", "TrainingError", "evaluate", "oracle_check", "train"]
