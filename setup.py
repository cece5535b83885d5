"""Install with ``pip install -e .`` (add ``[dev]`` for the tests, ``[wandb]`` for W&B logging)."""
from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path('openpsg/version.py').read_text(), version)

setup(
    name='openpsg',
    version=version['__version__'],
    description='Panoptic Scene Graph Generation: data, models, exact and fast evaluation',
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['openpsg', 'openpsg.*']),
    install_requires=[
        'torch>=2.4',
        'torchvision>=0.19',
        'numpy>=1.23',
        'scipy>=1.10',
        'pycocotools>=2.0.7',
        'Pillow>=9.0',
        'tqdm>=4.60',
        'tensorboard>=2.12',
        'matplotlib>=3.6',
        'h5py>=3.8',
    ],
    extras_require={
        'wandb': ['wandb>=0.16'],
        'dev': ['pytest>=7.0', 'pytest-xdist>=3.0'],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
