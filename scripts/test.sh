#!/usr/bin/env bash
# Runs the whole test suite; sets up .venv on a fresh machine first.
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python -m pytest -n "${PYTEST_WORKERS:-2}" --durations=15 "$@" tests
