# The PIIP Mask R-CNN baseline under ZeRO-1 (bf16) on 8 GPUs, as it was trained.
_base_ = ['../mask-rcnn_internvit-6b_simplefpn_8xb2-ms-1x_coco.py',
          '../../_base_/deepspeed/zero1_bf16.py']
