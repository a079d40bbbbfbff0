"""The CPU model's fast paths give the reference's numbers: cv2.remap warps, cv2.resize upsampling,
the one-convolution grey image, and the fixed-point intermediate flows put a moving edge where it is."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rifestream.model.classical import grey_u8, intermediate_flows, linear_intermediate, resize_flow, upsample
from rifestream.model.lite import LiteConfig, LiteNet
from rifestream.model.warp import warp


def _smooth_image(h: int, w: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(0, 6, h), torch.linspace(0, 9, w), indexing="ij")
    return (torch.stack([torch.sin(xs + ys), torch.cos(1.3 * xs), torch.sin(2 * ys)]) * 0.5 + 0.5)[None]


def _swirl(h: int, w: int, amplitude: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(0, 3, h), torch.linspace(0, 3, w), indexing="ij")
    return torch.stack([torch.sin(ys) * amplitude, torch.cos(xs) * amplitude])[None]


def test_opencv_warp_matches_grid_sample_inside_and_past_the_border():
    img = _smooth_image(90, 160).expand(2, -1, -1, -1)
    flow = torch.cat((_swirl(90, 160, 25.0), _swirl(90, 160, -40.0)))  # reaches far past every edge
    ref = warp(img, flow, "torch")
    fast = warp(img, flow, "opencv")
    assert fast.shape == ref.shape
    assert float((fast - ref).abs().max()) < 1e-4


def test_bicubic_warp_is_the_same_on_opencv_and_torch_and_keeps_detail_bilinear_blurs():
    """The CPU model's full-size warps may sample bicubically: cv2.remap's INTER_CUBIC and
    grid_sample's bicubic (both a = -0.75, edge pixels repeated) give the same frame, and on fine
    detail moved by half a pixel it lands much closer to the truth than a bilinear sample."""
    h, w = 60, 96
    img = _smooth_image(h, w).expand(2, -1, -1, -1)
    flow = torch.cat((_swirl(h, w, 6.0), _swirl(h, w, -30.0)))  # the second reaches past the edges
    fast = warp(img, flow, "opencv", "bicubic")
    ref = warp(img, flow, "torch", "bicubic")
    assert float((fast - ref).abs().max()) < 1e-4
    xs = torch.arange(w, dtype=torch.float32)
    stripes = (0.5 + 0.4 * torch.sin(xs * 1.9)).expand(1, 3, h, w).contiguous()  # about 3 px a period
    truth = (0.5 + 0.4 * torch.sin((xs + 0.5) * 1.9)).expand(1, 3, h, w)
    half_pixel = torch.zeros(1, 2, h, w)
    half_pixel[:, 0] = 0.5
    inside = (slice(None), slice(None), slice(None), slice(4, -4))
    errors = {
        mode: float((warp(stripes, half_pixel, "opencv", mode) - truth)[inside].abs().mean())
        for mode in ("bilinear", "bicubic")
    }
    assert errors["bicubic"] < 0.5 * errors["bilinear"], errors


def test_each_direction_of_a_flow_pair_is_its_two_channels_as_a_new_array():
    from rifestream.model.planes import direction

    pair = np.random.default_rng(1).normal(0, 9, (18, 32, 4)).astype(np.float32)
    for k, channels in ((0, slice(0, 2)), (1, slice(2, 4))):
        flow = direction(pair, k)
        assert flow.shape == (18, 32, 2) and flow.flags.c_contiguous
        assert np.array_equal(flow, pair[..., channels])
        flow[:] = 0  # a copy: the pair is untouched
    assert np.abs(pair).sum() > 0
    assert np.array_equal(direction(pair.astype(np.float64), 1), pair[..., 2:4])


def test_opencv_warp_gives_way_to_torch_where_a_gradient_is_needed():
    img = _smooth_image(24, 32)
    flow = _swirl(24, 32, 3.0).requires_grad_(True)
    out = warp(img, flow, "opencv")
    out.sum().backward()
    assert flow.grad is not None and float(flow.grad.abs().sum()) > 0


def test_upsample_matches_bilinear_interpolate_and_keeps_autograd():
    x = torch.randn(2, 8, 23, 40)
    ref = F.interpolate(x, size=(92, 160), mode="bilinear", align_corners=False)
    assert float((upsample(x, (92, 160)) - ref).abs().max()) < 1e-5
    y = x.clone().requires_grad_(True)
    upsample(y, (92, 160)).sum().backward()
    assert y.grad is not None
    flow = torch.full((1, 2, 10, 20), 3.0)
    assert torch.allclose(resize_flow(flow, (40, 80)), torch.full((1, 2, 40, 80), 12.0))


def test_grey_image_is_the_area_average_of_luma_to_one_level():
    img = torch.rand(1, 3, 64, 96)
    for level in (1, 2, 4):
        pooled = F.avg_pool2d(img, level)[0]
        luma = pooled[0] * 0.299 + pooled[1] * 0.587 + pooled[2] * 0.114
        ref = luma.mul(255).round().clamp(0, 255).numpy().astype(np.int16)
        got = grey_u8(img, level).astype(np.int16)
        assert got.shape == (64 // level, 96 // level)
        assert np.abs(got - ref).max() <= 1


def test_fixed_point_intermediate_flows_follow_a_zoom_where_the_linear_ones_lag():
    """A zoom F(0->1)(x) = k (x - c): the pixel at x at time t came from p with p + t k (p - c) = x, so
    F(t->0)(x) = -t k (x - c) / (1 + t k). The linear approximation drops the 1 / (1 + t k); each
    fixed-point step shrinks its error by the factor t k."""
    h, w, k, t_val = 64, 96, 0.2, 0.5
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cx, cy = (w - 1) / 2, (h - 1) / 2
    f01 = torch.stack((k * (xs - cx), k * (ys - cy)))
    flows = torch.cat((f01, -f01 / (1 + k)))[None]  # F(1->0) of the same zoom
    t = torch.full((1, 1, 1, 1), t_val)
    truth = -t_val * k * torch.stack((xs - cx, ys - cy)) / (1 + t_val * k)
    inner = (slice(None), slice(16, 48), slice(24, 72))  # away from the border (sampling clamps there)
    linear_err = float((linear_intermediate(flows, t)[0, 0:2] - truth)[inner].abs().max())
    for backend in ("torch", "opencv"):
        mid = intermediate_flows(flows, t, iters=2, backend=backend)
        assert float((mid[0, 0:2] - truth)[inner].abs().max()) < 0.02 * linear_err
    pan = torch.zeros(1, 4, h, w)
    pan[:, 0], pan[:, 2] = 5.0, -5.0  # a uniform pan: the linear approximation is already exact
    assert torch.allclose(intermediate_flows(pan, t, iters=2), linear_intermediate(pan, t))


def test_untrained_model_with_a_finer_flow_grid_is_the_warp_of_its_fixed_point_flows():
    """Flow grid 2, network grid 4: the network's zero output leaves the full-size flow the upsampled
    fixed-point flow of the DIS grid (not a coarser one from the network's grid)."""
    model = LiteNet(LiteConfig("t", (8, 8), net_level=4, flow_level=2, dis_preset="fast", flow_iters=2)).eval()
    h, w = 64, 96
    a = _smooth_image(h, w)
    b = torch.roll(a, shifts=(2, 6), dims=(2, 3))
    with torch.inference_mode():
        flows = model.prior(a, b)
        out = model.forward_all(a, b, 0.5, flows=flows)
        t = torch.full((1, 1, 1, 1), 0.5)
        mid = resize_flow(intermediate_flows(flows, t, 2, "opencv"), (h, w))
        ref = (warp(a, mid[:, 0:2]) + warp(b, mid[:, 2:4])) * 0.5
        torch_mid = resize_flow(intermediate_flows(flows, t, 2, "torch"), (h, w))
    assert flows.shape[-2:] == (h // 2, w // 2)
    assert float((out.flow - mid).abs().max()) < 1e-4
    assert float((out.frame - ref).abs().max()) < 1e-4
    assert float((torch_mid - mid).abs().max()) < 0.1  # OpenCV samples at 1/32-pixel positions
    assert math.isclose(float(out.mask.mean()), 0.5, abs_tol=1e-6)


def test_a_model_without_flow_correction_only_chooses_between_the_two_warps():
    """flow_correction = False: whatever the network says about the flow, the frame's flows are the
    prior's, and the frame is a per-pixel mix of the two warped frames (plus the residual)."""
    h, w = 64, 96
    a = _smooth_image(h, w)
    b = torch.roll(a, shifts=(2, 6), dims=(2, 3))
    outs = {}
    for corrects in (True, False):
        config = LiteConfig("t", (8, 8), net_level=4, flow_level=2, dis_preset="fast", flow_correction=corrects)
        model = LiteNet(config).eval()
        with torch.no_grad():
            model.refine.last.bias.copy_(torch.tensor([3.0, -2.0, 1.0, 0.5, 2.0, 0.0, 0.0, 0.0]))
        with torch.inference_mode():
            flows = model.prior(a, b)
            outs[corrects] = model.forward_all(a, b, 0.5, flows=flows)
    t = torch.full((1, 1, 1, 1), 0.5)
    prior = resize_flow(intermediate_flows(flows, t, 0), (h, w))
    assert float((outs[False].flow - prior).abs().max()) < 1e-4
    assert float((outs[True].flow - prior).abs().max()) > 1.0
    m = torch.sigmoid(torch.tensor(2.0))
    ref = warp(a, prior[:, 0:2]) * m + warp(b, prior[:, 2:4]) * (1 - m)
    assert float((outs[False].frame - ref).abs().max()) < 1e-4


def _trained_like(config: LiteConfig) -> LiteNet:
    """A model whose network says something everywhere (the shipped start is all zeros)."""
    torch.manual_seed(3)
    model = LiteNet(config).eval()
    with torch.no_grad():
        model.refine.last.weight.normal_(0.0, 0.05)
        model.refine.last.bias.normal_(0.0, 0.5)
    return model


def test_cpu_inference_path_gives_the_reference_frame():
    """model(...) outside autograd on a CPU runs lite_cpu (OpenCV on planes); forward_all is the
    torch reference training runs. Same frames, with and without flow corrections, with one shared
    motion and bicubic warps, with the motion search, the occlusion prior and the edge rule, for a
    batch of two times and a network grid that needs padding (18x34 -> 20x36)."""
    h, w = 72, 136
    a = _smooth_image(h, w)
    b = torch.roll(a, shifts=(3, -5), dims=(2, 3))
    first, second = a.expand(2, -1, -1, -1), b.expand(2, -1, -1, -1)
    t = torch.tensor([0.25, 0.75]).view(2, 1, 1, 1)
    cases = (
        (False, False, False, "bilinear"),
        (True, False, False, "bilinear"),
        (False, True, False, "bicubic"),
        (False, True, True, "bicubic"),
    )
    for corrects, shared, search, mode in cases:
        config = LiteConfig(
            "t",
            (8, 8),
            4,
            2,
            "fast",
            flow_iters=2,
            flow_correction=corrects,
            shared_motion=shared,
            motion_search=search,
            occlusion_prior=search,
            edge_occlusion=search,
            warp_mode=mode,
        )
        model = _trained_like(config)
        with torch.inference_mode():
            flows = model.prior(a, b).expand(2, -1, -1, -1)
            fast = model(first, second, t, 1.0, flows)
            ref = model.forward_all(first, second, t, 1.0, flows).frame
            assert fast.shape == ref.shape == (2, 3, h, w)
            assert float((fast - ref).abs().max()) < 1e-4
            assert float((fast[0] - fast[1]).abs().max()) > 0.01  # the two times differ
            half = model(a, b, 0.5, 0.5)  # the ladder's scale step: grids twice as coarse
            assert float((half - model.forward_all(a, b, 0.5, 0.5).frame).abs().max()) < 1e-4


def test_shared_motion_keeps_a_consistent_motion_and_halves_independent_flow_noise():
    """Both intermediate flows from one motion: where the two directions agree (a pan at any t)
    nothing changes; where each carries its own error, the shared motion is nearer the truth."""
    from rifestream.model.classical import shared_motion

    rng = np.random.default_rng(0)
    velocity = np.stack((np.full((40, 60), 7.0), np.full((40, 60), -3.0)), axis=2).astype(np.float32)
    for t in (0.25, 0.5, 0.75):
        mid0, mid1 = -t * velocity, (1.0 - t) * velocity
        s0, s1 = shared_motion(mid0, mid1, t)
        assert np.abs(s0 - mid0).max() < 1e-4 and np.abs(s1 - mid1).max() < 1e-4
    noisy0 = -0.5 * velocity + rng.normal(0, 1.0, velocity.shape).astype(np.float32)
    noisy1 = 0.5 * velocity + rng.normal(0, 1.0, velocity.shape).astype(np.float32)
    s0, s1 = shared_motion(noisy0, noisy1, 0.5)
    before = np.mean((noisy0 + 0.5 * velocity) ** 2)
    after = np.mean((s0 + 0.5 * velocity) ** 2)
    assert after < 0.6 * before
    assert np.abs(s0 + s1).max() < 1e-5  # at t = 0.5 the two flows are opposite
    as_tensors = shared_motion(torch.from_numpy(noisy0), torch.from_numpy(noisy1), torch.tensor(0.5))
    assert np.abs(as_tensors[0].numpy() - s0).max() < 1e-6


def test_classical_frames_on_planes_match_the_torch_reference():
    from rifestream.model.classical import DISFlow, classical_frames

    a = _smooth_image(64, 96)
    b = torch.roll(a, shifts=(2, 6), dims=(2, 3))
    flows = DISFlow("fast", 2)(a, b)
    with torch.inference_mode():
        fast = classical_frames(a, b, flows, [0.25, 0.5])
    with torch.enable_grad():  # autograd takes the torch ops
        ref = classical_frames(a.clone().requires_grad_(True), b, flows, [0.25, 0.5]).detach()
    assert fast.shape == (2, 3, 64, 96)
    assert float((fast - ref).abs().max()) < 1e-4


def test_area_pool_of_planes_is_avg_pool_also_past_the_last_whole_block():
    from rifestream.model import planes

    img = torch.rand(3, 70, 101)
    for level in (2, 4):
        ref = F.avg_pool2d(img[None], level)[0]
        got = planes.pool(img.numpy(), level)
        assert got.shape == tuple(ref.shape)
        assert np.abs(got - ref.numpy()).max() < 1e-6


def test_dis_pair_computed_at_once_equals_one_direction_after_the_other():
    import cv2

    from rifestream.model.classical import DISFlow

    rng = np.random.default_rng(0)
    g0 = cv2.GaussianBlur(rng.integers(0, 256, (90, 160), dtype=np.uint8), (7, 7), 2)
    g1 = np.roll(g0, (2, 5), axis=(0, 1))
    pair = DISFlow("fast", 1).pair(g0, g1)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    assert np.array_equal(pair[..., 0:2], dis.calc(g0, g1, None))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    assert np.array_equal(pair[..., 2:4], dis.calc(g1, g0, None))


def test_a_dis_flow_does_not_change_after_its_object_has_seen_a_small_frame():
    """OpenCV's DIS lowers its finest pyramid level for good on an image too small for it; a stream
    whose ladder ran a small grid once would then get other (and several times costlier) flows on
    every later pair. Each call sets the level again: the flow of a pair is the same before and after."""
    import cv2

    from rifestream.model.classical import DISFlow

    rng = np.random.default_rng(2)
    g0 = cv2.GaussianBlur(rng.integers(0, 256, (90, 160), dtype=np.uint8), (7, 7), 2)
    g1 = np.roll(g0, (3, 7), axis=(0, 1))
    tiny = np.zeros((16, 16), dtype=np.uint8)
    for dis in (DISFlow("fast", 1, finest_scale=1), DISFlow("fast", 1)):
        before = dis.pair(g0, g1)
        dis.pair(tiny, tiny)
        assert np.array_equal(dis.pair(g0, g1), before)


def test_splat_coverage_leaves_a_hole_behind_a_moving_block_and_folds_ahead_of_it():
    from rifestream.model.classical import splat_coverage

    flow = np.zeros((60, 80, 2), dtype=np.float32)
    flow[20:40, 20:40, 0] = 8.0  # a block moving 8 px right over a still background
    cover = splat_coverage(flow, 1.0)
    assert np.allclose(cover[22:38, 21:27], 0.0)  # where the block was: nothing of this frame lands
    assert np.allclose(cover[22:38, 41:47], 2.0)  # where it goes: the block on top of the background
    assert np.allclose(cover[5:15, 5:75], 1.0)  # the still background covers itself
    assert math.isclose(float(cover.sum()), 60 * 80, rel_tol=1e-6)  # every pixel lands somewhere inside


def test_occlusion_logits_hand_each_hole_to_the_other_frame():
    """A block moves 8 px right from frame 0 to frame 1. At t = 0.5 the strip it left (seen only in
    frame 1) takes frame 1, the strip it is about to cover (seen only in frame 0) takes frame 0, the
    rest is even."""
    from rifestream.model.classical import occlusion_logits

    pair = np.zeros((60, 80, 4), dtype=np.float32)
    pair[20:40, 20:40, 0] = 8.0  # F(0->1) on frame 0's block
    pair[20:40, 28:48, 2] = -8.0  # F(1->0) on frame 1's block
    logits = occlusion_logits(pair, 0.5, (60, 80))
    assert logits[24:36, 21:23].max() < -2.0  # left behind: frame 1 holds the background there
    assert logits[24:36, 45:47].min() > 2.0  # not yet covered: frame 0 holds it
    assert np.abs(logits[2:12, :]).max() < 0.1 and np.abs(logits[24:36, 30:38]).max() < 0.1


def test_the_occlusion_prior_takes_a_pans_borders_from_the_frame_that_shows_them():
    """A 24 px pan: at t = 0.5 a strip at each side holds content only one frame shows (the other's
    backward sample falls outside it and repeats its edge). Even odds average the right content
    with a smear there; the occlusion prior (the untrained network adds nothing) takes the frame
    that shows it, and leaves the inside alone."""
    rng = np.random.default_rng(4)
    small = torch.from_numpy(rng.random((1, 3, 16, 36), dtype=np.float32))
    canvas = F.interpolate(small, size=(192, 440), mode="bicubic", align_corners=False).clamp(0, 1)
    a, truth, b = (canvas[:, :, :, x : x + 320].contiguous() for x in (0, 12, 24))

    def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
        return 10 * math.log10(1 / float(((x - y) ** 2).mean()))

    scores = {}
    for prior in (False, True):
        config = LiteConfig("t", (8, 8), 4, 2, "fast", flow_iters=2, dis_finest_scale=1, occlusion_prior=prior)
        model = LiteNet(config).eval()
        with torch.inference_mode():
            out = model(a, b, 0.5)
            assert float((out - model.forward_all(a, b, 0.5).frame).abs().max()) < 1e-4
        strips = (slice(0, 16), slice(-16, None), slice(16, -16))  # left, right, inside
        scores[prior] = [psnr(out[..., cols], truth[..., cols]) for cols in strips]
    (left0, right0, inner0), (left1, right1, inner1) = scores[False], scores[True]
    assert left1 > left0 + 3 and right1 > right0 + 3, scores
    assert abs(inner1 - inner0) < 0.5, scores


def test_a_pixel_whose_sample_leaves_one_frame_is_taken_from_the_other_at_full_resolution():
    """An 8 px pan: at t = 0.5 the outermost 4 columns on each side are in one frame only. The
    occlusion prior's quarter grid (4 px a cell) smears a strip that narrow; the edge rule
    (``edge_occlusion``) takes it from the frame that shows it, and leaves the inside as it was."""
    rng = np.random.default_rng(4)
    small = torch.from_numpy(rng.random((1, 3, 24, 50), dtype=np.float32))
    canvas = F.interpolate(small, size=(192, 400), mode="bicubic", align_corners=False).clamp(0, 1)
    a, truth, b = (canvas[:, :, :, x : x + 320].contiguous() for x in (0, 4, 8))
    outs = {}
    for edges in (False, True):
        config = LiteConfig(
            "t", (8, 8), 4, 2, "fast", flow_iters=2, dis_finest_scale=1, occlusion_prior=True, edge_occlusion=edges
        )
        model = LiteNet(config).eval()
        with torch.inference_mode():
            outs[edges] = model(a, b, 0.5)
            assert float((outs[edges] - model.forward_all(a, b, 0.5).frame).abs().max()) < 1e-4
    for cols in (slice(0, 4), slice(-4, None)):
        before = float((outs[False][..., cols] - truth[..., cols]).abs().mean())
        after = float((outs[True][..., cols] - truth[..., cols]).abs().mean())
        assert after < 0.5 * before, (cols, before, after)
    assert torch.equal(outs[True][..., 16:-16], outs[False][..., 16:-16])


def test_take_inside_hands_over_only_past_the_margin_and_only_one_way():
    from rifestream.model.classical import take_inside

    h, w = 20, 30
    mask = np.full((h, w), 0.5, np.float32)
    full0 = np.zeros((h, w, 2), np.float32)
    full1 = np.zeros((h, w, 2), np.float32)
    full0[..., 0] = 3.0  # frame 0's samples 3 px to the right: the last 3 columns fall outside it
    full1[:, -1, 0] = 3.0  # and frame 1's too, in the last column: neither frame shows that one
    take_inside(mask, full0, full1, margin=1.0)
    assert np.all(mask[:, : w - 2] == 0.5)  # 3 px out of the picture at column 27 is 1 px past its edge
    assert np.all(mask[:, w - 2] == 0.0)  # 2 px past it: frame 1 alone
    assert np.all(mask[:, w - 1] == 0.5)  # both outside: left as it was
    wide = np.full((h, w), 0.5, np.float32)
    take_inside(wide, full0, full1, margin=np.full((h, w), 3.0, np.float32))  # a place in doubt by 2 px more
    assert np.all(wide == 0.5)


def test_the_edge_rule_leaves_the_network_its_gradient_where_it_decides_nothing():
    """Training runs the torch reference with autograd: the pixels the edge rule hands to one frame
    are fixed, and every other pixel's mask still reaches the network's weights."""
    rng = np.random.default_rng(4)
    small = torch.from_numpy(rng.random((1, 3, 24, 50), dtype=np.float32))
    canvas = F.interpolate(small, size=(64, 160), mode="bicubic", align_corners=False).clamp(0, 1)
    a, b = (canvas[:, :, :, x : x + 128].contiguous() for x in (0, 8))
    config = LiteConfig("t", (8, 8), 4, 2, "fast", flow_iters=2, occlusion_prior=True, edge_occlusion=True)
    model = LiteNet(config).train()
    out = model.forward_all(a, b, 0.5, 1.0, model.prior(a, b))
    assert float((out.mask[..., :3] == 1.0).float().mean()) > 0.8  # the left strip only frame 0 shows
    assert float((out.mask[..., -3:] == 0.0).float().mean()) > 0.8  # the right strip only frame 1 shows
    out.frame.mean().backward()
    assert model.refine.last.weight.grad is not None and float(model.refine.last.weight.grad.abs().sum()) > 0
