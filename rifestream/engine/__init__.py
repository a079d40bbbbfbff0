"""The ``Interpolator``: padding, precision, CUDA graphs, scene cuts, colour conversion (imports model only)."""

from rifestream.engine.interpolator import Interpolator, resolve_device
from rifestream.engine.scene import scene_change_score

__all__ = ["Interpolator", "resolve_device", "scene_change_score"]
