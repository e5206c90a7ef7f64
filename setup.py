from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def read_requirements(name):
    lines = (ROOT / 'requirements' / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith('#')]


version = {}
exec((ROOT / 'internvit_dense' / 'version.py').read_text(), version)

setup(
    name='internvit-dense',
    version=version['__version__'],
    description='InternViT (InternVL vision encoder) as an OpenMMLab 2.0 backbone '
    'for semantic segmentation (mmseg 1.x) and detection (mmdet 3.x)',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.8',
    packages=find_packages(include=['internvit_dense*', 'mmseg_internvit*', 'mmdet_internvit*']),
    # torch and mmcv are installed by tools/misc/setup_env.sh (mmcv must be compiled against
    # the torch already present); listing them here would let pip resolve CUDA builds.
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'deepspeed': read_requirements('deepspeed.txt'),
        'flash': ['flash-attn>=2.5'],
        'tests': read_requirements('tests.txt'),
    },
    zip_safe=False,
)
