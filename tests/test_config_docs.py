"""The config documentation agrees with the config files.

For each experiment folder (``configs/<folder>/``): every config, ``deepspeed/`` leaves
included, is linked from the folder's README.md and named in its metafile.yaml; every
relative link and every path in the metafile exists; the metafile parses and its models
belong to declared collections; and every published number, in the README tables and in
the metafile ``Results``, is the one the config's header comment states
(``# ... Published: 58.9 mIoU ...`` / ``Published: 53.8 box AP / 48.1 mask AP``), while
a config whose header states none shows "—" and has no ``Results``. The how-to files of
configs/README.md are written into a copy of the tree and loaded.

Fast: files are read and configs parsed, no model is built. The checks are functions
returning the problems they find, so that the last tests can show each of them failing
on a broken copy.
"""
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / 'configs'
FOLDERS = ('internvit', 'internvit_adapter', 'internvit_det', 'internvit_adapter_det',
           'internvit_sweep', 'internvit_depth')
NONE = '—'  # a README cell without a published number
# the released weights (URL prefix) and the converter their Weights Format must name
# the release -> the converters its files go through (PIIP: detection and segmentation)
RELEASED_WEIGHTS = {
    'https://huggingface.co/OpenGVLab/InternVL/resolve/main/': ('internvl2mmseg.py', ),
    'https://huggingface.co/OpenGVLab/PIIP/resolve/main/': ('piip2mmdet.py',
                                                            'internvl2mmseg.py')}

PUBLISHED_MIOU = re.compile(r'Published:\s*(\d+(?:\.\d+)?)\s*mIoU')
PUBLISHED_AP = re.compile(
    r'Published:\s*(\d+(?:\.\d+)?)\s*box AP\s*/\s*(\d+(?:\.\d+)?)\s*mask AP')
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)|<a href="([^"]+)">')


# ---------------------------------------------------------------------------- parsing
def config_files(folder: Path):
    """Every config of a folder, deepspeed/ included, as paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob('*.py')
                  if '__pycache__' not in p.parts)


def header(path: Path) -> str:
    """The config's leading comment block, as one line."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith('#'):
            break
        lines.append(line.lstrip('#').strip())
    return ' '.join(lines)


def published(path: Path) -> dict:
    """The numbers a config's header states as published: {} if none."""
    text = header(path)
    ap = PUBLISHED_AP.search(text)
    if ap:
        return {'box AP': float(ap.group(1)), 'mask AP': float(ap.group(2))}
    miou = PUBLISHED_MIOU.search(text)
    if miou:
        return {'mIoU': float(miou.group(1))}
    if 'Published:' in text:
        raise ValueError(f'{path}: a "Published:" header this test cannot read: {text}')
    return {}


def outside_code(text: str) -> str:
    """Markdown without its fenced code blocks."""
    return re.sub(r'^```.*?^```', '', text, flags=re.M | re.S)


def tables(text: str):
    """[(header cells, [row cells, ...]), ...] of the markdown tables."""
    found, block = [], []
    for line in outside_code(text).splitlines() + ['']:
        if line.startswith('|'):
            block.append([c.strip() for c in line.strip().strip('|').split('|')])
        elif block:
            if len(block) >= 2 and set(''.join(block[1])) <= set('-: '):
                found.append((block[0], block[2:]))
            block = []
    return found


def links(text: str):
    """Relative link targets of a markdown file (web links and bare anchors left out)."""
    targets = []
    for m in LINK.finditer(outside_code(text)):
        target = m.group(1) or m.group(2)
        if not re.match(r'[a-z]+:', target) and not target.startswith('#'):
            targets.append(target)
    return targets


def anchors(md: Path):
    """GitHub's anchors of a markdown file's headings."""
    return {re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-')
            for h in re.findall(r'^#+ (.+)$', outside_code(md.read_text()), re.M)}


def load_metafile(folder: Path) -> dict:
    return yaml.safe_load((folder / 'metafile.yaml').read_text())


def metrics_of(model: dict) -> dict:
    results = model.get('Results') or []
    if isinstance(results, dict):  # mmseg writes one dict, mmdet a list
        results = [results]
    out = {}
    for r in results:
        out.update({k: float(v) for k, v in r['Metrics'].items()})
    return out


def strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings(v)
    elif isinstance(obj, str):
        yield obj


# ----------------------------------------------------------------------------- checks
def undocumented_configs(folder: Path):
    """Configs the README does not link to."""
    linked = {(folder / t.split('#')[0]).resolve()
              for t in links((folder / 'README.md').read_text())}
    return [c for c in config_files(folder) if (folder / c).resolve() not in linked]


def broken_links(md: Path):
    problems = []
    for target in links(md.read_text()):
        path, _, anchor = target.partition('#')
        dest = (md.parent / path).resolve()
        if not dest.exists():
            problems.append(f'{md}: {target} does not exist')
        elif anchor and dest.suffix == '.md' and anchor not in anchors(dest):
            problems.append(f'{md}: no heading #{anchor} in {path}')
    return problems


def metafile_problems(folder: Path):
    root = folder.parents[1]  # metafile paths start at the repository root
    meta = load_metafile(folder)
    problems = []
    collections = [c['Name'] for c in meta['Collections']]
    if len(set(collections)) != len(collections):
        problems.append(f'duplicate collections {collections}')
    models = meta['Models']
    names = [m['Name'] for m in models]
    if len(set(names)) != len(names):
        problems.append('duplicate model names')
    for m in models:
        if m.get('In Collection') not in collections:
            problems.append(f"{m['Name']}: In Collection {m.get('In Collection')!r} is not "
                            f'one of {collections}')
        if Path(m['Config']).stem != m['Name']:
            problems.append(f"{m['Name']}: Name is not the stem of {m['Config']}")
        # nothing was trained here: the only weights are those the InternVL authors and
        # the PIIP authors released, in their layout, which the metafile must say needs
        # the converter
        if 'Training log' in m:
            problems.append(f"{m['Name']}: has 'Training log'")
        if 'Weights' in m and not any(
                str(m['Weights']).startswith(prefix)
                and any(c in m.get('Metadata', {}).get('Weights Format', '') for c in ok)
                for prefix, ok in RELEASED_WEIGHTS.items()):
            problems.append(f"{m['Name']}: Weights {m['Weights']!r} is not an InternVL / "
                            'PIIP release with its Weights Format (the converter)')
    for s in strings(meta):
        if s.startswith('configs/') and not (root / s).exists():
            problems.append(f'{s} does not exist')
    named = {m['Config'] for m in models}
    wanted = {f'configs/{folder.name}/{c}' for c in config_files(folder)}
    problems += [f'{c} is not in metafile.yaml' for c in sorted(wanted - named)]
    return problems


def metafile_number_mismatches(folder: Path):
    """Metafile Results that are not the config header's published numbers (either
    way: a header number without Results is a mismatch too)."""
    problems = []
    for m in load_metafile(folder)['Models']:
        want = published(folder.parents[1] / m['Config'])
        got = metrics_of(m)
        if got != want:
            problems.append(f"{m['Name']}: metafile {got}, config header {want}")
        if got and 'Published In' not in m.get('Metadata', {}):
            problems.append(f"{m['Name']}: Results without Metadata 'Published In'")
    return problems


def readme_number_mismatches(folder: Path):
    """README rows whose published cells are not the config header's numbers, and
    configs with a published number that no README row shows."""
    problems, shown = [], set()
    for head, rows in tables((folder / 'README.md').read_text()):
        columns = {i: h.replace('(published)', '').strip()
                   for i, h in enumerate(head) if '(published)' in h}
        if not columns:
            continue
        for row in rows:
            configs = [t for cell in row for t in links(cell)
                       if t.endswith('.py') and (folder / t).resolve().parent
                       in (folder.resolve(), (folder / 'deepspeed').resolve())]
            if len(configs) != 1:
                problems.append(f'row with {len(configs)} config links: {row}')
                continue
            want = published(folder / configs[0])
            for i, metric in columns.items():
                cell = row[i] if i < len(row) else ''
                expected = want.get(metric)
                if expected is None:
                    ok = cell == NONE
                else:
                    ok = re.fullmatch(r'\d+(\.\d+)?', cell) is not None \
                        and float(cell) == expected
                    shown.add(configs[0])
                if not ok:
                    problems.append(f'{configs[0]}: README {metric} {cell!r}, config header '
                                    f'{expected if expected is not None else "none"}')
    for c in config_files(folder):
        if published(folder / c) and c not in shown:
            problems.append(f'{c}: published {published(folder / c)} is in no README row')
    return problems


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize('name', FOLDERS)
def test_every_config_is_linked_from_its_readme(name):
    folder = CONFIGS / name
    assert config_files(folder), f'no configs in {folder}'
    assert undocumented_configs(folder) == []


