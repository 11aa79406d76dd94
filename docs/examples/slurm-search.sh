#!/usr/bin/env bash
# A search shared by 16 workers on any machines of a cluster: a SLURM job array, one GPU per task,
# one study in PostgreSQL. Create the study once (this checks every setting and evaluates one trial),
# then submit the array with the same settings:
#   export DB=postgresql://user:password@dbhost/snnas
#   snnas search --storage "$DB" --study cifar-a --budget 1 --out results --data cifar10:/data/cifar \
#       --resolution 32 --train-size 20000 --steps 500 --batch-size 256 --worker-index 0
#   sbatch docs/examples/slurm-search.sh
# Each task is one worker with its own --worker-index (it seeds the worker's sampler); the budget
# counts across workers, a dead worker's trial is retried by the others, and resubmitting the array
# finishes the budget.
#SBATCH --job-name=snnas-search
#SBATCH --array=0-15
#SBATCH --ntasks=1
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --output=%x-%A_%a.out
set -euo pipefail
: "${DB:?set DB to the study database URL, e.g. postgresql://user:password@dbhost/snnas}"

snnas search --storage "$DB" --study cifar-a --budget 400 --out results \
    --data cifar10:/data/cifar --resolution 32 --train-size 20000 --steps 500 --batch-size 256 \
    --device cuda --workers 1 --worker-index "$SLURM_ARRAY_TASK_ID"

# Afterwards, anywhere: snnas report results/cifar-a --storage "$DB" --study cifar-a
