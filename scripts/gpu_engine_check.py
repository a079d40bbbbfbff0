"""The engine on one CUDA device: CUDA-graph captures, graphed vs eager, ms per frame, memory.

For each model (v4.6 architecture with random weights, the shipped rifestream-v7), precision
(fp16, fp32) and warp backend (torch ops, the default; the CuPy kernels, opt-in, when they can run),
at each size: capture on one pair (did it succeed, how long it took, memory reserved after it),
then on a second, different pair the largest difference between the graphed and the eager frame
in 8-bit levels (a graph reading stale inputs would show here), then ms per in-between frame
over ``--iters`` graphed calls. Then the v7 block-matching prior alone. One line per case, so a
run cut short by its time limit still says what it measured.

    python scripts/gpu_engine_check.py --sizes 1280x720 1920x1080

``--device cpu`` runs the same steps on the CPU (no graphs: a dry run of this script itself).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

import numpy as np
import torch


def pair(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two frames of a smooth textured scene, the second moved by a few pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fx, fy, phase = rng.uniform(0.02, 0.08), rng.uniform(0.02, 0.08), rng.uniform(0, 6.3)

    def frame(shift: float) -> np.ndarray:
        base = np.sin((xx + shift) * fx + phase) * np.cos(yy * fy) * 100 + 128
        return np.stack([base, np.roll(base, 7, 0), 255 - base], -1).clip(0, 255).astype(np.uint8)

    return frame(0.0), frame(float(rng.uniform(3, 9)))


def cuda_ms(fn, iters: int, device: str = "cuda") -> float:
    """Mean ms per call: CUDA events on CUDA, the wall clock elsewhere."""
    if device == "cpu":
        start_s = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - start_s) * 1e3 / iters
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / iters


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


def _reserved_mib(device: str) -> float:
    return torch.cuda.memory_reserved() / 2**20 if device != "cpu" else float("nan")


def check_engine(model_name: str, precision: str, cupy: bool, w: int, h: int, iters: int, device: str) -> str:
    from rifestream.engine import Interpolator
    from rifestream.model import OFFICIAL_ARCHS, IFNet

    torch.manual_seed(0)
    net = IFNet(OFFICIAL_ARCHS["v4.6"]) if model_name == "v4.6" else model_name
    graphed = Interpolator(net, device=device, precision=precision, cupy_kernels=cupy)
    eager = Interpolator(graphed.model, device=device, precision=precision, cupy_kernels=cupy, cuda_graphs=False)
    a0, a1 = pair(h, w, 1)
    b0, b1 = pair(h, w, 2)
    t0, t1 = graphed.to_tensor(a0), graphed.to_tensor(a1)
    _sync(device)
    start = time.perf_counter()
    graphed.synthesize(t0, t1, [0.5])
    _sync(device)
    capture_s = time.perf_counter() - start
    captured = all(g is not None for g in graphed._graphs.values()) and bool(graphed._graphs)
    reserved = _reserved_mib(device)
    u0, u1 = graphed.to_tensor(b0), graphed.to_tensor(b1)
    got = graphed.to_numpy(graphed.synthesize(u0, u1, [0.5]))[0].astype(int)
    want = eager.to_numpy(eager.synthesize(u0, u1, [0.5]))[0].astype(int)
    diff = int(np.abs(got - want).max())
    ms = cuda_ms(lambda: graphed.synthesize(u0, u1, [0.5]), iters, device)
    ms_eager = cuda_ms(lambda: eager.synthesize(u0, u1, [0.5]), max(3, iters // 4), device)
    backend = "cupy" if cupy else "torch"
    return (
        f"engine {model_name:<14} {precision} warp={backend:<5} {w}x{h}: capture "
        f"{'none (CPU)' if device == 'cpu' else 'ok' if captured else 'FAILED (eager)'} in {capture_s * 1e3:.0f} ms, "
        f"{reserved:.0f} MiB reserved; "
        f"graphed vs eager on a second pair: max {diff} levels; {ms:.2f} ms/frame graphed, {ms_eager:.2f} eager"
    )


def check_prior(w: int, h: int, iters: int, device: str) -> str:
    from rifestream.model.bilateral import bilateral_flow
    from rifestream.model.registry import resolve_model, shipped_config

    path, _ = resolve_model("rifestream-v7")
    cfg = shipped_config(path)
    hp, wp = -(-h // cfg.pad) * cfg.pad, -(-w // cfg.pad) * cfg.pad
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.rand(1, 3, hp, wp, device=device, generator=g)
    b = torch.rand(1, 3, hp, wp, device=device, generator=g)
    t = torch.full((1, 1, hp, wp), 0.5, device=device)

    def prior() -> torch.Tensor:
        return bilateral_flow(a, b, t, cfg.search_radius, cfg.search_level, cfg.search_window, cfg.search_subcell)

    prior()
    ms = cuda_ms(prior, iters, device)
    return (
        f"prior (v7: radius {cfg.search_radius}, window {cfg.search_window}, level {cfg.search_level}) "
        f"{w}x{h}: {ms:.2f} ms per pair"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1920x1080"], help="WIDTHxHEIGHT")
    parser.add_argument("--models", nargs="+", default=["v4.6", "rifestream-v7"])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a dry run")
    args = parser.parse_args(argv)
    if args.device != "cpu" and not torch.cuda.is_available():
        print("gpu_engine_check: no CUDA device; nothing to check", file=sys.stderr)
        return 2
    from rifestream.model import warp_cupy

    on_cuda = args.device != "cpu"
    precisions = ("fp16", "fp32") if on_cuda else ("fp32",)
    backends = [False] + ([True] if on_cuda and warp_cupy.available() else [])
    failures = 0
    for size in args.sizes:
        w, h = (int(x) for x in size.split("x"))
        for model in args.models:
            for precision in precisions:
                for cupy in backends:
                    try:
                        print(check_engine(model, precision, cupy, w, h, args.iters, args.device), flush=True)
                    except Exception:  # noqa: BLE001 - report and go on: the next case may still run
                        failures += 1
                        print(f"engine {model} {precision} cupy={cupy} {size}: FAILED", flush=True)
                        traceback.print_exc()
                    if on_cuda:
                        torch.cuda.empty_cache()
        try:
            print(check_prior(w, h, args.iters, args.device), flush=True)
        except Exception:  # noqa: BLE001
            failures += 1
            print(f"prior {size}: FAILED", flush=True)
            traceback.print_exc()
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
