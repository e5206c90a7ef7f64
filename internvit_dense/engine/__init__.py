from .checkpoint_files import AtomicCheckpointHook
from .deepspeed import InternViTDeepSpeedStrategy, is_deepspeed_checkpoint
from .hooks import EvalBeforeTrainHook, PreemptionHook, RecordSubsetHook
from .layer_decay import InternViTLayerDecayOptimizerConstructor, internvit_layer_id
from .runners import InternViTFlexibleRunner, InternViTRunner
from .schedulers import WarmupOneCycleLR
from .strict_load import check_state_dict_fits, load_plain_checkpoint

__all__ = ['AtomicCheckpointHook', 'InternViTDeepSpeedStrategy', 'is_deepspeed_checkpoint',
           'EvalBeforeTrainHook',
           'PreemptionHook', 'RecordSubsetHook', 'InternViTLayerDecayOptimizerConstructor',
           'internvit_layer_id', 'InternViTRunner', 'InternViTFlexibleRunner',
           'check_state_dict_fits', 'load_plain_checkpoint', 'WarmupOneCycleLR']
