#!/usr/bin/env bash
# GPU check in one command, for a machine with an NVIDIA GPU (e.g. the H100 reached through the device
# tool, whose image has torch, CuPy, pytest and nvcc but no network):
#   1. installs carried wheels from .whl/ if there are any (for what the image lacks);
#   2. records the environment (nvidia-smi, versions);
#   3. runs tests/test_gpu_kernels.py in full with RIFESTREAM_REQUIRE_GPU=1, so a GPU test that cannot
#      run fails instead of skipping, then the engine's GPU tests (tests/test_engine.py -m gpu);
#   4. times the kernels against the torch ops they replace (scripts/gpu_kernel_bench.py).
# Everything lands in $OUT (default ./gpu_check_out): environment.txt, kernel_tests.log/.xml,
# engine_gpu_tests.log, kernel_bench.md/.json. Exit status: non-zero if any test step failed.
#
#   bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/rifestream-site .whl/*.whl || { echo "gpu_check: installing .whl/ failed"; exit 3; }
    export PYTHONPATH="/tmp/rifestream-site:$PYTHONPATH"
fi

{
    date -u
    nvidia-smi || echo "nvidia-smi: not available"
    command -v nvcc >/dev/null && nvcc --version | tail -2
    "$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("torch", "cupy", "numpy", "pytest", "av"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:  # noqa: BLE001
        print(name, "missing:", exc)
import torch
print("cuda available", torch.cuda.is_available(), torch.version.cuda)
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(), torch.cuda.get_device_capability())
from rifestream.model import warp_cupy
from rifestream.engine import cuda_color
print("warp kernels available", warp_cupy.available(), warp_cupy.unavailable_reason())
print("colour kernels available", cuda_color.available(), cuda_color.unavailable_reason())
EOF
} >"$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

status=0
RIFESTREAM_REQUIRE_GPU=1 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_gpu_kernels.py \
    --junitxml "$OUT/kernel_tests.xml" 2>&1 | tee "$OUT/kernel_tests.log" || status=1
"$PY" -m pytest -q -p no:cacheprovider -rs -m gpu tests/test_engine.py 2>&1 | tee "$OUT/engine_gpu_tests.log" \
    || status=1
"$PY" scripts/gpu_kernel_bench.py --out "$OUT/kernel_bench.md" 2>&1 | tail -n 40 || echo "gpu_check: bench failed"
echo "gpu_check: tests $([ $status = 0 ] && echo passed || echo FAILED); results in $OUT"
exit $status
