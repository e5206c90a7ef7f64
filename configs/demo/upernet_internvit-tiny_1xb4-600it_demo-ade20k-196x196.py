# The embedded demo (the README's first command): the full-tuning UperNet recipe on
# ADE20K (the bases of ../internvit/upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py,
# without its DeepSpeed strategy: one CPU process), with a tiny InternViT (width 96, 6
# blocks, trained from scratch), a 196 px crop and a short CPU schedule, on 10 real
# photographs in the ADE20K folder layout made by
# tools/dataset_converters/prepare_demo_data.py. Pointing `data_root` at a real ADE20K
# copy and dropping the overrides below gives back the real experiment. Most of a CPU
# step is the 150-class logits at crop resolution, hence the 196 px training crop.
_base_ = [
    '../_base_/models/internvit_upernet.py',
    '../_base_/datasets/ade20k_504x504.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/internvit_adamw_80k.py',
]
from mmseg_internvit.datasets.pipelines import seg_pipelines  # noqa: E402

data_root = 'data/demo_ade20k/ADEChallengeData2016'
crop_size = (196, 196)
max_iters = 600
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='internvit-300m-448px',  # LayerNorm + qkv-bias family, scaled down
        embed_dims=96, num_layers=6, num_heads=3, mlp_hidden_dims=384,
        img_size=196, out_indices=[1, 3, 4, 5], drop_path_rate=0.1, with_cp=False,
        init_cfg=None),
    # the neck's and heads' input widths (96) follow the backbone
    decode_head=dict(channels=64),
    auxiliary_head=dict(channels=32),
    test_cfg=dict(mode='whole'))

# the base's pipelines and test-time augmentation at demo size: random resize around a
# short side of 196, tests at 252
train_pipeline, test_pipeline, tta_pipeline = seg_pipelines(
    crop_size, 150, reduce_zero_label=True, train_side=196, test_side=252)
train_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch on CPU: a larger lr, fp32 (bf16 autocast is slow on most CPUs).
optim_wrapper = dict(type='OptimWrapper', _delete_=True,
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                                    weight_decay=0.05),
                     constructor='InternViTLayerDecayOptimizerConstructor',
                     paramwise_cfg=dict(layer_decay_rate=0.95))
param_scheduler = [dict(_base_.warmup, start_factor=1e-3, end=50 + 1),
                   dict(_base_.poly, end=max_iters + 1)]
train_cfg = dict(max_iters=max_iters, val_interval=150)  # five points on the mIoU curve
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters // 2, max_keep_ckpts=2, save_best=None))
custom_hooks = [dict(type='EvalBeforeTrainHook', metric='mIoU')]
env_cfg = dict(cudnn_benchmark=False)
