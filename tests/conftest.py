"""Test-session settings: one intra-op thread per test process (the suite runs several processes
on few cores; more threads only contend), whatever OMP_NUM_THREADS says."""
import torch

torch.set_num_threads(1)
