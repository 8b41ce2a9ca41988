#!/usr/bin/env bash
# Runs every test: the cmocka unit-test binaries (build/tests/test_*) and the multi-rank and end-to-end scripts
# (tests/sh/*.sh, each one test, run with the repository root as working directory), TEST_JOBS at a time
# (default 2: many tests mostly wait on mpirun start-up, file polling or python; TEST_JOBS=1 runs them one by one).
# Each test prints "ok"/"FAIL" with its wall time when it ends; then the 15 slowest (wall and CPU seconds) and
# "TOTAL: N passed, N failed" last. Logs in $BUILD/test-logs/ (TEST_LOG_DIR); `times.txt` there orders the next
# run (longest first, so that the last tests to end are short ones).
set -u
BUILD=${BUILD:-build}
export MPIRUN=${MPIRUN:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# quiet Open MPI's "no high-performance interconnect" chatter on developer machines
export OMPI_MCA_btl_base_warn_component_unused=0
case $BUILD in /*) absb=$BUILD ;; *) absb=$PWD/$BUILD ;; esac
export SLIMCLR_BIN=${SLIMCLR_BIN:-$absb/slimclr}
JOBS=${TEST_JOBS:-2}
# two jobs' ranks share the cores: a rank that waits in MPI yields its core instead of spinning on it
[ "$JOBS" -gt 1 ] && export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
# one decompressed copy of Fashion-MNIST for every script (fm_data in tests/sh/common.inc), removed at the end
if [ -z "${SLIMCLR_TEST_DATA:-}" ]; then
  data_tmp=$(mktemp -d /tmp/slimclr-testdata.XXXXXX); trap 'rm -rf "$data_tmp"' EXIT
  export SLIMCLR_TEST_DATA=$data_tmp/fmnist
fi
passed=0; failed=0; failed_names=()
log_dir=${TEST_LOG_DIR:-$BUILD/test-logs}; mkdir -p "$log_dir"
start=$(date +%s.%N)

# the tests: "unit NAME PATH" or "sh NAME PATH"
tests=()
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] && [ -f "$t" ] && tests+=("unit $(basename "$t") $t")
done
for s in tests/sh/*.sh; do
  [ -f "$s" ] && tests+=("sh $(basename "$s" .sh) $s")
done
# order: the previous run's wall times, longest first; a test without one (a fresh clone: all) keeps its place
# after the scripts named slow here (scheduling only: every test runs either way)
SLOW_FIRST=" train_equiv_heads train_equiv_simclr train_equiv faults_inputs iface_info experiment_smoke eval_e2e "
prev=$log_dir/times.txt
order() {
  local i=0 e kind name
  for e in "${tests[@]}"; do
    read -r kind name _ <<<"$e"
    local w=-1
    [ -f "$prev" ] && w=$(awk -v n="$name" '$2 == n { print $1; exit }' "$prev")
    if [ "${w:--1}" = -1 ]; then
      case $SLOW_FIRST in *" $name "*) local pre=${SLOW_FIRST%%" $name "*}; w=$((1000 - ${#pre})) ;; *) w=-1 ;; esac
    fi
    printf '%s\t%06d\t%s\n' "$w" "$i" "$e"; i=$((i + 1))
  done | sort -t$'\t' -k1,1gr -k2,2n | cut -f3-
}
mapfile -t queue < <(order)
echo "running ${#queue[@]} test programs and scripts, $JOBS at a time (logs in $log_dir)"

# run_one KIND NAME PATH: the test's output in $log_dir, "rc wall cpu" in $log_dir/NAME.res
run_one() {
  local kind=$1 name=$2 path=$3 out res t0 rc
  if [ "$kind" = unit ]; then out=$log_dir/$name.log; else out=$log_dir/sh-$name.log; fi
  res=$log_dir/$name.res
  t0=$(date +%s.%N)
  if [ "$kind" = unit ]; then timeout 600 "$path" >"$out" 2>&1; else timeout 900 bash "$path" >"$out" 2>&1; fi
  rc=$?
  # CPU seconds of everything the test started (user + system of the waited-for children)
  # (`times` into a file: in a pipe or $(...) it would run in a fresh subshell that has no children)
  times >"$res.times"
  local cpu; cpu=$(tail -1 "$res.times" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } print s }')
  rm -f "$res.times"
  echo "$rc $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') $cpu" >"$res"
}

# report KIND NAME: fold a finished test's result into the counts
: >"$log_dir/times.new"
report() {
  local kind=$1 name=$2 rc wall cpu out
  read -r rc wall cpu <"$log_dir/$name.res"
  echo "$wall $name $cpu" >>"$log_dir/times.new"
  if [ "$kind" = unit ]; then
    out=$log_dir/$name.log
    local ok; ok=$(grep -c '^\[       OK \]' "$out")
    passed=$((passed + ok))
    if [ "$rc" -ne 0 ]; then
      local nf=$rc; [ "$rc" -gt 100 ] && nf=1   # a crash or timeout counts as one failure
      failed=$((failed + nf)); failed_names+=("$name (rc $rc, see $out)")
      echo "FAIL $name (${wall}s): rc $rc"; grep -E 'FAILED|ERROR|error' "$out" | head -20
    else
      echo "ok   $name: $ok tests (${wall}s)"
    fi
  else
    out=$log_dir/sh-$name.log
    if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); echo "ok   $name (${wall}s)"
    else failed=$((failed + 1)); failed_names+=("$name (rc $rc, see $out)"); echo "FAIL $name (${wall}s, rc $rc)"; tail -20 "$out"; fi
  fi
}

declare -A running=()   # pid -> "kind name"
for e in "${queue[@]}"; do
  read -r kind name path <<<"$e"
  while [ ${#running[@]} -ge "$JOBS" ]; do
    wait -n -p done_pid; report ${running[$done_pid]}; unset "running[$done_pid]"
  done
  rm -f "$log_dir/$name.res"
  run_one "$kind" "$name" "$path" &
  running[$!]="$kind $name"
done
while [ ${#running[@]} -gt 0 ]; do
  wait -n -p done_pid; report ${running[$done_pid]}; unset "running[$done_pid]"
done
mv "$log_dir/times.new" "$prev"

echo "slowest (wall s, cpu s):"
sort -k1,1gr "$prev" | head -15 | awk '{ printf "  %6.1f %6.1f  %s\n", $1, $3, $2 }'
echo "test time: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')s ($JOBS at a time)"
for f in "${failed_names[@]+"${failed_names[@]}"}"; do echo "failed: $f"; done
echo "TOTAL: $passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
