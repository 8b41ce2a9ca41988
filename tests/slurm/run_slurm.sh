#!/usr/bin/env bash
# `make test-slurm`: the job files under a real SLURM (Debian's slurm-wlm: slurmctld + slurmd on this machine, one
# node, generated configuration in a temporary directory, munged started when not running; everything it started
# is stopped at the end). The jobs are submitted as a user would, from a clean directory, with the installed
# (make install) job files and binary found through the modulefile (Lmod: module use; module load slimclr):
#  1. jobs/slurm-pretrain.sbatch (mpirun) with --time=00:04:00 --signal=B:USR1@120 and 2 tasks: 2 ranks start (the
#     allocation's), the run checkpoints on the signal, the job requeues itself, resumes at the step it stopped at,
#     and finishes (COMPLETED, exit 0, "done:");
#  2. jobs/slurm-pretrain-srun.sbatch (srun --mpi=pmix) the same way, with --signal=USR1@120 to the ranks;
#  3. a job granted 2 tasks that runs 1 rank: slimclr's start-up warning says so.
# The runs are sized from a calibration run (about 150 s of steps) so that the signal always comes before the end:
# SLURM sends it up to 60 s (its periodic check) before the requested 120 s, i.e. 60-120 s into a 4-minute job
# (seen: 60 s and 92 s). Two or three job starts follow; every resume must continue where the run stopped.
# Needs root (it starts the daemons); about 5-8 minutes.
source tests/sh/common.inc   # BUILD, absb, the temp dir $T (removed by cleanup below), ok/bad, the data helpers
REPO=$PWD
t_start=$(date +%s)
MUNGE_STARTED=0; CTLD_PID=; SLURMD_PID=
cleanup() {
  [ -n "$SLURMD_PID" ] && kill "$SLURMD_PID" 2>/dev/null
  [ -n "$CTLD_PID" ] && kill "$CTLD_PID" 2>/dev/null
  wait 2>/dev/null
  [ $MUNGE_STARTED = 1 ] && [ -f /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "FAIL: make test-slurm starts munged, slurmctld and slurmd: run it as root"; exit 1; }
for b in slurmctld slurmd sbatch munged; do command -v $b >/dev/null || { echo "FAIL: $b not installed (make test-slurm installs slurm-wlm and munge)"; exit 1; }; done
[ -f /usr/share/lmod/lmod/init/bash ] || { echo "FAIL: Lmod not installed (make test-slurm installs lmod)"; exit 1; }

# ---- munge, slurmctld, slurmd ----
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge; chown munge:munge /run/munge 2>/dev/null
  runuser -u munge -- /usr/sbin/munged || { echo "FAIL: cannot start munged"; exit 1; }
  MUNGE_STARTED=1
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
HOST=$(hostname -s)
mkdir -p "$T/state" "$T/spool" "$T/work"
export SLURM_CONF=$T/slurm.conf
cat >"$SLURM_CONF" <<CONF
ClusterName=slimclrtest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
InactiveLimit=0
KillWait=30
MinJobAge=3600
# a requeued job waits cred_expire + 1 s before it may start again (default 120 s)
AuthInfo=cred_expire=10
# the scheduler's periodic pass (default 60 s) starts a requeued job once its begin time has passed
SchedulerParameters=sched_interval=5
$(slurmd -C | head -1) State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -c -f "$SLURM_CONF" >"$T/slurmctld.out" 2>&1 & CTLD_PID=$!
slurmd -D -f "$SLURM_CONF" >"$T/slurmd.out" 2>&1 & SLURMD_PID=$!
for _ in $(seq 1 120); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.5; done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] || { echo "FAIL: the node did not come up"; tail -5 "$T"/slurm*.log; exit 1; }
ok "slurmctld + slurmd up ($(sinfo -h -o '%N %c CPUs %T'), SLURM $(sinfo -V | cut -d' ' -f2))"

# ---- the install and its modulefile ----
make -s -C "$REPO" SKIP_DEPS=1 BUILD="$absb" PREFIX="$T/prefix" install >"$T/install.log" 2>&1 || { cat "$T/install.log"; exit 1; }
. /usr/share/lmod/lmod/init/bash
module use "$T/prefix/share/modulefiles" && module load slimclr
[ "$(command -v slimclr)" = "$T/prefix/bin/slimclr" ] && slimclr --version | grep -q '^slimclr ' \
  && ok "module load slimclr: $(command -v slimclr), $(slimclr --version | head -1)" || { bad "module load slimclr"; exit 1; }

# ---- data and the run size ----
mk_small_idx "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" "$T/data" 2048
CFG=$SLIMCLR_SHARE/yaml/fmnist-slimclr-mocov2.yaml
BASE="--set model.base=8 --set optim.batch=32 --set method.queue=640 --set data.dir=$T/data --set data.subset=0 --set data.workers=1 --set run.log_every=1 --set checkpoint.every_minutes=0 --set checkpoint.every_steps=0"
cd "$T/work" || exit 1
mpirun --bind-to none -np 2 slimclr train "$CFG" $BASE --set optim.max_steps=30 --set run.threads=1 \
  --set run.dir="$T/calib" >"$T/calib.log" 2>&1 || { tail "$T/calib.log"; bad "calibration run"; exit 1; }
