"""FLOPs and CPU ms/frame of candidate IFNet configurations (how the shipped architecture was chosen).

``python scripts/studies/arch_cost.py`` prints, for each candidate, the
parameter count, GFLOPs per interpolated frame at 320×240, 640×480 and
1280×720, and the measured fp32 CPU time at the first two sizes.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from rifestream.model.ifnet import IFNet, IFNetConfig

CANDIDATES: dict[str, IFNetConfig] = {
    # The planning run's model: no feature head, narrow blocks.
    "small-nohead": IFNetConfig("small-nohead", (96, 64, 48, 32), (8, 4, 2, 1), head=False, pad=32),
    # A head model with narrower coarse blocks.
    "head-128": IFNetConfig("head-128", (128, 96, 64, 32), (8, 4, 2, 1), head=True, pad=32),
    # The shipped rifestream-v1 (the block widths of RIFE v4.22.lite).
    "rifestream-v1": IFNetConfig("rifestream-v1", (192, 128, 64, 32), (8, 4, 2, 1), head=True, pad=32),
}


def padded(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def gflops(model: IFNet, h: int, w: int) -> float:
    """Forward GFLOPs (2 × multiply-adds) for one frame pair at h×w, padded as the engine pads."""
    m = model.pad_multiple()
    x = torch.rand(1, 3, padded(h, m), padded(w, m))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, x, 0.5)
    return counter.get_total_flops() / 1e9


def ms_per_frame(model: IFNet, h: int, w: int, repeats: int) -> float:
    """Median wall time of one fp32 forward at h×w (padded), after one warm-up run."""
    m = model.pad_multiple()
    a = torch.rand(1, 3, padded(h, m), padded(w, m))
    b = torch.rand_like(a)
    times = []
    with torch.inference_mode():
        model(a, b, 0.5)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(a, b, 0.5)
            times.append(time.perf_counter() - t0)
    times.sort()
    return 1000.0 * times[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("names", nargs="*", default=list(CANDIDATES))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, fp32")
    print("name            params   GF@320x240  GF@640x480  GF@1280x720  ms@320x240  ms@640x480")
    for name in args.names:
        model = IFNet(CANDIDATES[name]).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        flops = [gflops(model, h, w) for h, w in ((240, 320), (480, 640), (720, 1280))]
        ms = [ms_per_frame(model, h, w, args.repeats) for h, w in ((240, 320), (480, 640))]
        print(
            f"{name:14s} {params:6.2f}M  {flops[0]:10.1f}  {flops[1]:10.1f}  {flops[2]:11.1f}"
            f"  {ms[0]:10.0f}  {ms[1]:10.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
