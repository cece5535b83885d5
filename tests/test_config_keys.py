"""Config keys that nothing would read: helper variables overridden from the command line, and every
trainer section, model, dataset, transform and hook key checked at start-up with an error naming
the key path (or a warning for bookkeeping keys)."""
import re

import pytest
from test_engine_support import CONFIG, load_tool, make_synth_psg

from openpsg.config import Config, ConfigError, parse_cfg_options

train_tool = load_tool('train')


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    return make_synth_psg(tmp_path_factory.mktemp('synth') / 'psg', num_train=6, num_test=3)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ helper variables
def test_a_helper_variable_override_reaches_every_value_computed_from_it(tmp_path):
    write(tmp_path / 'base.py', "root = 'data/a/'\nfiles = root + 'x.json'\n"
                                "data = dict(train=dict(path=files), val=dict(path=files, n=1))\n")
    config = write(tmp_path / 'child.py', "_base_ = ['base.py']\ndata = dict(val=dict(n=2))\n")
    plain = Config.fromfile(config)
    assert plain.data.train.path == 'data/a/x.json'
    cfg = Config.fromfile(config, parse_cfg_options(['root=/mnt/b/', 'data.val.n=3']))
    assert cfg.data == {'train': {'path': '/mnt/b/x.json'},
                        'val': {'path': '/mnt/b/x.json', 'n': 3}}
    assert cfg.root == '/mnt/b/' and cfg.files == '/mnt/b/x.json'
    assert Config.fromfile(config) == plain  # nothing cached


def test_the_synthetic_configs_follow_data_root():
    cfg = Config.fromfile(CONFIG, {'data_root': '/mnt/synth'})
    for split in ('train', 'val', 'test'):
        assert cfg.data[split].data_root == '/mnt/synth'
        assert cfg.data[split].ann_file == '/mnt/synth/psg.json'


@pytest.mark.parametrize('option, message', [
    ('train_pipeline.2.scale=(64,64)',
     r"^config override 'train_pipeline\.2\.scale': 'train_pipeline' is a helper variable of "
     r'.*freq_predcls_synth\.py, not a setting; .* can only be replaced whole '
     r'\(train_pipeline=\.\.\.\); set data\.train\.pipeline\.2\.scale instead$'),
    ('data_rot=/x', r"^config override 'data_rot': no file of .* assigns a top-level 'data_rot' "
                    r"and no tool reads it; did you mean 'data_root'\?$"),
    ('runer.max_epochs=1', r"did you mean 'runner\.max_epochs'\?$"),
])
def test_overrides_that_would_change_nothing_are_errors(option, message):
    with pytest.raises(ConfigError, match=message):
        Config.fromfile(CONFIG, parse_cfg_options([option]))


def test_a_misspelled_setting_in_a_file_is_an_error(tmp_path):
    config = write(tmp_path / 'c.py', f"_base_ = ['{CONFIG}']\nevalution = dict(interval=2)\n")
    with pytest.raises(ConfigError, match=r"c\.py: top-level 'evalution' is not a setting; did "
                                          r"you mean 'evaluation'\?"):
        Config.fromfile(config)


def test_a_helper_bound_other_than_by_assignment_cannot_be_overridden(tmp_path):
    config = write(tmp_path / 'c.py', "root = 'a/'\nroot += 'b/'\ndata = dict(root=root)\n")
    with pytest.raises(ConfigError, match=r"c\.py, line 2: cannot override 'root': this line binds "
                                          r'it other than by a plain "root = \.\.\." \(AugAssign'):
        Config.fromfile(config, {'root': 'x/'})


# ------------------------------------------------------------------------------ train.py start-up
def test_training_reads_the_overridden_data_root_and_warns_about_bookkeeping_typos(
        synth, tmp_path, capsys):
    work_dir = tmp_path / 'run'
    rc = train_tool.main([CONFIG, '--work-dir', str(work_dir), '--no-validate', '--cfg-options',
                          f'data_root={synth}', 'runner.max_epochs=1',
                          'checkpoint_config.intervall=2', 'log_config.intervall=5'])
    assert rc == 0
    dumped = Config.fromfile(work_dir / 'freq_predcls_synth.py')
    assert dumped.data.train.ann_file == f'{synth}/psg.json' and dumped.data_root == synth
    log = next(work_dir.glob('*[0-9].log')).read_text()
    assert ("checkpoint_config.intervall: checkpoint_config has no key 'intervall'; did you mean "
            "'interval'? (its keys: interval, iter_interval, max_keep_ckpts); it is ignored") in log
    assert "log_config.intervall: log_config has no key 'intervall'" in log
    assert 'Traceback' not in capsys.readouterr().err


