# Full tuning of the 6B adapter UperNet under DeepSpeed ZeRO-2 on 8 GPUs (model state per
# GPU in the README). The adapter's deformable attention samples in fp32, so it runs in
# DeepSpeed's bf16 model.
_base_ = ['../upernet_internvit-6b-224px-adapter_8xb2-80k_ade20k-512x512.py',
          '../../_base_/deepspeed/zero2_bf16.py']
