#!/usr/bin/env bash
# The GPU figures of the README in a few calls on a bare, offline GPU machine (torch
# with CUDA, nvcc, Python 3.12; no OpenMMLab packages). README "Performance" has the
# exact device calls.
#
#   bash tools/gpu_check.sh prepare    # HERE, with registry access: the pure-Python
#                                      # wheels (cp312) and mmcv's source into .whl/
#   bash tools/gpu_check.sh backbone   # GPU call 1 (~6 min): install the wheels, start
#                                      # the mmcv CUDA build in the background (setsid),
#                                      # then the backbone-only figures with mmcv-lite
#   bash tools/gpu_check.sh seg        # GPU call 2, right after call 1 (a warm machine
#                                      # keeps /tmp and the build): wait for the build,
#                                      # then the segmentation figures and the
#                                      # tools/train.py --amp smoke run. Exit 3: the build
#                                      # still runs, call it again.
#   bash tools/gpu_check.sh cpu        # the CPU fallback: the same code at tiny sizes
#                                      # on this machine's environment (CI, tests)
#
# Figures and logs go to $OUT (the device tool's output folder) or work_dirs/gpu_check.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
PY=${PY:-python3}
OUT=${OUT:-$REPO/work_dirs/gpu_check}
WHL=$REPO/.whl
SITE=/tmp/site          # pure-Python wheels (and setuptools<81 for mmcv's setup.py)
LITE=/tmp/site_lite     # mmcv-lite: mmcv without ops, for the backbone phase
MMCV=/tmp/site_mmcv     # mmcv 2.1.0 compiled with CUDA ops, for the segmentation phase
BUILD=/tmp/mmcv_build   # build directory, log and status files
WAIT=${WAIT:-420}       # seconds the seg phase waits for the build in one call
mkdir -p "$OUT"

# Pure-Python wheels (and two manylinux ones) the image lacks; numpy, scipy, torch,
# opencv, matplotlib, rich, pyyaml, packaging, six, tqdm, safetensors are there.
WHEELS=(mmengine==0.10.7 mmcv-lite==2.1.0 mmsegmentation==1.2.2 mmdet==3.3.0 ftfy
        regex prettytable wcwidth addict yapf termcolor platformdirs "setuptools<81"
        terminaltables shapely pycocotools imgviz cmap)

prepare() {
    rm -rf "$WHL" && mkdir -p "$WHL"
    local plat=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
             manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
        plat+=(--platform "$p")
    done
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${plat[@]}" -d "$WHL" "${WHEELS[@]}" || return 1
    "$PY" -m pip download -q --no-deps --no-binary=:all: -d "$WHL" mmcv==2.1.0 || return 1
    ls -la "$WHL"
    du -sh "$WHL"
    echo "carry .whl in the device calls (README: Performance, On a lent GPU)"
}

install() {
    [ -f "$SITE/.installed" ] && [ -f "$LITE/.installed" ] && return 0
    ls "$WHL"/mmengine-*.whl > /dev/null || { echo "no wheels in $WHL: run 'prepare' here and carry .whl"; exit 2; }
    local pure
    pure=$(ls "$WHL"/*.whl | grep -v mmcv_lite)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" $pure || exit 2
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$LITE" "$WHL"/mmcv_lite-*.whl || exit 2
    touch "$SITE/.installed" "$LITE/.installed"
}

start_build() {
    if [ -f "$BUILD/ok" ] || { [ -f "$BUILD/pid" ] && kill -0 "$(cat "$BUILD/pid")" 2> /dev/null; }; then
        return 0
    fi
    rm -rf "$BUILD" && mkdir -p "$BUILD"
    local arch
    arch=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())") || exit 2
    tar xzf "$WHL"/mmcv-2.1.0.tar.gz -C "$BUILD" || exit 2
    echo "building mmcv 2.1.0 with CUDA ops for sm_${arch/./} in the background ($BUILD/log)"
    # setsid: the build outlives this call while the machine stays warm (30 s idle)
    setsid bash -c "cd '$BUILD/mmcv-2.1.0' && PYTHONPATH='$SITE' MMCV_WITH_OPS=1 FORCE_CUDA=1 \
        TORCH_CUDA_ARCH_LIST='$arch' MAX_JOBS=16 '$PY' -m pip install -v --no-index \
        --no-deps --no-build-isolation --no-cache-dir --target '$MMCV' . > '$BUILD/log' 2>&1 \
        && touch '$BUILD/ok' || touch '$BUILD/failed'" < /dev/null > /dev/null 2>&1 &
    echo $! > "$BUILD/pid"
}

wait_build() {
    local start=$SECONDS
    while [ ! -f "$BUILD/ok" ] && [ ! -f "$BUILD/failed" ]; do
        if [ $((SECONDS - start)) -ge "$WAIT" ]; then
            echo "mmcv still building after ${WAIT}s in this call ($(find "$BUILD" -name '*.o' | wc -l) objects); call 'bash tools/gpu_check.sh seg' again within 30 s"
            exit 3
        fi
        sleep 10
    done
    if [ -f "$BUILD/failed" ]; then
        echo "mmcv build FAILED; last lines of $BUILD/log:"
        tail -40 "$BUILD/log"
        cp "$BUILD/log" "$OUT/mmcv_build.log"
        exit 2
    fi
    echo "mmcv built in $BUILD ($(du -sh "$MMCV" | cut -f1))"
}

case "${1:-}" in
    prepare)
        prepare ;;
    backbone)
        install
        start_build
        PYTHONPATH="$SITE:$LITE:$REPO" "$PY" tools/analysis_tools/gpu_check.py --phase backbone --out "$OUT" "${@:2}" ;;
    seg)
        install
        start_build
        wait_build
        PYTHONPATH="$SITE:$MMCV:$REPO" "$PY" tools/analysis_tools/gpu_check.py --phase seg --out "$OUT" "${@:2}" ;;
    cpu)
        "$PY" tools/analysis_tools/gpu_check.py --cpu --phase all --out "$OUT" "${@:2}" ;;
    *)
        sed -n '2,20p' "$0"
        exit 2 ;;
esac
