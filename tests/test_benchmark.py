"""tools/analysis_tools/benchmark.py runs end to end at a tiny size and reports every
figure (no timing is asserted here: speed targets are read from the tool's own output)."""
import math

from conftest import load_tool


def test_benchmark_reports_all_comparisons(capsys):
    benchmark = load_tool('benchmark')
    res = benchmark.main(['--embed-dims', '64', '--depth', '2', '--heads', '2',
                          '--mlp', '128', '--img-size', '112', '--batch', '2',
                          '--repeats', '2', '--num-classes', '5'])
    # every timed ratio comes as min / median of per-repeat ratios of adjacent runs
    for key in ('speedup_vs_reference', 'speedup_vs_mmseg', 'frozen_time_ratio',
                'checkpoint_time_ratio', 'slide_speedup'):
        r = res[key]
        assert r['n'] == 2 and 0 < r['min'] <= r['median'] <= r['max'], key
        assert all(math.isfinite(v) for v in r.values()), key
    for key in ('frozen_memory_ratio', 'checkpoint_activation_reduction'):
        assert math.isfinite(res[key]) and res[key] > 0, key
    # the limit is the best of its interleaved runs; the forward's fraction of it is
    # flagged as noise above 100%
    lin = res['linears_flops_per_s']
    assert res['matmul_flops_per_s'] == lin['max'] >= lin['median'] >= lin['min'] > 0
    frac = res['fraction_of_matmul']
    assert 0 < frac['min'] <= frac['median'] <= frac['best']
    assert res['fraction_noise'] == (frac['best'] > 1.0)
    # analytic FLOPs of a 2-block, width-64 model on 8x8 patches + class token, batch 2
    n, N, C, H = 64, 65, 64, 128
    expected = 2 * n * C * 3 * 14 * 14 + 2 * (2 * N * (4 * C * C + 2 * C * H) +
                                              4 * N * N * C)
    assert res['forward_flops'] == 2 * expected
    assert res['forward']['linear_flops'] == 2 * 2 * 2 * N * (4 * C * C + 2 * C * H)
    assert res['train:full:opt']['peak_bytes'] > 0  # the step's own memory is seen
    # batched slide inference equals mmseg's on the benchmark's model and image
    assert res['slide']['windows'] == 3 and res['slide']['max_abs_diff'] < 1e-4
    table = capsys.readouterr().out
    for text in ('SDPA is', 'of the limit', 'less', "mmseg's speed", 'min / median'):
        assert text in table, text


def test_limit_is_the_best_run_and_a_forward_above_it_is_flagged():
    """The limit is the fastest linears-alone run; the forward's fraction of it is given
    for its fastest and median runs, and a forward faster than its own linears alone
    (impossible: it runs them and more) is flagged as noise, not believed."""
    benchmark = load_tool('benchmark')
    fwd = dict(linear_flops=8.0, forward_flops=10.0,
               times=dict(linears=[2.0, 1.0, 4.0], sdpa=[5.0, 2.5, 4.0]))
    lin, limit, achieved, frac, flag = benchmark.fraction_of_limit(fwd)
    assert limit == lin['max'] == 8.0 and lin['min'] == 2.0
    assert frac == dict(min=2.0 / 8.0, median=2.5 / 8.0, best=4.0 / 8.0) and flag == ''
    fwd['times']['sdpa'] = [1.0, 2.0, 2.0]  # best forward 10 FLOP/s > limit 8
    *_, frac, flag = benchmark.fraction_of_limit(fwd)
    assert frac['best'] == 1.25 and 'NOISE' in flag
    r = load_tool('report').paired_ratio([2.0, 3.0, 9.0], [1.0, 1.0, 3.0])
    assert (r['min'], r['median'], r['max'], r['n']) == (2.0, 3.0, 3.0, 3)


def test_sweep_benchmark_times_24_heads_next_to_one(capsys):
    benchmark = load_tool('benchmark')
    res = benchmark.main(['--sweep', '--embed-dims', '32', '--depth', '4', '--heads', '2',
                          '--mlp', '64', '--img-size', '56', '--batch', '2',
                          '--repeats', '2', '--num-classes', '5'])
    assert res['heads'] == {'1': 1, '24': 24}
    for kind in ('train', 'eval'):
        r = res[f'{kind}_ratio']
        assert r['n'] == 2 and 0 < r['min'] <= r['median'] <= r['max'], kind
        assert res[f'{kind}_cheaper_than_runs'] == 24 / r['median']
    table = capsys.readouterr().out
    assert 'training iteration, 24 heads' in table and 'cheaper than 24 runs' in table
