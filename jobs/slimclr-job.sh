# Shared by the SLURM and PBS job files (sourced, not run): the rank layout taken from the allocation, the launch
# that turns the wall-time signal into one checkpoint, and the requeue (SLURM) or resubmission (PBS) of a run that
# stopped on it. Installed beside the job files (share/slimclr/jobs); a job file finds it through SLIMCLR_JOBS, the
# installed binary's share/ folder, the submit directory's jobs/ or its own folder.

# slimclr_layout: NP (ranks), PPN (ranks per node), CPT (cores = BLIS threads per rank), MAP (mpirun --map-by) and
# MPIRUN_CMD (the mpirun command line) from the allocation: SLURM_NTASKS / SLURM_NTASKS_PER_NODE / SLURM_CPUS_PER_TASK, or
# PBS's node file (one line per mpiproc) and OMP_NUM_THREADS (ompthreads). The ranks follow what was granted.
slimclr_layout() {
  HOSTS=()
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    NP=${SLURM_NTASKS:-${SLURM_NPROCS:-1}}
    PPN=${SLURM_NTASKS_PER_NODE:-}
    PPN=${PPN%%(*}; PPN=${PPN%%,*}               # "2(x4)" or "2,1": the first node's count
    CPT=${SLURM_CPUS_PER_TASK:-1}
  elif [ -n "${PBS_NODEFILE:-}" ]; then
    NP=$(wc -l <"$PBS_NODEFILE")
    PPN=$(( NP / $(sort -u "$PBS_NODEFILE" | wc -l) ))
    CPT=${OMP_NUM_THREADS:-${NCPUS:-1}}
    HOSTS=(--hostfile "$PBS_NODEFILE")
  else
    NP=${NP:-1}; PPN=${PPN:-}; CPT=${CPT:-1}
  fi
  if [ -n "$PPN" ]; then MAP=ppr:$PPN:node:PE=$CPT; else MAP=slot:PE=$CPT; fi
  export BLIS_NUM_THREADS=$CPT OMP_NUM_THREADS=$CPT
  # the launcher as a command (an array, not a function: the signal must reach mpirun itself, not a subshell)
  MPIRUN_CMD=(mpirun -np "$NP" "${HOSTS[@]}" --map-by "$MAP" --bind-to core --report-bindings)
  echo "slimclr job: $NP rank(s), $CPT core(s) each, mpirun --map-by $MAP"
}


# slimclr_run_resumable CMD...: runs CMD in the background; USR1 or TERM to this script becomes USR1 to CMD
# (mpirun forwards it to every rank; the ranks agree on the next step boundary, write one checkpoint, exit 0).
# SIGTERM to mpirun itself would be followed by SIGKILL, hence USR1. RC = CMD's exit code.
slimclr_run_resumable() {
  "$@" &
  SLIMCLR_PID=$!
  SLIMCLR_TRAPPED=0
  trap 'SLIMCLR_TRAPPED=1; echo "slimclr job: signal received, asking the ranks to checkpoint"; kill -USR1 $SLIMCLR_PID' USR1 TERM
  wait $SLIMCLR_PID; RC=$?
  # a trap ends `wait` early: wait again until CMD itself has ended (bash keeps its exit status)
  while [ $SLIMCLR_TRAPPED = 1 ]; do SLIMCLR_TRAPPED=0; wait $SLIMCLR_PID; RC=$?; done
  trap - USR1 TERM
}

# slimclr_requeue: when the run stopped on the signal (RUN_DIR/STOPPED_BY_SIGNAL), put the job back in the queue:
# SLURM requeues this job (--requeue), PBS submits SCRIPT again with the same variables. --resume continues.
slimclr_requeue() {
  [ -f "$RUN_DIR/STOPPED_BY_SIGNAL" ] || return 0
  echo "slimclr job: checkpointed on signal at step $(cat "$RUN_DIR/STOPPED_BY_SIGNAL"); requeueing"
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    scontrol requeue "$SLURM_JOB_ID"
  elif [ -n "${PBS_JOBID:-}" ]; then
    qsub -v CONFIG="$CONFIG",SLIMCLR="$SLIMCLR",RUN_DIR="$RUN_DIR",STOP_AFTER="${STOP_AFTER:-}",SCRIPT="$SCRIPT" "$SCRIPT"
  fi
}
