"""Evaluation: scene-graph recall under the ``openpsg`` and ``fair`` protocols, panoptic quality,
the dataset-level runner and the PSG challenge submission format."""
from .panoptic import PQStat, pq_stats_image, summarize_pq
from .runner import evaluate, format_results
from .sgg import SGGConfig, evaluate_image, per_predicate_table, summarize
from .submission import SubmissionError, read_submission, write_submission
from .submission_folder import SubmissionDirError, check_submission_dir

__all__ = ['PQStat', 'SGGConfig', 'SubmissionDirError', 'SubmissionError', 'check_submission_dir',
           'evaluate', 'evaluate_image', 'format_results', 'per_predicate_table', 'pq_stats_image',
           'read_submission', 'summarize', 'summarize_pq', 'write_submission']
