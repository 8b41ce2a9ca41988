#!/usr/bin/env bash
# Job files without a scheduler: every SLURM/PBS file parses (bash -n) and sources the one shared jobs/slimclr-job.sh;
# its layout follows the allocation (SLURM variables, or PBS's node file: 2 hosts x 2 mpiprocs -> 4 ranks, 2 per
# node); and jobs/pbs-pretrain.pbs run as PBS would (qsub stubbed: PBS has no Debian package), its STOP_AFTER timer
# firing mid-run, checkpoints, exits 0 and resubmits itself with the same variables.
source tests/sh/common.inc
for f in jobs/*.sbatch jobs/*.pbs jobs/slimclr-job.sh; do
  bash -n "$f" || bad "$f does not parse"
  case $f in *.sbatch|*.pbs) grep -q 'slimclr-job.sh' "$f" || bad "$f does not use jobs/slimclr-job.sh" ;; esac
done
[ $fail = 0 ] && ok "job files parse and share jobs/slimclr-job.sh"
printf 'nodeA\nnodeA\nnodeB\nnodeB\n' >"$T/nodes"
out=$(env -u SLURM_JOB_ID PBS_NODEFILE="$T/nodes" OMP_NUM_THREADS=8 bash -c '. jobs/slimclr-job.sh; slimclr_layout; echo "${MPIRUN_CMD[*]}"')
echo "$out" | grep -q "mpirun -np 4 --hostfile $T/nodes --map-by ppr:2:node:PE=8" && ok "PBS layout: $(echo "$out" | tail -1)" \
  || bad "PBS layout: $out"
out=$(SLURM_JOB_ID=7 SLURM_NTASKS=8 SLURM_NTASKS_PER_NODE='2(x4)' SLURM_CPUS_PER_TASK=16 bash -c '. jobs/slimclr-job.sh; slimclr_layout; echo "${MPIRUN_CMD[*]}"')
echo "$out" | grep -q "mpirun -np 8 --map-by ppr:2:node:PE=16" && ok "SLURM layout: $(echo "$out" | tail -1)" || bad "SLURM layout: $out"

# pbs-pretrain.pbs end to end on this machine (1 node file line = 1 rank)
mkdir -p "$T/bin"; printf '#!/bin/sh\necho "qsub $*" >>"%s/qsub.log"\n' "$T" >"$T/bin/qsub"; chmod +x "$T/bin/qsub"
hostname >"$T/pbsnodes"
PATH="$T/bin:$PATH" PBS_O_WORKDIR=$PWD PBS_NODEFILE="$T/pbsnodes" PBS_JOBID=1.pbs OMP_NUM_THREADS=1 STOP_AFTER=6 \
  SLIMCLR="$SLIMCLR_BIN" RUN_DIR="$T/run" CONFIG=yaml/fmnist-slimclr-mocov2.yaml \
  SLIMCLR_ARGS="--set model.base=8 --set optim.batch=48 --set method.queue=960 --set optim.max_steps=400 --set run.log_every=1 --set data.workers=0 --set checkpoint.every_minutes=0" \
  timeout 200 bash jobs/pbs-pretrain.pbs >"$T/pbs.log" 2>&1; rc=$?
stop=$(cat "$T/run/STOPPED_BY_SIGNAL" 2>/dev/null)
if [ $rc -eq 0 ] && [ -n "$stop" ] && grep -q "qsub -v CONFIG=yaml/fmnist-slimclr-mocov2.yaml,.*RUN_DIR=$T/run,.* $PWD/jobs/pbs-pretrain.pbs" "$T/qsub.log" 2>/dev/null; then
  ok "pbs-pretrain.pbs: stopped by its timer at step $stop, exit 0, resubmitted"
else bad "pbs-pretrain.pbs: rc $rc, stop '$stop', qsub: $(cat "$T/qsub.log" 2>/dev/null)"; tail -8 "$T/pbs.log"; fi
exit $fail
