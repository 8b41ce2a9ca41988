#!/usr/bin/env bash
# Source rules that no compiler warning catches (STYLE.md "OpenMP"):
# - an `if` clause on a combined `... simd` directive must name `parallel:`. Unqualified, OpenMP applies it to
#   the simd construct too, and a loop that runs on one thread (every element-wise loop of a one-thread rank)
#   loses its vectorisation: relu_backward became a branchy scalar loop, 9.6% of a one-thread step.
set -u
cd "$(dirname "$0")/../.."
bad=$(grep -rnE '#pragma omp.*\bsimd\b' src include profiling tests --include='*.c' --include='*.h' |
      grep -E '\bif *\(' | grep -vE '\bif *\( *parallel *:' || true)
if [ -n "$bad" ]; then
  echo "lint: an 'if' clause on an OpenMP simd directive must be 'if (parallel : ...)':"
  echo "$bad"
  exit 1
fi
n=$(grep -rnE '#pragma omp.*\bsimd\b' src | wc -l)
[ "$n" -ge 1 ] || { echo "lint: found no simd directive at all in src/ (the pattern is broken?)"; exit 1; }
echo "lint: $n simd directive(s) in src/, every if clause qualified"
