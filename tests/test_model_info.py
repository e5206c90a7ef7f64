import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
model_info = load_tool('model_info')


def parse_total(text):
    m = re.search(r'parameters: trainable \S+ / total \S+ \(([\d,]+) / ([\d,]+)\)', text)
    return int(m.group(1).replace(',', '')), int(m.group(2).replace(',', ''))


def test_6b_preset_reports_about_5_9b(capsys):
    model_info.main(['internvit-6b-224px'])
    out = capsys.readouterr().out
    trainable, total = parse_total(out)
    assert trainable == total
    assert round(total / 1e9, 1) == 5.9
    assert 'block  47: (1, 3200, 16, 16)' in out


def test_300m_preset_at_504(capsys):
    model_info.main(['internvit-300m-448px', '--input-size', '504', '--batch-size', '2'])
    out = capsys.readouterr().out
    assert round(parse_total(out)[1] / 1e9, 1) == 0.3
    assert 'block  23: (2, 1024, 36, 36)' in out


def test_command_line_and_unknown_preset():
    script = ROOT / 'tools' / 'analysis_tools' / 'model_info.py'
    run = subprocess.run([sys.executable, str(script), 'internvit-5b'], capture_output=True,
                         text=True)
    assert run.returncode != 0
    assert "unknown InternViT arch 'internvit-5b'" in run.stderr


def test_cfg_options_rejected_for_presets():
    with pytest.raises(ValueError, match='config files'):
        model_info.main(['internvit-6b-224px', '--cfg-options', 'a=1'])
