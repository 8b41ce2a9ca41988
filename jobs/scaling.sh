#!/usr/bin/env bash
# B2 of docs/benchmarks.md: communication overlap and scaling of the SlimCLR step on this machine, plus the performance model.
#
# usage: jobs/scaling.sh [--small] [--steps N] [--base C] [--batch N] [--bucket-mb X] [--timeout S] [--out DIR]
#                        [--configs A,B,...] [--schedule sequential|wavefront] [--no-tcp] [--no-plot] [--keep]
#                        [--fwq-seconds S]
#   B1 config yaml/bench-step.yaml (ResNet-18, base 64, 64 images per rank, MoCo v2, all four widths, SyncBN).
#   --small      B1-small: base 16, 256 images per rank, buckets of 0.25 MB (the ~11 buckets B1 gets from 4 MB)
#   --steps N    optimizer steps per configuration (default 6); the first is warm-up, the rest are averaged
#   --configs    a subset of the labels below (default all; the model needs 1x2 and a 2-rank row)
#   --schedule   method.schedule of the runs (default: the config's, sequential); output names get -<schedule>
#   --fwq-seconds  seconds per quantum of the OS-noise measurement (build/profiling/fwq, one rank per core) that
#                the model uses (default 1; 0: no measurement, the model's --os-noise-us assumption instead)
# Configurations (transport = Open MPI BTL; 1 rank has no gradient traffic):
#   1x2             1 rank x 2 threads (--bind-to none)            global batch B (the baseline)
#   2x1-shm-strong  2 ranks x 1 thread, shared memory (vader)       global batch B
#   2x1-shm-weak    2 ranks x 1 thread, shared memory               global batch 2B
#   2x1-tcp-strong  2 ranks x 1 thread, --mca btl self,tcp          global batch B
#   2x1-tcp-weak    2 ranks x 1 thread, loopback TCP, run.trace on  global batch 2B (trace overlap check)
# Writes OUT/scaling-<date>[-small].csv (measured), ...-fwq.csv (OS noise, measured), ...-model.csv (modelled,
# jobs/perfmodel.py), ...-trace.txt,
# a gnuplot PNG of images/s per configuration, and prints the tables last. Numbers are rank 0's, averaged over
# the steps after the first (slimclr train's end-of-run summary line in metrics.jsonl).
# Env: SLIMCLR_BIN (default $BUILD/slimclr, BUILD default build), MPIRUN (default mpirun).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${SLIMCLR_BIN:-${BUILD:-build}/slimclr}
MPIRUN=${MPIRUN:-mpirun}
CONFIG=yaml/bench-step.yaml
BASE=64 BATCH=64 BUCKET=4 STEPS=6 TIMEOUT=3600 OUT=profiling/results TCP=1 PLOT=1 KEEP=0 SUFFIX="" ONLY="" SCHED=""
FWQ_S=1
die() { echo "scaling: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case $1 in
    --small) BASE=16 BATCH=256 BUCKET=0.25 SUFFIX=-small; shift ;;
    --steps) need "$@"; STEPS=$2; shift 2 ;;
    --base) need "$@"; BASE=$2; shift 2 ;;
    --batch) need "$@"; BATCH=$2; shift 2 ;;
    --bucket-mb) need "$@"; BUCKET=$2; shift 2 ;;
    --timeout) need "$@"; TIMEOUT=$2; shift 2 ;;
    --out) need "$@"; OUT=$2; shift 2 ;;
    --configs) need "$@"; ONLY=",$2,"; shift 2 ;;
    --schedule) need "$@"; SCHED=$2; shift 2 ;;
    --no-tcp) TCP=0; shift ;;
    --no-plot) PLOT=0; shift ;;
    --keep) KEEP=1; shift ;;
    --fwq-seconds) need "$@"; FWQ_S=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
for v in STEPS BASE BATCH TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "--${v,,}: expected a positive integer, got '${!v}'"
done
[ "$STEPS" -ge 2 ] || die "--steps: expected at least 2 (the first is warm-up), got $STEPS"
[ -z "$SCHED" ] || [ "$SCHED" = sequential ] || [ "$SCHED" = wavefront ] ||
  die "--schedule: expected sequential or wavefront, got '$SCHED'"
[[ $BUCKET =~ ^[0-9]*\.?[0-9]+$ ]] || die "--bucket-mb: expected a positive number, got '$BUCKET'"
[[ $FWQ_S =~ ^[0-9]*\.?[0-9]+$ ]] || die "--fwq-seconds: expected a number of seconds (0: none), got '$FWQ_S'"
[ -x "$BIN" ] || die "$BIN not found or not executable (make, or set SLIMCLR_BIN)"
[ -f "$CONFIG" ] || die "$CONFIG not found (run from the repository root)"
mkdir -p "$OUT" || die "cannot create $OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

