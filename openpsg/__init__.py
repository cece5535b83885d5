"""openpsg: Panoptic Scene Graph Generation on current PyTorch."""
from .version import __version__

__all__ = ['__version__']
