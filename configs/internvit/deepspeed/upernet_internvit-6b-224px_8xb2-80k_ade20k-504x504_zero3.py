# Full tuning of the 6B UperNet under ZeRO-3, for GPUs under 40 GB (~13 GB of model
# state per GPU on 8).
_base_ = ['../upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py',
          '../../_base_/deepspeed/zero3_bf16.py']
