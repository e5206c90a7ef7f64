"""tools/gpu_check.sh / tools/analysis_tools/gpu_check.py: the CPU fallback runs every
measurement of the GPU check at tiny sizes (the GPU run itself needs a lent GPU: README,
Performance)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args, env=None):
    env = dict(os.environ, PY=sys.executable, **(env or {}))
    return subprocess.run(['bash', str(ROOT / 'tools' / 'gpu_check.sh'), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def test_cpu_fallback_runs_every_measurement(tmp_path):
    run = run_script('cpu', '--repeats', '1', env=dict(OUT=str(tmp_path)))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    res = json.loads((tmp_path / 'gpu_check_backbone_seg_cpu.json').read_text())
    assert 'failed' not in res
    for key in ('forward', 'speedup_vs_reference', 'fraction_of_linears',
                '6B frozen linear probe:train:frozen:opt',
                '300M AMP bf16:train:full:opt:cp', '300M AMP bf16:train:full:opt',
                'seg_step:upernet-frozen', 'seg_step:linear-frozen', 'slide',
                'train_smoke'):
        assert key in res, key
    for key in ('seg_step:upernet-frozen', 'seg_step:linear-frozen'):
        step = res[key]  # frozen bf16 backbone, fp32 heads, through mmseg's registry
        assert step['backbone_dtype'] == 'torch.bfloat16', key
        assert step['head_dtype'] == 'torch.float32' and step['peak_bytes'] > 0, key
    assert res['slide']['max_abs_diff'] < 1e-4 and res['slide']['windows'] == 3
    assert res['train_smoke']['losses']
    table = (tmp_path / 'gpu_check_backbone_seg_cpu.md').read_text()
    assert 'tiny 6B-family forward bf16' in table and 'FAILED' not in table


def test_gpu_phases_need_the_carried_wheels(tmp_path):
    """Without .whl/ (made by `gpu_check.sh prepare`) the GPU phases stop at once with
    the instruction, before touching anything."""
    if (ROOT / '.whl').exists():
        return  # a prepared checkout: the message is not reachable
    run = run_script('backbone', env=dict(OUT=str(tmp_path)))
    assert run.returncode == 2 and "run 'prepare' here and carry .whl" in run.stdout
    run = run_script('nonsense')
    assert run.returncode == 2 and 'gpu_check.sh prepare' in run.stdout
