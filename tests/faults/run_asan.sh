#!/usr/bin/env bash
# `make asan`: runs every cmocka binary of $BUILD (built with -fsanitize=address,undefined) with LSan suppressions
# for Open MPI. A sanitizer report or a failed test fails.
set -u
BUILD=${BUILD:-build-asan}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_base_warn_component_unused=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_odr_violation=0}
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p "$BUILD/asan-logs"
bad=0
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t"); log=$BUILD/asan-logs/$n.log
  timeout 1200 "$t" >"$log" 2>&1; rc=$?
  if [ $rc -ne 0 ] || grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    echo "FAIL $n (rc $rc, $log)"; grep -E -A12 'Sanitizer|runtime error' "$log" | head -40; bad=1
  else echo "ok   $n: $(grep -c '^\[       OK \]' "$log") tests clean"; fi
done
exit $bad
