#!/usr/bin/env bash
# The main job on the embedded default (`make demo` runs the set-up first):
# build the demo dataset, train the tiny InternViT UperNet, evaluate, and draw.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
CONFIG=configs/demo/upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py
WORK_DIR=${WORK_DIR:-work_dirs/demo_ade20k}

rm -rf "$WORK_DIR"
"$PY" tools/prepare_demo_data.py
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
CKPT=$(cat "$WORK_DIR/last_checkpoint")
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test" \
    --show-dir "$WORK_DIR/overlays"
"$PY" tools/plot_curves.py "$WORK_DIR"
echo
grep -h "mIoU before training" "$WORK_DIR"/*/*.log | sed 's/.*INFO - /demo: /'
echo "demo: overlays (ground truth | prediction) in $WORK_DIR/overlays/vis_data/vis_image/"
echo "demo: loss / mIoU curves in $WORK_DIR/curves.png"
