"""The inference API: init_model, inference_image(s), SceneGraphResult (triplets, JSON)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openpsg.apis import (DeviceError, ImageInputError, LoadImageFromArray, SceneGraphResult,
                          Triplet, build_inference_pipeline, inference_image, inference_images,
                          init_model, load_image, resolve_device)
from openpsg.config import Config
from openpsg.engine.checkpoint import CheckpointError, save_checkpoint
from openpsg.structures import CLASSES, PREDICATES, Prediction, encode_rle, masks_to_boxes

ROOT = Path(__file__).resolve().parents[1]
# untrained CPU-sized models, the first that exists is used
MODEL_CONFIGS = ('configs/psgtr/psgtr_tiny_synth.py', 'configs/detr4seg/detr4seg_tiny_synth.py')


def model_config() -> str:
    for config in MODEL_CONFIGS:
        if (ROOT / config).is_file():
            return str(ROOT / config)
    pytest.skip(f'none of {MODEL_CONFIGS} exists')


def model_options() -> dict:
    """Config overrides for an untrained model: random backbone weights (no file needed) and every
    score threshold the model has at 0, so that it keeps segments and relations."""
    model = Config.fromfile(model_config()).model
    options = {'model.backbone.pretrained': None}
    for key in ('score_thr', 'subject_score_thr', 'object_score_thr', 'predicate_score_thr',
                'claim_thr'):
        if key in model.get('test_cfg', {}):
            options[f'model.test_cfg.{key}'] = 0.0
    return options


def scene(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A small RGB image: sky, grass and a few blocks, with some noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:h // 2] = (120, 170, 230)
    img[h // 2:] = (60, 160, 60)
    img[h // 3:h - 5, w // 4:w // 4 + 10] = (200, 40, 40)
    img[h // 2:h - 8, w // 2:w - 6] = (120, 80, 40)
    return np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------- results
def hand_made(with_pan: bool = False) -> SceneGraphResult:
    """person#0, horse#1, grass#2 on a 6x8 image; rows deliberately out of score order."""
    masks = np.zeros((3, 6, 8), bool)
    masks[0, 0:3, 0:3] = True
    masks[1, 1:4, 3:7] = True
    masks[2, 4:6, :] = True
    pairs = np.array([[0, 2], [0, 1], [1, 2], [0, 1], [0, 1], [2, 0]])
    pred_scores = np.full((6, 56), 0.001, np.float32)
    for r, p in enumerate([14, 46, 14, 3, 46, 3]):
        pred_scores[r, p] = 0.9
    pan = None
    if with_pan:
        pan = np.full((6, 8), -1, np.int32)
        pan[4:, :] = 0
    prediction = Prediction(
        image_id='hand', labels=np.array([0, 17, 125]),
        scores=np.array([0.9, 0.8, 0.7], np.float32),
        boxes=masks_to_boxes(masks), masks=masks, pairs=pairs, predicate_scores=pred_scores,
        triplet_scores=np.array([0.5, 0.9, 0.7, 0.8, 0.2, 0.0], np.float32),
        no_relation_scores=np.linspace(0, 0.5, 6).astype(np.float32),
        pan_id_map=pan, pan_labels=np.array([125]) if with_pan else None)
    return SceneGraphResult(prediction, CLASSES, PREDICATES, (6, 8))


def test_top_triplets_order_uniqueness_and_threshold() -> None:
    result = hand_made()
    top = result.top_triplets()
    assert [(t.subject, t.object, t.predicate) for t in top] == [
        (0, 1, 'riding'), (1, 2, 'standing on'), (0, 2, 'standing on'), (2, 0, 'on')]
    assert [t.score for t in top] == pytest.approx([0.9, 0.7, 0.5, 0.0])
    assert top[0] == Triplet(0, 1, 'person', 'horse', 'riding', 46, pytest.approx(0.9))
    assert str(top[0]) == 'person#0 --riding--> horse#1 (0.90)'
    assert len(result.top_triplets(2)) == 2 and result.top_triplets(0) == []
    assert [t.score for t in result.top_triplets(score_thr=0.5)] == pytest.approx([0.9, 0.7, 0.5])
    every = result.top_triplets(None, unique_pairs=False)
    # (0, 1) appears with 'riding' and 'on'; its second 'riding' row is a repeat and is left out
    assert [(t.subject, t.object, t.predicate_id) for t in every] == [
        (0, 1, 46), (0, 1, 3), (1, 2, 14), (0, 2, 14), (2, 0, 3)]
    with pytest.raises(ValueError, match='k must be'):
        result.top_triplets(-1)


