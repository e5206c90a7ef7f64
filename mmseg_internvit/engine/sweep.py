# Copyright (c) internvit-dense contributors. Licensed under the MIT License.
"""Training and evaluating a ``SweepEncoderDecoder``: one optimizer group per head,
one evaluation pass for all heads, head selection on a held-out split, the results
as tables and plots."""
import copy
import csv
import json
import os
import os.path as osp
from typing import Dict, List, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast
from mmseg.registry import LOOPS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS


def _sweep_model(model):
    model = model.module if is_model_wrapper(model) or hasattr(model, 'module') else model
    if not hasattr(model, 'sweep_entries'):
        raise TypeError(f'{type(model).__name__} is not a SweepEncoderDecoder; '
                        'SweepOptimWrapperConstructor and SweepValLoop need one')
    return model


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SweepOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """One parameter group per sweep head (its ``lr`` and ``weight_decay``; None: the
    optimizer's), with ``paramwise_cfg`` applied inside each head as mmengine's
    ``DefaultOptimWrapperConstructor`` applies it to a model.

    Refused, because they would couple the heads (each head must train as if alone):
    ``clip_grad`` (mmengine clips over the norm of all groups' gradients together), an
    fp16 ``AmpOptimWrapper`` (one loss scale for all heads: an overflow in one head
    skips every head's step) and a trainable parameter outside the heads.
    """

    def __call__(self, model) -> OptimWrapper:
        model = _sweep_model(model)
        wrapper = self.optim_wrapper_cfg
        if wrapper.get('clip_grad'):
            raise ValueError(
                'optim_wrapper.clip_grad clips the norm of all heads\' gradients together, '
                'which couples the heads of a sweep; remove it (or run the heads apart)')
        kind = str(wrapper.get('type', 'OptimWrapper')).split('.')[-1]
        if kind == 'AmpOptimWrapper' and wrapper.get('dtype') not in ('bfloat16',
                                                                      torch.bfloat16):
            raise ValueError(
                'an fp16 AmpOptimWrapper shares one loss scale between the heads of a '
                "sweep (an overflow in one skips every head's step); use dtype='bfloat16' "
                'or OptimWrapper')
        extra = [n for n, p in model.named_parameters()
                 if p.requires_grad and not n.startswith('heads.')]
        if extra:
            raise ValueError(f'a sweep trains its heads only, but these parameters train '
                             f'too: {extra[:5]}{" ..." if len(extra) > 5 else ""}')
        groups: List[dict] = []
        for i, (entry, head) in enumerate(zip(model.sweep_entries, model.heads)):
            opt = dict(self.optimizer_cfg)
            if entry['lr'] is not None:
                opt['lr'] = entry['lr']
            if entry['weight_decay'] is not None:
                opt['weight_decay'] = entry['weight_decay']
            sub = DefaultOptimWrapperConstructor(dict(type='OptimWrapper', optimizer=opt),
                                                 self.paramwise_cfg)
            head_groups: List[dict] = []
            sub.add_params(head_groups, head, prefix=f'heads.{i}')
            for g in head_groups:
                g.setdefault('lr', opt['lr'])
                if 'weight_decay' in opt:
                    g.setdefault('weight_decay', opt['weight_decay'])
                g['sweep_head'] = entry['name']
            groups += head_groups
        optimizer_cfg = dict(self.optimizer_cfg, params=groups)
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        cfg = copy.deepcopy(dict(wrapper))
        cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(cfg, default_args=dict(optimizer=optimizer))


