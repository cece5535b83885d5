"""Config files: inheritance, merging, overrides from the command line, dump round trips."""
import argparse
import copy
import math
import pickle
from pathlib import Path

import pytest

from openpsg.config import Config, ConfigDict, ConfigError, DictAction, merge, parse_cfg_options

CONFIGS = Path(__file__).parent / 'fixtures' / 'configs'


# ---------------------------------------------------------------------------------------------
# loading and inheritance


def test_file_keeps_public_values_only():
    cfg = Config.fromfile(CONFIGS / 'namespace.py')
    assert cfg.to_dict() == {'radius': 2, 'doubled': 42, 'path': 'a/b'}
    assert cfg.filename == str(CONFIGS / 'namespace.py')


def test_bases_from_other_folders_are_merged():
    cfg = Config.fromfile(CONFIGS / 'toy' / 'toy_r50_psg.py')
    assert cfg.model.head == {
        'type': 'ToyHead', 'num_queries': 50,
        'loss_cls': {'type': 'CrossEntropyLoss', 'loss_weight': 1.0}}
    assert cfg.model.backbone == {'type': 'ResNet', 'depth': 50, 'frozen_stages': 1,
                                  'init_cfg': {'type': 'Pretrained'}}  # dict onto None
    assert cfg.model.neck is None  # None onto dict replaces
    assert cfg.optimizer == {'type': 'AdamW', 'lr': 0.0001}  # _delete_: momentum etc. are gone
    assert cfg.lr_config.step == [8, 11]
    assert cfg.data.train.ann_file == 'data/psg_synth/psg.json'
    assert cfg.data.train.pipeline[1].scale == (1333, 800)
    assert list(cfg) == ['model', 'data_root', 'data', 'optimizer', 'lr_config', 'runner',
                         'work_dir']


def test_multi_level_inheritance_and_lists_replace():
    cfg = Config.fromfile(CONFIGS / 'toy' / 'variants' / 'toy_r101_short.py')
    assert cfg.model.backbone.depth == 101
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'  # from the middle level
    assert cfg.model.head.num_queries == 50
    assert cfg.data.train.pipeline == [{'type': 'LoadImage'}]  # list replaced, not merged
    assert cfg.data.train.batch_size == 4
    assert cfg.runner.max_epochs == 2
    assert cfg.optimizer == {'type': 'AdamW', 'lr': 0.0001}


def test_list_of_bases_merges_in_order():
    cfg = Config.fromfile(CONFIGS / 'order' / 'both.py')
    assert cfg.shared == {'a': 1, 'b': {'x': 1, 'y': 2, 'z': 2}, 'c': 4}
    assert cfg.only_first == 'first' and cfg.only_second == 'second'


def test_cycle_is_reported():
    with pytest.raises(ConfigError, match='cycle') as info:
        Config.fromfile(CONFIGS / 'cycle' / 'a.py')
    message = str(info.value)
    assert message.index('a.py') < message.index('b.py') < message.index('c.py')
    with pytest.raises(ConfigError, match='cycle'):
        Config.fromfile(CONFIGS / 'cycle' / 'self.py')


def test_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / 'bad_syntax.py'
    path.write_text("model = dict(type='Toy',\n    depth=50\noptimizer = dict(type='SGD')\n")
    with pytest.raises(ConfigError, match='bad_syntax.py') as info:
        Config.fromfile(path)
    assert 'syntax error' in str(info.value)


def test_syntax_error_in_a_base_names_the_base(tmp_path):
    (tmp_path / 'base.py').write_text('x = (1,\n')
    (tmp_path / 'child.py').write_text("_base_ = 'base.py'\ny = 2\n")
    with pytest.raises(ConfigError, match=r'base\.py, line 1: syntax error'):
        Config.fromfile(tmp_path / 'child.py')


def test_exception_in_config_names_file_line_and_error():
    with pytest.raises(ConfigError, match=r"runtime_error\.py, line 3: NameError.*'dpeth'"):
        Config.fromfile(CONFIGS / 'broken' / 'runtime_error.py')


@pytest.mark.parametrize('name, pattern', [
    ('missing_base.py',
     r'does_not_exist\.py: config file not found \(listed in _base_ of .*missing_base\.py\)'),
    ('bad_base.py', r'bad_base\.py: _base_ must be a path or a list of paths, got 3'),
    ('not_python.yaml', r'not_python\.yaml: config files must be Python'),
    ('absent.py', r'absent\.py: config file not found'),
])
def test_bad_files_are_named(name, pattern):
    with pytest.raises(ConfigError, match=pattern):
        Config.fromfile(CONFIGS / 'broken' / name)


