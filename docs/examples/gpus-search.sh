#!/usr/bin/env bash
# One study searched by one worker per GPU of this machine: each worker sees one GPU
# (CUDA_VISIBLE_DEVICES) and has its own --worker-index. Usage: bash docs/examples/gpus-search.sh [GPUS]
# Pass DB=postgresql://... to share the study with other machines too; without it the workers share
# the study's journal file (safe for processes on one host).
set -euo pipefail
gpus=${1:-$(nvidia-smi --list-gpus | wc -l)}
storage=()
if [[ -n "${DB:-}" ]]; then
    storage=(--storage "$DB")
fi

common=(--study cifar-a --out results --data cifar10:/data/cifar --resolution 32 --device cuda --workers 1)
# The first worker creates the study (and checks every setting) before the others join it.
CUDA_VISIBLE_DEVICES=0 snnas search "${storage[@]}" "${common[@]}" --budget 1 --worker-index 0

pids=()
for ((i = 0; i < gpus; i++)); do
    CUDA_VISIBLE_DEVICES=$i snnas search "${storage[@]}" "${common[@]}" --budget 400 --worker-index "$i" &
    pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM
wait "${pids[@]}"
snnas report results/cifar-a "${storage[@]}" --study cifar-a