class _SweepSelection:
    """What the sweep's validation and test loops share: the select pass, the
    selection, the val/test pass of every head and the results files."""

    phase = 'val'

    def _init_selection(self, runner, evaluator, select_dataloader, select_on,
                        select_metric) -> None:
        if select_on not in ('held_out', 'val'):
            raise ValueError(f"select_on must be 'held_out' or 'val', got {select_on!r}")
        if select_on == 'held_out' and select_dataloader is None:
            raise ValueError("select_on='held_out' needs a select_dataloader (a held-out "
                             "part of the training set); or set select_on='val'")
        self.select_on = select_on
        self.select_metric = select_metric
        self.select_dataloader = None
        if select_dataloader is not None:
            self.select_dataloader = (
                runner.build_dataloader(select_dataloader, seed=runner.seed)
                if isinstance(select_dataloader, dict) else select_dataloader)
            self.select_evaluator = (
                runner.build_evaluator(copy.deepcopy(evaluator))
                if isinstance(evaluator, (dict, list)) else copy.deepcopy(self.evaluator))
            self.select_evaluator.dataset_meta = self.select_dataloader.dataset.metainfo

    @torch.no_grad()
    def _pass(self, dataloader, evaluator) -> dict:
        for idx, data_batch in enumerate(dataloader):
            self.runner.call_hook(f'before_{self.phase}_iter', batch_idx=idx,
                                  data_batch=data_batch)
            with autocast(enabled=self.fp16):
                outputs = getattr(self.runner.model, f'{self.phase}_step')(data_batch)
            evaluator.process(data_samples=outputs, data_batch=data_batch)
            self.runner.call_hook(f'after_{self.phase}_iter', batch_idx=idx,
                                  data_batch=data_batch, outputs=outputs)
        return evaluator.evaluate(len(dataloader.dataset))

    def run(self) -> dict:
        phase = self.phase
        self.runner.call_hook(f'before_{phase}')
        self.runner.call_hook(f'before_{phase}_epoch')
        self.runner.model.eval()
        model = _sweep_model(self.runner.model)
        names = model.head_names
        select_metrics: Dict[str, float] = {}
        if self.select_on == 'held_out':
            select_metrics = self._pass(self.select_dataloader, self.select_evaluator)
            model.select(best_head(select_metrics, names, self.select_metric))
        metrics = self._pass(self.dataloader, self.evaluator)
        if self.select_on == 'val':
            best = best_head(metrics, names, self.select_metric)
            model.select(best)
            metrics = top_level_from(metrics, names[best])
        selected = int(model.selected_head)
        value = metrics.get(f'sweep/{names[selected]}/{self.select_metric}')
        print_log(f'sweep: selected head {names[selected]} (on '
                  f"{'the held-out split' if self.select_on == 'held_out' else phase}): "
                  f'{phase} {self.select_metric} {float(value):.2f}', logger='current')
        out = dict(metrics)
        out.update({f'select/{k}': v for k, v in select_metrics.items()})
        out['sweep/selected'] = selected
        write_sweep_results(osp.join(self.runner.work_dir, 'sweep'), model.sweep_entries,
                            select_metrics, metrics, selected, self.select_metric,
                            self.select_on)
        self.runner.call_hook(f'after_{phase}_epoch', metrics=out)
        self.runner.call_hook(f'after_{phase}')
        return out