# ---------------------------------------------------------------------------------------------
# merging


def test_merge_is_deep_and_leaves_inputs_alone():
    base = {'a': {'b': 1, 'c': {'d': 2, 'e': 3}}, 'l': [1, 2]}
    override = {'a': {'c': {'d': 20}, 'f': 4}, 'l': [9]}
    assert merge(base, override) == {'a': {'b': 1, 'c': {'d': 20, 'e': 3}, 'f': 4}, 'l': [9]}
    assert base == {'a': {'b': 1, 'c': {'d': 2, 'e': 3}}, 'l': [1, 2]}
    assert override == {'a': {'c': {'d': 20}, 'f': 4}, 'l': [9]}


def test_merge_delete_replaces_and_is_stripped_everywhere():
    base = {'opt': {'type': 'SGD', 'momentum': 0.9}}
    assert merge(base, {'opt': {'_delete_': True, 'type': 'Adam'}}) == {'opt': {'type': 'Adam'}}
    assert merge(base, {'opt': {'_delete_': False, 'lr': 1}}) == {
        'opt': {'type': 'SGD', 'momentum': 0.9, 'lr': 1}}
    assert merge(None, {'new': [{'_delete_': True, 'k': 1}], 'n': {'_delete_': True}}) == {
        'new': [{'k': 1}], 'n': {}}
    assert merge({'a': 1}, 5) == 5
    assert merge(5, {'a': 1}) == {'a': 1}


# ---------------------------------------------------------------------------------------------
# ConfigDict access


def test_attribute_and_item_access():
    cfg = Config({'model': {'backbone': {'depth': 50}}, 'pipeline': [{'type': 'A'}, ({'s': 1},)]})
    assert cfg.model.backbone.depth == 50 and cfg['model']['backbone']['depth'] == 50
    assert isinstance(cfg.model, ConfigDict) and isinstance(cfg.pipeline[0], ConfigDict)
    assert cfg.pipeline[1][0].s == 1 and isinstance(cfg.pipeline[1], tuple)
    assert cfg.get('missing', 7) == 7 and cfg.model.get('backbone').depth == 50
    assert 'model' in cfg and 'nope' not in cfg
    assert cfg.filename is None
    cfg.model.neck = {'type': 'FPN'}
    cfg.model.update(head={'n': 1})
    cfg.model.setdefault('extra', {'k': 2})
    assert cfg.model.neck.type == 'FPN' and cfg.model.head.n == 1 and cfg.model.extra.k == 2
    del cfg.model.neck
    assert 'neck' not in cfg.model
    plain = cfg.to_dict()
    assert type(plain) is dict and type(plain['model']) is dict
    assert type(plain['pipeline'][0]) is dict and type(plain['pipeline'][1][0]) is dict


def test_missing_attribute_names_key_path():
    cfg = Config({'model': {'backbone': {'depth': 50}}, 'pipeline': [{'type': 'A'}]})
    with pytest.raises(AttributeError,
                       match=r"'model\.backbone\.dpeth'.*keys at 'model\.backbone': depth"):
        cfg.model.backbone.dpeth
    with pytest.raises(AttributeError, match=r"'pipeline\.0\.scale'"):
        cfg.pipeline[0].scale
    with pytest.raises(AttributeError, match=r"'optimizer'"):
        cfg.optimizer
    with pytest.raises(AttributeError, match=r"'model\.neck'"):
        del cfg.model.neck
    assert not hasattr(cfg, 'runner')


def test_copies_and_pickles_are_independent_and_equal():
    cfg = Config({'model': {'head': {'n': 1}}, 'steps': [1, 2]}, filename='x.py')
    for other in (copy.deepcopy(cfg), pickle.loads(pickle.dumps(cfg)), cfg.copy()):
        assert other == cfg and type(other) is Config and other.filename == 'x.py'
        other.model.head.n = 2
        assert cfg.model.head.n == 1
    with pytest.raises(AttributeError, match=r"'model\.head\.m'"):
        pickle.loads(pickle.dumps(cfg)).model.head.m


# ---------------------------------------------------------------------------------------------
# command-line overrides


