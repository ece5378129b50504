#!/bin/bash
# MINE training launcher: bash mine/start_training.sh KEY=VALUE ... (the original's keys) -> torchrun.
#   MASTER_ADDR MASTER_PORT N_NODES GPUS_PER_NODE NODE_RANK   distributed launch (GPUS_PER_NODE ranks per
#                                                             node; on a machine without CUDA they run on
#                                                             the CPU with gloo)
#   WORKSPACE DATASET VERSION EXTRA_CONFIG                    train.py: run folder WORKSPACE/VERSION, dataset
#                                                             yaml, JSON overrides of params_default.yaml keys
#   OVERWRITE_PARAMS=1                                        replace a run folder's params.yaml of another config
# PYTHON picks the interpreter (default python3).
set -e
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"

N_NODES="1"
NODE_RANK="0"
MASTER_ADDR="localhost"
MASTER_PORT="8888"
GPUS_PER_NODE="1"
EXTRA_CONFIG="{}"
OVERWRITE_PARAMS=""

for ARGUMENT in "$@"
do
    KEY="${ARGUMENT%%=*}"
    VALUE="${ARGUMENT#*=}"   # everything after the first '=' (the original cut it at the second one)
    case "$KEY" in
        MASTER_ADDR)   MASTER_ADDR=${VALUE} ;;
        MASTER_PORT)   MASTER_PORT=${VALUE} ;;
        N_NODES)       N_NODES=${VALUE} ;;
        GPUS_PER_NODE) GPUS_PER_NODE=${VALUE} ;;
        NODE_RANK)     NODE_RANK=${VALUE} ;;
        WORKSPACE)     WORKSPACE=${VALUE} ;;
        DATASET)       DATASET=${VALUE} ;;
        VERSION)       VERSION=${VALUE} ;;
        EXTRA_CONFIG)  EXTRA_CONFIG=${VALUE} ;;
        OVERWRITE_PARAMS) OVERWRITE_PARAMS=${VALUE} ;;
        *) echo "start_training.sh: unknown argument $ARGUMENT" >&2; exit 2 ;;
    esac
done

for NAME in WORKSPACE DATASET VERSION; do
    if [ -z "${!NAME}" ]; then echo "start_training.sh: $NAME=... is required" >&2; exit 2; fi
done

echo "Master address: $MASTER_ADDR"
echo "Master port: $MASTER_PORT"
echo "Number of nodes: $N_NODES"
echo "Number of processes per node: $GPUS_PER_NODE"
echo "Node rank: $NODE_RANK"
echo "Workspace: $WORKSPACE"
echo "Dataset: $DATASET"
echo "Version: $VERSION"
echo "Extra config: $EXTRA_CONFIG"

case "$DATASET" in
    llff)      DEFAULT_PARAMS="$HERE/configs/params_llff.yaml" ;;
    flowers)   DEFAULT_PARAMS="$HERE/configs/params_flowers.yaml" ;;
    kitti_raw) DEFAULT_PARAMS="$HERE/configs/params_kitti_raw.yaml" ;;
    dtu)       DEFAULT_PARAMS="$HERE/configs/params_dtu.yaml" ;;
    *)         DEFAULT_PARAMS="$HERE/configs/params_realestate.yaml" ;;
esac
echo "default params: $DEFAULT_PARAMS"

OVERWRITE_FLAG=()
if [ "$OVERWRITE_PARAMS" = "1" ]; then OVERWRITE_FLAG=(--overwrite_params); fi

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m torch.distributed.run \
    --master_addr "$MASTER_ADDR" \
    --master_port "$MASTER_PORT" \
    --nnodes "$N_NODES" \
    --nproc_per_node "$GPUS_PER_NODE" \
    --node_rank "$NODE_RANK" \
    -m mine.train \
    --config_path "$DEFAULT_PARAMS" \
    --workspace "$WORKSPACE" --version "$VERSION" \
    --extra_config "$EXTRA_CONFIG" \
    "${OVERWRITE_FLAG[@]}"
