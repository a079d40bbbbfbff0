"""The bilateral block-matching prior: it finds known motion, answers 0 where nothing moves,
and is wired into the IFNet only when the architecture asks for it."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from rifestream.model import IFNet, IFNetConfig, load_model, save_model
from rifestream.model.bilateral import PENALTY, WINDOW, _window_mean, bilateral_flow
from rifestream.model.checkpoint import ARCH_METADATA_KEY, CheckpointError
from rifestream.model.registry import describe_config, shipped_config


def texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB texture (1, 3, h, w): every window has structure to match."""
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(1, 3, h + 2, w + 2, generator=g), 3, 1)


def moved_pair(dy: int, dx: int, h: int = 96, w: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame 0 and frame 1 of a texture whose content moves by (dy, dx) px from frame 0 to frame 1."""
    m = 48  # margin: the largest move a test makes
    big = texture(h + 2 * m, w + 2 * m)
    frame1 = big[..., m : m + h, m : m + w]
    frame0 = big[..., m + dy : m + dy + h, m + dx : m + dx + w]
    return frame0.contiguous(), frame1.contiguous()


def interior(flow: torch.Tensor) -> torch.Tensor:
    """The per-channel median flow away from the borders (where replicate padding decides)."""
    return flow[0, :, 24:-24, 24:-24].flatten(1).median(1).values


@pytest.mark.parametrize(("dy", "dx"), [(0, 8), (-12, 0), (8, -16)])
@pytest.mark.parametrize("t", [0.5, 0.25])
def test_finds_a_translation_and_scales_it_to_the_timestep(dy, dx, t):
    frame0, frame1 = moved_pair(dy, dx)
    flow = bilateral_flow(frame0, frame1, torch.full((1, 1, 96, 96), t), radius=6, level=2)
    # The motion from frame 0 to 1 is (dx, dy): the frame at t came from -t of it and goes on (1 - t).
    expected = torch.tensor([-t * dx, -t * dy, (1 - t) * dx, (1 - t) * dy])
    assert torch.allclose(interior(flow), expected)


@pytest.mark.parametrize("subcell", [False, True])
def test_a_still_pair_and_a_flat_picture_get_no_motion(subcell):
    still = texture(64, 64)
    t = torch.full((1, 1, 64, 64), 0.5)
    assert bilateral_flow(still, still, t, radius=8, level=2, subcell=subcell).abs().max() == 0
    # Flat frames that differ only in brightness: every displacement matches equally, the penalty keeps 0.
    flat0, flat1 = torch.full((1, 3, 64, 64), 0.4), torch.full((1, 3, 64, 64), 0.45)
    assert bilateral_flow(flat0, flat1, t, radius=8, level=2, subcell=subcell).abs().max() == 0
    assert PENALTY > 0


@pytest.mark.parametrize(("dy", "dx"), [(0, 3), (3, 0), (0, -3)])
def test_subcell_finds_a_motion_between_the_grid_steps(dy, dx):
    """3 px of motion: 1.5 px at t = 0.5, between the 2 px cells' steps of 0 and 2 px. The whole-cell
    search answers 2; the parabola through the neighbours' costs comes within 0.3 px."""
    frame0, frame1 = moved_pair(dy, dx)
    t = torch.full((1, 1, 96, 96), 0.5)
    truth = torch.tensor([-dx / 2, -dy / 2]).view(2, 1, 1)
    whole = bilateral_flow(frame0, frame1, t, radius=6, level=2)[0, :2, 24:-24, 24:-24]
    refined = bilateral_flow(frame0, frame1, t, radius=6, level=2, subcell=True)[0, :2, 24:-24, 24:-24]
    assert (whole - truth).abs().max() == 0.5
    assert (refined.flatten(1).median(1).values - truth.flatten()).abs().max() < 0.3
    assert (refined - truth).abs().mean() < 0.6 * (whole - truth).abs().mean()


def test_subcell_fit_equals_one_over_the_whole_cost_volume():
    """The search keeps only the best candidate's neighbours while it walks the rows; the result must
    be the fit a full (dy, dx) cost volume gives: argmin, then a parabola per axis."""
    frame0, frame1 = moved_pair(2, -5, 32, 40)
    r, level, window = 3, 2, 5
    t = torch.full((1, 1, 32, 40), 0.25)
    a, b = F.avg_pool2d(frame0, level), F.avg_pool2d(frame1, level)
    ap, bp = F.pad(a, (r,) * 4, mode="replicate"), F.pad(b, (r,) * 4, mode="replicate")
    h, w = a.shape[2:]
    volume = torch.full((2 * r + 3, 2 * r + 3, h, w), float("inf"))  # a ring of inf: the search's edge
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            diff = ap[..., r - dy : r - dy + h, r - dx : r - dx + w] - bp[..., r + dy : r + dy + h, r + dx : r + dx + w]
            match = F.avg_pool2d(diff.abs().mean(1), window, 1, window // 2, count_include_pad=False)[0]
            volume[dy + r + 1, dx + r + 1] = match + PENALTY * (dx * dx + dy * dy) ** 0.5
    best = volume.flatten(0, 1).argmin(0)
    iy, ix = best // (2 * r + 3), best % (2 * r + 3)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")

    def offset(before: torch.Tensor, centre: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        curve = before - 2 * centre + after
        ok = torch.isfinite(curve) & (curve > 1e-9)
        return torch.where(ok, (before - after) / (2 * curve), torch.zeros_like(curve)).clamp(-0.5, 0.5)

    at = lambda oy, ox: volume[iy + oy, ix + ox, rows, cols]  # noqa: E731
    dx = ix - r - 1 + offset(at(0, -1), at(0, 0), at(0, 1))
    dy = iy - r - 1 + offset(at(-1, 0), at(0, 0), at(1, 0))
    d = torch.stack((dx, dy))
    d = F.interpolate(d[None].float() * level, scale_factor=level, mode="bilinear", align_corners=False)
    expected = torch.cat((-2 * 0.25 * d, 2 * 0.75 * d), 1)
    got = bilateral_flow(frame0, frame1, t, radius=r, level=level, window=window, subcell=True)
    assert torch.allclose(got, expected, atol=1e-5)
    assert (got.frac() != 0).any()  # the fit moved some pixels off the grid


def test_motion_beyond_the_radius_gets_an_answer_inside_the_searched_range():
    """40 px of motion with radius 4 on 2 px cells (16 px): the prior cannot find it and must not
    answer more than it searched; the blocks are left to handle the rest."""
    frame0, frame1 = moved_pair(0, 40)
    flow = bilateral_flow(frame0, frame1, torch.full((1, 1, 96, 96), 0.5), radius=4, level=2)
    assert flow.abs().max() <= 2 * 4  # |F(t->0)| = |d| <= 4 cells of 2 px


@pytest.mark.parametrize("window", [WINDOW, 21])
def test_window_mean_equals_average_pooling_without_the_padding(window):
    x = torch.rand(2, 5, 17, 23)
    expected = F.avg_pool2d(x, window, 1, window // 2, count_include_pad=False)
    assert torch.allclose(_window_mean(_window_mean(x, -1, window), -2, window), expected, atol=1e-6)


def test_the_model_adds_the_prior_to_the_coarsest_flow_only_when_configured():
    plain = IFNetConfig("tiny", (16, 16), (4, 1), head=True, pad=16)
    searching = IFNetConfig("tiny", (16, 16), (4, 1), head=True, pad=16, search_radius=6, search_level=2)
    torch.manual_seed(0)
    model = IFNet(plain).eval()
    with_prior = IFNet(searching).eval()
    with_prior.load_state_dict(model.state_dict())
    frame0, frame1 = moved_pair(0, 8)
    with torch.no_grad():
        a = model.forward_all(frame0, frame1, 0.5)
        b = with_prior.forward_all(frame0, frame1, 0.5)
    prior = bilateral_flow(frame0, frame1, torch.full((1, 1, 96, 96), 0.5), 6, 2)
    assert torch.allclose(b.flows[0] - a.flows[0], prior, atol=1e-5)
    assert interior(prior)[0] == -4  # the prior did find the motion, so the test is not vacuous


def test_a_smaller_model_scale_searches_a_coarser_grid():
    """At scale 0.5 the blocks see half-size frames and the search runs on 4 px cells (level 4)."""
    searching = IFNetConfig("tiny", (16, 16), (4, 1), head=True, pad=16, search_radius=6, search_level=2)
    torch.manual_seed(0)
    model = IFNet(searching).eval()
    plain = IFNet(dataclasses.replace(searching, search_radius=0)).eval()
    plain.load_state_dict(model.state_dict())
    frame0, frame1 = moved_pair(0, 16)
    with torch.no_grad():
        added = (
            model.forward_all(frame0, frame1, 0.5, scale=0.5).flows[0]
            - plain.forward_all(frame0, frame1, 0.5, scale=0.5).flows[0]
        )
    expected = bilateral_flow(frame0, frame1, torch.full((1, 1, 96, 96), 0.5), 6, 4)
    assert torch.allclose(added, expected, atol=1e-5)
    assert interior(expected)[0] == -8


def test_search_settings_survive_saving_and_old_metadata_means_off(tmp_path):
    config = IFNetConfig(
        "tiny",
        (16, 16),
        (4, 1),
        head=False,
        pad=16,
        search_radius=5,
        search_level=4,
        search_window=21,
        search_subcell=True,
    )
    path = tmp_path / "search.safetensors"
    save_model(IFNet(config), path)
    assert load_model(path).config == config
    assert describe_config(config).endswith(
        "block-matching prior (radius 5 on 4 px cells: 40 px, 21-cell windows, sub-cell)"
    )
    assert "prior" not in describe_config(dataclasses.replace(config, search_radius=0))
    old = json.loads(config.to_json())
    del old["search_window"], old["search_subcell"]  # as rifestream-v2 records it
    as_v2 = IFNetConfig.from_json(json.dumps(old))
    assert (as_v2.search_radius, as_v2.search_window, as_v2.search_subcell) == (5, WINDOW, False)
    del old["search_radius"], old["search_level"]  # as rifestream-v1 records it
    assert IFNetConfig.from_json(json.dumps(old)).search_radius == 0


def test_refuses_a_search_grid_that_does_not_divide_the_padding():
    with pytest.raises(ValueError, match="search_level"):
        IFNetConfig("bad", (16, 16), (4, 1), head=False, pad=16, search_radius=4, search_level=3)


def test_a_file_recording_a_bad_search_grid_is_refused_naming_the_file(tmp_path):
    from safetensors.torch import save_file

    model = IFNet(IFNetConfig("tiny", (16, 16), (4, 1), head=False, pad=16))
    arch = json.loads(model.config.to_json()) | {"search_radius": 4, "search_level": 3}
    path = tmp_path / "bad.safetensors"
    save_file(dict(model.state_dict()), str(path), metadata={ARCH_METADATA_KEY: json.dumps(arch)})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: its rifestream\.arch metadata is not a valid"):
        load_model(path)
    with pytest.raises(CheckpointError, match="search_level >= 1 dividing pad"):
        shipped_config(path)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_prior_matches_the_cpu_and_a_cuda_graph_replays_it():
    from rifestream.engine import Interpolator

    frame0, frame1 = moved_pair(6, -10)
    t = torch.full((1, 1, 96, 96), 0.5)
    on_cpu = bilateral_flow(frame0, frame1, t, 6, 2)
    on_gpu = bilateral_flow(frame0.cuda(), frame1.cuda(), t.cuda(), 6, 2)
    assert torch.equal(on_gpu.cpu(), on_cpu)
    refined_cpu = bilateral_flow(frame0, frame1, t, 6, 2, subcell=True)
    refined_gpu = bilateral_flow(frame0.cuda(), frame1.cuda(), t.cuda(), 6, 2, subcell=True)
    assert torch.allclose(refined_gpu.cpu(), refined_cpu, atol=1e-4)
    torch.manual_seed(0)
    model = IFNet(
        IFNetConfig("tiny", (16, 16), (4, 1), head=True, pad=16, search_radius=6, search_level=2, search_subcell=True)
    )
    eager = Interpolator(model, device="cuda", cuda_graphs=False).interpolate(frame0[0], frame1[0], 0.5)
    graphed = Interpolator(model, device="cuda", cuda_graphs=True)
    for _ in range(3):  # capture, then replays
        out = graphed.interpolate(frame0[0], frame1[0], 0.5)
    assert (out - eager).abs().max() < 1e-5
