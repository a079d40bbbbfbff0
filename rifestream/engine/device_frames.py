"""Frames to and from the engine's planar RGB tensors as 4:2:0 planes, converted on the device.

The default converts on the CPU: PyAV/swscale to rgb24 and a host→device copy of 3 bytes
per pixel on the way in, rgb24 frames on the way out (the encoder converts them again).
With the CuPy kernels opted in (``cupy_kernels``), a yuv420p or NV12 frame goes up as its
planes (1.5 bytes per pixel) and :mod:`rifestream.engine.cuda_color` converts it there,
BT.601 limited range as swscale does for the default path (within 3 levels of it for
yuv420p at even sizes; NV12 and odd sizes, where swscale filters the chroma and the
kernels take the nearest sample, within 8). The same functions run on any device: off
CUDA the conversion is ``cuda_color``'s torch reference, which the CPU tests check.
On the way out the made frames become yuv420p on the device (block-mean chroma, as swscale's
``AREA``; even sizes) and come down as planes, the format the encoders take.
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


def downloads_planes(device: torch.device, cupy_kernels: bool, height: int, width: int) -> bool:
    """Whether made frames come back from ``device`` as yuv420p planes (opt-in, CUDA only, even sizes)."""
    return cupy_kernels and device.type == "cuda" and height % 2 == 0 and width % 2 == 0


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


def tensor_to_yuv420p_frames(frames: torch.Tensor) -> list[av.VideoFrame]:
    """(N, 3, H, W) frames in [0, 1] (H and W even) as N yuv420p ``av.VideoFrame``s, converted on their device."""
    n, _, h, w = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p frames need an even size, got {w}x{h}")
    size = cuda_color.frame_nbytes("yuv420p", h, w)
    packed = torch.empty(n, size, dtype=torch.uint8, device=frames.device)
    for i in range(n):
        cuda_color.rgb_to_yuv420(frames[i], *cuda_color.frame_planes(packed[i], "yuv420p", h, w))
    host = packed.cpu().numpy()
    return [av.VideoFrame.from_ndarray(host[i].reshape(h * 3 // 2, w), format="yuv420p") for i in range(n)]
