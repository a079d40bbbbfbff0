"""rifestream: streaming, real-time video frame-rate upconversion with RIFE's IFNet."""

import os

# torch's OpenMP threads (libgomp) spin for a while after each parallel op by default. On a CPU the
# models' frames are made by OpenCV and OpenVINO threads on the same cores, right after the torch
# ops of the frame loop (padding, scene features), and the spinning threads take those cores: on
# the 2-core CPU a live 30 -> 60 job made the full-size CPU model frame in 20-21.5 ms with them
# spinning and 17-20 ms with them sleeping, and 284-291 of 299 in-between frames by the model
# against 298-299 (docs/BENCHMARKS.md). libgomp reads this when torch loads it, so it is set
# before anything imports torch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
