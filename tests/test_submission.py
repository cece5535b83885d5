"""Challenge submission: write -> read round trip, file contents, atomic writing and every
malformed-submission problem (each message names the entry index and the field)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from openpsg.evaluation.submission import SubmissionError, read_submission, write_submission
from openpsg.structures import Prediction, id2rgb, id_map_to_masks, rgb2id

V = -1
IDS = ['img_a', 'img_b']
SHAPES = {'img_a': (4, 6), 'img_b': (3, 5)}


def one_hot_rows(predicates, num=56, peak=0.7):
    """Predicate scores whose argmax per row is ``predicates[row]`` (not one-hot themselves)."""
    scores = np.full((len(predicates), num), (1 - peak) / (num - 1), np.float32)
    scores[np.arange(len(predicates)), predicates] = peak
    return scores


def prediction(image_id, id_map, labels, pairs, predicates, dense=True):
    masks = id_map_to_masks(np.asarray(id_map, np.int32), len(labels))
    pred = Prediction(image_id=image_id, labels=np.asarray(labels), scores=np.full(len(labels), 0.9, np.float32),
                      boxes=np.zeros((len(labels), 4), np.float32), masks=masks,
                      pairs=np.asarray(pairs, np.int64).reshape(-1, 2),
                      predicate_scores=one_hot_rows(predicates),
                      triplet_scores=np.linspace(0.9, 0.1, len(pairs)).astype(np.float32))
    return pred if dense else pred.compact()


MAP_A = [[0, 0, 1, 1, 1, 1],
         [0, 0, 1, 1, 1, 1],
         [2, 2, 2, V, 1, 1],
         [2, 2, 2, V, V, V]]
MAP_B = [[0, 0, 0, 0, 0],
         [1, 1, 0, 0, 0],
         [1, 1, V, V, V]]


def predictions():
    a = prediction('img_a', MAP_A, [0, 80, 5], [[0, 1], [2, 1], [0, 2], [1, 0]], [3, 14, 0, 55])
    b = prediction('img_b', MAP_B, [132, 1], [[1, 0]], [46], dense=False)
    return [a, b]


def written(tmp_path, max_rels=100):
    out = tmp_path / 'submission'
    write_submission(list(reversed(predictions())), IDS, str(out), max_rels=max_rels)
    return out


def test_files_use_one_based_labels_and_collision_free_colours(tmp_path):
    out = written(tmp_path)
    entries = json.loads((out / 'relation.json').read_text())
    assert [e['image_id'] for e in entries] == IDS                 # split order, not input order
    assert entries[0] == {
        'image_id': 'img_a',
        'relations': [[0, 1, 4], [2, 1, 15], [0, 2, 1], [1, 0, 56]],
        'segments_info': [{'id': 1, 'category_id': 1}, {'id': 2, 'category_id': 81},
                          {'id': 3, 'category_id': 6}],
        'pan_seg_file_name': '0.png'}
    assert entries[1]['relations'] == [[1, 0, 47]]
    assert entries[1]['segments_info'] == [{'id': 1, 'category_id': 133}, {'id': 2, 'category_id': 2}]
    png = np.asarray(Image.open(out / 'panseg' / '0.png'))
    assert png.shape == (4, 6, 3)
    np.testing.assert_array_equal(rgb2id(png), np.asarray(MAP_A) + 1)   # void -> id 0 (black)
    assert sorted(os.listdir(tmp_path)) == ['submission']                # no temp folder left


def test_round_trip_reproduces_predictions(tmp_path):
    out = written(tmp_path)
    read = read_submission(str(out), IDS, max_rels=0, image_shapes=SHAPES)
    for orig, back in zip(predictions(), read):
        assert back.image_id == orig.image_id
        np.testing.assert_array_equal(back.labels, orig.labels)
        np.testing.assert_array_equal(back.dense_masks(), orig.dense_masks())
        np.testing.assert_array_equal(back.pairs, orig.pairs)
        np.testing.assert_array_equal(back.predicate_scores.argmax(1), orig.predicate_scores.argmax(1))
        assert set(np.unique(back.predicate_scores)) <= {0.0, 1.0}
        assert (back.predicate_scores.sum(1) == 1).all()
        np.testing.assert_array_equal(back.scores, np.ones(len(orig.labels)))
        assert (np.diff(back.triplet_scores) < 0).all()
    np.testing.assert_array_equal(read[0].boxes, [[0, 0, 2, 2], [2, 0, 6, 3], [0, 2, 3, 4]])


def test_max_rels_when_writing_and_when_reading(tmp_path):
    out = written(tmp_path, max_rels=3)
    assert len(json.loads((out / 'relation.json').read_text())[0]['relations']) == 3
    read = read_submission(str(out), IDS, max_rels=2)
    np.testing.assert_array_equal(read[0].pairs, [[0, 1], [2, 1]])
    np.testing.assert_array_equal(read[0].predicate_scores.argmax(1), [3, 14])
    assert len(read[1].pairs) == 1


def test_segments_without_pixels_are_dropped_with_their_relations(tmp_path):
    # segment 1 is completely covered by segment 0 (lowest index wins) and disappears
    masks = np.zeros((3, 2, 3), bool)
    masks[0, :, :2] = True
    masks[1, 0, :2] = True
    masks[2, :, 2] = True
    pred = Prediction(image_id='x', labels=np.array([7, 8, 9]), scores=np.ones(3, np.float32),
                      boxes=np.zeros((3, 4), np.float32), masks=masks,
                      pairs=np.array([[0, 1], [2, 0], [1, 2], [0, 2]]),
                      predicate_scores=one_hot_rows([0, 1, 2, 3]),
                      triplet_scores=np.array([4, 3, 2, 1], np.float32))
    write_submission([pred], ['x'], str(tmp_path / 's'))
    entry = json.loads((tmp_path / 's' / 'relation.json').read_text())[0]
    assert entry['segments_info'] == [{'id': 1, 'category_id': 8}, {'id': 2, 'category_id': 10}]
    assert entry['relations'] == [[1, 0, 2], [0, 1, 4]]


def test_writing_is_atomic(tmp_path):
    out = tmp_path / 'submission'
    write_submission(predictions()[:1], IDS[:1], str(out))        # a previous submission
    before = (out / 'relation.json').read_text()
    broken = predictions()
    broken[1].labels = np.array([133, 1])                            # not a class
    with pytest.raises(ValueError, match=r'image_id img_b: labels must be in 0..132, got \[133\]'):
        write_submission(broken, IDS, str(out))
    assert sorted(os.listdir(tmp_path)) == ['submission']
    assert (out / 'relation.json').read_text() == before
    assert os.listdir(out / 'panseg') == ['0.png']
    with pytest.raises(ValueError, match="1 of the 2 test images have no prediction.*'img_b'"):
        write_submission(predictions()[:1], IDS, str(tmp_path / 'new'))
    with pytest.raises(ValueError, match="image_id 'img_b', which is not one of the 1 test images"):
        write_submission(predictions(), IDS[:1], str(tmp_path / 'new'))
    assert sorted(os.listdir(tmp_path)) == ['submission']
    write_submission(predictions(), IDS, str(out))                 # success replaces it
    assert sorted(os.listdir(out)) == ['panseg', 'relation.json']
    assert sorted(os.listdir(out / 'panseg')) == ['0.png', '1.png']
    assert sorted(os.listdir(tmp_path)) == ['submission']


# ------------------------------------------------------------------------------ malformed input
def edit_entries(out, change):
    path = out / 'relation.json'
    entries = json.loads(path.read_text())
    change(entries)
    path.write_text(json.dumps(entries))


def problems_of(out, shapes=SHAPES):
    with pytest.raises(SubmissionError) as info:
        read_submission(str(out), IDS, image_shapes=shapes)
    return info.value.problems


def test_missing_relation_file(tmp_path):
    out = written(tmp_path)
    (out / 'relation.json').unlink()
    assert problems_of(out) == [f'{out}/relation.json: relation.json: file not found']


def test_missing_png(tmp_path):
    out = written(tmp_path)
    (out / 'panseg' / '1.png').unlink()
    (problem,) = problems_of(out)
    assert problem.startswith('entry 1: ') and 'image_id=img_b' in problem
    assert 'pan_seg_file_name: file not found' in problem and '1.png' in problem


def test_wrong_number_of_entries(tmp_path):
    out = written(tmp_path)
    edit_entries(out, lambda e: e.pop())
    found = problems_of(out)
    assert any('relation.json: 1 entries, expected one per test image (2)' in p for p in found)
    assert any("image_id: 1 test image(s) have no entry: 'img_b'" in p for p in found)


def test_wrong_number_of_entries_without_image_ids(tmp_path):
    out = written(tmp_path)
    edit_entries(out, lambda e: [x.pop('image_id') for x in e] and e.append(e[0]))
    found = problems_of(out)
    assert found == [f'{out}/relation.json: relation.json: 3 entries, expected one per test image (2)']


def test_entries_without_image_id_are_matched_by_position(tmp_path):
    out = written(tmp_path)
    edit_entries(out, lambda e: [x.pop('image_id') for x in e])
    read = read_submission(str(out), IDS, image_shapes=SHAPES)
    assert [p.image_id for p in read] == IDS
    np.testing.assert_array_equal(read[1].labels, [132, 1])


def test_unknown_image_id(tmp_path):
    out = written(tmp_path)
    edit_entries(out, lambda e: e[1].update(image_id='img_z'))
    found = problems_of(out)
    assert any(p.startswith('entry 1: ') and 'image_id=img_z: image_id: unknown image_id' in p
               for p in found)


def test_segment_id_absent_from_png(tmp_path):
    out = written(tmp_path)
    edit_entries(out, lambda e: e[0]['segments_info'][2].update(id=9))
    (problem,) = problems_of(out)
    assert problem.startswith('entry 0: ') and 'image_id=img_a' in problem
    assert 'segments_info.id: segment id(s) [9] do not occur in the panoptic PNG' in problem


def test_duplicate_segment_ids(tmp_path):
    out = written(tmp_path)
    edit_entries(out, lambda e: e[0]['segments_info'][2].update(id=1))
    (problem,) = problems_of(out)
    assert problem == (f'entry 0: {out}/relation.json: image_id=img_a: segments_info[2].id: '
                       'duplicate segment id 1, also segments_info[0]')


def test_relation_index_out_of_range(tmp_path):
    out = written(tmp_path)
    edit_entries(out, lambda e: e[1]['relations'].append([2, -1, 3]))
    found = problems_of(out)
    assert found == [
        f'entry 1: {out}/relation.json: image_id=img_b: relations[1]: subject index 2 is outside '
        '0..1 (the entry has 2 segments)',
        f'entry 1: {out}/relation.json: image_id=img_b: relations[1]: object index -1 is outside '
        '0..1 (the entry has 2 segments)']


@pytest.mark.parametrize('predicate', [0, 57])
def test_predicate_outside_range(tmp_path, predicate):
    out = written(tmp_path)
    edit_entries(out, lambda e: e[0]['relations'][3].__setitem__(2, predicate))
    assert problems_of(out) == [f'entry 0: {out}/relation.json: image_id=img_a: relations[3]: '
                                f'predicate {predicate} is outside 1..56 (1-based predicates)']


@pytest.mark.parametrize('category', [0, 134])
def test_category_outside_range(tmp_path, category):
    out = written(tmp_path)
    edit_entries(out, lambda e: e[1]['segments_info'][0].update(category_id=category))
    assert problems_of(out) == [f'entry 1: {out}/relation.json: image_id=img_b: '
                                f'segments_info[0].category_id: {category} is outside 1..133 '
                                '(1-based classes)']


def test_png_size_differs_from_the_image(tmp_path):
    out = written(tmp_path)
    (problem,) = problems_of(out, shapes={'img_a': (4, 6), 'img_b': (5, 5)})
    assert problem.startswith('entry 1: ') and 'image_id=img_b: pan_seg_file_name: image is 3x5' in problem


def test_every_problem_is_collected(tmp_path):
    out = written(tmp_path)

    def break_all(e):
        e[0]['relations'][0] = [0, 1]
        e[0]['segments_info'][1].update(category_id='person')
        e[1]['relations'][0][2] = 99
        del e[1]['pan_seg_file_name']

    edit_entries(out, break_all)
    found = problems_of(out)
    expected = [('entry 0: ', "segments_info[1].category_id: must be an integer class index, "
                              "got 'person'"),
                ('entry 0: ', 'relations[0]: must be [subject, object, predicate]'),
                ('entry 1: ', 'pan_seg_file_name: missing'),
                ('entry 1: ', 'relations[0]: predicate 99 is outside 1..56')]
    assert len(found) == len(expected)
    for (entry, text), got in zip(expected, found):
        assert got.startswith(entry) and text in got, got


def test_unreadable_relation_file(tmp_path):
    out = written(tmp_path)
    (out / 'relation.json').write_text('{"not": "a list"}')
    (problem,) = problems_of(out)
    assert 'must be a JSON list with one entry per test image (2), got dict' in problem
    (out / 'relation.json').write_text('[{')
    (problem,) = problems_of(out)
    assert 'relation.json: not valid JSON' in problem


def test_colour_written_by_hand_is_read(tmp_path):
    # a submission made by other code: arbitrary colours, no image_id, black = void
    out = tmp_path / 'sub'
    (out / 'panseg').mkdir(parents=True)
    ids = np.array([[0, 300, 300], [70000, 70000, 0]])
    Image.fromarray(id2rgb(ids)).save(out / 'panseg' / 'p.png')
    (out / 'relation.json').write_text(json.dumps([{
        'relations': [[1, 0, 21]], 'pan_seg_file_name': 'p.png',
        'segments_info': [{'id': 300, 'category_id': 3}, {'id': 70000, 'category_id': 100}]}]))
    (pred,) = read_submission(str(out), ['q'], image_shapes={'q': (2, 3)})
    np.testing.assert_array_equal(pred.labels, [2, 99])
    np.testing.assert_array_equal(pred.segment_id_map(), [[V, 0, 0], [1, 1, V]])
    np.testing.assert_array_equal(pred.pairs, [[1, 0]])
    assert pred.predicate_scores[0].argmax() == 20


def test_reading_in_worker_processes_gives_the_same(tmp_path):
    out = written(tmp_path)
    serial = read_submission(str(out), IDS, max_rels=0)
    parallel = read_submission(str(out), IDS, max_rels=0, workers=2)
    for a, b in zip(serial, parallel):
        assert a.image_id == b.image_id and a.masks == b.masks
        np.testing.assert_array_equal(a.pairs, b.pairs)
    edit_entries(out, lambda e: e[1]['relations'].append([0, 0, 0]))
    with pytest.raises(SubmissionError) as info:
        read_submission(str(out), IDS, workers=2)
    assert info.value.problems == problems_of(out, shapes=None)
