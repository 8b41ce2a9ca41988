#!/usr/bin/env bash
# comm/ collectives, SyncBN reducer, stop-signal agreement, timer report and trace JSON, with 1..4 ranks.
source tests/sh/common.inc
bin=$BUILD/tests/mpi/mpi_collectives
tmp=$T
for P in 1 2 3 4; do
  rm -f "$tmp"/trace-rank*.json
  if ! timeout 120 $MPIRUN --oversubscribe -np $P "$bin" "$tmp"; then echo "FAIL: mpi_collectives -np $P"; fail=1; continue; fi
  # every rank wrote a trace that parses as JSON, with its rank as pid and main + comm thread events
  python3 - "$tmp" $P <<'PY' || { echo "FAIL: trace files with $P ranks"; fail=1; }
import json, sys
d, P = sys.argv[1], int(sys.argv[2])
for r in range(P):
    t = json.load(open(f"{d}/trace-rank{r}.json"))
    ev = [e for e in t["traceEvents"] if e["ph"] == "X"]
    assert ev and all(e["pid"] == r and e["dur"] >= 0 for e in ev), f"rank {r}: bad events"
    assert {e["tid"] for e in ev} == {0, 1}, f"rank {r}: threads {set(e['tid'] for e in ev)}"
    assert any(e["name"] == "collectives" for e in ev), f"rank {r}: span missing"
print(f"trace files of {P} ranks parse")
PY
done
# singleton: no mpirun at all
timeout 60 "$bin" || { echo "FAIL: singleton run"; fail=1; }
exit $fail