@pytest.mark.parametrize('item, value', [
    ('a.b=1', 1),
    ('lr=1e-4', 0.0001),
    ('x=-2.5', -2.5),
    ('d=True', True),
    ('d=False', False),
    ('e=None', None),
    ('c=[1,2]', [1, 2]),
    ('f=(1,2)', (1, 2)),
    ('f=(1,)', (1,)),
    ('m={"k": [1, "v"]}', {'k': [1, 'v']}),
    ("s='quoted string'", 'quoted string'),
    ('s="7"', '7'),
    ('g=hello', 'hello'),
    ('p=work_dirs/run 1', 'work_dirs/run 1'),
    ('h=1,2,3', [1, 2, 3]),
    ('h=a,b,c', ['a', 'b', 'c']),
    ('h=1,b,None', [1, 'b', None]),
    ('h=[1,2],[3]', [[1, 2], [3]]),
    ('empty=', ''),
    ('eq=a=b', 'a=b'),
])
def test_parse_cfg_options_literal_kinds(item, value):
    key = item.split('=', 1)[0]
    parsed = parse_cfg_options([item])
    assert parsed == {key: value}
    assert type(parsed[key]) is type(value)


def test_parse_cfg_options_rejects_items_without_equals():
    with pytest.raises(ConfigError, match="'model.depth'"):
        parse_cfg_options(['a=1', 'model.depth'])
    with pytest.raises(ConfigError, match="'=3'"):
        parse_cfg_options(['=3'])


def test_dict_action_collects_and_reports_errors(capsys):
    parser = argparse.ArgumentParser(prog='train')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(['--cfg-options', 'a.b=1', 'c=x,y', '--cfg-options', 'd=(1,2)'])
    assert args.cfg_options == {'a.b': 1, 'c': ['x', 'y'], 'd': (1, 2)}
    assert parser.parse_args([]).cfg_options is None
    with pytest.raises(SystemExit):
        parser.parse_args(['--cfg-options', 'depth50'])
    assert "argument --cfg-options: config option 'depth50' is not of the form key=value" in (
        capsys.readouterr().err)


def test_merge_from_dict_dotted_keys_and_list_index():
    cfg = Config.fromfile(CONFIGS / 'toy' / 'toy_r50_psg.py')
    cfg.merge_from_dict(parse_cfg_options([
        'model.head.num_queries=5', 'data.train.batch_size=2',
        'data.train.pipeline.1.scale=(640,480)',
        'data.train.pipeline.-1.prob=0.0', 'runner.new.deep=1', 'model.neck.type=FPN',
        'model.head.loss_cls={"loss_weight": 2.0}', 'seed=3']))
    assert cfg.model.head.num_queries == 5
    assert cfg.data.train.batch_size == 2
    assert cfg.data.train.pipeline[1] == {'type': 'Resize', 'scale': (640, 480), 'keep_ratio': True}
    assert cfg.data.train.pipeline[2] == {'type': 'RandomFlip', 'prob': 0.0}
    assert cfg.runner == {'max_epochs': 12, 'new': {'deep': 1}}
    assert cfg.model.neck == {'type': 'FPN'}  # was None
    assert cfg.model.head.loss_cls == {'type': 'CrossEntropyLoss', 'loss_weight': 2.0}  # merged
    assert cfg.seed == 3
    assert cfg.data.train.pipeline[1].scale == (640, 480)  # still attribute access


@pytest.mark.parametrize('key, pattern', [
    ('data.train.pipeline.3.scale',
     r"index 3 is out of range for 'data\.train\.pipeline' \(length 3\)"),
    ('data.train.pipeline.resize.scale',
     r"'data\.train\.pipeline' is a list; use an integer index"),
    ('model..depth', 'empty component'),
])
def test_merge_from_dict_errors(key, pattern):
    cfg = Config.fromfile(CONFIGS / 'toy' / 'toy_r50_psg.py')
    with pytest.raises(ConfigError, match=pattern):
        cfg.merge_from_dict({key: 1})


# ---------------------------------------------------------------------------------------------
# pretty_text and dump


def test_pretty_text_is_python_in_insertion_order():
    cfg = Config({'z': 1, 'a': {'y': (1,), 'b': [None, True, 0.1]}})
    assert cfg.pretty_text == 'z = 1\na = dict(y=(1,), b=[None, True, 0.1])\n'


