import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / 'tools'
# tools/ and its folders (analysis_tools/, model_converters/, ...): a script run by path
# has its own folder on sys.path, and imports the tools beside it by name
TOOL_DIRS = [TOOLS] + sorted(p for p in TOOLS.iterdir()
                             if p.is_dir() and not p.name.startswith(('.', '_')))
sys.path[:0] = [str(p) for p in TOOL_DIRS]


def tool_path(name: str) -> Path:
    """tools/NAME.py or tools/FOLDER/NAME.py: a tool's name is unique across the folders."""
    found = [d / f'{name}.py' for d in TOOL_DIRS if (d / f'{name}.py').is_file()]
    if len(found) != 1:
        raise LookupError(f'{len(found)} tools named {name}.py under {TOOLS}: {found}')
    return found[0]


def load_tool(name: str):
    """The script ``name`` of tools/ (top level or a folder) as a module named
    ``tools_<name>``: imported by its own name, tools/test.py would shadow the standard
    library's ``test`` package."""
    import importlib.util
    module_name = f'tools_{name}'
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, tool_path(name))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


_CONFIGS = {}


def cached_config(path):
    """``Config.fromfile(path)``, parsed once per session (parsing a leaf and its bases
    takes about a second; many tests read the same leaves): a deep copy each call, so a
    test may change it."""
    import copy

    from mmengine.config import Config
    key = str(path)
    if key not in _CONFIGS:
        _CONFIGS[key] = Config.fromfile(key)
    return copy.deepcopy(_CONFIGS[key])


def train_user_config(tmp_path, base_config: str, body: str):
    """Write a user's config that inherits one of ours (by path, as a user would), train
    it for 2 iterations + one validation through tools/train.py, and return
    ``(config path, checkpoint, log text)``."""
    train = load_tool('train')
    cfg = tmp_path / 'my_config.py'
    bases = base_config if isinstance(base_config, str) else list(map(str, base_config))
    cfg.write_text(f"_base_ = {bases!r}\n" + body +
                   "train_cfg = dict(max_iters=2, val_interval=2)\n"
                   "default_hooks = dict(checkpoint=dict(interval=2), "
                   "logger=dict(interval=1))\n")
    work = tmp_path / 'work'
    train.main([str(cfg), '--work-dir', str(work)])
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()
    return cfg, ckpt, next(work.glob('*/*.log')).read_text()


def assert_optimizer_holds_trainable_params(model, optim_wrapper_cfg):
    """Build a config's optimizer wrapper and check it holds exactly the trainable
    parameters (frozen ones get no optimizer state)."""
    import torch
    from mmengine.optim import build_optim_wrapper
    cfg = optim_wrapper_cfg.copy()
    if cfg.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        # mmengine refuses AmpOptimWrapper without an accelerator; the constructor and
        # its parameter groups, checked here, are the same.
        cfg['type'] = 'OptimWrapper'
        cfg.pop('dtype', None)
    wrapper = build_optim_wrapper(model, cfg)
    in_optimizer = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}, \
        'the optimizer must hold exactly the trainable params (none of the frozen ones)'
    return wrapper


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """The embedded segmentation data (ADE20K layout), written once per session."""
    import prepare_demo_data
    out = tmp_path_factory.mktemp('demo')
    prepare_demo_data.main(['--out', str(out), '--min-images', '1'])
    return str(out / 'ADEChallengeData2016')