START_UP_ERRORS = [
    ('runner.max_epochs=0', r'runner\.max_epochs: must be an integer >= 1, got 0'),
    ('runner.max_epochs=-3', r'runner\.max_epochs: must be an integer >= 1, got -3'),
    ('runner.max_epochs=abc', r"runner\.max_epochs: must be an integer >= 1, got 'abc'"),
    ('runner.max_epoch=1', r"runner\.max_epoch: runner has no key 'max_epoch'; did you mean "
                           r"'max_epochs'\?"),
    ('runner.type=IterBasedRunner', r"runner\.type: runner has no key 'type'"),
    ('data.samples_per_gpus=2', r"data\.samples_per_gpus: data has no key 'samples_per_gpus'; "
                                r"did you mean 'samples_per_gpu'\?"),
    ('data.workers_per_gpu=-1', r'data\.workers_per_gpu: must be an integer >= 0, got -1'),
    ("optimizer_config.grad_clp={'max_norm': 1}", r"optimizer_config\.grad_clp: optimizer_config "
                                                  r"has no key 'grad_clp'"),
    ("optimizer_config.grad_clip={'max_norm': -1}",
     r'optimizer_config\.grad_clip\.max_norm: must be a finite number > 0, got -1'),
    ("optimizer_config.grad_clip={'max_nrm': 1}", r"optimizer_config\.grad_clip: got keys "
                                                  r"\['max_nrm'\]; give max_norm"),
    ('optimizer.type=Adamw', r"optimizer\.type: 'Adamw' is not an optimizer in torch\.optim; did "
                             r"you mean 'AdamW'\?"),
    ('optimizer.betas1=0.9', r"optimizer\.betas1: AdamW has no option 'betas1'; did you mean "
                             r"'betas'\?"),
    ('optimizer.lr=-1', r'optimizer\.lr: must be a finite number > 0, got -1'),
    ('lr_config.policy=polynomial', r"lr_config\.policy must be one of \('fixed', 'step', "
                                    r"'cosine', 'poly'\)"),
    ('lr_config.warmup_iter=5', r"lr_config\.warmup_iter: the lr schedule has no option "
                                r"'warmup_iter'; did you mean 'warmup_iters'\?"),
    ("evaluation.metric=['predcl']", r"evaluation: evaluate: unknown metric\(s\) \['predcl'\]"),
    ('evaluation.save_best=predcls/openpsg/R@25',
     r"evaluation\.save_best: 'predcls/openpsg/R@25' is not a result of this evaluation; closest: "
     r'[^(]*predcls/openpsg/R@20'),
    ('evaluation.rule=bigger', r"evaluation\.rule: must be one of 'greater', 'less', got 'bigger'"),
    ("evaluation.protocol=['fair']", r"evaluation\.protocol: evaluate has no option 'protocol'; "
                                     r"did you mean 'protocols'\?"),
    ('evaluation.interval=0', r'evaluation\.interval: must be an integer >= 1, got 0'),
    ('model.type=FrequencyBaselin', r"model\.type: 'FrequencyBaselin' is not in the model "
                                    r'registry; closest registered names: FrequencyBaseline'),
    ('model.neg_per_imag=3', r"model\.neg_per_imag: FrequencyBaseline has no option "
                             r"'neg_per_imag'; did you mean 'neg_per_image'\? \(its options: "),
    ('data.train.ann_fle=x.json', r"data\.train\.ann_fle: PSGDataset has no option 'ann_fle'; "
                                  r"did you mean 'ann_file'\?"),
    ('data.train.pipeline.2.scal=(64,64)', r"data\.train\.pipeline\.2\.scal: Resize has no option "
                                           r"'scal'; did you mean 'scale'\?"),
    ('data.train.pipeline.3.type=RandomFlp', r"data\.train\.pipeline\.3\.type: 'RandomFlp' is not "
                                             r'in the transform registry'),
    ("log_config.hooks=[{'type': 'TextLogerHook'}]",
     r"log_config\.hooks\.0\.type: 'TextLogerHook' is not in the hook registry"),
    ("custom_hooks=[{'type': 'TextLoggerHook', 'every': 2}]",
     r"custom_hooks\.0\.every: TextLoggerHook has no option 'every'"),
    ("freeze_modules=['backbone']", r"freeze_modules: 'backbone' names no submodule of "
                                    r'FrequencyBaseline'),
    ('amp=fp8', r"amp: must be one of 'none', 'bf16', 'fp16', got 'fp8'"),
    ('seed=abc', r"seed: must be an integer >= 0 and <= \d+, got 'abc'"),
]


@pytest.mark.parametrize('option, message', START_UP_ERRORS)
def test_bad_settings_stop_training_at_start_up_naming_the_key(synth, tmp_path, capsys, option,
                                                               message):
    work_dir = tmp_path / 'run'
    rc = train_tool.main([CONFIG, '--work-dir', str(work_dir), '--cfg-options',
                          f'data_root={synth}', option])
    err = capsys.readouterr().err
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith('train.py: error: ') and 'Traceback' not in err
    assert re.search(message, last), last
    assert not work_dir.exists()  # nothing written: the run never started


def test_settings_of_a_config_file_are_checked_like_overrides(synth, tmp_path, capsys):
    config = write(tmp_path / 'cfg' / 'freq.py', f"_base_ = ['{CONFIG}']\n"
                                                 'checkpoint_config = dict(interval=0)\n')
    rc = train_tool.main([str(config), '--work-dir', str(tmp_path / 'run'), '--cfg-options',
                          f'data_root={synth}'])
    assert rc == 1
    assert ('train.py: error: checkpoint_config.interval: must be an integer >= 1, got 0'
            in capsys.readouterr().err)


def test_test_py_checks_the_evaluation_before_predicting(synth, tmp_path, capsys):
    out = tmp_path / 'preds.json'
    rc = load_tool('test').main([CONFIG, str(tmp_path / 'never_read.pth'), '--eval', 'predcls',
                                 '--out', str(out), '--eval-options', 'kss=[20]',
                                 '--cfg-options', f'data_root={synth}'])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert ("test.py: error: evaluation (with --eval, --eval-options).kss: evaluate has no option "
            "'kss'; did you mean 'ks'?") in err  # before the (missing) checkpoint is opened
