"""Time the CuPy kernels against the torch ops they replace, on one CUDA device, in one run.

Per size (720p, 1080p, 2160p) and precision (fp16, fp32): the warp of a
3-channel frame, the fused warp + mask blend (vs two ``grid_sample`` warps, a
sigmoid and the blend in torch), NV12 -> padded RGB and RGB -> NV12 (vs the
torch references on the device). The main figure is the kernel's own time:
``--iters`` back-to-back calls captured into one CUDA graph and replayed
``--replays`` times, timed with CUDA events, so Python's launch overhead
(~40-80 µs per CuPy launch, more than a ~5 µs kernel at 720p) is out of it, as
it is out of the engine's graphed model. The same calls launched eagerly are
timed beside it (what code outside a graph pays). Writes a Markdown table (and
JSON next to it).

    python scripts/gpu_kernel_bench.py --out kernel_bench.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from rifestream.engine import cuda_color as cc
from rifestream.model import warp_cupy
from rifestream.model.warp import warp_torch

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920), "2160p": (2160, 3840)}
PAD = 64


def time_ms(fn: Callable[[], object], warmup: int, iters: int) -> float:
    """Mean ms per call launched eagerly from Python (launch overhead included)."""
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / iters


def time_graphed_ms(fn: Callable[[], object], warmup: int, iters: int, replays: int) -> float:
    """Mean ms per call inside a CUDA graph: ``iters`` calls captured once, the graph replayed ``replays``
    times (launch overhead out); NaN if the calls cannot be captured."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture: compiles, allocator pools
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for _ in range(iters):
                fn()
    except RuntimeError as exc:
        print(f"gpu_kernel_bench: capture failed ({exc}); graphed time not measured", file=sys.stderr)
        return float("nan")
    graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / (replays * iters)


def bench_size(name: str, h: int, w: int, dtype: torch.dtype, warmup: int, iters: int, replays: int) -> list[dict]:
    dev = torch.device("cuda")
    hp, wp = -(-h // PAD) * PAD, -(-w // PAD) * PAD
    g = torch.Generator(device=dev).manual_seed(0)
    img0 = torch.rand(1, 3, hp, wp, device=dev, generator=g).to(dtype)
    img1 = torch.rand(1, 3, hp, wp, device=dev, generator=g).to(dtype)
    flow = ((torch.rand(1, 4, hp, wp, device=dev, generator=g) - 0.5) * 40).to(dtype)
    mask = torch.randn(1, 1, hp, wp, device=dev, generator=g).to(dtype)
    hc, wc = cc.chroma_size(h, w)
    y = torch.randint(0, 256, (h, w), device=dev, dtype=torch.uint8, generator=g)
    uv = torch.randint(0, 256, (hc, 2 * wc), device=dev, dtype=torch.uint8, generator=g)
    rgb = torch.empty(1, 3, hp, wp, device=dev, dtype=dtype)
    y_out, uv_out = torch.empty_like(y), torch.empty_like(uv)
    u, v = cc.nv12_chroma(uv)

    def torch_blend() -> torch.Tensor:
        m = torch.sigmoid(mask)
        return warp_torch(img0, flow[:, 0:2]) * m + warp_torch(img1, flow[:, 2:4]) * (1 - m)

    def torch_to_nv12() -> None:
        ry, ru, rv = cc.rgb_to_yuv420_torch(img0, h, w)
        y_out.copy_(ry)
        uv_out.copy_(torch.stack((ru, rv), -1).view(hc, 2 * wc))

    cases = [
        ("warp (3 ch)", lambda: warp_cupy.warp(img0, flow[:, 0:2]), lambda: warp_torch(img0, flow[:, 0:2])),
        ("warp + blend", lambda: warp_cupy.warp_blend(img0, img1, flow, mask), torch_blend),
        (
            "NV12 -> padded RGB",
            lambda: cc.nv12_to_rgb(y, uv, rgb),
            lambda: rgb.copy_(cc.yuv420_to_rgb_torch(y, u, v, (hp, wp), dtype)),
        ),
        ("RGB -> NV12", lambda: cc.rgb_to_nv12(img0, y_out, uv_out), torch_to_nv12),
    ]
    rows = []
    for op, kernel, reference in cases:
        rows.append(
            {
                "size": name,
                "padded": f"{hp}x{wp}",
                "dtype": str(dtype).removeprefix("torch."),
                "op": op,
                "cupy_ms": time_graphed_ms(kernel, warmup, iters, replays),
                "torch_ms": time_graphed_ms(reference, warmup, iters, replays),
                "cupy_eager_ms": time_ms(kernel, warmup, iters),
                "torch_eager_ms": time_ms(reference, warmup, iters),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("kernel_bench.md"))
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=100, help="calls per graph (and eager calls timed)")
    parser.add_argument("--replays", type=int, default=10, help="replays of the graph timed")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_kernel_bench: no CUDA device; nothing to measure", file=sys.stderr)
        return 2
    if not (warp_cupy.available() and cc.available()):
        print(f"gpu_kernel_bench: CuPy kernels unavailable: {warp_cupy.unavailable_reason()}", file=sys.stderr)
        return 2
    import cupy

    rows = []
    for name in args.sizes:
        for dtype in (torch.float16, torch.float32):
            rows.extend(bench_size(name, *SIZES[name], dtype, args.warmup, args.iters, args.replays))
    device = torch.cuda.get_device_name()
    head = (
        f"Device: {device}; torch {torch.__version__} (CUDA {torch.version.cuda}); CuPy {cupy.__version__}; "
        f"Python {platform.python_version()}. In a CUDA graph: {args.iters} calls captured, {args.replays} "
        f"replays, CUDA events (no launch overhead); eager: {args.iters} calls from Python after "
        f"{args.warmup} warm-up. One stream.\n\n"
        "| size | padded | dtype | op | CuPy ms (graph) | torch ms (graph) | speed-up | CuPy ms (eager) "
        "| torch ms (eager) |\n"
        "|---|---|---|---|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r['size']} | {r['padded']} | {r['dtype']} | {r['op']} | {r['cupy_ms']:.4f} | {r['torch_ms']:.4f} "
        f"| {r['torch_ms'] / r['cupy_ms']:.1f}x | {r['cupy_eager_ms']:.4f} | {r['torch_eager_ms']:.4f} |"
        for r in rows
    ]
    text = head + "\n".join(lines) + "\n"
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"device": device, "rows": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
