"""The bilateral motion search (classical.search_motion) gives each pixel the motion under which
the two frames agree, fixes a flow smoothed across a moving edge, and leaves occluded pixels alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rifestream.model import planes
from rifestream.model.classical import search_motion, searched_flows

H, W, SHIFT = 48, 96, 6  # a textured block moves SHIFT px right over a still textured background


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return cv2.GaussianBlur(rng.random((h, w), dtype=np.float32), (0, 0), 1.0) * 4.0


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frames 0 and 1, the true frame at t = 0.5 and the true velocity at t = 0.5."""
    rng = np.random.default_rng(3)
    background, block = _texture(rng, H, W), _texture(rng, 16, 20)
    frames = []
    for x in (30, 30 + SHIFT // 2, 30 + SHIFT):
        f = background.copy()
        f[16:32, x : x + 20] = block
        frames.append(f)
    velocity = np.zeros((H, W, 2), dtype=np.float32)
    velocity[16:32, 30 + SHIFT // 2 : 50 + SHIFT // 2, 0] = SHIFT
    return frames[0], frames[2], frames[1], velocity


def _frame_at_half(g0: np.ndarray, g1: np.ndarray, v: np.ndarray) -> np.ndarray:
    grid = planes.pixel_grid(H, W)
    at0 = cv2.remap(g0, grid - 0.5 * v, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    at1 = cv2.remap(g1, grid + 0.5 * v, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return (at0 + at1) / 2


def test_a_flow_smoothed_across_a_moving_edge_takes_the_motion_of_its_own_side():
    g0, g1, truth, velocity = _scene()
    smoothed = cv2.blur(velocity, (5, 5))  # a flow smoothed across the block's edges, as DIS's is
    chosen = search_motion(g0, g1, smoothed, [], 0.5)
    edges = np.zeros((H, W), dtype=bool)  # the block's top and bottom edges: no occlusion there
    edges[13:19, 36:50] = edges[29:35, 36:50] = True
    before = np.abs(smoothed - velocity)[edges].mean()
    after = np.abs(chosen - velocity)[edges].mean()
    assert after < 0.5 * before, (before, after)
    inside = slice(8, 40), slice(8, 88)
    err_before = np.abs(_frame_at_half(g0, g1, smoothed) - truth)[inside].mean()
    err_after = np.abs(_frame_at_half(g0, g1, chosen) - truth)[inside].mean()
    assert err_after < 0.6 * err_before, (err_before, err_after)
    assert np.array_equal(chosen[40:, :], smoothed[40:, :])  # far from the block nothing is better


def test_a_whole_candidate_field_is_taken_where_it_matches_better():
    g0, g1, _, velocity = _scene()
    wrong = np.zeros_like(velocity)
    chosen = search_motion(g0, g1, wrong, [velocity], 0.5, steps=())
    assert np.abs(chosen - velocity)[18:30, 36:50].max() == 0  # the block takes the right field


def test_pixels_marked_occluded_keep_their_motion():
    g0, g1, _, velocity = _scene()
    free = np.ones((H, W), dtype=bool)
    free[:, :48] = False
    wrong = np.zeros_like(velocity)
    chosen = search_motion(g0, g1, wrong, [velocity], 0.5, free=free, steps=(2, 1))
    assert np.array_equal(chosen[:, :48], wrong[:, :48])
    assert np.abs(chosen - velocity)[18:30, 48:50].max() == 0


@pytest.mark.parametrize("t", [0.25, 0.5, 0.75])
def test_searched_flows_keep_a_right_shared_motion_at_any_time(t):
    """A pan every flow gets right stays as it is, and the two flows stay one motion: F(t→0) = −t·v,
    F(t→1) = (1 − t)·v."""
    rng = np.random.default_rng(5)
    picture = np.stack([_texture(rng, H, W + 8)] * 3)
    small0, small1 = np.ascontiguousarray(picture[:, :, 8:]), np.ascontiguousarray(picture[:, :, :-8])
    v = np.zeros((H, W, 2), dtype=np.float32)
    v[..., 0] = 8.0  # frame 1 is frame 0 moved 8 px right
    shared = (-t * v, (1 - t) * v)
    f0, f1 = searched_flows(small0, small1, shared, shared, t, prior=None)
    assert np.abs(f0 + t * v).max() < 1e-5 and np.abs(f1 - (1 - t) * v).max() < 1e-5