@LOOPS.register_module()
class SweepValLoop(_SweepSelection, ValLoop):
    """Validation of every sweep head in one pass, the best one selected without the
    validation set.

    With ``select_on='held_out'`` (default) the heads are first evaluated on
    ``select_dataloader`` (a held-out part of the training set, e.g. a
    ``HeldOutSplit(part='held_out')``, whose other part is the training set), the head
    with the best ``select_metric`` becomes the model's selected head, then all heads
    are evaluated on the validation set: the logged ``mIoU`` is the selected head's,
    every head's is ``sweep/<name>/mIoU``. ``select_on='val'`` selects on the
    validation results themselves (protocols that report the best head on val; their
    number is then optimistic, which the tables say).

    After each pass the results go to ``<work_dir>/sweep/``: ``results.md``,
    ``results.json``, ``results.csv`` (head, type, lr, weight decay, blocks, the metric
    on each split, the selected head marked) and the plots (``heatmap.png``: blocks x
    lr; ``layers.png``: the metric against the block, when every head reads one block).
    """

    def __init__(self, runner, dataloader, evaluator, select_dataloader=None,
                 select_on: str = 'held_out', select_metric: str = 'mIoU',
                 fp16: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        self._init_selection(runner, evaluator, select_dataloader, select_on,
                             select_metric)


@LOOPS.register_module()
class SweepTestLoop(_SweepSelection, TestLoop):
    """``tools/test.py`` of a sweep: the selection is made again on the held-out split
    with the checkpoint's own weights (a checkpoint is written before the validation of
    its iteration, so the head it records may be an earlier selection), then every
    head is tested; arguments as ``SweepValLoop``."""

    phase = 'test'

    def __init__(self, runner, dataloader, evaluator, select_dataloader=None,
                 select_on: str = 'held_out', select_metric: str = 'mIoU',
                 fp16: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        self._init_selection(runner, evaluator, select_dataloader, select_on,
                             select_metric)


def best_head(metrics: dict, names: Sequence[str], key: str = 'mIoU') -> int:
    """Index of the head with the highest ``sweep/<name>/<key>`` (the first on ties)."""
    values = []
    for name in names:
        k = f'sweep/{name}/{key}'
        if k not in metrics:
            raise KeyError(f'{k} is not among the metrics: the evaluator must be a '
                           'SweepIoUMetric')
        values.append(metrics[k])
    return max(range(len(values)), key=lambda i: (values[i], -i))


def top_level_from(metrics: dict, name: str) -> dict:
    """``metrics`` with its top-level values (aAcc, mIoU, ...) taken from head ``name``."""
    out = dict(metrics)
    prefix = f'sweep/{name}/'
    for k, v in metrics.items():
        if k.startswith(prefix):
            out[k[len(prefix):]] = v
    return out


def write_sweep_results(out_dir: str, entries: Sequence[dict], select_metrics: dict,
                        val_metrics: dict, selected: int, key: str = 'mIoU',
                        select_on: str = 'held_out') -> List[dict]:
    """The sweep's table as Markdown, JSON and CSV, and its plots, in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    def number(v):
        return None if v is None else float(v)
    rows = []
    for i, e in enumerate(entries):
        rows.append(dict(
            head=e['name'], type=str(e['head']['type']).split('.')[-1],
            lr=e['lr'], weight_decay=e['weight_decay'],
            blocks=' '.join(str(b) for b in e['blocks']),
            held_out=number(select_metrics.get(f"sweep/{e['name']}/{key}")),
            val=number(val_metrics.get(f"sweep/{e['name']}/{key}")),
            selected=i == selected))
    with open(osp.join(out_dir, 'results.json'), 'w') as f:
        json.dump(dict(metric=key, select_on=select_on, heads=rows), f, indent=1)
    with open(osp.join(out_dir, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    def fmt(v):
        return '-' if v is None else f'{v:g}' if isinstance(v, float) else str(v)
    lines = [f'{key} per head (selected on {select_on}; * marks the selected head)', '',
             f'| head | type | lr | weight decay | blocks | {key} held out | {key} val |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['head']}{' *' if r['selected'] else ''} | {r['type']} | "
                     f"{fmt(r['lr'])} | {fmt(r['weight_decay'])} | {r['blocks']} | "
                     f"{fmt(r['held_out'])} | {fmt(r['val'])} |")
    with open(osp.join(out_dir, 'results.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print_log('\n'.join(lines), logger='current')
    plot_sweep(out_dir, rows, key)
    return rows


def plot_sweep(out_dir: str, rows: Sequence[dict], key: str = 'mIoU') -> List[str]:
    """``heatmap.png`` (blocks x lr, the val metric) when there are several lrs or
    block sets, and ``layers.png`` (the val metric against the block) when every head
    reads a single block and there are several blocks. Returns the paths written."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    written = []
    vals = [r['val'] for r in rows]
    if all(v is None for v in vals):
        return written
    blocks = list(dict.fromkeys(r['blocks'] for r in rows))
    lrs = list(dict.fromkeys(r['lr'] for r in rows))
    if len(blocks) > 1 or len(lrs) > 1:
        grid = torch.full((len(blocks), len(lrs)), float('nan'))
        for r in rows:
            if r['val'] is not None:
                i, j = blocks.index(r['blocks']), lrs.index(r['lr'])
                grid[i, j] = max(float(r['val']), float(grid[i, j].nan_to_num(-1e9)))
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(lrs), 1.0 + 0.45 * len(blocks)))
        im = ax.imshow(grid.numpy(), cmap='viridis', aspect='auto')
        ax.set_xticks(range(len(lrs)), [f'{lr:g}' if lr is not None else 'default'
                                        for lr in lrs])
        ax.set_yticks(range(len(blocks)), [f'blocks {b}' for b in blocks])
        ax.set_xlabel('learning rate')
        for i in range(len(blocks)):
            for j in range(len(lrs)):
                if not torch.isnan(grid[i, j]):
                    ax.text(j, i, f'{float(grid[i, j]):.1f}', ha='center', va='center',
                            color='w', fontsize=8)
        fig.colorbar(im, ax=ax, label=f'val {key}')
        ax.set_title(f'sweep: val {key}')
        fig.tight_layout()
        path = osp.join(out_dir, 'heatmap.png')
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    single = all(' ' not in r['blocks'] for r in rows)
    if single and len(blocks) > 1:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for lr in lrs:
            pts = sorted((int(r['blocks']), r['val']) for r in rows
                         if r['lr'] == lr and r['val'] is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='o', ms=3,
                        label=f'lr {lr:g}' if lr is not None else None)
        ax.set_xlabel('block')
        ax.set_ylabel(f'val {key}')
        ax.set_title(f'linear probe per block: val {key}')
        ax.grid(alpha=0.3)
        if len(lrs) > 1:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = osp.join(out_dir, 'layers.png')
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
