#!/usr/bin/env bash
# Bad inputs to `slimclr train`: each case must end with a clear message (matched below) and a non-zero exit,
# and must not start training (no metrics.jsonl, no checkpoint in its run directory).
#   bash tests/faults/bad_inputs.sh            check every case (tests/sh/faults_inputs.sh)
#   bash tests/faults/bad_inputs.sh --table    also rewrite the table in tests/README.md from the actual runs
source "$(dirname "$0")/../sh/common.inc"
TABLE=0; [ "${1:-}" = --table ] && TABLE=1
W=$T
FM=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
[ -f "$FM/train-images-idx3-ubyte.gz" ] || fail "Fashion-MNIST not found in $FM (set FMNIST_DIR)"
# a 512-image IDX copy of Fashion-MNIST's head: the cases that get as far as the data load it in no time
mk_small_idx "$FM" "$W/small" 512
ONE=(--set run.threads=1 --set data.workers=1 --set data.subset=0)
SMALLDATA=(--set data.dir="$W/small")
rows=(); nbad=0; ncase=0

# case NAME DESCRIPTION EXPECTED_RC REGEX NP ARGS...: the command is slimclr train ARGS under mpirun -np NP
case_run() {
  local name=$1 desc=$2 want_rc=$3 regex=$4 np=$5; shift 5
  ncase=$((ncase + 1))
  local dir="$W/run-$name" out="$W/$name.out"
  # one rank runs as an MPI singleton (no mpirun: 2 s less per case); more ranks under mpirun
  local launch=(); [ "$np" -gt 1 ] && launch=("$MPIRUN" --oversubscribe --bind-to none -np "$np")
  timeout 120 "${launch[@]}" "$SLIMCLR_BIN" train "$@" --set run.dir="$dir" "${ONE[@]}" >"$out" 2>&1
  local rc=$?
  # the user-facing line: the first "error" line (Open MPI's own epilogue is not the message)
  local msg; msg=$(grep -m1 -iE 'error|refus' "$out" | sed 's/[[:space:]]\+/ /g' | cut -c1-230)
  local ok=1
  [ "$rc" -eq "$want_rc" ] || { echo "  $name: exit code $rc, expected $want_rc"; ok=0; }
  grep -qE -- "$regex" "$out" || { echo "  $name: no message matching /$regex/"; ok=0; }
  [ -e "$dir/metrics.jsonl" ] && { echo "  $name: training started (metrics.jsonl exists)"; ok=0; }
  ls "$dir"/checkpoints/step-*.ckpt >/dev/null 2>&1 && { echo "  $name: a checkpoint was written"; ok=0; }
  grep -qE 'Segmentation|core dumped|signal [0-9]+|Assertion' "$out" && { echo "  $name: crashed"; ok=0; }
  # a failed start is not a run: nothing of it may block the corrected `train` into the same directory
  [ -e "$dir/config.yaml" ] && { echo "  $name: the failed start left $dir/config.yaml"; ok=0; }
  [ -d "$dir" ] && { echo "  $name: the failed start left the run directory $dir"; ok=0; }
  if [ $ok = 1 ]; then echo "ok   $name (rc $rc): $msg"; else nbad=$((nbad + 1)); echo "FAIL $name"; cat "$out" | head -30; fi
  rows+=("| $desc | \`${msg//|/\\|}\` | $rc |")
}

# --- configuration ---
printf 'model:\n  depth: 18\n  widths: [1.0, 0.5\noptim:\n  batch: 16\n' >"$W/malformed.yaml"
case_run malformed-yaml "malformed YAML (unclosed \`[\`)" 2 'malformed.yaml:[0-9]+' 1 "$W/malformed.yaml"
printf 'model:\n  depht: 18\n' >"$W/unknown.yaml"
case_run unknown-key "unknown key \`model.depht\`" 2 'depht' 1 "$W/unknown.yaml"
case_run unknown-set "unknown key in \`--set optim.bacth=16\`" 2 'bacth' 1 "$CFG" --set optim.bacth=16
case_run bad-value "\`--set optim.batch=abc\`" 2 'optim.batch' 1 "$CFG" --set optim.batch=abc
case_run missing-config "config file that does not exist" 2 'no-such.yaml' 1 "$W/no-such.yaml"
mkdir -p "$W/cfgdir"
case_run config-dir "a directory given as the config" 2 'cfgdir: is a directory' 1 "$W/cfgdir"
printf 'model:\n\tdepth: 18\noptim:\n  batch: 16\n' >"$W/tab.yaml"
case_run tab-indent "YAML indented with a tab" 2 'tab.yaml:.*line 2 is indented with a tab' 1 "$W/tab.yaml"
case_run set-section "\`--set optim=3\` (a section, not a key)" 2 'optim is a section, not a key' 1 "$CFG" --set optim=3
case_run width-zero "width 0.1 at model.base 8 (0 channels)" 2 'model.widths.*0 channels' 1 "$CFG" \
  --set model.base=8 --set 'model.widths=[1.0,0.5,0.1]'
