"""The RGB-T crowd-counting network, its losses, data, metrics and training engine.

    import model
    net = model.build_model(model.ModelConfig(stn=True, offset_align=True))
"""

from model.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from model.network import build_model
from model.output import ModelOutput

__all__ = ["DataConfig", "LossConfig", "ModelConfig", "ModelOutput", "RunConfig", "TrainConfig",
           "build_model"]
