"""tools/vis_results.py on predictions saved in the format of ``tools/test.py --out``."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from drawing_checks import text_lines, tinted_share
from fixtures.psg_tiny.paint import write_psg_tiny
from PIL import Image

from openpsg.datasets import PSGDataset
from openpsg.engine.inference import save_predictions
from openpsg.structures import NUM_PREDICATES, Prediction, masks_to_boxes
from openpsg.visualization import class_colors

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / 'configs' / '_base_' / 'datasets' / 'psg_synth.py')


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location('openpsg_tool_vis_results',
                                                  ROOT / 'tools' / 'vis_results.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def data(tmp_path: Path) -> dict:
    """The psg_tiny fixture with both images in the test split, and predictions for them made
    from their ground truth (relations reversed in rank, one made-up extra relation)."""
    ann_file, root = write_psg_tiny(tmp_path / 'psg_tiny')
    ann = json.loads(ann_file.read_text())
    ann['test_image_ids'] = ['1001', '1002']
    ann_file.write_text(json.dumps(ann))
    dataset = PSGDataset(str(ann_file), str(root), split='test')
    predictions = []
    for idx in range(len(dataset)):
        gt = dataset.get_gt(idx)
        rels = np.concatenate([gt.rels[::-1], [[gt.rels[0, 1], gt.rels[0, 0], 0]]])
        scores = np.zeros((len(rels), NUM_PREDICATES), np.float32)
        scores[np.arange(len(rels)), rels[:, 2]] = 0.8
        masks = gt.masks()
        predictions.append(Prediction(
            image_id=gt.image_id, labels=gt.labels, scores=np.ones(len(gt.labels), np.float32),
            boxes=masks_to_boxes(masks), masks=masks, pairs=rels[:, :2], predicate_scores=scores,
            triplet_scores=np.linspace(0.9, 0.1, len(rels)).astype(np.float32)))
    pred_file = tmp_path / 'preds.pth'
    save_predictions(predictions, pred_file)
    options = ['--cfg-options', f'data.test.ann_file={ann_file}', f'data.test.data_root={root}']
    return {'pred_file': pred_file, 'predictions': predictions, 'options': options,
            'tmp': tmp_path, 'ann_file': ann_file}


def run(tool: ModuleType, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    rc = tool.main(argv)
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


#: image 1002 of the psg_tiny fixture (20 x 30, grey): segment -> (x1, y1, x2, y2) rectangle and
#: class (dog, person, grass-merged); the rest is void
SEGMENTS_1002 = {0: ((3, 5, 12, 15), 2), 1: ((15, 2, 27, 18), 0), 2: ((0, 18, 30, 20), 3)}
SCALE = 20  # drawn enlarged to 400 x 600 (short side >= 384); font 13 px (400 / 30)


def test_draws_chosen_images(tool: ModuleType, data: dict, capsys: pytest.CaptureFixture) -> None:
    out = data['tmp'] / 'vis'
    rc, text = run(tool, [CONFIG, str(data['pred_file']), '--out', str(out), '--image-ids', '1002',
                          '--topk', '2', *data['options']], capsys)
    assert rc == 0, text
    assert [p.name for p in out.iterdir()] == ['1002.png']
    with Image.open(out / '1002.png') as im:
        figure = np.asarray(im)
    # ground truth | prediction | graph, each figure an image drawing and its relation list
    assert figure.shape[0] == 20 * SCALE and figure.shape[2] == 3
    white = (figure[0] == 255).all(-1)
    assert white[30 * SCALE:30 * SCALE + 4].all()  # the gap after the ground-truth drawing
    pred_x = 30 * SCALE + 4 + int(np.argmax(~white[30 * SCALE + 4:]))  # the prediction drawing
    colors = class_colors([label for _, label in SEGMENTS_1002.values()])
    for x0 in (0, pred_x):  # both drawings tint each segment (eroded by 3 px) in its class colour
        for seg, ((x1, y1, x2, y2), _) in SEGMENTS_1002.items():
            region = figure[y1 * SCALE + 3:y2 * SCALE - 3, x0 + x1 * SCALE + 3:x0 + x2 * SCALE - 3]
            assert tinted_share(region, colors[seg]) > 0.9, (x0, seg)
            others = [c for i, c in enumerate(colors) if i != seg]
            assert max(tinted_share(region, c) for c in others) == 0, (x0, seg)
        void = figure[3:5 * SCALE - 3, x0 + 3:x0 + 3 * SCALE - 3]  # left of and above segment 0
        assert (void.max(-1) - void.min(-1) <= 2).all()  # grey, not tinted
    # the lists: the title and the 3 ground-truth relations (a duplicate removed); the title and
    # the --topk 2 predicted ones
    assert text_lines(figure[:, 30 * SCALE + 4:30 * SCALE + 104], 13) == 1 + 3
    assert text_lines(figure[:, pred_x + 30 * SCALE + 4:pred_x + 30 * SCALE + 104], 13) == 1 + 2
    # the graph of the top 2 predictions, (dog#0, grass#2) and (person#1, dog#0): their three
    # nodes filled with the segments' colours, right of the prediction drawing
    right = figure[:, pred_x + 30 * SCALE:]
    for seg, color in enumerate(colors):
        assert (right == color).all(-1).sum() > 300, seg


def test_random_choice_is_seeded(tool: ModuleType, data: dict,
                                 capsys: pytest.CaptureFixture) -> None:
    one, two = data['tmp'] / 'one', data['tmp'] / 'two'
    for out in (one, two):
        rc, text = run(tool, [CONFIG, str(data['pred_file']), '--out', str(out), '--num', '1',
                              '--seed', '3', '--score-thr', '0.5', *data['options']], capsys)
        assert rc == 0, text
    assert [p.name for p in one.iterdir()] == [p.name for p in two.iterdir()]
    assert len(list(one.iterdir())) == 1
    rc, _ = run(tool, [CONFIG, str(data['pred_file']), '--out', str(data['tmp'] / 'all'),
                       '--num', '10', *data['options']], capsys)
    assert rc == 0 and sorted(p.name for p in (data['tmp'] / 'all').iterdir()) == ['1001.png',
                                                                                    '1002.png']


def test_prediction_for_an_unknown_image_is_an_error(tool: ModuleType, data: dict,
                                                     capsys: pytest.CaptureFixture) -> None:
    stray = data['predictions'][0]
    stray.image_id = '999999'
    bad_file = data['tmp'] / 'stray.json'
    save_predictions(data['predictions'], bad_file)
    out = data['tmp'] / 'vis'
    rc, text = run(tool, [CONFIG, str(bad_file), '--out', str(out), *data['options']], capsys)
    assert rc == 1
    assert 'stray.json' in text and "image_id '999999'" in text
    assert 'not one of the 2 images in the test dataset' in text
    assert not out.exists()


def test_bad_choices_are_errors(tool: ModuleType, data: dict,
                                capsys: pytest.CaptureFixture) -> None:
    out = str(data['tmp'] / 'vis')
    rc, text = run(tool, [CONFIG, str(data['pred_file']), '--out', out, '--image-ids', '4242',
                          *data['options']], capsys)
    assert rc == 1 and '4242' in text and 'not in the test split' in text
    save_predictions(data['predictions'][1:], data['tmp'] / 'one.pth')
    rc, text = run(tool, [CONFIG, str(data['tmp'] / 'one.pth'), '--out', out, '--image-ids',
                          '1001', *data['options']], capsys)
    assert rc == 1 and 'no prediction for image_id 1001' in text
    rc, text = run(tool, [CONFIG, str(data['tmp'] / 'missing.pth'), '--out', out,
                          *data['options']], capsys)
    assert rc == 1 and 'prediction file not found' in text
