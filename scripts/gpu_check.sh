#!/usr/bin/env bash
# GPU check in one command, at most about 7 minutes, for a machine with an NVIDIA GPU (e.g. the H100
# reached through the device tool: torch, CuPy, pytest and nvcc, no network). It prints, in order:
#   1. versions: GPU and driver, torch and its CUDA, CuPy, NVRTC (.whl/ wheels installed first, if any);
#   2. whether the CuPy kernels (warp, colour) can run here, and why not;
#   3. the GPU tests' summary: kernels (tests/test_gpu_kernels.py), engine (tests/test_engine.py) and the
#      block-matching prior's CUDA test (tests/test_bilateral.py), all -m gpu, with RIFESTREAM_REQUIRE_GPU=1
#      so a GPU test that cannot run fails instead of skipping;
#   4. the engine per model (v4.6 random weights, rifestream-v7), precision and warp backend at 1080p:
#      whether the CUDA-graph capture succeeded, its time and the memory reserved after it, the graphed
#      vs eager difference on a second, different pair (stale inputs would show), ms per frame graphed
#      and eager; then the v7 prior alone (scripts/gpu_engine_check.py);
#   5. the kernels against the torch ops they replace, timed inside CUDA graphs (scripts/gpu_kernel_bench.py).
# Each step has its own time limit, so one that hangs cannot eat the next. Everything also lands in
# $OUT (default ./gpu_check_out). Exit status: non-zero if a test or engine check failed.
#
#   bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
started=$SECONDS
step() { echo; echo "== $1 ($((SECONDS - started)) s)"; }

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/rifestream-site .whl/*.whl || { echo "gpu_check: installing .whl/ failed"; exit 3; }
    export PYTHONPATH="/tmp/rifestream-site:$PYTHONPATH"
fi

step "1. versions"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
        || echo "nvidia-smi: not available"
    command -v nvcc >/dev/null && nvcc --version | tail -1
    timeout 60 "$PY" - <<'EOF'
import platform
import torch
print("python", platform.python_version(), "| torch", torch.__version__, "| torch CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version())
print("cuda available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
try:
    import cupy
    major_minor = cupy.cuda.nvrtc.getVersion()
    print("cupy", cupy.__version__, "| NVRTC", ".".join(map(str, major_minor)),
          "| CUDA runtime", cupy.cuda.runtime.runtimeGetVersion())
except Exception as exc:  # noqa: BLE001
    print("cupy: not usable:", exc)
EOF
} 2>&1 | tee "$OUT/environment.txt"

step "2. CuPy kernels"
timeout 120 "$PY" - <<'EOF' 2>&1 | tee "$OUT/kernels.txt"
from rifestream.engine import cuda_color
from rifestream.model import warp_cupy
from rifestream.model.warp import CUPY_KERNELS_BY_DEFAULT
print("warp kernels available:", warp_cupy.available(), "" if warp_cupy.available() else warp_cupy.unavailable_reason())
print("colour kernels available:", cuda_color.available(),
      "" if cuda_color.available() else cuda_color.unavailable_reason())
print("default warp backend on CUDA:", "CuPy kernels" if CUPY_KERNELS_BY_DEFAULT else "torch ops (CuPy opt-in)")
EOF

status=0
step "3. GPU tests"
RIFESTREAM_REQUIRE_GPU=1 timeout 180 "$PY" -m pytest -q -p no:cacheprovider -rfEs -m gpu \
    tests/test_gpu_kernels.py tests/test_engine.py tests/test_bilateral.py \
    --junitxml "$OUT/gpu_tests.xml" >"$OUT/gpu_tests.log" 2>&1 || status=1
grep -E "^(FAILED|ERROR|SKIPPED)|passed|failed|error" "$OUT/gpu_tests.log" | tail -n 60

step "4. engine: captures, graphed vs eager, ms per frame, memory; the v7 prior"
timeout 150 "$PY" scripts/gpu_engine_check.py --sizes 1920x1080 --iters 20 2>&1 | tee "$OUT/engine.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

step "5. kernels vs torch ops, inside CUDA graphs"
timeout 50 "$PY" scripts/gpu_kernel_bench.py --sizes 720p 1080p --iters 50 --replays 5 \
    --out "$OUT/kernel_bench.md" 2>&1 | tail -n 30 || echo "gpu_check: kernel bench failed or ran out of time"

echo
echo "gpu_check: $([ $status = 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s; results in $OUT"
exit $status
