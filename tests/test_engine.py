"""The Interpolator: padding and cropping, several t at once, ensembles, input forms, errors, scene cuts."""

import copy

import numpy as np
import pytest
import torch

from rifestream.engine import Interpolator, scene_change_score
from rifestream.errors import RifestreamError
from rifestream.model import OFFICIAL_ARCHS, IFNet, IFNetConfig

TINY = IFNetConfig("tiny", (16, 16), (2, 1), head=False, pad=32)


def blend_model(config: IFNetConfig = TINY) -> IFNet:
    """An IFNet whose blocks predict zero flow and zero mask: its output is exactly the average."""
    model = IFNet(config)
    for block in model.blocks:
        torch.nn.init.zeros_(block.lastconv[0].weight)
        torch.nn.init.zeros_(block.lastconv[0].bias)
    return model


def frames(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (70, 129)])
def test_output_keeps_the_input_size_and_matches_the_zero_flow_average(size):
    a, b = frames(*size)
    out = Interpolator(blend_model(), device="cpu").interpolate(a, b, 0.5)
    assert out.shape == a.shape and out.dtype == np.uint8
    expected = (a.astype(np.float64) + b) / 2
    assert np.abs(out - expected).max() <= 0.5 + 1e-6  # rounding only: padding never leaks in


def test_several_t_in_one_call_equal_single_calls():
    torch.manual_seed(0)
    engine = Interpolator(IFNet(TINY), device="cpu")
    a, b = frames(40, 72, seed=1)
    together = engine.interpolate(a, b, [0.25, 0.5, 0.75])
    assert len(together) == 3
    for t, frame in zip([0.25, 0.5, 0.75], together, strict=True):
        np.testing.assert_array_equal(frame, engine.interpolate(a, b, t))
    assert not np.array_equal(together[0], together[2])


def test_tensors_in_give_tensors_out_in_the_same_layout():
    torch.manual_seed(0)
    engine = Interpolator(IFNet(TINY), device="cpu")
    a, b = torch.rand(3, 33, 47), torch.rand(3, 33, 47)
    out = engine.interpolate(a, b, 0.3)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 33, 47)
    batched = engine.interpolate(a[None], b[None], [0.3])
    assert batched[0].shape == (1, 3, 33, 47)
    torch.testing.assert_close(batched[0][0], out)


def test_lower_scale_pads_to_a_larger_multiple_and_still_crops_back():
    engine = Interpolator(blend_model(OFFICIAL_ARCHS["v4.6"]), device="cpu", scale=0.5)
    assert engine.model.pad_multiple(0.5) == 64
    a, b = frames(50, 90)
    out = engine.interpolate(a, b)
    assert out.shape == (50, 90, 3)
    assert np.abs(out - (a.astype(np.float64) + b) / 2).max() <= 0.5 + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp16"}, "fp16 needs a CUDA device"),
        ({"scale": 8.0}, "not supported"),
        ({"scale": 0.75}, "use one of"),
        ({"precision": "int8"}, "precision"),
        ({"ensemble": 3}, "ensemble 3 is not supported; use 1 \\(off\\), 2 or 4"),
    ],
)
def test_bad_engine_settings_are_refused_with_the_fix(kwargs, message):
    with pytest.raises(RifestreamError, match=message):
        Interpolator(IFNet(TINY), device="cpu", **kwargs)


def test_bad_frames_are_refused():
    engine = Interpolator(IFNet(TINY), device="cpu")
    a, b = frames(32, 32)
    with pytest.raises(RifestreamError, match="strictly between"):
        engine.interpolate(a, b, 1.0)
    with pytest.raises(RifestreamError, match="differ in size"):
        engine.interpolate(a, b[:16], 0.5)
    with pytest.raises(RifestreamError, match="uint8"):
        engine.interpolate(a.astype(np.float32), b, 0.5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_cuda_requested_without_cuda_says_how_to_fix():
    with pytest.raises(RifestreamError, match="--device cpu"):
        Interpolator(IFNet(TINY), device="cuda")


def test_scene_score_separates_motion_from_a_cut():
    yy, xx = np.mgrid[0:180, 0:320]
    scene = (np.sin(xx / 9.0) * np.cos(yy / 13.0) * 100 + 128).astype(np.uint8)
    other = (yy * 255 / 179).astype(np.uint8)  # a new shot: a dark-to-bright sky with a bright disc
    other[(yy - 60) ** 2 + (xx - 220) ** 2 < 40**2] = 250
    shot = np.stack([scene, np.roll(scene, 40, 0), scene[::-1]], -1)
    moved = np.roll(shot, 12, axis=1)
    cut = np.stack([other, other, np.roll(other, 5, 1)], -1)
    to = Interpolator(IFNet(TINY), device="cpu").to_tensor
    assert scene_change_score(to(shot), to(moved)) < 0.10  # a fast 12 px pan of strong texture
    assert scene_change_score(to(shot), to(cut)) > 0.15


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_replay_matches_eager_and_fp16_is_close():
    torch.manual_seed(0)
    model = IFNet(OFFICIAL_ARCHS["v4.6"])
    a, b = frames(360, 640)
    eager = Interpolator(model, device="cuda", cuda_graphs=False).interpolate(a, b, [0.5])
    graphed = Interpolator(model, device="cuda", cuda_graphs=True)
    for _ in range(3):  # capture, then replays
        out = graphed.interpolate(a, b, [0.5])
    assert np.abs(out[0].astype(int) - eager[0]).max() <= 1
    half = Interpolator(copy.deepcopy(model), device="cuda", precision="fp16").interpolate(a, b, [0.5])
    assert np.abs(half[0].astype(int) - eager[0]).mean() < 1.0


def test_ensemble_of_two_is_the_mean_of_both_time_directions_so_it_is_symmetric_in_time():
    torch.manual_seed(0)
    model = IFNet(TINY)
    plain = Interpolator(model, device="cpu")
    both = Interpolator(model, device="cpu", ensemble=2)
    a, b = torch.rand(3, 37, 53), torch.rand(3, 37, 53)
    forward, backward = plain.interpolate(a, b, [0.3, 0.5]), plain.interpolate(b, a, [0.7, 0.5])
    assert (forward[0] - backward[0]).abs().max() > 1e-3  # a random model is not symmetric by itself
    for fw, bw, ens in zip(forward, backward, both.interpolate(a, b, [0.3, 0.5]), strict=True):
        torch.testing.assert_close(ens, (fw + bw) / 2)
    torch.testing.assert_close(both.interpolate(a, b, 0.3), both.interpolate(b, a, 0.7))


def test_ensemble_of_four_is_also_mirror_symmetric_even_with_padding():
    torch.manual_seed(0)
    engine = Interpolator(IFNet(TINY), device="cpu", ensemble=4)
    a, b = torch.rand(3, 37, 53), torch.rand(3, 37, 53)  # padded to 64×64 inside
    out = engine.interpolate(a, b, 0.4)
    assert out.shape == (3, 37, 53)
    torch.testing.assert_close(engine.interpolate(a.flip(-1), b.flip(-1), 0.4), out.flip(-1))
    plain = Interpolator(engine.model, device="cpu")
    assert (plain.interpolate(a.flip(-1), b.flip(-1), 0.4) - plain.interpolate(a, b, 0.4).flip(-1)).abs().max() > 1e-3
