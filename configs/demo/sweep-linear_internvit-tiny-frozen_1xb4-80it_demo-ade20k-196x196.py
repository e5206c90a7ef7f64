# The probing-sweep demo (`make demo-sweep`): the real sweep config
# (configs/internvit_sweep/sweep-linear_internvit-6b-224px-frozen_..._ade20k: many BN +
# 1x1 conv heads on one frozen forward, selected on a held-out part of train) on the
# segmentation demo's 10 photographs. Its frozen "pretrained" ViT is the segmentation
# demo's trained tiny InternViT (width 96, 6 blocks, patch 14), saved by
# `tools/misc/run_demo.sh sweep` with tools/model_converters/extract_backbone.py.
# The grid: every block alone (blocks='all': the layer curve) x 2 learning rates, 12
# heads. 3 of the 10 training photographs are held out to select the head on; the
# heads train on the other 7. Validation uses the 10 photographs (all of them also
# training images but the 3), so the numbers show that the sweep learns and selects,
# not how it generalises. Pointing `data_root` at a real ADE20K copy and dropping the
# overrides below gives back the real experiment.
_base_ = ('../internvit_sweep/'
          'sweep-linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py')
from mmseg_internvit.datasets.pipelines import seg_pipelines  # noqa: E402

data_root = 'data/demo_ade20k/ADEChallengeData2016'
crop_size = (196, 196)
max_iters = 80
held_out_size = 3
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='internvit-300m-448px',  # the segmentation demo's family, scaled down
        embed_dims=96, num_layers=6, num_heads=3, mlp_hidden_dims=384, img_size=196,
        param_dtype=None,  # fp32 on CPU
        init_cfg=dict(checkpoint='work_dirs/demo_ade20k/backbone.safetensors')),
    decode_head=dict(norm_cfg=dict(type='BN', requires_grad=True)),  # one process
    sweep=dict(lr=[4e-3, 1.6e-2], blocks='all'),
    test_cfg=dict(_delete_=True, mode='whole'))

train_pipeline, test_pipeline, tta_pipeline = seg_pipelines(
    crop_size, 150, reduce_zero_label=True, train_side=196, test_side=252)
train_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(size=held_out_size,
                 dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
select_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(size=held_out_size,
                 dataset=dict(data_root=data_root, pipeline=test_pipeline)))
val_cfg = dict(select_dataloader=select_dataloader)
test_cfg = dict(select_dataloader=select_dataloader)

param_scheduler = [dict(_base_.warmup, start_factor=1e-3, end=10 + 1),
                   dict(_base_.poly, end=max_iters + 1)]
train_cfg = dict(max_iters=max_iters, val_interval=40)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
