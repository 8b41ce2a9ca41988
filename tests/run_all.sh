#!/usr/bin/env bash
# Runs every test: the cmocka unit-test binaries (build/tests/test_*), then the multi-rank and end-to-end
# scripts (tests/sh/*.sh, each one test, run with the repository root as working directory).
# Last line: "TOTAL: N passed, N failed".
set -u
BUILD=${BUILD:-build}
export MPIRUN=${MPIRUN:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# quiet Open MPI's "no high-performance interconnect" chatter on developer machines
export OMPI_MCA_btl_base_warn_component_unused=0
case $BUILD in /*) absb=$BUILD ;; *) absb=$PWD/$BUILD ;; esac
export SLIMCLR_BIN=${SLIMCLR_BIN:-$absb/slimclr}
passed=0; failed=0; failed_names=()
log_dir=${TEST_LOG_DIR:-$BUILD/test-logs}; mkdir -p "$log_dir"
start=$(date +%s)
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  out="$log_dir/$name.log"
  # unit tests run single-threaded in BLIS unless they set it themselves
  timeout 600 "$t" >"$out" 2>&1; rc=$?
  ok=$(grep -c '^\[       OK \]' "$out")
  passed=$((passed + ok))
  if [ $rc -ne 0 ]; then
    nf=$rc; [ $rc -gt 100 ] && nf=1   # a crash or timeout counts as one failure
    failed=$((failed + nf)); failed_names+=("$name (rc $rc, see $out)")
    echo "FAIL $name: rc $rc"; grep -E 'FAILED|ERROR|error' "$out" | head -20
  else
    echo "ok   $name: $ok tests"
  fi
done
for s in tests/sh/*.sh; do
  [ -f "$s" ] || continue
  name=$(basename "$s" .sh)
  out="$log_dir/sh-$name.log"
  t0=$(date +%s)
  timeout 900 bash "$s" >"$out" 2>&1; rc=$?
  dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then passed=$((passed + 1)); echo "ok   $name (${dt}s)"
  else failed=$((failed + 1)); failed_names+=("$name (rc $rc, see $out)"); echo "FAIL $name (${dt}s, rc $rc)"; tail -20 "$out"; fi
done
echo "test time: $(( $(date +%s) - start ))s"
for f in "${failed_names[@]+"${failed_names[@]}"}"; do echo "failed: $f"; done
echo "TOTAL: $passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
