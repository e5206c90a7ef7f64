"""tools/benchmark.py runs end to end at a tiny size and reports every figure (no
timing is asserted here: speed targets are read from the tool's own output)."""
import math

from conftest import load_tool


def test_benchmark_reports_all_comparisons(capsys):
    benchmark = load_tool('benchmark')
    res = benchmark.main(['--embed-dims', '64', '--depth', '2', '--heads', '2',
                          '--mlp', '128', '--img-size', '112', '--batch', '2',
                          '--repeats', '1', '--num-classes', '5'])
    for key in ('speedup_vs_reference', 'speedup_vs_mmseg', 'fraction_of_matmul',
                'frozen_time_ratio', 'frozen_memory_ratio',
                'checkpoint_activation_reduction', 'checkpoint_time_ratio'):
        assert math.isfinite(res[key]) and res[key] > 0, key
    # analytic FLOPs of a 2-block, width-64 model on 8x8 patches + class token, batch 2
    n, N, C, H = 64, 65, 64, 128
    expected = 2 * n * C * 3 * 14 * 14 + 2 * (2 * N * (4 * C * C + 2 * C * H) +
                                              4 * N * N * C)
    assert res['forward_flops'] == 2 * expected
    assert res['train:full:opt']['peak_bytes'] > 0  # the step's own memory is seen
    table = capsys.readouterr().out
    assert 'SDPA is' in table and 'of matmul' in table and 'less' in table
