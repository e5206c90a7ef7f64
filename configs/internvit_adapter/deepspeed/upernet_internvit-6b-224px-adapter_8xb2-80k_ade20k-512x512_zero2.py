# Full tuning of the 6B adapter UperNet under DeepSpeed ZeRO-2 on 8 GPUs (model state per
# GPU in the README). The adapter's deformable attention samples in fp32, so it runs in
# DeepSpeed's bf16 model. The strategy of ../../_base_/deepspeed/zero2_bf16.py, written
# out: with that file as a second base, `runner_type` would be set by both bases, which
# mmengine refuses ("Duplicate key is not allowed among bases").
_base_ = '../upernet_internvit-6b-224px-adapter_8xb2-80k_ade20k-512x512.py'
runner_type = 'InternViTFlexibleRunner'
strategy = dict(
    type='InternViTDeepSpeedStrategy',
    zero_optimization=dict(stage=2, overlap_comm=True, contiguous_gradients=True,
                           reduce_bucket_size=5e8, allgather_bucket_size=5e8),
    bf16=dict(enabled=True),
    with_cp=True)
