"""Helpers shared by the command-line tools (one set of tools for mmseg and mmdet)."""
import os
import os.path as osp
import sys
import warnings

# Tools run from a checkout work without `pip install -e .` too.
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

SCOPES = ('mmseg', 'mmdet')


def quiet_known_warnings() -> None:
    """Silence deprecation chatter of the pinned stack that users cannot act on."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    warnings.filterwarnings('ignore', message='.*build_loss.. would be deprecated')
    warnings.filterwarnings('ignore', message='Default ..avg_non_ignore.. is False')
    warnings.filterwarnings('ignore', message='.reduce_zero_label. will be deprecated')


def load_config(path: str, cfg_options=None):
    """Read a config, apply ``--cfg-options`` and check which library it targets."""
    from mmengine.config import Config
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(f'{path}: default_scope must be one of {SCOPES} (inherit '
                         "mmseg's or mmdet's default_runtime), got {scope!r}")
    if 'model' not in cfg:
        raise KeyError(f'{path}: the config defines no `model`')
    return cfg


def default_work_dir(config_path: str) -> str:
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def add_run_args(parser) -> None:
    """The flags train.py and test.py share, as mmseg's and mmdet's tools spell them."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='where logs (and checkpoints) go')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        metavar='KEY=VALUE', help='override settings of the config')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load checkpoints that need more than tensors and '
                        "mmengine's run-state types; such a file can run code when "
                        'loaded, so only for files you trust')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_run_config(args):
    """Config of a train/test run: options applied, launcher and work dir set."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(args.config)
    if args.trust_checkpoint:
        cfg.trust_checkpoint = True
    return cfg


def build_runner(cfg):
    """The runner the config names in ``runner_type`` (as mmseg's and mmdet's
    tools/train.py build it), from the registry of the config's library."""
    import importlib

    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        if cfg.get('strategy'):
            raise ValueError('the config sets a `strategy` but no runner_type: mmengine '
                             "would build the plain Runner and ignore it; set "
                             "runner_type = 'InternViTFlexibleRunner'")
        return Runner.from_cfg(cfg)
    return importlib.import_module(f'{cfg.default_scope}.registry').RUNNERS.build(cfg)
