# InternViT-6B-448px-V1-0 (InternVL-Chat-V1-1): 48 blocks of width 3200 (the depth of the
# 224px model), pretrained at 448 px. V1-2 dropped the last 3 blocks; V1-5 and V2-5 kept 45.
# The published V1-0 dense numbers (InternVL 2.5 report, Table 15) come from InternVL-
# MMDetSeg configs that build 45 blocks and load this file with strict=False, silently
# using its first 45 blocks. These leaves do the same, stated and logged: num_layers=45
# and truncate_blocks=True (the loader logs the blocks it leaves out). For all 48 blocks,
# use arch='internvit-6b-448px-v1-0' without the two.
vit = dict(arch='internvit-6b-448px-v1-0', num_layers=45,
           init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-448px-V1-0',
                         truncate_blocks=True))
