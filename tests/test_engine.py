"""The Interpolator: padding and cropping, several t at once, ensembles, input forms, errors, scene cuts."""

import copy

import numpy as np
import pytest
import torch

from rifestream.engine import FrameEngine, Interpolator, scene_change_score
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


# ----- the CUDA path's decisions, tested on the CPU (issue 19 item 12, issue 22 part A) -----


def test_the_cupy_kernels_are_opt_in_and_the_default_decision_never_picks_them():
    from rifestream.engine.interpolator import warp_backend_for
    from rifestream.model.warp import CUPY_KERNELS_BY_DEFAULT, default_backend, kernel_applies

    assert CUPY_KERNELS_BY_DEFAULT is False and default_backend() == "torch"
    assert warp_backend_for(torch.device("cuda"), cupy_kernels=False) == "torch"
    f16, f32 = torch.float16, torch.float32
    assert not kernel_applies("torch", "cuda", [f16, f32], needs_grad=False)  # the CUDA default: grid_sample
    assert kernel_applies("cupy", "cuda", [f16, f32], needs_grad=False)  # opted in
    assert not kernel_applies("cupy", "cpu", [f32], needs_grad=False)
    assert not kernel_applies("cupy", "cuda", [f32], needs_grad=True)  # training: autograd needs torch ops
    assert not kernel_applies("cupy", "cuda", [torch.float64], needs_grad=False)
    with pytest.raises(RifestreamError, match="cupy_kernels needs a CUDA device"):
        Interpolator(IFNet(TINY), device="cpu", cupy_kernels=True)
    if not torch.cuda.is_available():
        with pytest.raises(RifestreamError, match="cannot run here"):
            warp_backend_for(torch.device("cuda"), cupy_kernels=True)


def test_the_default_engine_runs_without_ever_touching_the_cupy_module(monkeypatch):
    import sys

    import rifestream.model as model_pkg
    from rifestream.model import warp as warp_mod

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the default path used warp_cupy.{name}")

    def no_cupy(name):
        raise AssertionError(f"the default path asked for the CuPy op {name}")

    monkeypatch.setitem(sys.modules, "rifestream.model.warp_cupy", Untouchable())
    monkeypatch.setattr(model_pkg, "warp_cupy", Untouchable(), raising=False)
    monkeypatch.setattr(warp_mod, "_cupy_op", no_cupy)
    engine = Interpolator(IFNet(OFFICIAL_ARCHS["v4.6"]), device="cpu")
    assert engine.model.warp_backend == "torch"
    a, b = frames(64, 64)
    assert engine.interpolate(a, b, 0.5).shape == (64, 64, 3)


def test_timesteps_are_filled_on_the_device_per_value():
    engine = Interpolator(IFNet(TINY), device="cpu")
    t = engine._timesteps([0.25, 0.25, 0.75, 0.5], 4, 6)
    assert t.shape == (4, 1, 4, 6)
    assert t[:, 0, 0, 0].tolist() == [0.25, 0.25, 0.75, 0.5] and bool((t == t[:, :, :1, :1]).all())


def test_flow_is_accumulated_in_fp32_also_for_a_half_precision_model():
    torch.manual_seed(0)
    model = IFNet(TINY).half()
    a, b = torch.rand(1, 3, 32, 32).half(), torch.rand(1, 3, 32, 32).half()
    out = model.forward_all(a, b, 0.5)
    assert [f.dtype for f in out.flows] == [torch.float32, torch.float32]
    assert out.frame.dtype == torch.float16


class _Captures:
    """Stands in for ``Interpolator._capture`` on the CPU: records each capture, returns ``result``."""

    def __init__(self, result):
        self.result, self.keys = result, []

    def __call__(self, img0, img1, timestep, scale):
        self.keys.append((tuple(img0.shape), scale))
        return self.result


def test_a_failed_capture_runs_eagerly_and_is_not_retried_per_call(monkeypatch):
    torch.manual_seed(0)
    eager = Interpolator(IFNet(TINY), device="cpu")
    graphed = Interpolator(copy.deepcopy(eager.model), device="cpu")
    graphed.use_graphs = True  # the graph path's bookkeeping, with a capture that fails
    captures = _Captures(None)
    monkeypatch.setattr(graphed, "_capture", captures)
    a, b = torch.rand(3, 37, 53), torch.rand(3, 37, 53)
    first = graphed.interpolate(a, b, [0.5])
    assert graphed.last_call_captured  # the budget does not learn from this call's time
    second = graphed.interpolate(a, b, [0.5])
    assert not graphed.last_call_captured
    assert captures.keys == [((1, 3, 64, 64), 1.0)]  # tried once for the shape
    for out in (first, second):
        torch.testing.assert_close(out[0], eager.interpolate(a, b, [0.5])[0])