stamp=$(date +%Y-%m-%d)
[ "$BASE/$BATCH" = 64/64 ] || [ -n "$SUFFIX" ] || SUFFIX="-base$BASE-batch$BATCH"
[ -z "$SCHED" ] || SUFFIX="$SUFFIX-$SCHED"
csv="$OUT/scaling-$stamp$SUFFIX.csv"
work=$(mktemp -d /tmp/slimclr-scaling.XXXXXX)
[ "$KEEP" = 1 ] || trap 'rm -rf "$work"' EXIT
echo "B2 scaling: base $BASE, $BATCH images per rank, $STEPS steps per configuration (first = warm-up), buckets" \
     "$BUCKET MB; runs in $work; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# label ranks threads transport scaling global_batch
configs=("1x2 1 2 none base $BATCH"
         "2x1-shm-strong 2 1 shm strong $BATCH"
         "2x1-shm-weak 2 1 shm weak $((2 * BATCH))")
[ "$TCP" = 1 ] && configs+=("2x1-tcp-strong 2 1 tcp strong $BATCH" "2x1-tcp-weak 2 1 tcp weak $((2 * BATCH))")

runs=""
for c in "${configs[@]}"; do
  read -r label P th tr sc gb <<<"$c"
  [ -z "$ONLY" ] || [[ $ONLY == *",$label,"* ]] || continue
  d="$work/$label"
  args=(-np "$P")
  [ "$P" = 1 ] && args+=(--bind-to none)
  case $tr in tcp) args+=(--mca btl self,tcp) ;; shm) args+=(--mca btl self,vader) ;; esac
  extra=()
  [ "$label" = 2x1-tcp-weak ] && extra=(--set run.trace=true)
  [ -z "$SCHED" ] || extra+=(--set method.schedule="$SCHED")
  echo "== $label: $MPIRUN ${args[*]} slimclr train $CONFIG (batch $gb, $th thread(s) per rank)"
  t0=$(date +%s)
  timeout "$TIMEOUT" "$MPIRUN" "${args[@]}" "$BIN" train "$CONFIG" --set run.dir="$d" --set optim.max_steps="$STEPS" \
    --set optim.batch="$gb" --set model.base="$BASE" --set run.threads="$th" --set run.metrics=true \
    --set run.log_every=1 --set comm.bucket_mb="$BUCKET" --set checkpoint.keep_last=1 "${extra[@]}" >"$work/$label.log" 2>&1
  rc=$?
  grep -E '^summary|^  (gradient|syncbn|gathers|balance)' "$work/$label.log" | sed 's/^/   /'
  [ $rc = 0 ] || { echo "   FAILED: rc $rc after $(( $(date +%s) - t0 )) s; last lines:"; tail -5 "$work/$label.log" | sed 's/^/   /'; }
  runs="$runs$label $P $th $tr $sc $gb $rc $d"$'\n'
done

# CSV + table from each run's summary line
printf '%s' "$runs" >"$work/runs.txt"
python3 - "$csv" "$BASE" "$work/runs.txt" <<'PY' || die "could not collect the results"
import csv, json, sys
out, base = sys.argv[1], int(sys.argv[2])
cols = ["config", "ranks", "threads", "transport", "scaling", "base", "global_batch", "per_rank_batch", "status",
        "img_s", "step_s", "compute_s", "data_s", "comm_s", "exposed_s", "overlap_pct", "allreduce_bytes", "buckets",
        "syncbn_s", "syncbn_calls", "syncbn_bytes", "gather_s", "syncbn_inflight_s", "syncbn_overlap_pct", "waited_s",
        "imbalance_s", "offcpu_s"]
