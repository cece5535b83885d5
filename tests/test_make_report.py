"""tools/make_report.py: the Markdown report of the demo."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_report.py'), *args],
                          capture_output=True, text=True)


def test_report_has_both_protocols_panoptic_and_relative_links(tmp_path: Path) -> None:
    scores = {'config': 'c.py', 'checkpoint': 'k.pth',
              'metric': {'sgdet/openpsg/R@20': 12.345, 'sgdet/fair/R@20': 10.0,
                         'sgdet/openpsg/mR@20': 5.0, 'sgdet/fair/mR@20': 4.5,
                         'sgdet/fair/ngR@20': 20.0, 'PQ': 33.333, 'SQ': 70.0, 'RQ': 40.0,
                         'PQ_th': 30.0, 'PQ_st': 36.0}}
    (tmp_path / 'eval.json').write_text(json.dumps(scores))
    pics = tmp_path / 'pics'
    pics.mkdir()
    (pics / 'a_graph.png').write_bytes(b'')
    out = tmp_path / 'demo' / 'REPORT.md'
    result = run('--eval', str(tmp_path / 'eval.json'), '--pictures', str(pics), '--out', str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert '| R@20 | 12.35 | 10.00 |' in text
    assert '| mR@20 | 5.00 | 4.50 |' in text
    assert '| ngR@20 | – | 20.00 |' in text  # openpsg has no value there: shown as a dash
    assert '| all | 33.33 | 70.00 | 40.00 | 30.00 | 36.00 |' in text
    assert '![a_graph.png](../pics/a_graph.png)' in text


def test_bad_eval_file_names_it_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / 'eval.json'
    bad.write_text('[1, 2]')
    out = tmp_path / 'REPORT.md'
    result = run('--eval', str(bad), '--out', str(out))
    assert result.returncode == 1
    assert str(bad) in result.stderr and 'metric' in result.stderr
    assert not out.exists()
