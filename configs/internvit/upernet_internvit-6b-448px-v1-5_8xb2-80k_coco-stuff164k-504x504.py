# Full tuning on COCO-Stuff-164K with InternViT-6B-448px-V1-5:
# the 6B-224px recipe, other weights.
# Published: 51.5 mIoU (InternVL 2.5 report, Table 15).
_base_ = ['./upernet_internvit-6b-224px_8xb2-80k_coco-stuff164k-504x504.py',
          '../_base_/backbones/internvit-6b-448px-v1-5.py']
model = dict(backbone=_base_.vit)
