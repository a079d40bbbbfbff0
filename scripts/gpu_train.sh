#!/usr/bin/env bash
# One piece of GPU training, for a machine lent by the minute (the device tool: at most 10 minutes a
# command, 64 MiB carried along, no network, an image with torch and CUDA but without PyAV).
#
# Here, once:        bash scripts/gpu_train.sh --prepare
#                    .whl/  the PyAV wheel for the device's Python 3.12, unpacked and packed again as
#                           av-VERSION.tar.xz (25 MB where the wheel is 36 MB: with the tracked tree, the clips
#                           and the start weights a call then stays under the 64 MiB it may carry)
#                    .gpu/clips/  the shared clips (the config's train_clips and val_clips name the split)
#                    .gpu/init.safetensors  the weights to start from (the default model unless already there)
# Each device call:  command "bash scripts/gpu_train.sh", carry [".whl", ".gpu"], timeout_s 600
#                    $OUT gets latest.safetensors, train.log and eval.txt (the held-out clips under the
#                    protocol of issue 3: the new weights next to the ones the piece started from)
# Between calls:     cp FILES_AT/latest.safetensors .gpu/init.safetensors   (the next piece starts there)
#
# A piece starts the student from .gpu/init.safetensors with a fresh teacher and optimiser (the full
# checkpoint, 63 MB, does not fit beside the wheel in the 64 MiB carried), warms up, and fits its
# cosine schedule to MINUTES (default 7) so that the learning rate has decayed when it stops.
# The defaults continue the shipped default model's recipe (docs/MODEL_CARD.md, "What would improve
# it further"): configs/train/subcell-prior.toml, real triplets only, LR 1e-4 at batch 32
# (the CPU pieces used 6e-5 at batch 8).
# Settings by environment: MINUTES, BATCH (32), CROP (256), LR (1e-4), SYNTHETIC_SHARE (0),
# PYTHON (python3), CONFIG (configs/train/subcell-prior.toml), TRAIN_ARGS (more `rifestream train` options, e.g.
# "--reinit-block 0 --reinit-block 1" for the first piece of a run that restarts the coarse blocks).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
CLIPS_SRC="${CLIPS_SRC:-../shared/data/clips}"

if [ "${1:-}" = "--prepare" ]; then
    set -e
    mkdir -p .whl .gpu/clips
    av_version="$("$PY" -c 'import av; print(av.__version__)')"
    wheel_dir="$(mktemp -d)"
    trap 'rm -rf "$wheel_dir"' EXIT
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$wheel_dir" "av==$av_version"
    rm -f .whl/*
    # A wheel is a zip of what pip would put in site-packages; xz packs its shared libraries tighter.
    "$PY" - "$wheel_dir"/av-*.whl ".whl/av-$av_version.tar.xz" <<'PACK'
import sys, tarfile, tempfile, zipfile
with tempfile.TemporaryDirectory() as unpacked:
    zipfile.ZipFile(sys.argv[1]).extractall(unpacked)
    with tarfile.open(sys.argv[2], "w:xz", preset=9) as tar:
        tar.add(unpacked, arcname=".")
PACK
    cp "$CLIPS_SRC"/* .gpu/clips/
    default_model="$(PYTHONPATH="$PWD" "$PY" -c 'from rifestream.model.registry import DEFAULT_MODEL; print(DEFAULT_MODEL)')"
    [ -f .gpu/init.safetensors ] || cp "rifestream/weights/$default_model.safetensors" .gpu/init.safetensors
    du -sh .whl .gpu
    exit 0
fi

OUT="${OUT:-$PWD/gpu_train_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}"
if compgen -G ".whl/av-*.tar.xz" >/dev/null; then
    rm -rf /tmp/rifestream-site
    "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
        .whl/av-*.tar.xz /tmp/rifestream-site || { echo "gpu_train: unpacking .whl/ failed"; exit 3; }
    export PYTHONPATH="/tmp/rifestream-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c 'import av; print(f"gpu_train: PyAV {av.__version__} from {av.__path__[0]}")' \
    || { echo "gpu_train: PyAV does not import: run 'bash scripts/gpu_train.sh --prepare' here first"; exit 3; }
for need in .gpu/clips .gpu/init.safetensors; do
    [ -e "$need" ] || { echo "gpu_train: $need is missing: run 'bash scripts/gpu_train.sh --prepare' here first"; exit 2; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/device.txt"
DEVICE="${DEVICE:-cuda}"
MINUTES="${MINUTES:-7}"
STOP_MINUTES="$("$PY" -c "print($MINUTES + 0.5)")"  # the fitted schedule ends first; this is the backstop

CONFIG="${CONFIG:-configs/train/subcell-prior.toml}"
# shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
"$PY" -m rifestream train --config "$CONFIG" --clips-dir .gpu/clips --out /tmp/rifestream-run \
    --device "$DEVICE" --init .gpu/init.safetensors --batch "${BATCH:-32}" --crop "${CROP:-256}" \
    --lr "${LR:-1e-4}" --synthetic-share "${SYNTHETIC_SHARE:-0}" --steps 1000000 --fit-minutes "$MINUTES" --max-minutes "$STOP_MINUTES" \
    ${TRAIN_ARGS:-} --no-progress 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
[ -f /tmp/rifestream-run/latest.safetensors ] && cp /tmp/rifestream-run/latest.safetensors "$OUT/"
[ "$status" = 0 ] || { echo "gpu_train: training failed ($status)"; exit "$status"; }

held_out=$(sed -n 's/^val_clips = \[\(.*\)\]/\1/p' "$CONFIG" | tr -d '",')
"$PY" -m rifestream eval $(for c in $held_out; do echo ".gpu/clips/$c"; done) --device "$DEVICE" \
    --model "$OUT/latest.safetensors" --model .gpu/init.safetensors 2>&1 | tee "$OUT/eval.txt"
echo "gpu_train: done; weights in $OUT/latest.safetensors"