rows = []
for line in open(sys.argv[3]):
    if not line.strip():
        continue
    label, P, th, tr, sc, gb, rc, d = line.split()
    r = dict(config=label, ranks=int(P), threads=int(th), transport=tr, scaling=sc, base=base, global_batch=int(gb),
             per_rank_batch=int(gb) // int(P), status="ok" if rc == "0" else f"rc{rc}")
    s = None
    try:
        for l in open(f"{d}/metrics.jsonl"):
            if '"summary":1' in l:
                s = json.loads(l)
    except OSError:
        pass
    if s is None and r["status"] == "ok":
        r["status"] = "no-summary"
    if s:
        for k in ["img_s", "step_s", "compute_s", "data_s", "comm_s", "exposed_s", "allreduce_bytes", "buckets",
                  "syncbn_s", "syncbn_calls", "syncbn_bytes", "gather_s", "waited_s", "imbalance_s", "offcpu_s"]:
            r[k] = s.get(k)
        r["overlap_pct"] = 100.0 * s["overlap"]
        r["syncbn_inflight_s"] = s.get("syncbn_inflight_s", s.get("syncbn_s"))
        r["syncbn_overlap_pct"] = 100.0 * s.get("syncbn_overlap", 0.0)
    rows.append(r)
with open(out, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
PY
echo "wrote $csv"

model="${csv%.csv}-model.csv"
echo
# the skew term is measured from the sequential schedule's trace (2x1-tcp-weak)
mtrace=()
tr0="$work/2x1-tcp-weak/trace-rank0.json" tr1="$work/2x1-tcp-weak/trace-rank1.json"
[ "${SCHED:-sequential}" = sequential ] && [ -f "$tr0" ] && [ -f "$tr1" ] && mtrace=(--trace "$tr0,$tr1")
# the OS noise of this node, one rank per core, measured after the runs (not during them)
fwq=()
FWQ_BIN=${BUILD:-build}/profiling/fwq
if [ "$FWQ_S" != 0 ] && [ "$FWQ_S" != 0.0 ]; then
  if [ -x "$FWQ_BIN" ]; then
    echo "OS noise (fixed work quantum, $(nproc) rank(s), $FWQ_S s per quantum):"
    "$MPIRUN" --bind-to core -np "$(nproc)" "$FWQ_BIN" --seconds "$FWQ_S" --out "${csv%.csv}-fwq.csv" \
      && fwq=(--os-noise-csv "${csv%.csv}-fwq.csv") || echo "(fwq failed: the model assumes its --os-noise-us)"
  else
    echo "($FWQ_BIN not built: the model assumes its --os-noise-us)"
  fi
fi
python3 "$here/perfmodel.py" "$csv" "${mtrace[@]}" "${fwq[@]}" --out "$model" | tee "${csv%.csv}-model.txt" || echo "(no model: see above)"

trace_txt="${csv%.csv}-trace.txt"
if [ "$TCP" = 1 ] && ls "$work"/2x1-tcp-weak/trace-rank*.json >/dev/null 2>&1; then
  echo
  echo "trace check (2x1-tcp-weak): allreduce time inside the backward; SyncBN exposed vs in flight"
  python3 "$here/trace_overlap.py" "$work"/2x1-tcp-weak/trace-rank*.json | sed "s|$work/||" | tee "$trace_txt"
fi

if [ "$PLOT" = 1 ] && command -v gnuplot >/dev/null; then
  png="${csv%.csv}.png"
  dat="$work/plot.dat"
  awk -F, 'NR > 1 && $9 == "ok" { print $1, $10 }' "$csv" >"$dat"
  gnuplot <<GP && echo "wrote $png"
set terminal pngcairo size 800,450 noenhanced
set output '$png'
set title 'B2: images/s per configuration (base $BASE, $BATCH img/rank, loaded machine)'
set style data histogram
set style fill solid 0.6 border -1
set boxwidth 0.7
set ylabel 'images/s'
set yrange [0:*]
set grid ytics
set xtics rotate by -20
plot '$dat' using 2:xtic(1) notitle, '' using 0:2:(sprintf('%.2f', \$2)) with labels offset 0,0.7 notitle
GP
fi

# the table last (measured), with the docs/benchmarks.md ratios
echo
python3 - "$csv" "$BASE" "$BATCH" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
base, batch = int(sys.argv[2]), int(sys.argv[3])
print(f"MEASURED on this machine (rank 0, mean over the steps after the first; machine shared with other jobs)")
hdr = ["config", "batch", "img/s", "step s", "compute s", "comm s", "exposed s", "overlap %", "allreduce MB",
       "syncbn s", "bn flight s", "bn ovl %", "waits s", "imbal s", "vs 1x2"]
w = [15, 6, 8, 8, 10, 8, 10, 10, 13, 9, 11, 8, 8, 8, 7]
print("  ".join(h.rjust(x) for h, x in zip(hdr, w)))
ref = next((float(r["img_s"]) for r in rows if r["config"] == "1x2" and r["status"] == "ok"), None)
for r in rows:
    if r["status"] != "ok":
        print(f"{r['config']:>15}  {r['global_batch']:>6}  {r['status']}")
        continue
    f = lambda k, p=3: f"{float(r[k]):.{p}f}" if r.get(k) not in (None, "") else "-"
    ratio = f"{float(r['img_s']) / ref:.2f}x" if ref else "-"
    cells = [r["config"], r["global_batch"], f("img_s", 2), f("step_s"), f("compute_s"), f("comm_s"), f("exposed_s"),
             f("overlap_pct", 1), f"{float(r['allreduce_bytes']) / 1e6:.2f}", f("syncbn_s"), f("syncbn_inflight_s"),
             f("syncbn_overlap_pct", 1), f("waited_s"), f("imbalance_s"), ratio]
    print("  ".join(str(c).rjust(x) for c, x in zip(cells, w)))
print("docs/benchmarks.md B2 targets: 2x1 >= 1.0x 1x2; 2x1 >= 1.5 x 12.9 = 19.4 img/s (PyTorch DDP, B1 base 64 only"
      + ("" if (base, batch) == (64, 64) else f"; this run is base {base} / {batch} per rank: not comparable") + ");"
      " overlap >= 90%")
print("waits s: collective waits per step, mean over ranks; imbal s: the part of them no schedule hides (the slowest"
      " rank's compute above the mean, step by step; docs/scaling.md)")
PY