@pytest.mark.parametrize('md', [f'configs/{f}/README.md' for f in FOLDERS] +
                         ['configs/README.md'])
def test_readme_links_exist(md):
    assert broken_links(ROOT / md) == []


@pytest.mark.parametrize('name', FOLDERS)
def test_metafile_parses_names_every_config_and_its_paths_exist(name):
    assert metafile_problems(CONFIGS / name) == []


@pytest.mark.parametrize('name', FOLDERS)
def test_metafile_results_are_the_published_numbers_of_the_headers(name):
    assert metafile_number_mismatches(CONFIGS / name) == []


@pytest.mark.parametrize('name', FOLDERS)
def test_readme_published_numbers_are_those_of_the_headers(name):
    assert readme_number_mismatches(CONFIGS / name) == []


def test_published_numbers_are_read_from_the_headers():
    """The header parser sees every way the configs state a number, and no number where
    a header has none (a reference result of another model is not "Published:")."""
    assert published(CONFIGS / 'internvit' /
                     'linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py') \
        == {'mIoU': 47.2}
    assert published(CONFIGS / 'internvit' /
                     'upernet_internvit-6b-224px_8xb2-80k_ade20k-512x512.py') \
        == {'mIoU': 58.42}
    assert published(CONFIGS / 'internvit_det' /
                     'mask-rcnn_internvit-6b_simplefpn_8xb2-ms-1x_coco.py') \
        == {'box AP': 53.8, 'mask AP': 48.1}
    assert published(CONFIGS / 'internvit_adapter' /
                     'mask2former_internvit-300m-448px-adapter_8xb2-80k_ade20k-512x512.py') \
        == {}
    counts = {name: sum(bool(published(CONFIGS / name / c))
                        for c in config_files(CONFIGS / name)) for name in FOLDERS}
    # Table 15: 5 backbones x 3 settings x 2 datasets; few-shot 5; PIIP 1 (+1 detection)
    assert counts == {'internvit': 36, 'internvit_adapter': 1, 'internvit_det': 1,
                      'internvit_adapter_det': 0, 'internvit_sweep': 0, 'internvit_depth': 0}


def test_quoted_config_files_are_the_real_ones():
    """configs/README.md quotes files under a `# <path>.py` line: their code lines are
    the file's, in order."""
    text = (CONFIGS / 'README.md').read_text()
    quoted = 0
    for block in re.findall(r'^```python\n(.*?)^```', text, re.M | re.S):
        for path, body in re.findall(r'^# ((?:configs/|_base_/)\S+\.py)\S*.*\n'
                                     r'((?:(?!# (?:configs/|_base_/)).*\n)*)', block, re.M):
            real = ROOT / path if path.startswith('configs/') else CONFIGS / path
            code = [line.strip() for line in body.splitlines()
                    if line.strip() and not line.lstrip().startswith('#')]
            lines = iter(line.strip() for line in real.read_text().splitlines())
            assert all(line in lines for line in code), f'{path}: quoted code differs'
            quoted += 1
    assert quoted >= 4


