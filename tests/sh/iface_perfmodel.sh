#!/usr/bin/env bash
# The scaling model's inputs and arithmetic: build/profiling/fwq (OS noise measured as a fixed work quantum's
# spread) writes a sane table on 1 and 2 ranks and refuses bad options with exit 2 and no file; jobs/perfmodel.py
# reads it (a table of zeros gives the same result as --os-noise-us 0, more noise a lower efficiency), refuses a
# malformed table naming file and line, and its Monte Carlo agrees with the sequential schedule's closed form. From
# two ranks' traces it splits the skew into a per-step speed term and a per-point residual (synthetic traces).
set -u
source tests/sh/common.inc
FWQ=$BUILD/profiling/fwq
PM=jobs/perfmodel.py

# ---- fwq on 1 and 2 ranks
for np in 1 2; do
  MPI_NP $np "$FWQ" --quanta-us 20,200 --seconds 0.05 --out "$T/fwq$np.csv" >"$T/o" 2>&1; rc=$?
  [ $rc -eq 0 ] || { bad "fwq on $np rank(s): rc $rc $(cat "$T/o")"; continue; }
  python3 - "$T/fwq$np.csv" "$np" <<'PY' && ok "fwq on $np rank(s): $(sed -n 2p "$T/fwq$np.csv")" || bad "fwq table on $np rank(s)"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [float(r["quantum_us"]) for r in rows] == [20.0, 200.0], rows
for r in rows:
    q = float(r["quantum_us"])
    v = {k: float(x) for k, x in r.items()}
    assert int(v["ranks"]) == int(sys.argv[2]), r
    assert v["samples"] >= 200 * v["ranks"], r
    # the calibrated loop's best time is the quantum, within what a loaded 2-core machine allows
    assert 0.5 * q <= v["min_us"] <= 2.0 * q, r
    assert v["min_us"] <= v["p50_us"] <= v["p99_us"] <= v["p999_us"] <= v["max_us"], r
    assert v["min_us"] <= v["mean_us"] <= v["max_us"] and v["std_us"] >= 0, r
    ex = [v[f"excess_p{p}_us"] for p in (2, 16, 64, 256, 1024, 4096)]
    assert all(b >= a - 1e-9 for a, b in zip(ex, ex[1:])), ex  # the slowest of more ranks is no earlier
    assert ex[-1] <= v["max_us"] - v["mean_us"] + 1e-6, r      # and never later than the slowest sample
PY
done

# ---- fwq: bad options exit 2 with the option named, and leave no table
for args in "--seconds 0" "--seconds x" "--quanta-us 10,abc" "--quanta-us 0" "--bogus 1" "--out"; do
  rm -f "$T/bad.csv" "$T/bad.csv.tmp"
  set -- $args
  case $args in --out) a=(--out) ;; *) a=("$@" --out "$T/bad.csv") ;; esac
  MPI_NP 1 "$FWQ" "${a[@]}" >"$T/o" 2>"$T/e"; rc=$?
  opt=${args%% *}
  [ $rc -eq 2 ] && grep -q -- "$opt" "$T/e" && [ ! -e "$T/bad.csv" ] && [ ! -e "$T/bad.csv.tmp" ] \
    && ok "fwq $args: exit 2: $(head -1 "$T/e")" || bad "fwq $args: rc $rc, $(cat "$T/e")"
done
MPI_NP 1 "$FWQ" --quanta-us 20 --seconds 0.01 --out "$T/nodir/x.csv" >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q "cannot write" "$T/e" && ok "fwq --out in a missing directory: exit 2" \
  || bad "fwq --out in a missing directory: rc $rc $(cat "$T/e")"

