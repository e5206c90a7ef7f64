# The few-shot family's full-set run with the 448px backbone under ZeRO-2 on 8 GPUs.
_base_ = ['../linear_internvit-6b-448px_8xb2-80k_ade20k-504x504.py',
          '../../_base_/deepspeed/zero2_bf16.py']
