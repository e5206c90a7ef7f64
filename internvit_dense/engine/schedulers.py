# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""The learning-rate (and Adam beta1) schedule of the DINOv3 depth probes."""
import math

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


class WarmupOneCycleLR(LRSchedulerMixin, _ParamScheduler):
    """DINOv3's ``WarmupOneCycleLR`` (dinov3/eval/depth/schedulers.py, as its NYUv2
    config uses it), per iteration ``s`` of ``total_steps`` with the optimizer's lr
    as the peak ``top``:

    - ``s < warmup_iters``: ``top / final_div_factor + top * (1 + cos(pi s / T)) / 2 *
      s / warmup_iters``, and Adam's beta1 0 (their scheduler's momentum is 0 during
      the warm-up);
    - then cosine from ``top`` to ``top / div_factor / final_div_factor`` at
      ``(s + 1) / T`` of the whole run, and beta1 cosine from ``base_momentum`` to
      ``max_momentum`` over the rest.

    mmengine's ``OneCycleLR`` starts from ``top / div_factor`` and has no warm-up of
    this form, hence this class.
    """

    def __init__(self, optimizer, total_steps: int, warmup_iters: int,
                 div_factor: float = 25.0, final_div_factor: float = 1000.0,
                 base_momentum: float = 0.85, max_momentum: float = 0.95,
                 begin: int = 0, end: int = INF, last_step: int = -1,
                 by_epoch: bool = False, verbose: bool = False) -> None:
        if not 0 <= warmup_iters < total_steps:
            raise ValueError(f'WarmupOneCycleLR: need 0 <= warmup_iters ({warmup_iters}) '
                             f'< total_steps ({total_steps})')
        self.total_steps, self.warmup_iters = int(total_steps), int(warmup_iters)
        self.div_factor, self.final_div_factor = div_factor, final_div_factor
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        super().__init__(optimizer, begin=begin, end=end, last_step=last_step,
                         by_epoch=by_epoch, verbose=verbose)

    def _get_value(self):
        s, total, warm = self.last_step, self.total_steps, self.warmup_iters
        values = []
        for group in self.optimizer.param_groups:
            top = group['initial_lr']
            if s < warm:
                lr = top / self.final_div_factor + top * (
                    1 + math.cos(math.pi * s / total)) / 2 * s / warm
                beta1 = 0.0
            else:
                beta1 = _cos(self.base_momentum, self.max_momentum,
                             (s - warm) / (total - warm))
                lr = _cos(top, top / self.div_factor / self.final_div_factor,
                          (s + 1) / total)
            if 'betas' in group:
                group['betas'] = (beta1, *tuple(group['betas'])[1:])
            values.append(lr)
        return values
