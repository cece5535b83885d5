"""Datasets (PSG, Visual Genome), annotation validation and the transform pipeline."""
from . import transforms
from .annotations import Annotations, load_annotations, parse_annotations
from .check import CheckReport, check_dataset
from .errors import DatasetError
from .psg import PSGDataset, sample_one_predicate
from .vg import VGDataset
from .vg150 import VG150Dataset

__all__ = [
    'Annotations', 'CheckReport', 'DatasetError', 'PSGDataset', 'VG150Dataset', 'VGDataset',
    'check_dataset', 'load_annotations', 'parse_annotations', 'sample_one_predicate', 'transforms',
]
