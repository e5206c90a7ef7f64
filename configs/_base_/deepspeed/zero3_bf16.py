# DeepSpeed ZeRO stage 3: parameters, gradients and optimizer states sharded over the
# data-parallel ranks.
# bf16 weights and activations with fp32 master weights in the optimizer; activation
# checkpointing of every InternViT block. Runs on mmengine's FlexibleRunner: the
# configs' InternViTRunner builds it whenever a `strategy` is set, so mmseg's / mmdet's
# own tools/train.py run these too.
# Add it next to a training config:
#     _base_ = ['<training config>.py', '../../_base_/deepspeed/zero3_bf16.py']
# The training config's optimizer, layer decay, schedule and clip_grad carry over.
strategy = dict(
    type='InternViTDeepSpeedStrategy',
    zero_optimization=dict(stage=3, overlap_comm=True, contiguous_gradients=True,
                           stage3_prefetch_bucket_size=5e7,
                           stage3_param_persistence_threshold=1e5,
                           reduce_bucket_size=5e8, allgather_bucket_size=5e8),
    bf16=dict(enabled=True),
    with_cp=True)