def test_the_graph_cache_keeps_the_most_recently_used_up_to_its_cap(monkeypatch):
    engine = Interpolator(IFNet(TINY), device="cpu", max_graphs=2)
    captures = _Captures(None)
    monkeypatch.setattr(engine, "_capture", captures)
    x = {n: torch.zeros(n, 3, 32, 32) for n in (1, 2, 3)}
    for n in (1, 2, 1, 3, 1, 2):  # 1 stays in use; 2 is dropped when 3 comes, and captured again
        engine._graph_for(x[n], x[n], x[n][:, :1], 1.0)
    assert [k[0][0] for k in captures.keys] == [1, 2, 3, 2]
    assert [k[0][0] for k in engine._graphs] == [1, 2]


def test_the_warp_grid_cache_drops_the_least_recently_used_and_lists_what_a_capture_holds():
    from rifestream.model import warp as warp_mod

    warp_mod._base_grids.clear()
    cpu = torch.device("cpu")
    hot = warp_mod.base_grid(8, 8, cpu)
    for k in range(1, 2 * warp_mod._MAX_GRIDS):  # many other sizes, the hot one used in between
        warp_mod.base_grid(8, 8 + k, cpu)
        assert warp_mod.base_grid(8, 8, cpu) is hot
    assert len(warp_mod._base_grids) == warp_mod._MAX_GRIDS
    held = warp_mod.cached_grids(cpu)
    assert any(g is hot for g in held) and len(held) == warp_mod._MAX_GRIDS
    warp_mod._base_grids.clear()


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        import os

        if os.environ.get("RIFESTREAM_REQUIRE_GPU") == "1":
            pytest.fail("needs CUDA")
        pytest.skip("needs CUDA")


@pytest.mark.gpu
def test_gpu_a_capture_that_fails_leaves_the_thread_on_its_stream_and_runs_eagerly():
    _require_cuda()

    class SyncsInForward(IFNet):
        def forward(self, *args, **kwargs):
            if torch.cuda.is_current_stream_capturing():
                torch.cuda.synchronize()  # not allowed while capturing: the capture fails
            return super().forward(*args, **kwargs)

    torch.manual_seed(0)
    model = SyncsInForward(TINY)
    a, b = frames(64, 96)
    before = torch.cuda.current_stream()
    engine = Interpolator(model, device="cuda")
    out = engine.interpolate(a, b, [0.5])
    assert torch.cuda.current_stream() == before
    assert engine._graphs[((1, 3, 64, 96), 1.0)] is None
    eager = Interpolator(copy.deepcopy(model), device="cuda", cuda_graphs=False).interpolate(a, b, [0.5])
    assert np.abs(out[0].astype(int) - eager[0]).max() <= 1


@pytest.mark.gpu
def test_gpu_a_graph_still_reads_its_warp_grid_after_the_cache_dropped_it():
    _require_cuda()
    from rifestream.model import warp as warp_mod

    torch.manual_seed(0)
    model = IFNet(OFFICIAL_ARCHS["v4.6"])
    eager = Interpolator(copy.deepcopy(model), device="cuda", cuda_graphs=False)
    graphed = Interpolator(model, device="cuda")
    a, b = frames(128, 192, seed=1)
    graphed.interpolate(a, b, [0.5])  # captured
    for k in range(2 * warp_mod._MAX_GRIDS):  # drop its grid from the cache, and reuse the memory
        warp_mod.base_grid(64, 64 + 32 * k, torch.device("cuda"))
    junk = [torch.full((1, 128, 192, 2), 7.0, device="cuda") for _ in range(8)]
    c, d = frames(128, 192, seed=2)  # a different pair: stale inputs would show
    assert np.abs(graphed.interpolate(c, d, [0.5])[0].astype(int) - eager.interpolate(c, d, [0.5])[0]).max() <= 1
    del junk


