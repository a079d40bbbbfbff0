"""rifestream: streaming, real-time video frame-rate upconversion with RIFE's IFNet."""

__version__ = "0.1.0"
