"""IFNet family, checkpoint loading and the warp op (imports nothing of the package above it)."""

from rifestream.model.checkpoint import CheckpointError, detect_version, load_model, save_model
from rifestream.model.ifnet import OFFICIAL_ARCHS, IFNet, IFNetConfig

__all__ = [
    "OFFICIAL_ARCHS",
    "CheckpointError",
    "IFNet",
    "IFNetConfig",
    "detect_version",
    "load_model",
    "save_model",
]
