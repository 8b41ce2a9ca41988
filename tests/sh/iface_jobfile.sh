#!/usr/bin/env bash
# jobs/slurm-pretrain.sbatch outside SLURM (scontrol stubbed): USR1 to the batch script (what --signal=B:USR1@600
# does) makes it forward the signal to mpirun, the ranks checkpoint and exit 0, and the script requeues; the
# requeued script resumes at that step; a run that completes does not requeue.
set -u
source tests/sh/common.inc
mkdir -p "$T/bin"; printf '#!/bin/sh\necho "scontrol $*" >>"%s/requeued"\n' "$T" >"$T/bin/scontrol"; chmod +x "$T/bin/scontrol"
# an allocation of 2 tasks on this node, 1 CPU each: the job file must start 2 ranks (it follows the allocation)
export PATH="$T/bin:$PATH" SLURM_CPUS_PER_TASK=1 SLURM_JOB_ID=42 SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=2 \
  SLIMCLR="$SLIMCLR_BIN" RUN_DIR="$T/run"
export SLIMCLR_ARGS="--set model.base=8 --set optim.batch=48 --set method.queue=960 --set optim.max_steps=12 --set run.log_every=1 --set data.workers=0 --set checkpoint.every_minutes=0 --set data.dir=$(fm_data)"
bash jobs/slurm-pretrain.sbatch yaml/fmnist-slimclr-mocov2.yaml >"$T/job1.log" 2>&1 &
job=$!
metrics_wait "$T/run/metrics.jsonl" 3 60 $job
kill -USR1 $job
wait $job; rc=$?
stop=$(cat "$T/run/STOPPED_BY_SIGNAL" 2>/dev/null)
if [ $rc -eq 0 ] && [ -n "$stop" ] && grep -q "scontrol requeue 42" "$T/requeued" 2>/dev/null; then
  echo "ok: job stopped by USR1 at step $stop, exit 0, requeued"
else echo "FAIL: job 1: rc $rc, stop '$stop', $(cat "$T/requeued" 2>/dev/null)"; tail -5 "$T/job1.log"; fail=1; fi
if grep -q "2 rank(s), global batch" "$T/job1.log" && ! grep -q "SLURM granted" "$T/job1.log"; then
  echo "ok: the job file started the 2 ranks SLURM granted, no mismatch warning"
else echo "FAIL: ranks vs allocation:"; grep -E "rank\(s\)|granted" "$T/job1.log"; fail=1; fi
# a run whose rank count differs from the allocation says so at start-up
SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=2 timeout 120 "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml $SLIMCLR_ARGS \
  --set optim.max_steps=1 --set run.dir="$T/one" >"$T/one.log" 2>&1
if grep -q "warning: SLURM granted 2 task(s) (SLURM_NTASKS) but 1 rank(s) run" "$T/one.log" \
   && grep -q "granted 2 task(s) per node (SLURM_NTASKS_PER_NODE) but 1 rank(s) run on this node" "$T/one.log"; then
  echo "ok: 1 rank in a 2-task allocation: $(grep -m1 'SLURM granted' "$T/one.log" | cut -c1-120)"
else echo "FAIL: no mismatch warning"; grep -iE "warn|error" "$T/one.log"; fail=1; fi
rm -f "$T/requeued"
timeout 120 bash jobs/slurm-pretrain.sbatch yaml/fmnist-slimclr-mocov2.yaml >"$T/job2.log" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "resumed from .*step-$stop.ckpt at step $stop" "$T/job2.log" && [ ! -f "$T/requeued" ] \
   && grep -q "done: " "$T/job2.log"; then echo "ok: requeued job resumed at step $stop, finished, no requeue"
else echo "FAIL: job 2: rc $rc"; tail -5 "$T/job2.log"; fail=1; fi
exit $fail
