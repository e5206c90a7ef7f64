"""How the measuring tools tell their figures (benchmark.py, benchmark_real_size.py,
gpu_check.py): min / median summaries, ratios of paired runs, their text, the Markdown
table and the ``--json`` file. Standard library only; imports no other tool."""
import json
import os
import os.path as osp
import statistics
from typing import Dict, List


def summary(values: List[float]) -> Dict[str, float]:
    return dict(min=min(values), median=statistics.median(values), max=max(values),
                n=len(values))


def paired_ratio(num: List[float], den: List[float]) -> Dict[str, float]:
    """min / median of num[i] / den[i]: each ratio from one repeat's adjacent runs."""
    return summary([a / b if b else float('nan') for a, b in zip(num, den)])


def gib(n):
    return f'{n / 2**30:.2f} GiB'


def fmt_times(values: List[float]) -> str:
    s = summary(values)
    return f"{s['min'] * 1e3:.0f} / {s['median'] * 1e3:.0f} ms"


def fmt_rate(times: List[float], images: int) -> str:
    s = summary([images / t for t in times])
    return f"{s['min']:.2f} / {s['median']:.2f} img/s"


def fmt_ratio(r: Dict[str, float], digits: int = 2) -> str:
    return f"{r['min']:.{digits}f}x / {r['median']:.{digits}f}x"


def markdown_table(rows, head) -> list:
    """The lines of a Markdown table with padded columns."""
    w = [max(len(r[i]) for r in list(rows) + [head]) for i in range(len(head))]
    return (['| ' + ' | '.join(f'{c:<{w[i]}}' for i, c in enumerate(head)) + ' |',
             '|' + '|'.join('-' * (n + 2) for n in w) + '|'] +
            ['| ' + ' | '.join(f'{c:<{w[i]}}' for i, c in enumerate(r)) + ' |'
             for r in rows])


def write_json(path, res) -> None:
    """``--json``: the results, in a folder made if needed."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(res, f, indent=1)