def test_how_to_files_load_in_a_copy_of_the_tree(tmp_path):
    """The files of "Add a backbone release" and "Add a dataset", written into a copy of
    configs/, load with mmengine and give the experiment they describe."""
    from mmengine.config import Config

    from internvit_dense.engine.runners import check_num_classes
    text = (CONFIGS / 'README.md').read_text()
    files = re.findall(r'^File `(configs/[^`]+\.py)`:\n\n```python\n(.*?)^```', text,
                       re.M | re.S)
    assert len(files) == 5
    shutil.copytree(CONFIGS, tmp_path / 'configs',
                    ignore=shutil.ignore_patterns('__pycache__'))
    for path, body in files:
        assert not (ROOT / path).exists(), f'{path}: the example exists already'
        (tmp_path / path).write_text(body)
    leaves = {Path(p).name: Config.fromfile(str(tmp_path / p))
              for p, _ in files if '/_base_/' not in p}
    import mmseg.datasets  # noqa: F401  (registers the dataset classes for the check)
    for name, cfg in leaves.items():
        check_num_classes(cfg)  # heads and datasets agree
        backbone = cfg.model.backbone
        if '300m-448px-v2-5' in name:
            assert backbone.arch == 'internvit-300m-448px'
            assert backbone.init_cfg == dict(
                type='Pretrained', checkpoint='pretrained/InternViT-300M-448px-V2-5')
            assert cfg.model.decode_head.num_classes == 150
        else:
            assert backbone.arch == 'internvit-6b-224px' and backbone.frozen
            assert cfg.train_dataloader.dataset.type == 'PascalContextDataset59'
            assert cfg.model.decode_head.num_classes == 59
            assert cfg.model.auxiliary_head.num_classes == 59
            crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop']
            assert crop[0].crop_size == (504, 504)
    # the recipe each release leaf changes stays what it was
    assert leaves['linear_internvit-300m-448px-v2-5-frozen_8xb2-80k_ade20k-504x504.py'] \
        .model.backbone.out_indices == [-4]


# ---------------------------------------------------------- the checks can fail
@pytest.fixture
def det_copy(tmp_path):
    """A copy of configs/internvit_det (configs, README, metafile)."""
    folder = tmp_path / 'configs' / 'internvit_det'
    shutil.copytree(CONFIGS / 'internvit_det', folder,
                    ignore=shutil.ignore_patterns('__pycache__'))
    return folder


def test_a_wrong_readme_number_is_caught(det_copy):
    readme = det_copy / 'README.md'
    assert readme_number_mismatches(det_copy) == []
    readme.write_text(readme.read_text().replace('| 53.8 |', '| 53.9 |'))
    assert any('53.9' in p for p in readme_number_mismatches(det_copy))


def test_a_number_for_an_unpublished_config_is_caught(det_copy):
    readme = det_copy / 'README.md'
    text = readme.read_text()
    row = next(line for line in text.splitlines()
               if 'mask-rcnn_internvit-300m_simplefpn' in line and line.startswith('|'))
    readme.write_text(text.replace(row, row.replace(f'| {NONE} |', '| 55.5 |', 1)))
    assert any('55.5' in p for p in readme_number_mismatches(det_copy))


def test_a_changed_header_number_is_caught(det_copy):
    cfg = det_copy / 'mask-rcnn_internvit-6b_simplefpn_8xb2-ms-1x_coco.py'
    assert metafile_number_mismatches(det_copy) == []
    assert readme_number_mismatches(det_copy) == []
    cfg.write_text(cfg.read_text().replace('Published: 53.8 box AP', 'Published: 54.0 box AP'))
    assert any('54.0' in p for p in readme_number_mismatches(det_copy))
    assert any(cfg.stem in p for p in metafile_number_mismatches(det_copy))


def test_an_undocumented_config_is_caught(det_copy):
    assert undocumented_configs(det_copy) == [] and metafile_problems(det_copy) == []
    leaf = det_copy / 'deepspeed' / 'mask-rcnn_internvit-6b_simplefpn_8xb2-1x_coco_zero3.py'
    leaf.write_text("_base_ = ['../mask-rcnn_internvit-6b-frozen_simplefpn_8xb2-1x_coco.py',\n"
                    "          '../../_base_/deepspeed/zero3_bf16.py']\n")
    assert undocumented_configs(det_copy) == ['deepspeed/' + leaf.name]
    assert metafile_problems(det_copy) == [
        f'configs/internvit_det/deepspeed/{leaf.name} is not in metafile.yaml']


def test_a_broken_link_is_caught(det_copy):
    readme = det_copy / 'README.md'
    readme.write_text(readme.read_text() + '\n[gone](no_such_config.py)\n')
    assert any('no_such_config.py' in p for p in broken_links(readme))
