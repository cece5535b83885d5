"""openpsg: Panoptic Scene Graph Generation on current PyTorch."""
from .parallel import set_thread_env
from .version import __version__

set_thread_env()  # before torch is imported: idle OpenMP threads sleep (see openpsg.parallel)

__all__ = ['__version__']
