# Full tuning on ADE20K with InternViT-6B-448px-V1-2: the 6B-224px recipe, other weights.
# Published: 58.8 mIoU (InternVL 2.5 report, Table 15).
_base_ = ['./upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py',
          '../_base_/backbones/internvit-6b-448px-v1-2.py']
model = dict(backbone=_base_.vit)
