"""tools/analysis_tools/feature_pca.py: the first principal components of a block's
patch features as RGB, next to the image."""
from pathlib import Path

import pytest
import torch
from conftest import load_tool
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_the_first_component_is_the_main_structure_of_the_features():
    """Two regions whose features differ along one direction (plus small noise along
    others): the first component (red) separates them, and the colours do not depend
    on the sign the SVD happens to return."""
    pca = load_tool('feature_pca')
    g = torch.Generator().manual_seed(0)
    c, h, w = 16, 6, 8
    direction = torch.randn(c, generator=g)
    feats = 0.05 * torch.randn(c, h, w, generator=g)
    feats[:, :, : w // 2] += 3 * direction[:, None, None]
    rgb = pca.pca_rgb(feats)
    assert rgb.shape == (h, w, 3) and rgb.min() >= 0 and rgb.max() <= 1
    left, right = rgb[:, : w // 2, 0], rgb[:, w // 2:, 0]
    assert (left.min() > right.max()) or (right.min() > left.max())
    torch.testing.assert_close(pca.pca_rgb(-feats)[..., 0], 1 - rgb[..., 0], atol=0.02,
                               rtol=0)  # mirrored features: the mirrored first channel
    flipped = pca.pca_rgb(feats.flip(-1))
    torch.testing.assert_close(flipped, rgb.flip(1), atol=1e-5, rtol=0)


def test_the_tool_writes_one_panel_per_block(tmp_path, demo_root):
    pca = load_tool('feature_pca')
    image = sorted(Path(demo_root, 'images', 'validation').glob('*.jpg'))[0]
    out = tmp_path / 'pca.png'
    config = ROOT / 'configs/demo/upernet_internvit-tiny_1xb4-600it_demo-ade20k-196x196.py'
    # the demo config's backbone with random weights (no checkpoint in a clean clone)
    pca.main([str(image), str(out), '--config', str(config), '--blocks', '-1', '1',
              '--side', '84'])
    two = Image.open(out).size
    pca.main([str(image), str(out), '--config', str(config), '--blocks', '-1', '--side',
              '84'])
    one = Image.open(out).size
    assert two[0] > one[0] * 1.3  # one more panel
    with pytest.raises(ValueError, match='out of range for 6 blocks'):
        pca.main([str(image), str(out), '--config', str(config), '--blocks', '6'])
    with pytest.raises(FileNotFoundError, match='image not found'):
        pca.main([str(tmp_path / 'none.jpg'), str(out), '--config', str(config)])
