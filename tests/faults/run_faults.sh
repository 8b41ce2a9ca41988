#!/usr/bin/env bash
# `make test-faults`: every reliability scenario; regenerates the bad-input table in tests/README.md.
set -u
export BUILD=${BUILD:-build} MPIRUN=${MPIRUN:-mpirun}
case $BUILD in /*) absb=$BUILD ;; *) absb=$PWD/$BUILD ;; esac
export SLIMCLR_BIN=${SLIMCLR_BIN:-$absb/slimclr} CKPT_VERIFY=${CKPT_VERIFY:-$absb/tests/faults/ckpt_verify}
pass=0; failn=0
run() {
  local name=$1; shift
  local t0=$(date +%s)
  if "$@" >"/tmp/slimclr-faults-$name.log" 2>&1; then pass=$((pass + 1)); echo "ok   $name ($(( $(date +%s) - t0 ))s)"
  else failn=$((failn + 1)); echo "FAIL $name ($(( $(date +%s) - t0 ))s): /tmp/slimclr-faults-$name.log"; tail -15 "/tmp/slimclr-faults-$name.log"; fi
}
run bad_inputs bash tests/faults/bad_inputs.sh --table
run kill_resume bash tests/faults/kill_resume.sh
run disk_full bash tests/sh/faults_disk.sh
run signals env WHO="one both" bash tests/sh/faults_signals.sh
run fuzz_replay bash tests/sh/faults_fuzz_replay.sh
# a rank killed mid-step under -np 3 and the NaN stop live in tests/sh/train_faults.sh
[ -f tests/sh/train_faults.sh ] && run dead_rank bash tests/sh/train_faults.sh
echo "test-faults: $pass passed, $failn failed"
[ $failn -eq 0 ]