step_s=$(sed -nE 's/^summary over .*: ([0-9.]+) s\/step.*/\1/p' "$T/calib.log")
STEPS=$(awk -v s="$step_s" 'BEGIN { n = int(150 / s); print n < 60 ? 60 : n }')
ok "calibration: $step_s s/step on 2 ranks -> optim.max_steps=$STEPS (about 150 s of steps)"

# wait_job ID TIMEOUT_S: until the job is COMPLETED/FAILED/... (not PENDING/RUNNING/REQUEUED...)
job_state() { scontrol show job "$1" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p'; }
wait_job() {
  local t0=$(date +%s) s
  while :; do
    s=$(job_state "$1")
    case $s in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) echo "$s"; return ;; esac
    [ $(( $(date +%s) - t0 )) -gt "$2" ] && { echo "TIMEOUT_WAITING($s)"; return; }
    sleep 2
  done
}
# check_requeued NAME OUT RUN_DIR STATE: every stop at step S is followed by a resume at S; finished with done:
check_requeued() {
  local name=$1 out=$2 rd=$3 state=$4 stops resumes s n
  stops=$(sed -nE 's/.*checkpointed on signal at step ([0-9]+).*/\1/p' "$out" | tr '\n' ' ')
  resumes=$(sed -nE 's/^resumed from .*step-([0-9]+)\.ckpt at step ([0-9]+)$/\2/p' "$out" | tr '\n' ' ')
  n=$(echo $stops | wc -w)
  if [ "$state" = COMPLETED ] && [ "$n" -ge 1 ] && [ "$(echo $stops)" = "$(echo $resumes)" ] && grep -q "^done: " "$out" \
     && [ ! -e "$rd/STOPPED_BY_SIGNAL" ] && python3 "$REPO/tools/metrics_col.py" "$rd/metrics.jsonl" loss | awk -v n="$STEPS" '$1 == n { f = 1 } END { exit !f }'; then
    ok "$name: stopped by the signal at step(s) $stops-> requeued -> resumed at $resumes-> finished $STEPS steps ($state)"
  else
    bad "$name: state $state, stops '$stops', resumes '$resumes'"; grep -E 'slimclr job|resumed|signal|error|done|rank\(s\)' "$out" | head -20
  fi
  # the steps logged once each, as an uninterrupted run would
  local lines; lines=$(python3 "$REPO/tools/metrics_col.py" "$rd/metrics.jsonl" loss --all | wc -l)
  [ "$lines" -eq "$STEPS" ] || bad "$name: metrics.jsonl holds $lines step lines, expected $STEPS"
}

# ---- 1. mpirun job file ----
export SLIMCLR=slimclr SLIMCLR_ARGS="$BASE --set optim.max_steps=$STEPS" RUN_DIR=$T/run-mpirun
t1=$(date +%s)
id=$(sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=00:04:00 --signal=B:USR1@120 \
  --output="$T/work/mpirun-%j.out" "$SLIMCLR_SHARE/jobs/slurm-pretrain.sbatch" "$CFG") || { bad "sbatch"; exit 1; }
st=$(wait_job "$id" 900)
out=$T/work/mpirun-$id.out
grep -q "run $RUN_DIR: mocov2, 2 rank(s)" "$out" && ok "slurm-pretrain.sbatch: 2 ranks for 2 granted tasks" || bad "slurm-pretrain.sbatch: not 2 ranks"
grep -q "SLURM granted" "$out" && bad "slurm-pretrain.sbatch: a mismatch warning: $(grep -m1 'SLURM granted' "$out")"
check_requeued "slurm-pretrain.sbatch (job $id, $(( $(date +%s) - t1 )) s)" "$out" "$RUN_DIR" "$st"

# ---- 2. srun job file ----
export RUN_DIR=$T/run-srun
t1=$(date +%s)
id=$(sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=00:04:00 --signal=USR1@120 \
  --output="$T/work/srun-%j.out" "$SLIMCLR_SHARE/jobs/slurm-pretrain-srun.sbatch" "$CFG") || { bad "sbatch"; exit 1; }
st=$(wait_job "$id" 900)
out=$T/work/srun-$id.out
grep -q "run $RUN_DIR: mocov2, 2 rank(s)" "$out" && ok "slurm-pretrain-srun.sbatch: srun --mpi=pmix started 2 ranks" \
  || { bad "slurm-pretrain-srun.sbatch: not 2 ranks"; head -20 "$out"; }
check_requeued "slurm-pretrain-srun.sbatch (job $id, $(( $(date +%s) - t1 )) s)" "$out" "$RUN_DIR" "$st"

# ---- 3. granted and run disagree ----
id=$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=00:03:00 --output="$T/work/mismatch-%j.out" \
  --wrap "mpirun -np 1 --bind-to none slimclr train $CFG $BASE --set optim.max_steps=2 --set run.dir=$T/run-mismatch") || bad "sbatch"
st=$(wait_job "$id" 300)
out=$T/work/mismatch-$id.out
grep -q "warning: SLURM granted 2 task(s) (SLURM_NTASKS) but 1 rank(s) run" "$out" \
  && ok "2 tasks granted, 1 rank run: $(grep -m1 'SLURM granted' "$out" | cut -c1-110)..." || { bad "no mismatch warning ($st)"; head -20 "$out"; }
echo "test-slurm: $(( $(date +%s) - t_start )) s"
[ $fail = 0 ] && echo "test-slurm: all passed" || { echo "test-slurm: FAILED (logs: KEEP=1 keeps $T)"; }
exit $fail
