#!/usr/bin/env bash
# Data-parallel training with msrun on one machine: N workers (Ascend cards, GPUs, or CPU processes).
#   bash scripts/launch_distributed.sh N [train.py options...]
#   bash scripts/launch_distributed.sh 8 --config configs/vgg/vgg16_ascend.yaml --data_dir /data/imagenet
# Environment: MASTER_PORT (default 8118), LOG_DIR (default ./outputs/msrun_logs).
set -euo pipefail
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 NUM_WORKERS [train.py options...]" >&2
  exit 2
fi
workers=$1
shift
here=$(cd "$(dirname "$0")/.." && pwd)
log_dir=${LOG_DIR:-./outputs/msrun_logs}
port=${MASTER_PORT:-8118}
echo "msrun: $workers workers, master port $port; per-rank logs in $log_dir/worker_<rank>.log," \
     "rank 0's training log also in <ckpt_save_dir>/train.log"
exec msrun --worker_num "$workers" --local_worker_num "$workers" --master_port "$port" --log_dir "$log_dir" \
  --join True python "$here/train.py" "$@"
