"""tools/analysis_tools/benchmark_real_size.py: the random checkpoint in the released
Hugging Face layout, and the real-size flow (write, build from the config, load through
init_cfg, linear-probe step, clean up) at tiny size; the loader's memory bound at a mid
size."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import load_tool, tool_path
from safetensors import safe_open

from internvit_dense import InternViT
from internvit_dense.models.checkpoint import select_vision_keys

TINY = dict(embed_dims=64, num_layers=3, num_heads=2, mlp_hidden_dims=128)


def test_random_checkpoint_has_the_released_layout(tmp_path):
    rs = load_tool('benchmark_real_size')
    index = rs.write_random_hf_checkpoint(str(tmp_path), shard_bytes=60_000, **TINY)
    meta = json.loads(open(index).read())
    files = sorted(p.name for p in tmp_path.glob('*.safetensors'))
    n = len(files)
    assert n > 1 and files == [f'model-{i:05d}-of-{n:05d}.safetensors'
                               for i in range(1, n + 1)]
    weight_map = meta['weight_map']
    assert sorted(set(weight_map.values())) == files
    # the keys of InternVisionModel (HF), every one a parameter of the model
    assert 'embeddings.class_embedding' in weight_map
    assert 'encoder.layers.2.attn.q_norm.weight' in weight_map
    mapping, extra = select_vision_keys(weight_map)
    model = InternViT(**TINY, img_size=224)
    assert not extra and set(mapping) == set(model.state_dict())
    total = 0
    for name in files:
        with safe_open(str(tmp_path / name), framework='pt') as f:
            sizes = [f.get_tensor(k).numel() * 2 for k in f.keys()]
            assert all(f.get_tensor(k).dtype == torch.bfloat16 for k in f.keys())
        assert sum(sizes) <= 60_000 or len(sizes) == 1
        total += sum(sizes)
    assert meta['metadata']['total_size'] == total
    with safe_open(str(tmp_path / weight_map['encoder.layers.2.ls2']), framework='pt') as f:
        assert torch.all(f.get_tensor('encoder.layers.2.ls2') == 0.1)
    # loads strictly through init_cfg (the 16x16 grid resized to 504 px)
    m = InternViT(**TINY, img_size=504, frozen=True, param_dtype='bfloat16',
                  init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path)))
    m.init_weights()
    assert torch.isfinite(m(torch.randn(1, 3, 56, 56))[0]).all()


def test_real_size_flow_at_tiny_size(tmp_path, capsys):
    rs = load_tool('benchmark_real_size')
    res = rs.main(['--skip-300m', '--repeats', '1', '--tmpdir', str(tmp_path),
                   '--arch-overrides', json.dumps(TINY), '--json',
                   str(tmp_path / 'out.json')])
    six = res['6b']
    assert list(tmp_path.iterdir()) == [tmp_path / 'out.json']  # checkpoint removed
    assert six['backbone_dtypes'] == ['torch.bfloat16'] and six['backbone_trainable'] == 0
    assert six['checkpoint_files'][-1] == 'model.safetensors.index.json'
    assert six['finite'] and six['head_trainable'] > 0 and six['step_s']['n'] == 1
    assert 0 < six['loader_s'] <= six['load_s']
    table = capsys.readouterr().out
    assert 'peak anonymous memory' in table and 'linear-probe step' in table


def test_loader_peak_anonymous_memory_within_bound(tmp_path):
    """Building a frozen bf16 backbone with a Pretrained init_cfg and loading a bf16
    sharded checkpoint into it takes no more anonymous memory than 1.15x its weights
    (no fp32 transient, no second copy of the state dict): 165 MiB of weights, in a
    fresh process."""
    rs = load_tool('benchmark_real_size')
    arch = dict(embed_dims=768, num_layers=12, num_heads=12, mlp_hidden_dims=3072)
    rs.write_random_hf_checkpoint(str(tmp_path), shard_bytes=64 * 2**20, **arch)
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tool_path('benchmark_real_size').parent)!r})
        import benchmark_real_size as rs
        from internvit_dense import InternViT
        with rs.AnonPeak() as peak:
            m = InternViT(img_size=504, frozen=True, param_dtype='bfloat16',
                          init_cfg=dict(type='Pretrained', checkpoint={str(tmp_path)!r}),
                          **{arch!r})
            m.init_weights()
        w = sum(p.numel() * p.element_size() for p in m.parameters())
        print(json.dumps(dict(weights=w, growth=peak.peak - peak.start)))
    """)
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out['weights'] > 150 * 2**20
    assert out['growth'] <= rs.ANON_BOUND * out['weights'], out


def test_benchmark_forwards_real_size(monkeypatch):
    """benchmark.py --real-size runs benchmark_real_size.py (which imports benchmark.py,
    not the other way round) with the other arguments, and fails when it fails."""
    benchmark = load_tool('benchmark')
    seen, code = [], [0]
    monkeypatch.setattr(benchmark.subprocess, 'run', lambda cmd: seen.append(cmd) or
                        subprocess.CompletedProcess(cmd, code[0]))
    benchmark.main(['--real-size', '--skip-6b', '--repeats', '2'])
    assert seen == [[sys.executable, str(tool_path('benchmark_real_size')), '--skip-6b',
                     '--repeats', '2']]
    code[0] = 3
    with pytest.raises(SystemExit) as exc:
        benchmark.main(['--real-size', '--skip-6b'])
    assert exc.value.code == 3
