#!/usr/bin/env bash
# Training under Slurm, one task per GPU:
#   GPUS=16 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options, e.g. --work-dir DIR]
# Preemption: with the config's PreemptionHook (configs/_base_/preemption.py), a task
# that gets SIGTERM or SIGUSR1 (SRUN_ARGS="--signal=USR1@120": 120 s before the time
# limit) saves a checkpoint at the end of its iteration and exits with status 75. Inside
# an sbatch job this script then requeues the job (`scontrol requeue`); started from a
# login node it starts the run again itself (at most MAX_RESTARTS times). Either way the
# next start resumes (--resume: the newest complete checkpoint of the work dir).
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
MAX_RESTARTS=${MAX_RESTARTS:-10}
REQUEUE_STATUS=75
PY_ARGS=("${@:4}")
RESUME=()
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
    RESUME=(--resume)  # a requeued job
fi

run() {
    PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
    srun -p "$PARTITION" \
        --job-name="$JOB_NAME" \
        --gres=gpu:"$GPUS_PER_NODE" \
        --ntasks="$GPUS" \
        --ntasks-per-node="$GPUS_PER_NODE" \
        --cpus-per-task="$CPUS_PER_TASK" \
        --kill-on-bad-exit=1 \
        $SRUN_ARGS \
        python -u "$(dirname "$0")/train.py" "$CONFIG" --launcher slurm "${PY_ARGS[@]}" "$@"
}

for attempt in $(seq 0 "$MAX_RESTARTS"); do
    set +e
    run "${RESUME[@]}"
    status=$?
    set -e
    if [ "$status" -ne "$REQUEUE_STATUS" ]; then
        exit "$status"
    fi
    if [ -n "${SLURM_JOB_ID:-}" ]; then
        echo "preempted: checkpoint saved; requeueing job $SLURM_JOB_ID" >&2
        scontrol requeue "$SLURM_JOB_ID"
        exit 0
    fi
    echo "preempted: checkpoint saved; starting again with --resume (attempt $((attempt + 1)))" >&2
    RESUME=(--resume)
done
exit "$REQUEUE_STATUS"
