#!/usr/bin/env bash
# Train one chosen architecture on 2 nodes x 8 GPUs with DistributedDataParallel (snnas train under
# torchrun). Submit with: sbatch docs/examples/slurm-train.sh
# One task per node starts torchrun; torchrun starts 8 ranks there and the c10d rendezvous on the
# first node joins the nodes. --batch-size is the global batch (here 1024 = 16 ranks x 64).
#SBATCH --job-name=snnas-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --output=%x-%j.out
set -euo pipefail

head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export OMP_NUM_THREADS=4

# The same command resumes from last.pt after a requeue, a kill or a time limit.
srun torchrun \
    --nnodes "$SLURM_NNODES" --nproc-per-node 8 \
    --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$head_node:29500" \
    -m snnas train "results/cifar-a#12" --data cifar10:/data/cifar --out results/cifar-a/trained/trial-12 \
    --epochs 300 --batch-size 1024 --lr 0.002 --device cuda
