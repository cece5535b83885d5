#!/usr/bin/env bash
# Runs the whole test suite; sets up .venv on a fresh machine first.
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# --dist loadgroup: tests marked with one xdist_group (the 800x1333 Deformable DETR steps,
# 7-10 GB each) run one after the other on one worker, so two never share the memory.
python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup --durations=15 "$@" tests