def test_top_triplets_without_triplet_scores_or_relations() -> None:
    result = hand_made()
    result.prediction.triplet_scores = None
    result.prediction.predicate_scores[3, 3] = 0.95
    top = result.top_triplets()
    assert (top[0].subject, top[0].object, top[0].predicate, top[0].score) == (
        0, 1, 'on', pytest.approx(0.95))
    result.prediction.pairs = np.zeros((0, 2), np.int64)
    result.prediction.predicate_scores = np.zeros((0, 56), np.float32)
    assert result.top_triplets() == []


@pytest.mark.parametrize('with_pan', [False, True])
def test_json_round_trip(with_pan: bool) -> None:
    result = hand_made(with_pan)
    data = result.to_json()
    text = json.dumps(data)
    back = SceneGraphResult.from_json(json.loads(text))
    assert back == result
    assert back.to_json() == data
    assert isinstance(back.prediction.masks, list)  # RLE
    assert np.array_equal(back.prediction.dense_masks(), result.prediction.masks)
    assert (data['height'], data['width']) == (6, 8)
    seg = data['segments'][1]
    assert (seg['id'], seg['label'], seg['name']) == (1, 17, 'horse#1')
    assert seg['box'] == [3.0, 1.0, 7.0, 4.0]
    assert seg['mask'] == encode_rle(result.prediction.masks[1:2])[0]
    assert data['triplets'][0] == {'subject': 0, 'object': 1, 'subject_name': 'person',
                                   'object_name': 'horse', 'predicate': 'riding',
                                   'predicate_id': 46, 'score': pytest.approx(0.9)}
    assert [t['score'] for t in data['triplets']] == sorted((t['score'] for t in data['triplets']),
                                                            reverse=True)
    assert (data['panoptic'] is not None) == with_pan
    assert len(result.to_json(topk=1)['triplets']) == 1
    if with_pan:
        assert np.array_equal(back.prediction.pan_id_map, result.prediction.pan_id_map)


def test_json_leaves_out_a_panoptic_map_equal_to_the_segments() -> None:
    result = hand_made()
    result.prediction.pan_id_map = result.prediction.segment_id_map()
    assert result.to_json()['panoptic'] is None
    assert SceneGraphResult.from_json(result.to_json()) == result


def test_from_json_rejects_other_files() -> None:
    with pytest.raises(ValueError, match='not an openpsg scene-graph JSON'):
        SceneGraphResult.from_json({'predictions': []})
    with pytest.raises(ValueError, match='version'):
        SceneGraphResult.from_json({**hand_made().to_json(), 'version': 99})


def test_result_drawings() -> None:
    result = hand_made()
    image = scene(6, 8)
    panoptic = result.draw_panoptic(image)
    assert panoptic.shape == image.shape and (panoptic != image).any()
    assert result.draw_panoptic(image, min_size=24).shape == (24, 32, 3)
    with pytest.raises(ValueError, match='image is'):
        result.draw_panoptic(scene(7, 8))
    graph = result.draw_graph(k=3, title='three')
    assert graph.ndim == 3 and graph.dtype == np.uint8
    result.prediction.masks = None  # a box-only model: boxes instead of masks
    boxes = result.draw_panoptic(image, min_size=12)
    assert boxes.shape == (12, 16, 3) and (boxes != image.repeat(2, 0).repeat(2, 1)).any()
    assert SceneGraphResult.from_json(result.to_json()) == result


