"""The IFNet family, checkpoint loading and the warp op (rifestream.model), against hand-computed
shapes, an independent reference implementation and a direct bilinear computation."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rifestream.errors import RifestreamError
from rifestream.model import (
    OFFICIAL_ARCHS,
    CheckpointError,
    IFNet,
    IFNetConfig,
    detect_version,
    load_model,
    save_model,
)
from rifestream.model.checkpoint import ARCH_METADATA_KEY
from rifestream.model.warp import warp, warp_torch

sys.path.insert(0, str(Path(__file__).parent))
from reference_ifnet import RefIFNetHead, RefIFNetV46  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


def random_model(config: IFNetConfig, seed: int = 0) -> IFNet:
    """An IFNet with random weights; ``beta`` is randomised too so that a mix-up of it shows."""
    torch.manual_seed(seed)
    model = IFNet(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("beta"):
                param.uniform_(0.5, 1.5)
    return model


def save_official(model: IFNet, path: Path) -> Path:
    """Write ``model`` as official releases are: torch.save of a DataParallel state dict."""
    torch.save({f"module.{k}": v.detach().clone() for k, v in model.state_dict().items()}, path)
    return path


def official_state(model: IFNet) -> dict[str, torch.Tensor]:
    return {f"module.{k}": v.detach().clone() for k, v in model.state_dict().items()}


def frames(n: int, h: int, w: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g), torch.rand(n, 3, h, w, generator=g)


# --------------------------------------------------------------------------- shapes


def _expected_param_count(channels: tuple[int, ...], head: bool) -> int:
    """Parameters of an IFNet, counted by hand from the layer shapes of the RIFE v4 architecture."""
    k_out = 13 if head else 6
    total = 0
    for i, c in enumerate(channels):
        cin = (15 if head else 7) if i == 0 else (28 if head else 12)
        conv0 = cin * (c // 2) * 9 + c // 2 + (c // 2) * c * 9 + c
        convblock = 8 * (c * c * 9 + c + c)  # conv weight + bias + beta
        lastconv = c * 4 * k_out * 16 + 4 * k_out
        total += conv0 + convblock + lastconv
    if head:
        total += (3 * 16 * 9 + 16) + 2 * (16 * 16 * 9 + 16) + (16 * 4 * 16 + 4)
    return total


EXPECTED_SHAPES = {
    "v4.6": {
        "block0.conv0.0.0.weight": (96, 7, 3, 3),
        "block0.conv0.1.0.weight": (192, 96, 3, 3),
        "block0.convblock.0.conv.weight": (192, 192, 3, 3),
        "block0.convblock.7.beta": (1, 192, 1, 1),
        "block0.lastconv.0.weight": (192, 24, 4, 4),
        "block0.lastconv.0.bias": (24,),
        "block1.conv0.0.0.weight": (64, 12, 3, 3),
        "block2.conv0.1.0.weight": (96, 48, 3, 3),
        "block3.lastconv.0.weight": (64, 24, 4, 4),
    },
    "v4.22.lite": {
        "block0.conv0.0.0.weight": (96, 15, 3, 3),
        "block1.conv0.0.0.weight": (64, 28, 3, 3),
        "block2.conv0.1.0.weight": (64, 32, 3, 3),
        "block3.conv0.0.0.weight": (16, 28, 3, 3),
        "block3.lastconv.0.weight": (32, 52, 4, 4),
        "encode.cnn0.weight": (16, 3, 3, 3),
        "encode.cnn3.weight": (16, 4, 4, 4),
    },
    "v4.25": {
        "block0.conv0.0.0.weight": (96, 15, 3, 3),
        "block0.lastconv.0.weight": (192, 52, 4, 4),
        "block1.conv0.0.0.weight": (64, 28, 3, 3),
        "block4.conv0.0.0.weight": (16, 28, 3, 3),
        "block4.convblock.7.conv.weight": (32, 32, 3, 3),
        "block4.lastconv.0.weight": (32, 52, 4, 4),
        "encode.cnn0.weight": (16, 3, 3, 3),
        "encode.cnn1.weight": (16, 16, 3, 3),
        "encode.cnn2.bias": (16,),
        "encode.cnn3.weight": (16, 4, 4, 4),
        "encode.cnn3.bias": (4,),
    },
    "v4.25.lite": {
        "block3.conv0.1.0.weight": (64, 32, 3, 3),
        "block4.conv0.0.0.weight": (12, 28, 3, 3),
        "block4.conv0.1.0.weight": (24, 12, 3, 3),
        "block4.lastconv.0.weight": (24, 52, 4, 4),
    },
}
EXPECTED_SHAPES["v4.26"] = EXPECTED_SHAPES["v4.25"]
EXPECTED_BLOCKS = {"v4.6": 4, "v4.22.lite": 4, "v4.25": 5, "v4.25.lite": 5, "v4.26": 5}


@pytest.mark.parametrize("version", list(OFFICIAL_ARCHS))
def test_parameter_shapes_match_hand_computed_ones(version):
    config = OFFICIAL_ARCHS[version]
    state = IFNet(config).state_dict()
    for key, shape in EXPECTED_SHAPES[version].items():
        assert tuple(state[key].shape) == shape, key
    blocks = {k.split(".")[0] for k in state if k.startswith("block")}
    assert blocks == {f"block{i}" for i in range(EXPECTED_BLOCKS[version])}
    assert any(k.startswith("encode.") for k in state) == config.head
    assert sum(v.numel() for v in state.values()) == _expected_param_count(config.channels, config.head)


@pytest.mark.parametrize(("version", "h", "w"), [("v4.6", 64, 96), ("v4.22.lite", 64, 96), ("v4.25", 128, 128)])
def test_output_shape_and_range(version, h, w):
    model = random_model(OFFICIAL_ARCHS[version])
    img0, img1 = frames(2, h, w)
    with torch.no_grad():
        out = model(img0, img1, 0.5)
    assert out.shape == (2, 3, h, w) and out.dtype == torch.float32
    # the output blends two warped copies of images in [0, 1]
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_inputs_are_clamped_on_entry_and_timestep_forms_agree():
    model = random_model(OFFICIAL_ARCHS["v4.6"])
    img0, img1 = frames(2, 64, 96)
    with torch.no_grad():
        base = model(img0, img1, 0.3)
        wild0, wild1 = img0 * 1.6 - 0.3, img1 * 1.6 - 0.3  # values outside [0, 1]
        assert torch.equal(model(wild0, wild1, 0.3), model(wild0.clamp(0, 1), wild1.clamp(0, 1), 0.3))
        for t in (
            torch.tensor(0.3),
            torch.full((2, 1, 1, 1), 0.3),
            torch.full((2,), 0.3),
            torch.full((2, 1, 64, 96), 0.3),
        ):
            assert torch.equal(model(img0, img1, t), base), tuple(t.shape)
        mixed = model(img0, img1, torch.tensor([0.3, 0.7]).view(2, 1, 1, 1))
        # a batch of one runs other conv kernels than a batch of two: equal up to float rounding
        assert torch.allclose(mixed[1:], model(img0[1:], img1[1:], 0.7), atol=1e-5)
        assert torch.allclose(mixed[:1], model(img0[:1], img1[:1], 0.3), atol=1e-5)


# --------------------------------------------------------------------------- official format, detection


def test_official_format_round_trip_gives_identical_outputs(tmp_path):
    model = random_model(OFFICIAL_ARCHS["v4.6"], seed=3)
    path = save_official(model, tmp_path / "flownet.pkl")
    loaded = load_model(path)
    assert loaded.config == OFFICIAL_ARCHS["v4.6"]
    assert not loaded.training
    img0, img1 = frames(1, 64, 96)
    with torch.no_grad():
        assert torch.equal(loaded(img0, img1, 0.5), model(img0, img1, 0.5))


@pytest.mark.parametrize("version", list(OFFICIAL_ARCHS))
def test_version_none_detects_every_official_architecture(tmp_path, version):
    config = OFFICIAL_ARCHS[version]
    path = save_official(random_model(config), tmp_path / f"flownet_{version}.pkl")
    loaded = load_model(path)
    # v4.25 and v4.26 share one architecture; the detector names it v4.25
    assert loaded.config.name == ("v4.25" if version == "v4.26" else version)
    assert loaded.config.channels == config.channels and loaded.config.scales == config.scales
    state = {k.removeprefix("module."): v for k, v in torch.load(path, weights_only=True).items()}
    assert detect_version(state) == loaded.config.name


def test_a_v426_file_loads_detected_and_by_name(tmp_path):
    model = random_model(OFFICIAL_ARCHS["v4.26"], seed=5)
    path = save_official(model, tmp_path / "flownet_v4.26.pkl")
    named = load_model(path, version="v4.26")
    assert named.config.name == "v4.26"
    detected = load_model(path)
    img0, img1 = frames(1, 128, 128)
    with torch.no_grad():
        expected = model(img0, img1, 0.5)
        assert torch.equal(named(img0, img1, 0.5), expected)
        assert torch.equal(detected(img0, img1, 0.5), expected)


# --------------------------------------------------------------------------- refusals


@pytest.fixture(scope="module")
def v46_state() -> dict[str, torch.Tensor]:
    return official_state(random_model(OFFICIAL_ARCHS["v4.6"]))


def _refusal(tmp_path: Path, state: object, **kwargs) -> str:
    path = tmp_path / "flownet.pkl"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path, **kwargs)
    assert isinstance(err.value, RifestreamError)
    return str(err.value)


def test_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    junk = tmp_path / "flownet.pkl"
    junk.write_bytes(b"this is a text file, not weights\n" * 10)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_model(junk)
    with pytest.raises(CheckpointError, match="no such model file"):
        load_model(tmp_path / "absent.pkl")
    assert "expected a state_dict of tensors" in _refusal(tmp_path, [1, 2, 3])
    assert "no IFNet blocks found" in _refusal(tmp_path, {"module.fc.weight": torch.zeros(2, 2)})


def test_refuses_an_extra_key_naming_it(tmp_path, v46_state):
    state = dict(v46_state)
    state["module.block1.teacher.weight"] = torch.zeros(3)
    message = _refusal(tmp_path, state)
    assert "unused 1 keys: block1.teacher.weight" in message


def test_refuses_a_missing_key_naming_it(tmp_path, v46_state):
    state = dict(v46_state)
    del state["module.block2.convblock.3.beta"]
    message = _refusal(tmp_path, state)
    assert "missing 1 keys: block2.convblock.3.beta" in message


def test_refuses_a_wrong_shape_naming_the_key_and_shapes(tmp_path, v46_state):
    state = dict(v46_state)
    state["module.block1.conv0.0.0.weight"] = torch.zeros(64, 13, 3, 3)
    message = _refusal(tmp_path, state)
    assert "block1.conv0.0.0.weight (64, 13, 3, 3) != (64, 12, 3, 3)" in message


def test_refuses_unknown_channel_widths(tmp_path):
    odd = IFNetConfig("odd", (160, 128, 96, 64), (8, 4, 2, 1), head=False, pad=32)
    message = _refusal(tmp_path, official_state(random_model(odd)))
    assert "fits no known IFNet architecture" in message and "(160, 128, 96, 64)" in message


def test_refuses_a_head_checkpoint_forced_to_a_headless_version(tmp_path):
    state = official_state(random_model(OFFICIAL_ARCHS["v4.25"]))
    message = _refusal(tmp_path, state, version="v4.6")
    assert "unused 38 keys: block4.conv0.0.0.bias" in message
    assert "block0.lastconv.0.weight (192, 52, 4, 4) != (192, 24, 4, 4)" in message
    assert "unknown version" in _refusal(tmp_path, state, version="v9.9")


# --------------------------------------------------------------------------- safetensors


def test_safetensors_round_trip_records_the_architecture(tmp_path):
    from safetensors import safe_open

    custom = IFNetConfig("rifestream-test", (64, 48, 32), (4, 2, 1), head=True, pad=16)
    model = random_model(custom, seed=7)
    exact = tmp_path / "exact.safetensors"
    save_model(model, exact, dtype=torch.float32, trained_on="synthetic")
    with safe_open(str(exact), framework="pt") as f:
        meta = f.metadata()
    assert IFNetConfig.from_json(meta[ARCH_METADATA_KEY]) == custom
    assert meta["trained_on"] == "synthetic"
    loaded = load_model(exact)
    assert loaded.config == custom
    img0, img1 = frames(1, 64, 96)
    with torch.no_grad():
        assert torch.equal(loaded(img0, img1, 0.25), model(img0, img1, 0.25))

    half = tmp_path / "half.safetensors"
    save_model(model, half)  # default fp16 storage
    loaded_half = load_model(half)
    assert loaded_half.config == custom
    for key, value in model.state_dict().items():
        assert torch.equal(loaded_half.state_dict()[key], value.half().float()), key


# --------------------------------------------------------------------------- agreement with the reference


def _reference_for(version: str, path: Path) -> torch.nn.Module:
    config = OFFICIAL_ARCHS[version]
    ref = RefIFNetHead(config.channels) if config.head else RefIFNetV46()
    state = torch.load(path, map_location="cpu", weights_only=True)
    ref.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return ref.eval()


@pytest.mark.parametrize(
    ("version", "h", "w", "scale"),
    [
        ("v4.6", 64, 96, 1.0),
        ("v4.6", 64, 128, 0.5),
        ("v4.22.lite", 64, 96, 1.0),
        ("v4.25", 128, 128, 1.0),
        ("v4.25", 128, 128, 0.5),
        ("v4.25.lite", 256, 256, 1.0),
        ("v4.25.lite", 256, 256, 0.5),
    ],
)
def test_agrees_with_reference_rife(tmp_path, version, h, w, scale):
    config = OFFICIAL_ARCHS[version]
    path = save_official(random_model(config, seed=11), tmp_path / f"flownet_{version}.pkl")
    model = load_model(path, version=version)
    ref = _reference_for(version, path)
    scale_list = [s / scale for s in config.scales]
    img0, img1 = frames(2, h, w, seed=13)
    x = torch.cat((img0, img1), 1)
    with torch.no_grad():
        # the test is only meaningful if the random network moves pixels by more than a pixel
        assert model.forward_all(img0, img1, 0.5, scale).flows[-1].abs().max() > 1.0
        for t_ours, t_ref in (
            (0.5, 0.5),
            (0.3, 0.3),
            (torch.tensor([0.25, 0.8]), torch.tensor([0.25, 0.8]).view(2, 1, 1, 1)),
        ):
            ours = model(img0, img1, t_ours, scale=scale)
            theirs = ref(x, t_ref, scale_list)
            assert ours.shape == theirs.shape == (2, 3, h, w)
            assert (ours - theirs).abs().max().item() <= 1e-4, (version, scale, t_ours)


# --------------------------------------------------------------------------- warp


def bilinear_border(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` at (x + fx, y + fy) for every pixel, in float64, clamping coordinates to the image."""
    img = img.double()
    n, c, h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    sx = (xs + flow[:, 0].double()).clamp(0, w - 1)
    sy = (ys + flow[:, 1].double()).clamp(0, h - 1)
    x0 = sx.floor().long().clamp(max=w - 1)
    y0 = sy.floor().long().clamp(max=h - 1)
    x1 = (x0 + 1).clamp(max=w - 1)
    y1 = (y0 + 1).clamp(max=h - 1)
    wx = (sx - x0).unsqueeze(1)
    wy = (sy - y0).unsqueeze(1)
    flat = img.reshape(n, c, h * w)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        index = (yy * w + xx).reshape(n, 1, h * w).expand(n, c, h * w)
        return flat.gather(2, index).reshape(n, c, h, w)

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def test_torch_warp_equals_direct_bilinear_with_border_clamping():
    g = torch.Generator().manual_seed(21)
    img = torch.rand(2, 4, 9, 13, generator=g)
    flow = (torch.rand(2, 2, 9, 13, generator=g) - 0.5) * 12  # up to ±6 px: many samples leave the image
    expected = bilinear_border(img, flow)
    assert (warp_torch(img, flow).double() - expected).abs().max().item() <= 1e-5
    assert (warp(img, flow).double() - expected).abs().max().item() <= 1e-5
    # a single pixel by hand: (x, y) = (2, 1) moved by (+0.25, +0.5) samples between four neighbours
    one = torch.zeros(1, 2, 9, 13)
    one[0, 0, 1, 2], one[0, 1, 1, 2] = 0.25, 0.5
    by_hand = 0.5 * (0.75 * img[0, :, 1, 2] + 0.25 * img[0, :, 1, 3]) + 0.5 * (
        0.75 * img[0, :, 2, 2] + 0.25 * img[0, :, 2, 3]
    )
    assert torch.allclose(warp_torch(img[:1], one)[0, :, 1, 2], by_hand, atol=1e-6)
    # far outside: border padding repeats the edge pixel
    out = torch.full((1, 2, 9, 13), -100.0)
    assert torch.allclose(warp_torch(img[:1], out), img[:1, :, :1, :1].expand(1, 4, 9, 13), atol=1e-6)


