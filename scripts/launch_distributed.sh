#!/usr/bin/env bash
# Data-parallel training with msrun: N workers on this node (Ascend cards, GPUs or CPU processes), on one or more
# nodes. Run the same command on every node, each with its NODE_RANK:
#   bash scripts/launch_distributed.sh N [train.py options...]
#   bash scripts/launch_distributed.sh 8 --config configs/vgg/vgg16_ascend.yaml --data_dir /data/imagenet
#   NODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash scripts/launch_distributed.sh 8 --config ...   # on node 0
#   NODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash scripts/launch_distributed.sh 8 --config ...   # on node 1
# Environment: NODES (default 1), NODE_RANK (0), MASTER_ADDR (127.0.0.1: node 0's address, where msrun's scheduler
# runs), MASTER_PORT (8118), BIND_CORE (True: pin each worker to its share of the node's cores), LOG_DIR
# (./outputs/msrun_logs). Data and ckpt_save_dir must be on a filesystem every node sees: only rank 0 writes
# checkpoints and records, and a resume on any node reads them from there.
set -euo pipefail
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 NUM_WORKERS_PER_NODE [train.py options...] (NODES, NODE_RANK, MASTER_ADDR in the environment)" >&2
  exit 2
fi
local_workers=$1
shift
nodes=${NODES:-1}
node_rank=${NODE_RANK:-0}
if ! [[ "$nodes" =~ ^[1-9][0-9]*$ && "$node_rank" =~ ^[0-9]+$ ]] || [ "$node_rank" -ge "$nodes" ]; then
  echo "error: NODES must be >= 1 and NODE_RANK in [0, NODES), got NODES=$nodes NODE_RANK=$node_rank" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=(msrun --worker_num "$((local_workers * nodes))" --local_worker_num "$local_workers" --node_rank "$node_rank"
     --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-8118}" --bind_core "${BIND_CORE:-True}"
     --log_dir "${LOG_DIR:-./outputs/msrun_logs}" --join True python "$here/train.py" "$@")
echo "${cmd[*]}"
exec "${cmd[@]}"
