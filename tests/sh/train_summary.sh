#!/usr/bin/env bash
# slimclr train's end-of-run B2 summary (the "summary":1 line of metrics.jsonl, averaged over the steps after the
# first): on 2 ranks the gradient bytes all-reduced per step equal 4 x the parameters `slimclr info` counts, on 1 rank
# 0; the steps averaged are max_steps - 1; the SyncBN allreduce count is the same on 1 and 2 ranks (the model is the
# same) and 0 with shuffle BN (no SyncBN reducer); overlap = 1 - exposed/comm in [0, 1]; img_s = batch / step_s;
# per-step readers (metrics "step" lines) are unaffected. SyncBN exposed vs in flight: equal with the sequential
# schedule (blocking: overlap 0), exposed <= in flight with the wavefront (same calls and bytes). The balance keys:
# compute min <= max, the imbalance 0 on 1 rank and half the min-max spread on 2.
. "$(dirname "$0")/common.inc"
STEPS=4
run_p() { # P dir [--set ...]
  local P=$1 d=$2; shift 2
  # shellcheck disable=SC2046
  $MPIRUN --oversubscribe -np "$P" --mca btl self,tcp "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml \
    $(train_sets mocov2) --set optim.max_steps=$STEPS --set run.dir="$d" "$@" >"$d.log" 2>&1
}
check_rc() { [ "$1" = 0 ] || { echo "FAIL: $2: rc $1"; tail -5 "$3.log"; fail=1; }; }

run_p 1 "$TMPD/p1"; check_rc $? "1 rank" "$TMPD/p1"
run_p 2 "$TMPD/p2" --set run.trace=true; check_rc $? "2 ranks" "$TMPD/p2"
run_p 2 "$TMPD/shuf" --set method.bn=shuffle; check_rc $? "2 ranks, shuffle BN" "$TMPD/shuf"
run_p 2 "$TMPD/p2w" --set method.schedule=wavefront --set run.trace=true; check_rc $? "2 ranks, wavefront" "$TMPD/p2w"
nparams=$("$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml $(train_sets mocov2) 2>/dev/null |
  sed -nE 's/.*query encoder.*\(([0-9]+) parameters.*/\1/p' | head -1)
[ -n "$nparams" ] || { echo "FAIL: no parameter count from slimclr info"; fail=1; nparams=0; }

python3 - "$TMPD" "$STEPS" "$nparams" <<'PY' || fail=1
import json, sys
d, steps, nparams = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bad = 0
def check(ok, what):
    global bad
    print(("ok   " if ok else "FAIL ") + what)
    bad += not ok
def summary(run):
    lines = [json.loads(l) for l in open(f"{d}/{run}/metrics.jsonl")]
    s = [l for l in lines if l.get("summary") == 1]
    check(len(s) == 1, f"{run}: one summary line (got {len(s)})")
    check(sorted(l["step"] for l in lines if "step" in l) == list(range(1, steps + 1)), f"{run}: step lines 1..{steps}")
    return s[0] if s else {}
p1, p2, sh, pw = summary("p1"), summary("p2"), summary("shuf"), summary("p2w")
for n, s, P in (("p1", p1, 1), ("p2", p2, 2), ("shuf", sh, 2)):
    if not s: continue
    check(s["steps"] == steps - 1 and s["ranks"] == P, f"{n}: {s['steps']} steps averaged on {s['ranks']} rank(s)")
    check(abs(s["img_s"] - s["batch"] / s["step_s"]) <= 1e-6 * s["img_s"], f"{n}: img_s = batch / step_s")
    check(0 <= s["overlap"] <= 1 and 0 <= s["exposed_s"] <= s["step_s"] and s["compute_s"] > 0,
          f"{n}: overlap {s['overlap']:.3f} in [0,1], exposed {s['exposed_s']:.4f} <= step {s['step_s']:.4f}")
    if s["comm_s"] > 0:
        want = min(1.0, max(0.0, 1 - s["exposed_s"] / s["comm_s"]))
        check(abs(s["overlap"] - want) < 1e-6, f"{n}: overlap = 1 - exposed/comm ({want:.4f})")
if p1 and p2 and sh:
    check(p1["allreduce_bytes"] == 0 and p1["comm_s"] == 0, "1 rank: nothing all-reduced")
    check(p2["allreduce_bytes"] == 4 * nparams, f"2 ranks: {p2['allreduce_bytes']:.0f} bytes = 4 x {nparams} parameters")
    check(p2["comm_s"] > 0, f"2 ranks: comm time {p2['comm_s']:.4f} s > 0")
    check(p1["syncbn_calls"] > 0 and p1["syncbn_calls"] == p2["syncbn_calls"],
          f"SyncBN allreduces per step: {p1['syncbn_calls']:.0f} on 1 rank, {p2['syncbn_calls']:.0f} on 2")
    check(p1["syncbn_bytes"] == p2["syncbn_bytes"] > 0, "SyncBN bytes per step equal on 1 and 2 ranks")
    check(sh["syncbn_calls"] == 0 and sh["syncbn_s"] == 0, "shuffle BN: no SyncBN allreduce")
    check(p2["syncbn_inflight_s"] == p2["syncbn_s"] > 0 and p2["syncbn_overlap"] == 0,
          f"sequential: SyncBN blocking, in flight = exposed = {p2['syncbn_s']:.4f} s, overlap 0")
