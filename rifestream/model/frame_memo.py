"""What the CPU model derives from a frame, kept for the next pair.

In a stream each frame is the second of one pair and the first of the next. The CPU model makes
three things from every frame before any motion is known: the grey image DIS reads, the planes
pooled to the network's grid and the frame's pixels interleaved for the full-size warps (about
0.9 ms a frame at 640x360 on two cores: 0.4, 0.27 and 0.22 ms, each timed in place).
:class:`FrameMemo` keeps them for the frames of the last pair, so a stream's next pair makes them
for one frame, not two.

A frame is known by its memory (address, shape and strides), not by the tensor object: the engine
hands the model views (an expanded batch, a pass of an ensemble) of the frame it was given. The
memo keeps a reference to that memory, so no other frame can take it while the entry lives, and
trusts an entry only while torch's version counter of the frame is unchanged and a sample of its
values still matches (a write through a numpy view does not count as a version).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

#: Frames remembered: the two of the last pair, so that a stream's next pair finds its first frame
#: (and nothing older: `rifestream bench` cycles three frames, and a longer memory would find both).
#: Each costs about twice the frame's own memory (the frame, held, and its interleaved copy): 11 MB
#: in all at 640x360, 100 MB at 1080p.
FRAMES = 2
#: Every this many-th value of a frame is compared before an entry is trusted (about 700 of a
#: 640x360 frame: a few microseconds).
SAMPLE_STRIDE = 997


@dataclass
class _Entry:
    storage: object  # the frame's memory, held so that no other frame can take it meanwhile
    version: int
    sample: np.ndarray
    derived: dict[str, np.ndarray] = field(default_factory=dict)


class FrameMemo:
    """``memo.get(frame, what, make)``: ``make()`` once per frame and ``what`` while the frame is
    unchanged; bounded to :data:`FRAMES` frames. Only CPU tensors with a version counter are
    remembered (tensors made in inference mode have none: for them ``make()`` runs every time)."""

    def __init__(self, frames: int = FRAMES) -> None:
        self._frames = frames
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, frame: torch.Tensor, what: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        if frame.device.type != "cpu" or frame.is_inference():
            return make()
        if frame.dim() == 4 and frame.shape[0] == 1:  # (1, 3, H, W) and (3, H, W) are one frame
            frame = frame[0]
        key = (frame.data_ptr(), tuple(frame.shape), frame.stride(), frame.dtype)
        sample = _sample(frame)
        entry = self._entries.get(key)
        if entry is None or entry.version != frame._version or not np.array_equal(entry.sample, sample):
            entry = _Entry(frame.untyped_storage(), frame._version, sample)
            self._entries[key] = entry
            while len(self._entries) > self._frames:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        if what not in entry.derived:
            entry.derived[what] = make()
        return entry.derived[what]


def _sample(frame: torch.Tensor) -> np.ndarray:
    """Every :data:`SAMPLE_STRIDE`-th value of the frame, as a new array."""
    return frame.detach().reshape(-1)[::SAMPLE_STRIDE].numpy().copy()