def test_dump_round_trip_of_inherited_config(tmp_path):
    cfg = Config.fromfile(CONFIGS / 'toy' / 'variants' / 'toy_r101_short.py')
    cfg.dump(tmp_path / 'out' / 'config.py')
    again = Config.fromfile(tmp_path / 'out' / 'config.py')
    assert again == cfg and list(again) == list(cfg)
    assert list(again.model) == list(cfg.model)
    assert again.data.train.pipeline == [{'type': 'LoadImage'}]


def test_dump_round_trip_keeps_types_exactly(tmp_path):
    values = {
        'tuple_': (1, (2, 3), ()), 'one': ('x',), 'none': None, 'flags': [True, False],
        'floats': [0.1, 1e-300, -0.0, 1.0, float('inf'), -float('inf')], 'big': 2 ** 70,
        'text': 'quote\' "double" back\\slash\nnewline \u00e9',
        'nested': [{'type': 'A', 'args': [{'k': (1.5, None)}]}, {'type': 'B', 'empty': {}}],
        'odd_keys': {'not an identifier': 1, 'class': 2, 3: 'int key', (1, 2): 'tuple key'},
        'long': {f'key_{i}': [f'value_{i}'] * 4 for i in range(12)},
    }
    cfg = Config(values)
    path = tmp_path / 'dumped.py'
    cfg.dump(path)
    again = Config.fromfile(path)
    assert again.to_dict() == values

    def same_types(a, b):
        assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict))
        if isinstance(a, dict):
            assert list(a) == list(b)
            for key in a:
                same_types(a[key], b[key])
        elif isinstance(a, (list, tuple)):
            for x, y in zip(a, b):
                same_types(x, y)

    same_types(again, cfg)
    assert math.copysign(1.0, again.floats[2]) == -1.0
    assert max(len(line) for line in path.read_text().splitlines()) <= 100


def test_dump_nan_round_trip(tmp_path):
    Config({'x': float('nan')}).dump(tmp_path / 'nan.py')
    assert math.isnan(Config.fromfile(tmp_path / 'nan.py').x)


@pytest.mark.parametrize('values, pattern', [
    ({'model': {'type': object}}, r"'model\.type': a type value"),
    ({'steps': [1, {2, 3}]}, r"'steps\.1': a set value"),
    ({'_hidden': 1}, r"top-level config key '_hidden'"),
    ({'not a name': 1}, r"top-level config key 'not a name'"),
])
def test_dump_refuses_values_it_cannot_write_back(tmp_path, values, pattern):
    path = tmp_path / 'cfg.py'
    with pytest.raises(ConfigError, match=pattern):
        Config(values).dump(path)
    assert list(tmp_path.iterdir()) == []  # nothing partially written


def test_read_config_is_relative_to_the_calling_file_and_dumps_whole(tmp_path):
    """``read_config`` inside a config reads another config relative to that config's folder
    (whatever the working directory), helper-variable overrides reach it, and the dumped config
    holds the value read, so it loads back without the other file."""
    (tmp_path / 'seg').mkdir()
    (tmp_path / 'rel').mkdir()
    (tmp_path / 'seg' / 'segmenter.py').write_text(
        "width = 64\nmodel = dict(type='PanopticFPN', backbone=dict(depth=18, out_channels=width))\n")
    (tmp_path / 'rel' / 'two_stage.py').write_text(
        'from openpsg.config import read_config\n'
        "model = dict(type='TwoStageSceneGraph',\n"
        "             segmenter=read_config('../seg/segmenter.py').model)\n")
    cfg = Config.fromfile(tmp_path / 'rel' / 'two_stage.py')
    assert cfg.model.segmenter == {'type': 'PanopticFPN',
                                   'backbone': {'depth': 18, 'out_channels': 64}}
    assert Config.fromfile(tmp_path / 'rel' / 'two_stage.py', overrides={'width': 16}
                           ).model.segmenter.backbone.out_channels == 16
    cfg.dump(tmp_path / 'dumped.py')
    (tmp_path / 'seg' / 'segmenter.py').unlink()
    assert Config.fromfile(tmp_path / 'dumped.py') == cfg


def test_read_config_cycle_is_reported(tmp_path):
    (tmp_path / 'a.py').write_text("from openpsg.config import read_config\nx = read_config('b.py')\n")
    (tmp_path / 'b.py').write_text("from openpsg.config import read_config\ny = read_config('a.py')\n")
    with pytest.raises(ConfigError, match='read_config calls form a cycle'):
        Config.fromfile(tmp_path / 'a.py')
