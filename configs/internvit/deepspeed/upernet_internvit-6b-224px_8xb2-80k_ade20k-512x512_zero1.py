# The PIIP UperNet baseline under ZeRO-1 (bf16), as it was trained.
_base_ = ['../upernet_internvit-6b-224px_8xb2-80k_ade20k-512x512.py',
          '../../_base_/deepspeed/zero1_bf16.py']
