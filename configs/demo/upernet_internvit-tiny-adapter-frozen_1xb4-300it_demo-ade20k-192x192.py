# The adapter-tuning demo: the real published adapter-tuning config
# (configs/internvit_adapter/upernet_internvit-6b-224px-adapter-frozen_...: frozen ViT,
# trainable ViT-Adapter + UperNet) on the segmentation demo's 10 photographs. Its
# frozen "pretrained" ViT is the segmentation demo's trained tiny InternViT (width 96,
# 6 blocks, patch 14), saved by `tools/misc/run_demo.sh adapter` with
# tools/model_converters/extract_backbone.py; loading resizes its kernel to patch 16, as
# with the released weights. Only the adapter and the heads train. Pointing `data_root`
# at a real ADE20K copy and dropping the overrides below gives back the real experiment.
#
# The adapter is the published one (InternVL's wiring: the final ViT map at every
# level, no class token, LayerNorms in the spatial prior module); the demo ViT's class
# token is left out on load, as the 6B's is.
#
# Scaled to 10 images on 2 CPU cores: crop 192 (a multiple of 32: no padding), a
# 16-channel spatial prior stem, UperNet 64 channels, fp32 throughout without DeepSpeed
# (the published fp16 ZeRO-1 strategy needs CUDA), whole-image testing, lr 1e-3 for the
# layers that start from scratch (as the segmentation demo).
_base_ = ('../internvit_adapter/'
          'upernet_internvit-6b-224px-adapter-frozen_8xb2-80k_ade20k-512x512.py')
from mmseg_internvit.datasets.pipelines import seg_pipelines  # noqa: E402

data_root = 'data/demo_ade20k/ADEChallengeData2016'
crop_size = (192, 192)
max_iters = 300
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='internvit-300m-448px',  # the segmentation demo's family, scaled down
        embed_dims=96, num_layers=6, num_heads=3, mlp_hidden_dims=384, img_size=192,
        # group ends at the blocks the segmentation demo's UperNet reads
        interaction_indexes=[[0, 1], [2, 3], [4, 4], [5, 5]],
        deform_num_heads=3, conv_inplane=16,
        with_cp=False,  # a small model: keep the activations, save the recomputation
        param_dtype=None,  # fp32 on CPU
        init_cfg=dict(checkpoint='work_dirs/demo_ade20k/backbone.safetensors')),
    decode_head=dict(channels=64),  # input widths (96) follow the backbone
    auxiliary_head=dict(channels=32),
    test_cfg=dict(_delete_=True, mode='whole'))
strategy = None  # a plain run: DeepSpeed has no fp16 on the CPU

train_pipeline, test_pipeline, tta_pipeline = seg_pipelines(
    crop_size, 150, reduce_zero_label=True, train_side=192, test_side=252)
train_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [dict(_base_.warmup, start_factor=1e-3, end=50 + 1),
                   dict(_base_.poly, end=max_iters + 1)]
train_cfg = dict(max_iters=max_iters, val_interval=75)  # five points on the mIoU curve
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters // 2, max_keep_ckpts=2, save_best=None))
custom_hooks = [dict(type='EvalBeforeTrainHook', metric='mIoU')]
env_cfg = dict(cudnn_benchmark=False)
