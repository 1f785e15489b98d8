"""The names live loggers give an epoch row's values: ``loss/<term>``, ``val/<metric>``,
``lr/<group>``, ``speed/pairs_per_s``; TensorBoard tags and MLflow metric keys alike."""

from __future__ import annotations

# Row keys that are not a loss, a val metric or a learning rate (lr_<group>), and their tags.
OTHER_TAGS = {"lr": "lr/head", "pairs_per_s": "speed/pairs_per_s"}


def scalar_tag(key: str) -> str | None:
    """The tag of an epoch-row key (None: not logged)."""
    if key == "epoch":
        return None
    if key == "loss":
        return "loss/total"
    if key.startswith("loss_"):
        return f"loss/{key.removeprefix('loss_')}"
    if key.startswith("val_"):
        return f"val/{key.removeprefix('val_')}"
    if key.startswith("lr_"):  # a parameter group's rate: lr_backbone
        return f"lr/{key.removeprefix('lr_')}"
    return OTHER_TAGS.get(key, f"other/{key}")


def scalars(row: dict[str, float]) -> dict[str, float]:
    """The loggable values of an epoch row, by tag."""
    return {tag: float(value) for key, value in row.items()
            if (tag := scalar_tag(key)) is not None}
