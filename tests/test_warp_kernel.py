"""The CPU model's measured warp kernel and its network switch: a pair of rendered frames with hard
pixel edges is warped bilinearly, camera-like frames bicubically, the CPU path and the torch
reference choose alike; without its network the model's mask is the occlusion prior's alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rifestream.engine.interpolator import Interpolator
from rifestream.model.lite import LiteConfig, LiteNet
from rifestream.model.lite_cpu import CUBIC_MISFIT, kernel_for
from rifestream.model.planes import cubic_ratio
from rifestream.train.lite import LiteTrainConfig


def _pixel_art(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(1, 3, h, w): flat 4x4-pixel blocks of a few colours, as a low-resolution game scaled up by
    repeating pixels (every edge a one-pixel step)."""
    rng = np.random.default_rng(seed)
    palette = rng.random((6, 3)).astype(np.float32)
    cells = palette[rng.integers(0, 6, (h // 4 + 1, w // 4 + 1))]
    big = np.repeat(np.repeat(cells, 4, axis=0), 4, axis=1)[:h, :w]
    return torch.from_numpy(np.ascontiguousarray(big.transpose(2, 0, 1)))[None]


def _camera_like(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(1, 3, h, w): detail smooth at the pixel scale (noise scaled up bicubically) with a little sensor noise."""
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand((1, 3, h // 6 + 2, w // 6 + 2), generator=gen)
    big = F.interpolate(small, scale_factor=6, mode="bicubic", align_corners=False)[..., :h, :w]
    return (big + 0.01 * torch.randn(big.shape, generator=gen)).clamp(0, 1).contiguous()


def test_cubic_ratio_tells_hard_pixel_edges_from_detail_smooth_at_the_pixel_scale():
    art = _pixel_art(120, 200)[0, 1].numpy()
    camera = _camera_like(120, 200)[0, 1].numpy()
    assert cubic_ratio(art) > CUBIC_MISFIT + 0.05
    assert cubic_ratio(camera) < 0.95
    assert kernel_for(cubic_ratio(art), cubic_ratio(art)) == "bilinear"
    assert kernel_for(cubic_ratio(camera), cubic_ratio(camera)) == "bicubic"
    assert kernel_for(1.0, 1.0) == "bicubic"  # a tie keeps the sharper kernel


#: The CPU model's classical steps as shipped, on a small network: only the kernel and the network vary.
SHIPPED_STEPS = {"flow_iters": 2, "flow_correction": False, "colour_residual": False, "shared_motion": True}


def _model(mode: str, network: bool = True) -> LiteNet:
    config = LiteConfig(
        "t", (8, 8), 4, 2, "fast", occlusion_prior=True, warp_mode=mode, network=network, **SHIPPED_STEPS
    )
    torch.manual_seed(3)
    model = LiteNet(config).eval()
    with torch.no_grad():  # a network that says something everywhere
        model.refine.last.weight.normal_(0.0, 0.05)
        model.refine.last.bias.normal_(0.0, 0.5)
    return model


@pytest.mark.parametrize("frames, kernel", [(_pixel_art, "bilinear"), (_camera_like, "bicubic")])
def test_a_measured_kernel_warps_each_pair_as_the_kernel_it_chose_on_both_paths(frames, kernel):
    """ "measured" gives, to the bit, the frame of the kernel its frames chose, on the CPU path (OpenCV
    on planes, with the frame memo) and on the torch reference training runs."""
    a = frames(96, 160)
    b = torch.roll(a, shifts=(1, 3), dims=(2, 3))
    measured, fixed = _model("measured"), _model(kernel)
    with torch.inference_mode():
        flows = measured.prior(a, b)
        fast = measured(a, b, 0.5, 1.0, flows)
        assert torch.equal(fast, fixed(a, b, 0.5, 1.0, flows))
        ref = measured.forward_all(a, b, 0.5, 1.0, flows).frame
        assert float((fast - ref).abs().max()) < 1e-4
        other = _model("bicubic" if kernel == "bilinear" else "bilinear")(a, b, 0.5, 1.0, flows)
        assert float((fast - other).abs().max()) > 1e-3  # the two kernels differ on these frames


def test_a_batch_whose_pairs_chose_different_kernels_warps_each_as_it_chose():
    art, camera = _pixel_art(96, 160), _camera_like(96, 160)
    first = torch.cat((art, camera))
    second = torch.roll(first, shifts=(1, 3), dims=(2, 3))
    t = torch.full((2, 1, 1, 1), 0.5)
    measured = _model("measured")
    with torch.inference_mode():
        both = measured.forward_all(first, second, t).frame
        for i, kernel in enumerate(("bilinear", "bicubic")):
            alone = _model(kernel).forward_all(first[i : i + 1], second[i : i + 1], t[:1]).frame
            assert float((both[i] - alone[0]).abs().max()) < 1e-5


def test_without_its_network_the_model_is_its_prior_and_compiles_no_runtime():
    """network = false: the frame of the same model whose network outputs zeros, on both paths, and
    the engine builds no OpenVINO runner for it."""
    a = _camera_like(96, 160)
    b = torch.roll(a, shifts=(2, -4), dims=(2, 3))
    off = _model("bicubic", network=False)
    zero = _model("bicubic")
    with torch.no_grad():
        zero.refine.last.weight.zero_()
        zero.refine.last.bias.zero_()
    with torch.inference_mode():
        flows = off.prior(a, b)
        frame = off(a, b, 0.5, 1.0, flows)
        assert float((frame - zero(a, b, 0.5, 1.0, flows)).abs().max()) < 1e-6
        assert float((frame - off.forward_all(a, b, 0.5, 1.0, flows).frame).abs().max()) < 1e-4
        assert float((frame - _model("bicubic")(a, b, 0.5, 1.0, flows)).abs().max()) > 1e-3  # a network moves it
    engine = Interpolator(off, device="cpu", cpu_runtime="openvino")
    assert engine.model._runner is None
    assert engine.interpolate(
        _pixel_art(96, 160)[0].permute(1, 2, 0).mul(255).byte().numpy(), b[0].permute(1, 2, 0).mul(255).byte().numpy()
    ).shape == (96, 160, 3)


def test_a_model_without_a_network_has_nothing_to_correct_and_nothing_to_train():
    with pytest.raises(ValueError, match="need the network"):
        LiteConfig("t", network=False, colour_residual=True)
    with pytest.raises(Exception, match="nothing to train"):
        LiteTrainConfig(network=False, colour_residual=False, flow_correction=False)


def test_without_a_network_the_mask_weighs_the_nearer_frame_more_away_from_the_middle():
    """A still picture brightening between the two frames: at t = 0.25 the model's frame is a quarter
    of the way from the first (the nearer frame weighs 1 − t), at t = 0.5 halfway; both paths alike."""
    a = _camera_like(96, 160) * 0.8
    b = a + 0.1
    model = _model("bicubic", network=False)
    with torch.inference_mode():
        flows = model.prior(a, b)
        for t in (0.25, 0.5, 0.75):
            frame = model(a, b, t, 1.0, flows)
            reached = float((frame - a).mean()) / 0.1
            assert abs(reached - t) < 0.02, (t, reached)
            assert float((frame - model.forward_all(a, b, t, 1.0, flows).frame).abs().max()) < 1e-4
