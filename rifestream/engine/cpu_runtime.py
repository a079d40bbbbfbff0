"""Running the CPU model's network under OpenVINO instead of torch eager.

Measured on the project's 2-core CPU (docs/BENCHMARKS.md): the CPU model's U-Net at a
640x360 frame's network grid runs in about half of torch eager's time under OpenVINO
(fp32), against about 0.6 for torch with channels-last and 0.6 for ONNX Runtime; the
outputs agree with torch to about 1e-6. Only the U-Net runs there; the DIS flow, the
warps and the blend stay as they are (they are not convolutions).

A network is converted and compiled once per input shape and kept (a stream has one
shape, a job at most a few: the ladder's lower ``scale`` adds one); torch eager stays the
reference and the fallback where OpenVINO is not installed.
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


class OpenVINONetwork:
    """Calls ``module`` through OpenVINO, compiled per input shape (fp32, latency hint, torch's thread count)."""

    def __init__(self, module: nn.Module, threads: int | None = None) -> None:
        import openvino as ov

        self._ov = ov
        self._core = ov.Core()
        self.module = module.eval()
        self.threads = threads
        self._compiled: OrderedDict[tuple[int, ...], tuple[object, object]] = OrderedDict()

    def _compiled_for(self, x: torch.Tensor):
        key = tuple(x.shape)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        with torch.no_grad():
            converted = self._ov.convert_model(self.module, example_input=x)
        config = {
            "INFERENCE_PRECISION_HINT": "f32",  # its default on some CPUs is bf16, which moves frames visibly
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(self.threads or torch.get_num_threads()),
        }
        compiled = self._core.compile_model(converted, "CPU", config)
        entry = (compiled, compiled.create_infer_request())
        self._compiled[key] = entry
        while len(self._compiled) > MAX_SHAPES:
            self._compiled.popitem(last=False)
        log.info("compiled the CPU model's network for input %s with OpenVINO", key)
        return entry

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():  # training: autograd needs torch
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