# ----------------------------------------------------------------------------------- inputs
def test_load_image_validates_its_input(tmp_path: Path) -> None:
    img = scene()
    path = tmp_path / 'a.png'
    Image.fromarray(img).save(path)
    assert np.array_equal(load_image(path), img)
    assert np.array_equal(load_image(str(path)), img)
    with Image.open(path) as im:
        assert np.array_equal(load_image(im), img)
    assert load_image(Image.fromarray(img[..., 0])).shape == (48, 64, 3)  # grey -> RGB
    assert load_image(Image.fromarray(np.dstack([img, img[..., :1]]))).shape == (48, 64, 3)
    with pytest.raises(ImageInputError, match='uint8'):
        load_image(img.astype(np.float32))
    with pytest.raises(ImageInputError, match=r'\(H, W, 3\)'):
        load_image(img[..., 0])
    with pytest.raises(ImageInputError, match='empty'):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageInputError, match='not found'):
        load_image(tmp_path / 'missing.jpg')
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not an image')
    with pytest.raises(ImageInputError, match='broken.jpg: cannot read'):
        load_image(broken)
    with pytest.raises(ImageInputError, match='got list'):
        load_image([1, 2, 3])


def test_devices() -> None:
    assert resolve_device('cpu') == torch.device('cpu')
    with pytest.raises(DeviceError, match='unknown device'):
        resolve_device('gpu0')
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match='CUDA is not available'):
            resolve_device('cuda')
        with pytest.raises(DeviceError, match='CUDA is not available'):
            init_model(str(ROOT / 'configs/_base_/datasets/psg_synth.py'), device='cuda:0')


def test_inference_pipeline_drops_annotation_steps() -> None:
    cfg = Config.fromfile(ROOT / 'configs/_base_/datasets/psg_synth.py')
    pipeline = build_inference_pipeline(cfg)
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == ['LoadImageFromArray', 'Resize', 'Normalize', 'Pad', 'PackSample']
    assert isinstance(pipeline.transforms[0], LoadImageFromArray)
    cfg.data.test.pipeline = cfg.data.test.pipeline[2:]  # no LoadImage at all: prepended
    assert type(build_inference_pipeline(cfg).transforms[0]).__name__ == 'LoadImageFromArray'
    del cfg.data['test']
    with pytest.raises(ValueError, match='data.test.pipeline'):
        build_inference_pipeline(cfg)


def test_models_that_need_ground_truth_segments_are_refused() -> None:
    config = ROOT / 'configs/imp/imp_tiny_predcls_synth.py'
    if not config.is_file():
        pytest.skip(f'{config} does not exist')
    with pytest.raises(ValueError, match='predcls mode, which takes the ground-truth segments'):
        init_model(config, cfg_options={'model.segmenter_checkpoint': None})


# ----------------------------------------------------------------------------------- a model
@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return init_model(model_config(), cfg_options=model_options())


def check_well_formed(result: SceneGraphResult, hw: tuple[int, int]) -> None:
    pred = result.prediction
    n = pred.num_segments
    assert result.image_size == hw
    assert pred.labels.shape == (n,) and pred.scores.shape == (n,) and pred.boxes.shape == (n, 4)
    assert pred.dense_masks(hw).shape == (n, *hw)
    r = len(pred.pairs)
    assert pred.predicate_scores.shape == (r, len(PREDICATES)) and len(pred.triplet_scores) == r
    assert result.class_names == CLASSES and result.predicate_names == PREDICATES
    json.dumps(result.to_json())


def test_path_pil_and_array_give_the_same_result(model, tmp_path: Path) -> None:
    img = scene()
    path = tmp_path / 'own.png'
    Image.fromarray(img).save(path)
    by_path = inference_image(model, path)
    assert by_path.image_id == 'own'
    assert by_path.num_segments > 0  # no threshold (model_options): the untrained model keeps some
    check_well_formed(by_path, (48, 64))
    with Image.open(path) as im:
        by_pil = inference_image(model, im)
    by_array = inference_image(model, img, image_id='own')
    assert by_pil.to_json() == by_path.to_json() == by_array.to_json()
    assert inference_image(model, img).image_id == 'image'


