"""Quadratic motion (model.motion_history): a stream's pairs in order put an accelerating motion
where it is at t, jerky motion stays linear and, with the timing hedge, is drawn nearer where it
may be on average; the history is found by the frames alone and stays bounded, and the CPU path
gives the torch reference's frame with both."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable

import cv2
import numpy as np
import pytest
import torch

from rifestream.model.classical import DISFlow, grey_u8
from rifestream.model.lite import LiteConfig, LiteNet
from rifestream.model.motion_history import HISTORY, MotionHistory

H, W = 144, 256
INNER = (slice(24, H - 24), slice(48, W - 48))  # away from the content a pan brings in


def _texture(sigma: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(5)
    big = cv2.GaussianBlur(rng.random((H, 2 * W), dtype=np.float32), (0, 0), sigma)
    return (big - big.min()) / (big.max() - big.min())


def _panned(texture: np.ndarray, x: float) -> torch.Tensor:
    """The texture moved ``x`` px right, cropped to (1, 3, H, W) grey RGB."""
    moved = cv2.warpAffine(texture, np.float32([[1, 0, x], [0, 1, 0]]), texture.shape[::-1], flags=cv2.INTER_CUBIC)
    crop = np.ascontiguousarray(moved[:, W // 2 : W // 2 + W])
    return torch.from_numpy(np.stack([crop] * 3))[None]


def _model(quadratic: bool, hedge: bool = False, edges: bool = False) -> LiteNet:
    """An untrained CPU model (its network's output is zero: the classical steps alone)."""
    config = LiteConfig(
        "t", (8, 8), 4, 2, "fast", flow_iters=2, dis_finest_scale=1, flow_correction=False, occlusion_prior=True,
        shared_motion=True, motion_search=True, colour_residual=False, warp_mode="bicubic",
        quadratic_motion=quadratic, timing_hedge=hedge, edge_occlusion=edges,
    )  # fmt: skip
    return LiteNet(config).eval()


def _stream_errors(
    position: Callable[[float], float],
    pairs: int,
    quadratic: bool,
    hedge: bool = False,
    squared: bool = False,
    sigma: float = 2.0,
) -> list[float]:
    """Mean absolute (or ``squared``) error of each pair's middle frame in the inner part, the pairs
    in order; the picture (noise blurred by ``sigma`` px) stands ``position(s)`` px right at frame s."""
    texture, model = _texture(sigma), _model(quadratic, hedge)
    errors = []
    with torch.inference_mode():
        for k in range(pairs):
            a, b = _panned(texture, position(k)), _panned(texture, position(k + 1))
            truth = _panned(texture, position(k + 0.5))
            frame = model(a, b, 0.5, 1.0, model.prior(a, b))
            error = (frame - truth)[..., INNER[0], INNER[1]]
            errors.append(float((error * error).mean() if squared else error.abs().mean()))
    return errors


def test_an_accelerating_pan_is_drawn_where_it_is_at_t_once_two_pairs_before_are_known():
    def position(s: float) -> float:  # 4, 8, 12, 16 px a frame: 4 px a frame², 0.5 px off the line at t = 0.5
        return 2.0 * s * s + 2.0 * s

    linear = _stream_errors(position, 4, quadratic=False)
    quadratic = _stream_errors(position, 4, quadratic=True)
    assert quadratic[:2] == linear[:2]  # no pair before it, or one: linear, as in training
    for k in range(2, len(linear)):
        assert quadratic[k] < 0.5 * linear[k], (k, linear, quadratic)


def test_a_steady_pan_stays_on_its_linear_path():
    linear = _stream_errors(lambda s: 6.0 * s, 4, quadratic=False)
    quadratic = _stream_errors(lambda s: 6.0 * s, 4, quadratic=True)
    assert np.allclose(quadratic, linear, atol=2e-3), (linear, quadratic)


def _jerky(s: float) -> float:
    """A picture moving 1 or 7 px each half frame, the pattern drawn once (per-tic steps of a game):
    two frames tell how far it went, not where it stood in between."""
    steps = [1.0, 7.0, 7.0, 1.0, 7.0, 7.0, 1.0, 1.0, 7.0, 1.0, 1.0, 7.0, 7.0, 7.0]
    return sum(steps[: round(2 * s)])


def test_jerky_motion_is_spread_over_where_it_may_be_and_a_steady_pan_is_left_alone():
    """On fine detail (a game's pixel art) a point drawn a few pixels off is as wrong as a random
    one: the mean of the places it may be is closer, in squared error, than any one guess."""
    plain = _stream_errors(_jerky, 6, quadratic=True, squared=True, sigma=0.7)
    hedged = _stream_errors(_jerky, 6, quadratic=True, hedge=True, squared=True, sigma=0.7)
    assert hedged[:2] == plain[:2]  # no pair before it, or one: nothing to doubt
    assert sum(hedged[2:]) < 0.95 * sum(plain[2:]), (plain, hedged)
    steady = _stream_errors(lambda s: 6.0 * s, 4, quadratic=True, squared=True)
    assert _stream_errors(lambda s: 6.0 * s, 4, quadratic=True, hedge=True, squared=True) == steady


def test_a_repeated_frame_does_not_break_a_steady_pan():
    """Telecine repeats a frame: the pair of the two copies carries no motion, and the pair after it
    is drawn as in the same pan without the repeat (not as motion starting from rest, which the
    hedge would spread)."""
    texture = _texture(0.7)

    def frames_of(positions: list[float]) -> list[torch.Tensor]:
        model, out = _model(True, hedge=True, edges=True), []
        with torch.inference_mode():
            for x0, x1 in itertools.pairwise(positions):
                a, b = _panned(texture, x0), _panned(texture, x1)
                out.append(model(a, b, 0.5, 1.0, model.prior(a, b)))
        return out

    steady = frames_of([0.0, 6.0, 12.0, 18.0, 24.0])
    repeated = frames_of([0.0, 6.0, 12.0, 12.0, 18.0, 24.0])
    assert torch.equal(repeated[3], steady[2]) and torch.equal(repeated[4], steady[3])


def test_the_hedge_needs_the_quadratic_motion():
    with pytest.raises(ValueError, match="timing_hedge"):
        _model(False, hedge=True)


def _greys(positions: list[float]) -> list[np.ndarray]:
    texture = _texture()
    return [grey_u8(_panned(texture, x), 2) for x in positions]


def test_jerky_motion_is_not_trusted_and_a_smooth_one_is():
    dis = DISFlow("fast", 2, 1)

    def last_acceleration(positions: list[float]) -> tuple[float, float]:
        greys, history = _greys(positions), MotionHistory()
        for k in range(len(greys) - 1):
            flows = dis.pair(greys[k], greys[k + 1])
            found = history.acceleration(greys[k], greys[k + 1], flows, 2)
        raw = abs(positions[-1] - 2 * positions[-2] + positions[-3]) / 2  # on the half-size grid
        return float(np.abs(found.trusted[12:-12, 24:-24, 0]).mean()), raw

    smooth, smooth_raw = last_acceleration([2.0 * k * k for k in range(5)])  # 2, 6, 10, 14 px a frame
    jerky, jerky_raw = last_acceleration([0, 14, 16, 30, 32])  # 14, 2, 14, 2 px a frame
    assert abs(smooth - smooth_raw) < 0.3 * smooth_raw, (smooth, smooth_raw)
    assert jerky < 0.1 * jerky_raw, (jerky, jerky_raw)


def test_the_history_is_found_by_the_frames_and_stays_bounded():
    dis, history = DISFlow("fast", 2, 1), MotionHistory()
    greys = _greys([0.5 * k * k for k in range(12)])

    def accel(i: int, j: int) -> np.ndarray | None:
        found = history.acceleration(greys[i], greys[j], dis.pair(greys[i], greys[j]), 2)
        return None if found is None else found.trusted

    assert accel(0, 1) is None and accel(1, 2) is None  # two pairs are needed before
    third = accel(2, 3)
    assert third is not None and third.any()
    assert accel(3, 2) is None  # the same pair mirrored (an ensemble's pass) does not continue it
    assert accel(7, 8) is None  # a pair that continues nothing known starts again
    for k in range(8, 11):
        accel(k, k + 1)
    assert len(history) == HISTORY
    assert accel(11, 10) is None  # mirrored again: 11's pair before would be (10, 11) reversed


@pytest.mark.parametrize("hedge", [False, True])
def test_the_cpu_path_gives_the_reference_frame_on_the_quadratic_path(hedge: bool):
    """Each path keeps its own history (by its own pooled frames); fed the same stream, the OpenCV
    path and the torch reference give the same frames, at two times of one pair (with the hedge,
    also with the edge rule, whose margin the doubt widens)."""
    texture = _texture()
    fast_model, ref_model = _model(True, hedge, edges=hedge), _model(True, hedge, edges=hedge)
    frames = [_panned(texture, _jerky(k) + 0.5 * k if hedge else 2.0 * k * k) for k in range(4)]
    t = torch.tensor([0.25, 0.5]).view(2, 1, 1, 1)
    with torch.inference_mode():
        for k in range(3):
            a, b = frames[k].expand(2, -1, -1, -1), frames[k + 1].expand(2, -1, -1, -1)
            flows = fast_model.prior(frames[k], frames[k + 1]).expand(2, -1, -1, -1)
            fast = fast_model(a, b, t, 1.0, flows)
            ref = ref_model.forward_all(a, b, t, 1.0, flows).frame
            assert float((fast - ref).abs().max()) < 1e-4, k
        linear = _model(False)(a, b, t, 1.0, flows)
        assert float((fast - linear).abs().max()) > 0.01  # the third pair moved onto its quadratic path
    assert len(fast_model.history) == len(ref_model.history) == 3  # one record a pair, not one a time


def test_older_weights_without_the_setting_stay_linear():
    config = _model(True).config
    data = dataclasses.asdict(config)
    del data["quadratic_motion"], data["timing_hedge"], data["edge_occlusion"]
    older = LiteConfig.from_json(json.dumps({"family": "lite", **data}))
    assert not (older.quadratic_motion or older.timing_hedge or older.edge_occlusion)


def test_two_streams_through_one_model_each_find_their_own_pair_before():
    """A fleet's streams share a model: their pairs interleave in its history, and each stream's
    third pair still finds its own second (the history holds the last four pairs)."""
    dis, history = DISFlow("fast", 2, 1), MotionHistory()
    first = _greys([0.5 * k * k for k in range(4)])
    second = [np.ascontiguousarray(g[::-1]) for g in _greys([1.0 * k * k for k in range(4)])]  # another picture
    found = {}
    for k in range(3):
        for name, greys in (("first", first), ("second", second)):
            found[name] = history.acceleration(greys[k], greys[k + 1], dis.pair(greys[k], greys[k + 1]), 2)
    assert found["first"] is not None and found["first"].trusted.any()
    assert found["second"] is not None and found["second"].trusted.any()


def test_an_engine_shared_by_many_streams_keeps_each_streams_pair_before():
    """Past four interleaving streams the last four pairs are all other streams': each stream's
    pair before is gone when its next pair comes. An engine shared by N streams makes room for 2N."""
    from rifestream.engine.batching import SharedEngine
    from rifestream.engine.interpolator import Interpolator

    dis = DISFlow("fast", 2, 1)
    streams = [
        [np.ascontiguousarray(np.roll(g, 9 * s, axis=0)) for g in _greys([(0.5 + 0.1 * s) * k * k for k in range(4)])]
        for s in range(8)
    ]  # eight different pictures, each accelerating

    def third_pairs_found(history: MotionHistory) -> int:
        found = {}
        for k in range(3):
            for s, greys in enumerate(streams):
                found[s] = history.acceleration(greys[k], greys[k + 1], dis.pair(greys[k], greys[k + 1]), 2)
        return sum(a is not None and bool(a.trusted.any()) for a in found.values())

    assert third_pairs_found(MotionHistory()) == 0

    shared = SharedEngine(Interpolator(_model(True), device="cpu"))
    for _ in streams:
        shared.view()
    history = shared.engine.model.history
    assert history.room == 2 * len(streams)
    assert third_pairs_found(history) == len(streams)
