from .deepspeed import InternViTDeepSpeedStrategy, is_deepspeed_checkpoint
from .hooks import EvalBeforeTrainHook, RecordSubsetHook
from .layer_decay import InternViTLayerDecayOptimizerConstructor, internvit_layer_id

__all__ = ['InternViTDeepSpeedStrategy', 'is_deepspeed_checkpoint', 'EvalBeforeTrainHook',
           'RecordSubsetHook', 'InternViTLayerDecayOptimizerConstructor',
           'internvit_layer_id']
