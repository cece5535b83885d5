"""Registry: registration, building from config dicts, helpful errors, lazy imports."""
import sys

import pytest

from openpsg.config import Config, ConfigError
from openpsg.registry import Registry, RegistryError


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
    with pytest.raises(ConfigError, match='toy config must be a dict with a "type" key'):
        make_toy().build(cfg)


def test_unknown_type_is_a_config_error_naming_the_key_path():
    cfg = Config({'model': {'head': {'type': 'PSGTR'}}})
    with pytest.raises(RegistryError, match=r"^model\.head\.type: 'PSGTR' is not in the toy "
                                            r"registry; closest registered names: PSGTr$"):
        make_toy().build(cfg.model.head)


def test_unknown_keyword_names_its_config_path_and_the_accepted_keys():
    cfg = Config({'model': {'type': 'PSGTr', 'num_querys': 5}})
    with pytest.raises(ConfigError) as info:
        make_toy().build(cfg.model)
    assert str(info.value) == ("model.num_querys: PSGTr has no option 'num_querys'; did you mean "
                               "'num_queries'? (its options: num_queries, num_classes)")
    with pytest.raises(ConfigError, match=r"^colour: imp_head has no option 'colour' \(its "
                                          r"options: depth\)$"):
        make_toy().build({'type': 'imp_head', 'colour': 2, 'depth': 3})  # a plain dict: no path


def test_missing_required_keyword_is_named():
    with pytest.raises(ConfigError, match=r"^imp_head: imp_head needs 'depth'"):
        make_toy().build({'type': 'imp_head'})


def test_errors_of_nested_builds_name_the_inner_path():
    toy = Registry('toy')

    @toy.register()
    class Inner:
        def __init__(self, size: int = 1) -> None:
            if size < 1:
                raise ValueError(f'size must be >= 1, got {size}')

    @toy.register()
    class Outer:
        def __init__(self, inner: dict, plain: dict | None = None) -> None:
            self.inner = toy.build(inner)
            if plain is not None:
                self.plain = toy.build({'type': 'Inner', **plain})

    cfg = Config({'model': {'type': 'Outer', 'inner': {'type': 'Inner', 'size': 0}}})
    with pytest.raises(ConfigError, match=r'^model\.inner \(Inner\): size must be >= 1, got 0$'):
        toy.build(cfg.model)
    cfg = Config({'model': {'type': 'Outer', 'inner': {'type': 'Inner'}, 'plain': {'sise': 2}}})
    with pytest.raises(ConfigError, match=r"^model\.sise: Inner has no option 'sise'; did you "
                                          r"mean 'size'\?"):
        toy.build(cfg.model)  # a plain dict built inside Outer: the path of the enclosing dict


def test_unknown_keyword_of_a_sub_dict_passed_on_by_a_constructor_is_named():
    toy = Registry('toy')

    class Part:
        def __init__(self, width: int = 1, depth: int = 1) -> None:
            pass

    @toy.register()
    class Whole:
        def __init__(self, part: dict) -> None:
            self.part = Part(**part)

    cfg = Config({'model': {'type': 'Whole', 'part': {'widht': 3}}})
    with pytest.raises(ConfigError) as info:
        toy.build(cfg.model)
    assert str(info.value) == ("model.part.widht: Part has no option 'widht'; did you mean "
                               "'width'? (its options: width, depth)")


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
