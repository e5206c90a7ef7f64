from .hooks import EvalBeforeTrainHook, RecordSubsetHook
from .layer_decay import InternViTLayerDecayOptimizerConstructor, internvit_layer_id

__all__ = ['EvalBeforeTrainHook', 'RecordSubsetHook',
           'InternViTLayerDecayOptimizerConstructor', 'internvit_layer_id']