def test_model_attributes_and_batches(model) -> None:
    assert not model.training
    assert model.cfg.filename == model_config()
    assert [type(t).__name__ for t in model.test_pipeline.transforms][0] == 'LoadImageFromArray'
    images = [scene(40, 56, 1), scene(48, 64, 2), scene(36, 36, 3)]
    results = inference_images(model, images, batch_size=2, image_ids=['a', 'b', 'c'])
    assert [r.image_id for r in results] == ['a', 'b', 'c']
    for result, img in zip(results, images):
        check_well_formed(result, img.shape[:2])
    single = inference_image(model, images[2], image_id='c')
    assert results[2].to_json() == single.to_json()  # alone in its batch: no padding
    with pytest.raises(ImageInputError, match='uint8'):
        inference_images(model, [images[0], images[1].astype(float)])
    with pytest.raises(TypeError, match='init_model'):
        inference_image(torch.nn.Linear(2, 2), images[0])


def test_a_scene_graph_model_on_an_own_image(tmp_path: Path) -> None:
    """An untrained two-stage SGDet model: relations, named triplets and their graph."""
    config = ROOT / 'configs/imp/imp_tiny_sgdet_synth.py'
    if not config.is_file():
        pytest.skip(f'{config} does not exist')
    torch.manual_seed(0)
    model = init_model(config, cfg_options={'model.segmenter_checkpoint': None})
    checkpoint = tmp_path / 'imp.pth'
    save_checkpoint({'state_dict': model.state_dict()}, checkpoint)
    model = init_model(config, checkpoint)  # the segmenter checkpoint is not needed now
    result = inference_image(model, scene(64, 80))
    check_well_formed(result, (64, 80))
    n = result.num_segments
    assert len(result.prediction.pairs) == n * (n - 1)
    top = result.top_triplets(5)
    assert len(top) == min(5, n * (n - 1))
    assert all(t.subject_name in CLASSES and t.predicate in PREDICATES for t in top)
    assert result.draw_graph(5).ndim == 3


def test_checkpoints_names_and_mismatches(model, tmp_path: Path) -> None:
    config = model_config()
    state = model.state_dict()
    good = tmp_path / 'good.pth'
    classes = [f'class{i}' for i in range(len(CLASSES))]
    save_checkpoint({'meta': {'classes': classes, 'predicates': list(PREDICATES)},
                     'state_dict': state}, good)
    loaded = init_model(config, good, cfg_options=model_options())
    assert loaded.class_names == tuple(classes) and loaded.predicate_names == PREDICATES
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    img = scene()
    assert inference_image(loaded, img).prediction.labels.tolist() == \
        inference_image(model, img).prediction.labels.tolist()

    first = next(iter(state))
    broken = {**state, 'extra_head.weight': torch.zeros(3)}
    del broken[first]
    shaped = next(k for k, v in state.items() if v.ndim >= 1 and k != first)
    broken[shaped] = torch.zeros(*[s + 1 for s in state[shaped].shape])
    bad = tmp_path / 'other_model.pth'
    save_checkpoint({'state_dict': broken}, bad)
    with pytest.raises(CheckpointError) as err:
        init_model(config, bad)
    message = str(err.value)
    assert f'checkpoint {bad} does not match config {config}' in message
    assert first in message and 'extra_head.weight' in message and shaped in message
    cfg = Config.fromfile(config)
    lenient = init_model(cfg, bad, strict=False, cfg_options=['work_dir=elsewhere'])
    assert lenient.class_names == CLASSES  # loaded what fits; no names in this checkpoint
    assert lenient.cfg.work_dir == 'elsewhere' and cfg.get('work_dir') != 'elsewhere'  # a copy
    with pytest.raises(CheckpointError, match='not found'):
        init_model(config, tmp_path / 'missing.pth')
    with pytest.raises(ValueError, match='config file not found'):
        init_model(tmp_path / 'missing_config.py')
    unknown = tmp_path / 'unknown_model.py'
    unknown.write_text("model = dict(type='NoSuchModel')\n")
    with pytest.raises(ValueError, match=r'unknown_model.py: cannot build the model: .*NoSuch'):
        init_model(unknown)
