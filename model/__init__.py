"""The RGB-T crowd-counting network, its losses, data, metrics and training engine.

    import model
    net = model.build_model(model.ModelConfig(stn="bounded", aligner="flow"))
"""

from model.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig

__all__ = ["DataConfig", "LossConfig", "ModelConfig", "ModelOutput", "RunConfig", "TrainConfig",
           "build_model"]


def __getattr__(name: str):
    # The network pulls in torch and torchvision (seconds): only when asked for, so that
    # `import model.config` or `model.errors` (the runs database, the CLI's errors) stays light.
    if name == "build_model":
        from model.network import build_model

        return build_model
    if name == "ModelOutput":
        from model.output import ModelOutput

        return ModelOutput
    raise AttributeError(f"module 'model' has no attribute {name!r}")
