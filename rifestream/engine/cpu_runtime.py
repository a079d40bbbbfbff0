"""Running the CPU model's network under OpenVINO instead of torch eager.

Measured on the project's 2-core CPU (docs/BENCHMARKS.md): a 16/24 U-Net on the half grid
of a 640x360 frame runs in 0.5-0.65 of torch eager's time under OpenVINO (fp32: 8.4 against
13.3 ms idle on 2 threads; 0.49 of eager on a loaded machine, where channels-last torch took
0.59 and ONNX Runtime 0.61); on the quarter grid the shipped model uses, the whole model runs at
about the same speed under either. The outputs agree with torch to about 1e-6. Only the U-Net
runs there; the DIS flow, the warps and the blend stay as they are (they are not convolutions).

The graph is built from the weights once and compiled once per input shape and kept (a
stream has one shape, a job at most a few: the ladder's lower ``scale`` adds one); torch
eager stays the reference and the fallback where OpenVINO is not installed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

RUNTIMES = ("openvino", "torch")
MAX_SHAPES = 4  # compiled networks kept per model, least recently used dropped


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _openvino_unet(net: nn.Module):
    """The CPU model's U-Net (:class:`rifestream.model.lite.RefineUNet`) as an OpenVINO graph built
    straight from its weights, mirroring its ``forward``: milliseconds, where converting the torch
    module (tracing it) takes seconds to tens of seconds on a loaded 2-core CPU, inside a live job's
    warm-up. Height and width are left open; each shape is compiled on first use."""
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    def const(t: torch.Tensor):
        return ops.constant(t.detach().float().cpu().numpy())

    def layer(x, m: nn.Module):
        if isinstance(m, nn.Sequential):
            for child in m:
                x = layer(x, child)
            return x
        if isinstance(m, nn.LeakyReLU):
            return ops.prelu(x, ops.constant(np.array([m.negative_slope], np.float32)))
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            s, p = list(m.stride), list(m.padding)
            if isinstance(m, nn.Conv2d):
                y = ops.convolution(x, const(m.weight), s, p, p, [1, 1])
            else:
                y = ops.convolution_backprop_data(x, const(m.weight), s, pads_begin=p, pads_end=p, dilations=[1, 1])
            return ops.add(y, const(m.bias.view(1, -1, 1, 1)))
        raise TypeError(f"no OpenVINO layer for {type(m).__name__}")

    x = ops.parameter(ov.PartialShape([-1, net.IN, -1, -1]), ov.Type.f32, name="x")
    d1 = layer(x, net.down1)
    d2 = layer(d1, net.down2)
    u1 = layer(ops.concat([layer(d2, net.up2), d1], 1), net.fuse1)
    u0 = layer(ops.concat([layer(u1, net.up1), x], 1), net.fuse0)
    return ov.Model([ops.result(layer(u0, net.last))], [x], "refine")


class OpenVINONetwork:
    """Calls the U-Net ``module`` through OpenVINO, compiled per input shape (fp32, latency hint,
    torch's thread count); torch autograd (training) goes to ``module`` itself."""

    def __init__(self, module: nn.Module, threads: int | None = None) -> None:
        import openvino as ov

        self._ov = ov
        self._core = ov.Core()
        self.module = module.eval()
        self.threads = threads
        self._graph = _openvino_unet(module)
        self._compiled: OrderedDict[tuple[int, ...], tuple[object, object]] = OrderedDict()

    def _compiled_for(self, x: torch.Tensor):
        key = tuple(x.shape)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        self._graph.reshape({0: self._ov.PartialShape(list(key))})
        config = {
            "INFERENCE_PRECISION_HINT": "f32",  # its default on some CPUs is bf16, which moves frames visibly
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(self.threads or torch.get_num_threads()),
        }
        compiled = self._core.compile_model(self._graph, "CPU", config)
        entry = (compiled, compiled.create_infer_request())
        self._compiled[key] = entry
        while len(self._compiled) > MAX_SHAPES:
            self._compiled.popitem(last=False)
        log.info("compiled the CPU model's network for input %s with OpenVINO", key)
        return entry

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            return self.module(x)
        compiled, request = self._compiled_for(x)
        result = request.infer([x.detach().float().contiguous().numpy()])
        return torch.from_numpy(result[compiled.output(0)].copy()).to(x.dtype)


def network_runner(
    module: nn.Module, runtime: str, threads: int | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """What runs the CPU model's network: OpenVINO when asked and installed, else ``module`` itself."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown CPU runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    if runtime == "openvino":
        if openvino_available():
            return OpenVINONetwork(module, threads)
        log.warning("OpenVINO is not installed: the CPU model runs with torch ops (pip install openvino)")
    return module