case_run width-order "widths not descending \`[1.0,0.25,0.5]\`" 2 'model.widths.*descending' 1 "$CFG" \
  --set 'model.widths=[1.0,0.25,0.5]'
case_run width-first "first width not 1.0 \`[0.75,0.5]\`" 2 'model.widths.*first width' 1 "$CFG" \
  --set 'model.widths=[0.75,0.5]'
case_run ranks-batch "3 ranks, \`optim.batch=16\`" 2 'optim.batch' 3 "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}"
case_run queue-batch "MoCo v2 queue 100 not a multiple of batch 16" 2 'method.queue' 1 "$CFG" "${SMALL[@]}" \
  --set method.queue=100

# --- data ---
case_run missing-data "\`data.dir\` that does not exist" 2 '/nonexistent/fm' 1 "$CFG" "${SMALL[@]}" \
  --set data.dir=/nonexistent/fm
mkdir -p "$W/trunc"; cp "$FM"/train-labels-idx1-ubyte.gz "$W/trunc/"
head -c 1000000 "$FM/train-images-idx3-ubyte.gz" >"$W/trunc/train-images-idx3-ubyte.gz"
case_run truncated-gz "truncated \`train-images-idx3-ubyte.gz\`" 2 'train-images-idx3-ubyte.gz.*(truncated|corrupt)' 1 \
  "$CFG" "${SMALL[@]}" --set data.dir="$W/trunc"
mkdir -p "$W/short"; cp "$FM"/train-labels-idx1-ubyte.gz "$W/short/"
gzip -dc "$FM/train-images-idx3-ubyte.gz" | head -c 5000000 >"$W/short/train-images-idx3-ubyte"
case_run short-idx "IDX images file cut short (plain, valid header)" 2 'train-images-idx3-ubyte.*expected [0-9]+ bytes' 1 \
  "$CFG" "${SMALL[@]}" --set data.dir="$W/short"
mkdir -p "$W/zero"; : >"$W/zero/train-images-idx3-ubyte"; cp "$W/small/train-labels-idx1-ubyte" "$W/zero/"
case_run empty-idx "an empty (0-byte) IDX images file" 2 'train-images-idx3-ubyte: empty file \(0 bytes\)' 1 \
  "$CFG" "${SMALL[@]}" --set data.dir="$W/zero"
mkdir -p "$W/dirdata/train-images-idx3-ubyte"; cp "$W/small/train-labels-idx1-ubyte" "$W/dirdata/"
case_run dir-idx "a directory where the IDX images file should be" 2 'train-images-idx3-ubyte.*is a directory' 1 \
  "$CFG" "${SMALL[@]}" --set data.dir="$W/dirdata"
case_run batch-data "\`optim.batch\` larger than the dataset" 2 'larger than the 512 training images' 1 \
  "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" --set optim.batch=1024 --set method.queue=2048
# --- memory: the estimate against what a rank may use, before any run directory exists ---
case_run mem-estimate "\`optim.batch=60000 method.queue=60000\` (about 170 GB per rank)" 2 'needs about [0-9.]+ GB per rank.*may use [0-9.]+ [GM]B' 1 \
  "$CFG" --set optim.batch=60000 --set method.queue=60000
SLURM_MEM_PER_NODE=10 case_run mem-slurm-node "\`SLURM_MEM_PER_NODE=10\` (MB), 2 ranks on the node" 2 'may use 5.2 MB here \(SLURM_MEM_PER_NODE=10 MB / 2 rank' 2 \
  "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}"
SLURM_MEM_PER_CPU=5 SLURM_CPUS_PER_TASK=1 case_run mem-slurm-cpu "\`SLURM_MEM_PER_CPU=5\` (MB), 1 CPU per task" 2 'SLURM_MEM_PER_CPU=5 MB x 1 CPU' 1 \
  "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}"
SLIMCLR_MEM_PER_RANK=1M case_run mem-override "\`SLIMCLR_MEM_PER_RANK=1M\` (the expert override)" 2 'may use 1.0 MB here \(SLIMCLR_MEM_PER_RANK=1M' 1 \
  "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}"
mkdir -p "$W/empty"
case_run empty-dir "data.dir without the IDX files" 2 'no such file' 1 "$CFG" "${SMALL[@]}" --set data.dir="$W/empty"

# --- checkpoints given to --resume PATH: a real one first (2 steps, 1 rank) ---
timeout 300 "$SLIMCLR_BIN" train "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" "${ONE[@]}" \
  --set optim.max_steps=2 --set run.dir="$W/ref" >"$W/ref.out" 2>&1 || { cat "$W/ref.out"; fail "reference run"; }
