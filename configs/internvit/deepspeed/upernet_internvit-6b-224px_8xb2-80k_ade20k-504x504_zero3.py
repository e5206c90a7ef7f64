# Full tuning of the 6B UperNet under ZeRO-3 instead of the recipe's ZeRO-1, for GPUs
# under 40 GB (~13 GB of model state per GPU on 8).
_base_ = '../upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'
strategy = dict(zero_optimization=dict(stage=3, stage3_prefetch_bucket_size=5e7,
                                       stage3_param_persistence_threshold=1e5))
