# Save a checkpoint and exit with status 75 on SIGTERM / SIGUSR1 (slurm's
# --signal=USR1@120), for tools/slurm_train.sh to requeue and resume. Add it to a
# config's _base_ list, or: custom_hooks = [..., dict(type='PreemptionHook')].
custom_hooks = [dict(type='PreemptionHook', signals=('SIGTERM', 'SIGUSR1'), exit_code=75)]
