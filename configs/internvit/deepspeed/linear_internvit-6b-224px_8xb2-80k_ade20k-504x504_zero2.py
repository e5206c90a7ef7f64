# The few-shot family's full-set run (linear head, backbone trained) under ZeRO-2 instead of the recipe's ZeRO-1 on 8
# GPUs.
_base_ = '../linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'
strategy = dict(zero_optimization=dict(stage=2))
