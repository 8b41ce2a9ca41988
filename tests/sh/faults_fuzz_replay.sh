#!/usr/bin/env bash
# Replays the fuzz corpora (seeds and every crash found, tests/fuzz/corpus/<name>/) through the harnesses built
# without libFuzzer: a crash, abort or hang on any input fails. `make fuzz` grows the corpora.
set -u
BUILD=${BUILD:-build}
bad=0
for name in config data ckpt safetensors; do
  bin=$BUILD/tests/fuzz/replay_$name
  [ -x "$bin" ] || { echo "FAIL: $bin not built"; bad=1; continue; }
  out=$(timeout 120 "$bin" "tests/fuzz/corpus/$name" 2>&1); rc=$?
  echo "$name: $(echo "$out" | tail -1) (exit $rc)"
  [ $rc -eq 0 ] || { echo "$out" | tail -20; bad=1; }
done
exit $bad
