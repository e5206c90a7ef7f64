# Cascade Mask R-CNN with the 6B backbone fully tuned under ZeRO-2 on 32 GPUs (~15 GB of
# model state per GPU).
_base_ = ['../cascade-mask-rcnn_internvit-6b_simplefpn_32xb2-lsj-100e_coco.py',
          '../../_base_/deepspeed/zero2_bf16.py']