# ---- perfmodel on a synthetic scaling table (no trace: the spread is 0, the OS noise alone)
cat >"$T/s.csv" <<'EOF'
config,ranks,threads,transport,scaling,base,global_batch,per_rank_batch,status,img_s,step_s,compute_s,data_s,comm_s,exposed_s,overlap_pct,allreduce_bytes,buckets,syncbn_s,syncbn_calls,syncbn_bytes,gather_s,syncbn_inflight_s,syncbn_overlap_pct
1x2,1,2,none,base,16,256,256,ok,300,0.9,0.9,0,0,0,0,0,0,0,180,116640,0,0,0
2x1-tcp-weak,2,1,tcp,weak,16,512,256,ok,280,1.8,1.7,0,0.2,0.01,98,2950000,7,0.2,180,116640,0,1.7,90
EOF
zero() { # a table of quanta whose noise is 0
  echo "quantum_us,samples,ranks,min_us,mean_us,std_us,p50_us,p99_us,p999_us,max_us,excess_p2_us,excess_p16_us,excess_p64_us,excess_p256_us,excess_p1024_us,excess_p4096_us"
  for q in 10 100 1000 10000; do echo "$q,1000,2,$q,$q,0,$q,$q,$q,$q,0,0,0,0,0,0"; done
}
zero >"$T/zero.csv"
sed 's/,0,0,0,0,0,0$/,5,40,60,80,100,120/' "$T/zero.csv" >"$T/noisy.csv"
M=(--nodes 16,256 --speeds 1,100 --sim-steps 1)
eff() { grep "^efficiency at" "$1"; }
python3 $PM "$T/s.csv" "${M[@]}" --os-noise-us 0 >"$T/m0" 2>&1 && python3 $PM "$T/s.csv" "${M[@]}" --os-noise-csv "$T/zero.csv" >"$T/mz" 2>&1 \
  && [ -n "$(eff "$T/m0")" ] && [ "$(eff "$T/m0")" = "$(eff "$T/mz")" ] \
  && ok "perfmodel: a zero fwq table = --os-noise-us 0: $(eff "$T/mz" | cut -c1-110)" \
  || bad "perfmodel zero noise: $(cat "$T/m0" "$T/mz" | tail -5)"
python3 $PM "$T/s.csv" "${M[@]}" --os-noise-csv "$T/noisy.csv" >"$T/mn" 2>&1
python3 - "$T/mz" "$T/mn" <<'PY' && ok "perfmodel: measured noise lowers the efficiency at 256 x 100" || bad "perfmodel noisy: $(tail -4 "$T/mn")"
import re, sys
def e(path):  # efficiency_pct of (schedule, speed, nodes) rows
    out = {}
    for l in open(path):
        f = l.split()
        if len(f) == 11 and f[0] in ("sequential", "wavefront") and f[1].endswith("x"):
            out[(f[0], f[1], f[2])] = float(f[9])
    return out
z, n = e(sys.argv[1]), e(sys.argv[2])
for s in ("sequential", "wavefront"):
    assert n[(s, "100x", "256")] < z[(s, "100x", "256")] - 1.0, (s, z, n)
    assert n[(s, "100x", "256")] <= n[(s, "100x", "16")], (s, n)  # more ranks wait for a later slowest one
assert "MEASURED OS noise" in open(sys.argv[2]).read()
PY
# the simulation and the closed form model the same sequential schedule: they agree
python3 $PM "$T/s.csv" --nodes 256 --speeds 100 --sim-steps 4 --os-noise-us 20 >"$T/ms" 2>&1
python3 - "$T/ms" <<'PY' && ok "perfmodel: $(grep -o 'sequential SyncBN exposed.*' "$T/ms")" || bad "perfmodel simulation check: $(grep simulation "$T/ms")"
import re, sys
m = re.search(r"exposed ([0-9.]+) ms/step simulated vs ([0-9.]+) ms/step closed form", open(sys.argv[1]).read())
sim, cf = float(m.group(1)), float(m.group(2))
assert cf > 0.5 and abs(sim - cf) <= 0.05 * cf, (sim, cf)
PY