REF=$W/ref/checkpoints/step-2.ckpt
SMALLDATA+=(--set optim.max_steps=2)  # the resume cases: the same schedule as the reference
[ -f "$REF" ] || fail "no reference checkpoint"
size=$(stat -c %s "$REF")
cp "$REF" "$W/flip.ckpt"; printf '\x5a' | dd of="$W/flip.ckpt" bs=1 seek=$((size / 2)) conv=notrunc status=none
case_run ckpt-flip "checkpoint with one flipped byte" 2 'checksum mismatch' 1 "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" --resume "$W/flip.ckpt"
head -c $((size / 2)) "$REF" >"$W/trunc.ckpt"
case_run ckpt-trunc "checkpoint truncated to half" 2 'truncated' 1 "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" --resume "$W/trunc.ckpt"
head -c 100 "$REF" >"$W/tiny.ckpt"
case_run ckpt-tiny "checkpoint of 100 bytes" 2 'truncated' 1 "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" --resume "$W/tiny.ckpt"
cp "$REF" "$W/magic.ckpt"; printf 'NOTSLIM' | dd of="$W/magic.ckpt" bs=1 seek=0 conv=notrunc status=none
case_run ckpt-magic "checkpoint with a wrong magic" 2 'bad magic' 1 "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" --resume "$W/magic.ckpt"
cp "$REF" "$W/version.ckpt"; printf '\x07' | dd of="$W/version.ckpt" bs=1 seek=8 conv=notrunc status=none
case_run ckpt-version "checkpoint of format version 7" 2 'format version 7' 1 "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" --resume "$W/version.ckpt"
case_run ckpt-model "checkpoint of another model (base 8 given to base 16)" 2 'model.base: 8 vs 16|was written for' 1 "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" \
  --set model.base=16 --resume "$REF"
case_run ckpt-config "checkpoint of another configuration (lr)" 2 '(lr|another configuration).*0\.5' 1 "$CFG" \
  "${SMALL[@]}" "${SMALLDATA[@]}" --set optim.lr=0.5 --resume "$REF"
case_run ckpt-missing "\`--resume\` of a file that does not exist" 2 'no-such.ckpt' 1 "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" \
  --resume "$W/no-such.ckpt"
# the run directory given to --resume: its newest complete checkpoint (a case that must succeed: exit 0)
case_dir_ok() {
  ncase=$((ncase + 1))
  timeout 120 "$SLIMCLR_BIN" train "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" "${ONE[@]}" --set run.dir="$W/ref2" \
    --resume "$W/ref" >"$W/resume-dir.out" 2>&1; local rc=$?
  if [ $rc -eq 0 ] && grep -q "resumed from $W/ref/checkpoints/step-2.ckpt at step 2" "$W/resume-dir.out"; then
    echo "ok   resume-dir (rc 0)"
  else nbad=$((nbad + 1)); echo "FAIL resume-dir: rc $rc"; head -20 "$W/resume-dir.out"; fi
  rows+=("| \`--resume RUN_DIR\` (a directory) | accepted: \`$(grep -m1 'resumed from' "$W/resume-dir.out" | sed "s|$W|/tmp/slimclr-bad.X|g")\` | $rc |")
}
case_dir_ok
"$SLIMCLR_BIN" export --checkpoint "$REF" --width 1.0 --out "$W/bb.safetensors" >"$W/exp.out" 2>&1 || { cat "$W/exp.out"; fail "export"; }
"$SLIMCLR_BIN" import --from "$W/bb.safetensors" --config "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" --out "$W/imported.ckpt" \
  >"$W/imp.out" 2>&1 || { cat "$W/imp.out"; fail "import"; }
case_run ckpt-backbone "\`--resume\` of an imported (backbone-only) checkpoint" 2 'cannot resume a backbone-only checkpoint' 1 \
  "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" --resume "$W/imported.ckpt"
printf 'hello\n' >"$W/text.ckpt"
case_run ckpt-text "a text file as checkpoint" 2 'bad magic|truncated' 1 "$CFG" "${SMALL[@]}" "${SMALLDATA[@]}" --resume "$W/text.ckpt"

echo "cases: $ncase, failed: $nbad"
if [ $TABLE = 1 ]; then
  readme=tests/README.md
  {
    echo "| input | message (first error line, from an actual run) | exit code |"
    echo "|---|---|---|"
    printf '%s\n' "${rows[@]}"
  } >"$W/table.md"
  # replace what lies between the markers
  awk -v tf="$W/table.md" '
    /<!-- bad-inputs:begin -->/ { print; while ((getline l < tf) > 0) print l; skip = 1; next }
    /<!-- bad-inputs:end -->/ { skip = 0 }
    !skip' "$readme" >"$W/readme" && cp "$W/readme" "$readme"
  echo "table written to $readme"
fi
[ $nbad -eq 0 ]
