"""A decoded 4:2:0 frame to the engine's planar RGB tensor, converted on the device.

The default upload converts on the CPU (PyAV/swscale to rgb24, then a host→device copy of
3 bytes per pixel). With the CuPy kernels opted in (``cupy_kernels``), a yuv420p or NV12
frame goes up as its planes (1.5 bytes per pixel) and :mod:`rifestream.engine.cuda_color`
converts it there, BT.601 limited range as swscale does for the default path (within 3
levels of it for yuv420p at even sizes; NV12 and odd sizes, where swscale filters the
chroma and the kernels take the nearest sample, within 8). The same function runs on any
device: off CUDA the conversion is ``cuda_color``'s torch reference, which the CPU tests check.
"""

from __future__ import annotations

import av
import numpy as np
import torch

from rifestream.engine import cuda_color

PLANAR_FORMATS = ("yuv420p", "nv12")


def uploads_planes(device: torch.device, cupy_kernels: bool, pix_fmt: str) -> bool:
    """Whether a frame of ``pix_fmt`` is uploaded as planes and converted on ``device`` (opt-in, CUDA only)."""
    return cupy_kernels and device.type == "cuda" and pix_fmt in PLANAR_FORMATS


def _plane(frame: av.VideoFrame, index: int, device: torch.device, width_bytes: int) -> torch.Tensor:
    """One plane on ``device`` as a 2-D uint8 tensor whose rows keep the decoder's padding (a view)."""
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return torch.from_numpy(rows).to(device, non_blocking=True)[:, :width_bytes]


def planes_to_tensor(frame: av.VideoFrame, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A yuv420p or NV12 ``frame`` as a (1, 3, H, W) tensor in [0, 1] on ``device``, converted there."""
    name = frame.format.name
    if name not in PLANAR_FORMATS:
        raise ValueError(f"planes_to_tensor takes {' or '.join(PLANAR_FORMATS)} frames, got {name}")
    h, w = frame.height, frame.width
    hc, wc = cuda_color.chroma_size(h, w)
    out = cuda_color.padded_rgb(h, w, 1, dtype, device)
    y = _plane(frame, 0, device, w)
    if name == "nv12":
        return cuda_color.nv12_to_rgb(y, _plane(frame, 1, device, 2 * wc)[:hc], out)
    return cuda_color.yuv420_to_rgb(y, _plane(frame, 1, device, wc)[:hc], _plane(frame, 2, device, wc)[:hc], out)