# ---- perfmodel --trace: the skew split into a per-step speed term and a per-point residual, on synthetic traces.
# "speed": rank 0's whole step is 3% slower and rank 1's 3% faster, or the reverse, step by step: sa = 6%/sqrt(2)
# and no residual. "resid": the ranks differ by +-e at alternate points (no step-wide trend): sa = 0.
python3 - "$T" <<'PY' || bad "synthetic traces"
import json, sys
d = sys.argv[1]
C, mu = 18, [0.002 + 0.001 * (i % 5) for i in range(18)]
def write(path, segs):
    ev, t = [], 0.0
    for seg in segs:  # one step: optimizer span, then the segments, each followed by a 10 us SyncBN call
        ev.append({"name": "optimizer", "ph": "X", "tid": 0, "ts": t, "dur": 100.0})
        t += 100.0
        for x in seg:
            t += x * 1e6
            ev.append({"name": "syncbn in flight", "ph": "X", "tid": 2, "ts": t, "dur": 10.0})
            t += 10.0
    ev.append({"name": "optimizer", "ph": "X", "tid": 0, "ts": t, "dur": 100.0})
    json.dump({"traceEvents": ev}, open(path, "w"))
for case in ("speed", "resid"):
    r0, r1 = [], []
    for s in range(7):
        if case == "speed":
            x = 0.03 if s % 2 else -0.03
            r0.append([m * (1 + x) for m in mu]); r1.append([m * (1 - x) for m in mu])
        else:
            e = [0.0002 * (1 if (i + s) % 2 else -1) for i in range(C)]
            r0.append([m + v for m, v in zip(mu, e)]); r1.append([m - v for m, v in zip(mu, e)])
    write(f"{d}/{case}0.json", r0)
    write(f"{d}/{case}1.json", r1)
PY
for case in speed resid; do
  python3 $PM "$T/s.csv" --trace "$T/${case}0.json,$T/${case}1.json" --passes a,b,c,d,e,f,g,h,i --nodes 1024 --speeds 1 \
    --sim-steps 1 >"$T/$case.out" 2>&1 || bad "perfmodel --trace $case: $(tail -2 "$T/$case.out")"
done
python3 - "$T" <<'PY' && ok "perfmodel: the skew's speed and residual terms measured apart: $(grep -o 'a per-step speed.*' "$T/speed.out" | cut -c1-90)" || bad "perfmodel skew split: $(grep -h MEASURED.skew "$T/speed.out" "$T/resid.out")"
import re, sys
d = sys.argv[1]
def get(case):
    t = open(f"{d}/{case}.out").read()
    m = re.search(r"speed spread sa = ([0-9.]+)% .* residual cv = ([0-9.]+)% per point", t)
    return float(m.group(1)), float(m.group(2)), t
sa, cv, t = get("speed")
assert abs(sa - 6 / 2 ** 0.5) < 0.05 and cv < 0.01, (sa, cv)
# a 4.2% speed spread: the slowest of 1024 ranks is ~3.2 sigma late, so no schedule beats ~88%
m = re.search(r"step is ([0-9.]+)% longer than the mean, so no schedule .* exceeds ([0-9.]+)%", t)
assert m and 12 < float(m.group(1)) < 15 and 86 < float(m.group(2)) < 90, m and m.groups()
sa, cv, t = get("resid")
assert sa < 0.5 and cv > 5, (sa, cv)  # the residual dominates
PY

# ---- perfmodel: a malformed table names the file and the line; the two noise options exclude each other
sed '3s/^100,/abc,/' "$T/zero.csv" >"$T/bad.csv"
python3 $PM "$T/s.csv" "${M[@]}" --os-noise-csv "$T/bad.csv" >"$T/o" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "bad.csv line 3" "$T/o" && ok "perfmodel: $(tail -1 "$T/o" | cut -c1-120)" || bad "perfmodel bad table: rc $rc $(tail -2 "$T/o")"
python3 $PM "$T/s.csv" --os-noise-csv "$T/zero.csv" --os-noise-us 5 >"$T/o" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "exclude each other" "$T/o" && ok "perfmodel: --os-noise-us with --os-noise-csv refused" || bad "perfmodel both noise options: rc $rc"
exit $fail
