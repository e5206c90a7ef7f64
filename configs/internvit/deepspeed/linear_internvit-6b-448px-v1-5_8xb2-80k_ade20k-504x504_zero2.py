# The few-shot family's full-set run with InternViT-6B-448px-V1-5 under ZeRO-2 instead of the recipe's ZeRO-1 on 8 GPUs.
_base_ = '../linear_internvit-6b-448px-v1-5_8xb2-80k_ade20k-504x504.py'
strategy = dict(zero_optimization=dict(stage=2))