if p2 and pw:
    check(pw["syncbn_calls"] == p2["syncbn_calls"] and pw["syncbn_bytes"] == p2["syncbn_bytes"],
          "wavefront: the same SyncBN allreduces and bytes as sequential")
    check(0 <= pw["syncbn_s"] <= pw["syncbn_inflight_s"] + 1e-6 and pw["syncbn_inflight_s"] > 0,
          f"wavefront: SyncBN exposed {pw['syncbn_s']:.4f} s <= in flight {pw['syncbn_inflight_s']:.4f} s")
    want = 1 - pw["syncbn_s"] / pw["syncbn_inflight_s"] if pw["syncbn_inflight_s"] > 0 else 0
    check(abs(pw["syncbn_overlap"] - min(1, max(0, want))) < 1e-6, f"wavefront: SyncBN overlap {want:.3f} = 1 - exposed/in flight")
# balance: per-step compute min/avg/max over ranks; on 1 rank no imbalance; on 2 ranks the slowest rank's excess over
# the mean is half the max - min spread, step by step, so also on average
for n, s, P in (("p1", p1, 1), ("p2", p2, 2), ("p2w", pw, 2)):
    if not s: continue
    keys = ("compute_min_s", "compute_max_s", "imbalance_s", "waited_s", "offcpu_s", "offcpu_max_s")
    if not all(k in s for k in keys):
        check(False, f"{n}: balance keys {keys} in the summary")
        continue
    # (another rank's step can start a little before rank 0's, whose step_s this is)
    check(0 < s["compute_min_s"] <= s["compute_max_s"] <= 1.2 * s["step_s"] + 0.005,
          f"{n}: compute min {s['compute_min_s']:.4f} <= max {s['compute_max_s']:.4f} <~ step {s['step_s']:.4f}")
    half = (s["compute_max_s"] - s["compute_min_s"]) / 2
    want = 0.0 if P == 1 else half
    check(abs(s["imbalance_s"] - want) <= 1e-9 + 1e-9 * s["step_s"], f"{n}: imbalance {s['imbalance_s']:.6f} = {want:.6f}")
    check(s["waited_s"] >= 0 and 0 <= s["offcpu_s"] <= s["offcpu_max_s"] <= 1.2 * s["step_s"] + 0.005,
          f"{n}: waits {s['waited_s']:.4f} >= 0, off-CPU {s['offcpu_s']:.4f} <= max {s['offcpu_max_s']:.4f} <= step")
sys.exit(1 if bad else 0)
PY
grep -q "^  syncbn: .* allreduce(s)" "$TMPD/p2.log" && grep -q "^summary over 3 step(s)" "$TMPD/p2.log" \
  && grep -q "^  syncbn: .*overlap.*(wavefront)" "$TMPD/p2w.log" \
  && grep -q "^  balance: compute per step min/avg/max over ranks .* of it imbalance" "$TMPD/p2.log" \
  && echo "ok   printed summary" || { echo "FAIL: printed summary missing in the log"; fail=1; }
# jobs/trace_overlap.py on the same runs: SyncBN overlap 0 when blocking, exposed <= in flight with the wavefront
for r in p2 p2w; do
  python3 jobs/trace_overlap.py "$TMPD/$r"/trace-rank*.json >"$TMPD/$r.ovl" 2>&1 || { echo "FAIL: trace_overlap $r"; fail=1; }
done
python3 - "$TMPD" <<'PY' || fail=1
import re, sys
d = sys.argv[1]
def rows(r):
    out = []
    for l in open(f"{d}/{r}.ovl"):
        m = re.search(r"SyncBN over \d+ step\(s\): exposed ([0-9.]+) ms/step .* in flight ([0-9.]+) ms/step, overlap ([0-9.]+)%", l)
        if m:
            out.append(tuple(float(x) for x in m.groups()))
    return out
s, w = rows("p2"), rows("p2w")
ok = len(s) == 2 and len(w) == 2 and all(o == 0.0 and abs(e - f) <= 0.05 for e, f, o in s) \
     and all(e <= f + 0.05 and f > 0 for e, f, o in w)
print(("ok   " if ok else "FAIL ") + f"trace_overlap SyncBN: sequential {s}, wavefront {w} (exposed, in flight ms, overlap %)")
sys.exit(0 if ok else 1)
PY
[ $fail = 0 ] && echo "PASS train_summary" || echo "FAIL train_summary"
exit $fail
