"""The RGB-T crowd-counting network, its losses, data, metrics and training engine."""

from model.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from model.output import ModelOutput

__all__ = ["DataConfig", "LossConfig", "ModelConfig", "ModelOutput", "RunConfig", "TrainConfig"]