def test_fp16_warp_samples_with_fp32_coordinates():
    w = 1920
    xs = torch.arange(w, dtype=torch.float32)
    pattern = 0.5 + 0.45 * torch.sin(2 * math.pi * xs / 4.0)  # a 4-px period: sub-pixel errors show
    img = pattern.view(1, 1, 1, w).expand(1, 3, 4, w).contiguous().half()
    g = torch.Generator().manual_seed(5)
    flow = ((torch.rand(1, 2, 4, w, generator=g) - 0.5) * 2).half()
    out = warp(img, flow)
    assert out.dtype == torch.float16
    expected = bilinear_border(img.float(), flow.float())
    error = (out.double() - expected).abs().max().item()
    assert error <= 2e-3, error
    # the same sampling with coordinates rounded to fp16 misses by far more: the bound above tells them apart
    base = torch.stack(
        torch.meshgrid(torch.linspace(-1, 1, w), torch.linspace(-1, 1, 4), indexing="xy"), dim=-1
    ).unsqueeze(0)
    norm = torch.stack((flow[:, 0].float() / ((w - 1) / 2), flow[:, 1].float() / 1.5), dim=-1)
    coarse_grid = (base + norm).half().float()
    coarse = F.grid_sample(img.float(), coarse_grid, mode="bilinear", padding_mode="border", align_corners=True)
    assert (coarse.double() - expected).abs().max().item() > 0.05
