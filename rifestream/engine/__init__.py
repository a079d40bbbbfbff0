"""The ``Interpolator``: padding, precision, CUDA graphs, scene cuts, colour conversion (imports model only)."""

from rifestream.engine.interpolator import FrameEngine, Interpolator, resolve_device
from rifestream.engine.scene import compare_scene_features, scene_change_score, scene_features

__all__ = [
    "FrameEngine",
    "Interpolator",
    "compare_scene_features",
    "resolve_device",
    "scene_change_score",
    "scene_features",
]
