#!/usr/bin/env bash
# Source me: creates .venv on first use and (re)installs openpsg when setup.py changes.
# Idempotent; needs only python3 (3.10-3.12) and access to PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "[openpsg] creating $ROOT/.venv"
  "$PYTHON" -m venv "$ROOT/.venv"
fi
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
stamp="$ROOT/.venv/.openpsg-installed"
want="$(cat "$ROOT/setup.py" | sha1sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[openpsg] installing dependencies into .venv (first run takes a few minutes)"
  python -m pip install -q --upgrade pip
  if ! python -c 'import torch, torchvision' 2>/dev/null; then
    python -m pip install -q "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
  fi
  python -m pip install -q -e "$ROOT[dev]"
  echo "$want" > "$stamp"
fi
cd "$ROOT"
