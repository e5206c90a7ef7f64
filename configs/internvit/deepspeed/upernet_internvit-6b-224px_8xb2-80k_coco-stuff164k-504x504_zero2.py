# Full tuning of the 6B UperNet under ZeRO-2 instead of the recipe's ZeRO-1 on 8 GPUs (~24 GB of model state per GPU).
_base_ = '../upernet_internvit-6b-224px_8xb2-80k_coco-stuff164k-504x504.py'
strategy = dict(zero_optimization=dict(stage=2))
