"""Student health checks: block feature activity and the translation probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rifestream.errors import RifestreamError
from rifestream.model.ifnet import IFNet, IFNetConfig
from rifestream.train.diagnostics import block_activity, health_summary, static_flow, translation_probe
from rifestream.train.trainer import reinit_blocks

CONFIG = IFNetConfig("probe", (32, 16), (4, 1), head=True, pad=16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def textured_frame(h: int = 112, w: int = 144) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    return np.ascontiguousarray(small.repeat(4, 0).repeat(4, 1))


def zero_flow_net() -> IFNet:
    """An IFNet whose blocks predict nothing: flow 0, mask logit 0 (an even blend)."""
    torch.manual_seed(0)
    net = IFNet(CONFIG)
    for block in net.blocks:
        torch.nn.init.zeros_(block.lastconv[0].weight)
        torch.nn.init.zeros_(block.lastconv[0].bias)
    return net.eval()


def test_static_flow_reads_the_motion_a_block_invents_on_a_still_picture():
    """A coarse block biased to answer 1.5 px (as one trained only on moving scenes may) shows
    1.5 px after it on a frame paired with itself, and the later block's output adds to it."""
    net = zero_flow_net()
    with torch.no_grad():
        net.blocks[0].lastconv[0].bias[0:4] = 1.5 / 4  # flow x of F(t->0): scaled back by the block's scale 4
    still = static_flow(net, textured_frame())
    assert len(still) == 2
    assert still[0].max_abs == pytest.approx(1.5, rel=1e-5)
    assert still[0].mean_abs == pytest.approx(1.5 / 4, rel=1e-5)  # one channel of four
    assert still[1].max_abs == pytest.approx(1.5, rel=1e-5)
    assert static_flow(zero_flow_net(), textured_frame())[1].max_abs == 0.0


def test_a_net_that_predicts_no_motion_probes_as_zero_flow_and_blend_quality():
    rows = translation_probe(zero_flow_net(), textured_frame(), shifts=(4, 8))
    assert [(r.axis, r.shift) for r in rows] == [("x", 4), ("x", 8), ("y", 4), ("y", 8)]
    for r in rows:
        assert r.estimated == 0.0 and r.by_block == (0.0, 0.0)
        assert r.psnr_model == pytest.approx(r.psnr_blend, abs=0.2)  # mask 0.5, flow 0: a blend
        assert r.psnr_blend < 30  # the shift is real: blending does not rebuild the middle


def test_the_probe_reads_the_flow_after_each_block():
    net = zero_flow_net()
    with torch.no_grad():
        net.blocks[1].lastconv[0].bias[0:4] = 1.5  # F(t→0) along x from the last block alone (PixelShuffle(2))
    x_row = translation_probe(net, textured_frame(), shifts=(4,))[0]
    assert x_row.by_block == pytest.approx((0.0, 1.5), abs=1e-5)
    assert x_row.estimated == pytest.approx(1.5, abs=1e-5)


def collapse(block: torch.nn.Module) -> None:
    """Push every feature of ``block`` negative, as training did to rifestream-v1's coarse blocks."""
    with torch.no_grad():
        for layer in (block.conv0[0][0], block.conv0[1][0]):
            layer.weight.zero_()
            layer.bias.fill_(-1.0)
        for res in block.convblock:
            res.conv.weight.zero_()
            res.conv.bias.zero_()


def test_features_pushed_negative_collapse_and_block_activity_shows_it():
    """ResConv applies LeakyReLU(0.2) after its residual add: a negative feature shrinks five-fold
    per layer, 0.2 ** 9 over the block's conv0 and its eight residual layers."""
    net = zero_flow_net()
    collapse(net.blocks[0])
    img = torch.rand(1, 3, 64, 64)
    first, second = block_activity(net, img, img)
    assert first.positive == 0.0
    assert first.mean_abs == pytest.approx(0.2**9, rel=1e-3)
    assert second.mean_abs > 1e-3 and 0.0 < second.positive < 1.0  # an untouched block


def test_health_summary_names_every_block_and_the_probe():
    frame = torch.from_numpy(textured_frame()).permute(2, 0, 1)[None].float() / 255
    line = health_summary(zero_flow_net(), frame, frame, shift=8)
    assert line.count("%") == len(CONFIG.channels)
    assert "8 px shift: flow x 0.00 y 0.00 (truth 4)" in line


def test_reinit_gives_a_collapsed_block_live_features_without_changing_the_frame():
    net = zero_flow_net()
    collapse(net.blocks[0])
    with torch.no_grad():
        net.blocks[0].lastconv[0].bias.uniform_(-0.5, 0.5)  # the constant a collapsed block outputs
    untouched = {k: v.clone() for k, v in net.blocks[1].state_dict().items()}
    img0, img1 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = net(img0, img1)
    reinit_blocks(net, [0])
    with torch.no_grad():
        after = net(img0, img1)
    revived, _ = block_activity(net, img0, img1)
    assert revived.mean_abs > 1e-2 and revived.positive > 0.3
    assert torch.allclose(before, after, atol=1e-6)
    assert all(torch.equal(v, net.blocks[1].state_dict()[k]) for k, v in untouched.items())
    with pytest.raises(RifestreamError, match="block 2: the model has blocks 0 to 1"):
        reinit_blocks(net, [2])
