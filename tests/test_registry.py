"""Registry: registration, building from config dicts, helpful errors, lazy imports."""
import sys

import pytest

from openpsg.registry import Registry


def make_toy() -> Registry:
    toy = Registry('toy')

    @toy.register()
    class PSGTr:
        def __init__(self, num_queries: int = 100, num_classes: int = 133) -> None:
            self.num_queries = num_queries
            self.num_classes = num_classes

    @toy.register('psgformer')
    class PSGFormer(PSGTr):
        pass

    @toy.register()
    def imp_head(depth: int) -> tuple:
        return ('imp', depth)

    return toy


def test_register_under_own_or_given_name():
    toy = make_toy()
    assert toy.keys() == ['PSGTr', 'imp_head', 'psgformer']
    assert 'PSGTr' in toy and 'PSGFormer' not in toy and 'psgformer' in toy
    assert toy.get('psgformer').__name__ == 'PSGFormer'
    assert repr(toy) == "Registry('toy', 3 entries)"


def test_build_passes_kwargs_and_default_args():
    toy = make_toy()
    cfg = {'type': 'PSGTr', 'num_queries': 50}
    model = toy.build(cfg, num_queries=7, num_classes=10)
    assert (model.num_queries, model.num_classes) == (50, 10)  # the config wins over defaults
    assert cfg == {'type': 'PSGTr', 'num_queries': 50}  # not modified
    assert toy.build({'type': 'imp_head', 'depth': 3}) == ('imp', 3)
    assert isinstance(toy.build({'type': 'psgformer'}), toy.get('PSGTr'))


def test_build_accepts_a_callable_type():
    toy = Registry('toy')
    assert toy.build({'type': dict, 'a': 1}) == {'a': 1}


def test_duplicate_name_is_an_error_unless_forced():
    toy = make_toy()
    original = toy.get('PSGTr')

    class PSGTr:
        pass

    with pytest.raises(KeyError, match=r"'PSGTr' is already registered in the toy registry"):
        toy.register()(PSGTr)
    assert toy.get('PSGTr') is original
    toy.register()(original)  # registering the same object again is harmless
    toy.register(force=True)(PSGTr)
    assert toy.get('PSGTr') is PSGTr


def test_unknown_type_names_registry_and_closest_names():
    toy = make_toy()
    with pytest.raises(KeyError) as info:
        toy.build({'type': 'PSGTR'})
    message = str(info.value)
    assert "'PSGTR' is not in the toy registry" in message
    assert 'closest registered names: PSGTr' in message
    assert 'imp_head' not in message


def test_unknown_type_without_close_match_lists_all_names():
    with pytest.raises(KeyError, match='registered names: PSGTr, imp_head, psgformer'):
        make_toy().get('Zebra')
    with pytest.raises(KeyError, match=r"not in the empty registry; registered names: \(none\)"):
        Registry('empty').get('Anything')


@pytest.mark.parametrize('cfg', [['PSGTr'], 'PSGTr', None, {'num_queries': 3}])
def test_build_needs_a_dict_with_type(cfg):
    with pytest.raises(TypeError, match='toy config must be a dict with a "type" key'):
        make_toy().build(cfg)


def test_bad_arguments_name_the_registry_and_entry():
    with pytest.raises(TypeError, match=r"building toy PSGTr: .*'num_querys'"):
        make_toy().build({'type': 'PSGTr', 'num_querys': 5})


def test_modules_are_imported_on_first_query(tmp_path, monkeypatch):
    (tmp_path / 'toyreg_home.py').write_text(
        'from openpsg.registry import Registry\n'
        "TOY = Registry('toy', ['toyreg_plugin'])\n")
    (tmp_path / 'toyreg_plugin.py').write_text(
        'from toyreg_home import TOY\n\n\n'
        '@TOY.register()\n'
        'class Lazy:\n'
        '    def __init__(self, size=1):\n'
        '        self.size = size\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import toyreg_home
        assert 'toyreg_plugin' not in sys.modules
        assert toyreg_home.TOY.build({'type': 'Lazy', 'size': 4}).size == 4
        assert 'toyreg_plugin' in sys.modules
    finally:
        sys.modules.pop('toyreg_home', None)
        sys.modules.pop('toyreg_plugin', None)
