"""Plot the training loss and the validation metric of a run into a PNG.

    python tools/analysis_tools/plot_curves.py WORK_DIR [--out curves.png] [--metric mIoU]

Reads the ``scalars.json`` that mmengine's LocalVisBackend writes under
``WORK_DIR/<timestamp>/vis_data/`` (the newest run in the work dir).
"""
import argparse
import glob
import json
import os.path as osp

import matplotlib

matplotlib.use('Agg')  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def read_scalars(work_dir: str):
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir}')
    train, val = [], []
    for path in runs:  # a resumed run continues in a new timestamped folder
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                (train if 'loss' in rec else val).append(rec)
    return train, val


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--out', help='default: WORK_DIR/curves.png')
    parser.add_argument('--metric', default='mIoU')
    args = parser.parse_args(argv)
    train, val = read_scalars(args.work_dir)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot([r['step'] for r in train], [r['loss'] for r in train])
    ax[0].set(title='training loss', xlabel='iteration')
    points = [(r['step'], r[args.metric]) for r in val if args.metric in r]
    if points:
        ax[1].plot(*zip(*points), marker='o')
    ax[1].set(title=f'validation {args.metric}', xlabel='iteration')
    fig.tight_layout()
    out = args.out or osp.join(args.work_dir, 'curves.png')
    fig.savefig(out, dpi=100)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
