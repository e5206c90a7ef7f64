# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
from collections import OrderedDict
from typing import Dict, Sequence

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class SweepIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` for every head of a ``SweepEncoderDecoder`` at once.

    Each sample's ``sweep_pred_sem_seg`` ((N, H, W), one label map per head) is scored
    against its ground truth with ``IoUMetric.intersect_and_union``; the returned
    metrics are the selected head's (``pred_sem_seg``: ``aAcc``, ``mIoU``, ... and its
    per-class table in the log, as ``IoUMetric`` gives them) and, for every head,
    ``sweep/<name>/<metric>``. The head names come with the samples
    (``sweep_head_names`` in their meta).
    """

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        if self.format_only:
            return super().process(data_batch, data_samples)
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            if 'sweep_pred_sem_seg' not in sample:
                raise KeyError('SweepIoUMetric: a sample has no sweep_pred_sem_seg; the '
                               'model must be a SweepEncoderDecoder')
            preds = sample['sweep_pred_sem_seg']
            label = sample['gt_sem_seg']['data'].squeeze().to(preds.device)
            chosen = sample['pred_sem_seg']['data'].squeeze()
            per_head = tuple(self.intersect_and_union(p.to(label), label, num_classes,
                                                      self.ignore_index) for p in preds)
            self.results.append(dict(
                names=tuple(sample['sweep_head_names']),
                selected=self.intersect_and_union(chosen.to(label), label, num_classes,
                                                  self.ignore_index),
                heads=per_head))
        if self.output_dir is not None:  # the selected head's label maps, as IoUMetric
            fmt, self.format_only = self.format_only, True
            try:
                super().process(data_batch, data_samples)
            finally:
                self.format_only = fmt

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if self.format_only:
            return super().compute_metrics(results)
        names = results[0]['names']
        if any(r['names'] != names for r in results):
            raise ValueError('SweepIoUMetric: the samples come from different sweeps')
        metrics = super().compute_metrics([r['selected'] for r in results])
        for h, name in enumerate(names):
            stats = tuple(zip(*(r['heads'][h] for r in results)))
            ret = self.total_area_to_metrics(*(sum(s) for s in stats), self.metrics,
                                             self.nan_to_num, self.beta)
            summary = OrderedDict((k, np.round(np.nanmean(v) * 100, 2))
                                  for k, v in ret.items())
            for k, v in summary.items():
                metrics[f'sweep/{name}/{k if k == "aAcc" else "m" + k}'] = v
        return metrics