@pytest.mark.gpu
def test_gpu_graphs_on_a_second_device_match_eager():
    _require_cuda()
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    torch.manual_seed(0)
    model = IFNet(OFFICIAL_ARCHS["v4.6"])
    a, b = frames(128, 192)
    eager = Interpolator(copy.deepcopy(model), device="cuda:1", cuda_graphs=False).interpolate(a, b, [0.5])
    graphed = Interpolator(model, device="cuda:1")
    for _ in range(2):
        out = graphed.interpolate(a, b, [0.5])
    assert np.abs(out[0].astype(int) - eager[0]).max() <= 1


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "nv12"])
@pytest.mark.parametrize("size", [(48, 64), (37, 53)])
def test_the_opted_in_upload_converts_4_2_0_planes_as_pyav_does(pix_fmt, size):
    import av

    from rifestream.engine.device_frames import planes_to_tensor, uploads_planes

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert uploads_planes(cuda, True, pix_fmt) and not uploads_planes(cuda, False, pix_fmt)  # opt-in only
    assert not uploads_planes(cpu, True, pix_fmt) and not uploads_planes(cuda, True, "rgb24")
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (h + w) + 60], -1).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
    engine = FrameEngine("cpu")
    by_pyav = engine.frame_to_tensor(frame)  # the default path: PyAV's rgb24
    torch.testing.assert_close(by_pyav, engine.to_tensor(frame.to_ndarray(format="rgb24")))
    on_device = planes_to_tensor(frame, cpu, torch.float32)  # the opted-in path (torch reference off CUDA)
    assert on_device.shape == (1, 3, h, w)
    diff = (on_device - by_pyav).abs() * 255
    # nearest chroma upsampling; swscale's own is nearest for even yuv420p (3 levels: its 8-bit tables)
    # and filtered for NV12 and odd sizes (measured: at most 7.6 levels, 1.9 on average)
    assert diff.max().item() <= (3 if pix_fmt == "yuv420p" and h % 2 == 0 else 8) and diff.mean().item() < 2


def test_the_opted_in_download_makes_yuv420p_frames_as_ffmpeg_area_does():
    from rifestream.engine.device_frames import downloads_planes, tensor_to_yuv420p_frames

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert downloads_planes(cuda, True, 48, 64) and not downloads_planes(cuda, False, 48, 64)
    assert not downloads_planes(cpu, True, 48, 64) and not downloads_planes(cuda, True, 37, 64)
    engine = FrameEngine("cpu")
    made = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(3))
    by_default = engine.to_frames(made)  # the default: rgb24, rounded on the host
    assert [f.format.name for f in by_default] == ["rgb24", "rgb24"]
    assert all(np.array_equal(f.to_ndarray(), a) for f, a in zip(by_default, engine.to_numpy(made), strict=True))
    opted_in = tensor_to_yuv420p_frames(made)  # the opted-in path (torch reference off CUDA)
    for rgb, yuv in zip(by_default, opted_in, strict=True):
        assert yuv.format.name == "yuv420p" and (yuv.width, yuv.height) == (64, 48)
        ffmpeg = rgb.reformat(format="yuv420p", interpolation="AREA").to_ndarray().astype(int)
        # from the unrounded frame, not its rgb24 rounding: one level apart at most
        assert np.abs(yuv.to_ndarray().astype(int) - ffmpeg).max() <= 1


def test_the_cupy_opt_in_is_an_engine_setting_of_the_pipeline_and_the_run_command(tmp_path):
    import subprocess
    import sys

    from rifestream.config import load_config

    assert load_config().engine.cupy_kernels is None  # the engine's default: off
    pipeline = tmp_path / "p.toml"
    pipeline.write_text("[engine]\ncupy_kernels = true\n")
    assert load_config(pipeline).engine.cupy_kernels is True
    with pytest.raises(RifestreamError, match="cupy_kernels"):
        load_config(None, {"engine": {"cupy_kernels": "yes"}})
    # asked for on a CPU: one line, exit 2, before anything runs
    cmd = [sys.executable, "-m", "rifestream", "run", "--cupy-kernels", "--device", "cpu", "--model", "rifestream-v7",
           "--sink", "null", "--duration", "1", "--no-metrics"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "cupy_kernels" in line]
    assert len(lines) == 1 and "needs a CUDA device" in lines[0] and "Traceback" not in done.stderr


def test_bench_takes_the_cupy_opt_in_and_refuses_it_on_a_cpu_in_one_line():
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "rifestream", "bench", "--arch", "v4.6", "--cupy-kernels", "--device", "cpu",
           "--size", "64x64", "--iters", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.strip()][-1].endswith(
        "cupy_kernels needs a CUDA device; turn it off or use --device cuda"
    )


def test_cpu_frame_conversions_give_torchs_numbers_exactly():
    """On a CPU the uint8 <-> float conversions run on OpenCV (no torch op before the CPU model's
    OpenCV work); they give what torch's division, rounding (half to even) and clamping give."""
    engine = FrameEngine("cpu")
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    planar = engine.to_tensor(frame)
    ref = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div(255.0)
    assert planar.is_contiguous() and torch.equal(planar, ref)
    values = torch.tensor([-0.3, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.4, 254.5 / 255, 1.0, 1.7])
    frames = values.repeat(2, 3, 4, 1) + torch.rand(2, 3, 4, 9) * torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    got = engine.to_numpy(frames)
    want = frames.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert got.shape == (2, 4, 9, 3) and np.array_equal(got, want)
