# "Most frequent predicates" baseline (PredCls) on the synthetic PSG set: one predicate
# distribution for every pair, whatever the classes.
_base_ = ['./freq_predcls_synth.py']

model = dict(class_conditioned=False)
evaluation = dict(save_best='predcls/openpsg/mR@20')
