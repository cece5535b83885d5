#!/usr/bin/env bash
# Multi-GPU / multi-node training with torchrun:
#   bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: run on every node with NNODES, NODE_RANK, MASTER_ADDR (and MASTER_PORT) set.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py arguments]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
TOOLS=$(dirname "$0")
exec python -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$GPUS" \
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
    "$TOOLS/train.py" "$CONFIG" --launcher pytorch "$@"
