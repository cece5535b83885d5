"""The ``openpsg`` logger: console (through tqdm, so progress bars stay intact) and a log file."""
from __future__ import annotations

import logging
import logging.handlers
import sys

from tqdm import tqdm

LOGGER_NAME = 'openpsg'
_FORMAT = '%(asctime)s - %(name)s - %(levelname)s - %(message)s'


class _TqdmHandler(logging.Handler):
    """Writes records above any active tqdm bar (to stderr, like the bars)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def get_logger(log_file: str | None = None, rank: int = 0,
               level: int | str = logging.INFO) -> logging.Logger:
    """Configure and return the ``openpsg`` logger.

    Rank 0 logs at ``level`` to the console and, if given, to ``log_file``; other ranks print
    errors only. Calling it again replaces the handlers of the previous call.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = False
    logger.setLevel(level if rank == 0 else logging.ERROR)
    formatter = logging.Formatter(_FORMAT)
    console = _TqdmHandler()
    console.setFormatter(formatter)
    logger.addHandler(console)
    if log_file is not None and rank == 0:
        add_log_file(logger, log_file)
    return logger


def start_log_buffer(logger: logging.Logger) -> logging.handlers.MemoryHandler:
    """Keep the records ``logger`` emits from now on (besides printing them), for
    :func:`add_log_file` to write once the log file may be created."""
    buffer = logging.handlers.MemoryHandler(capacity=2**31, flushLevel=logging.CRITICAL + 1)
    logger.addHandler(buffer)
    return buffer


def add_log_file(logger: logging.Logger, log_file: str,
                 buffer: logging.handlers.MemoryHandler | None = None) -> None:
    """Log to ``log_file`` (appending) too; the records kept by ``buffer`` (see
    :func:`start_log_buffer`) are written first, and the buffer is removed."""
    file_handler = logging.FileHandler(log_file, mode='a', encoding='utf-8')
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    if buffer is not None:
        buffer.setTarget(file_handler)
        buffer.flush()
        logger.removeHandler(buffer)
        buffer.close()
    logger.addHandler(file_handler)
