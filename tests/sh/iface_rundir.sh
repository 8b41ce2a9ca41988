#!/usr/bin/env bash
# The run directory of docs/conventions.md "A run" and what may change on resume:
#  - layout: config.yaml, metrics.jsonl (one line per step), checkpoints/step-<N>.ckpt + latest, trace-rank<R>.json
#    (run.trace), eval/;
#  - a second `train` without --resume is refused (exit 2) and changes nothing;
#  - --resume with another model.base is refused (exit 2) naming model.base, before the directory changes;
#  - --resume PATH with another rank count (3 instead of 2) and checkpoint.every_steps is accepted and continues;
#    metrics.jsonl then holds every step exactly once;
#  - retention: keep_last 2 + one snapshot per epoch; cadence by minutes.
set -u
source tests/sh/common.inc
SETS=(--set model.base=8 --set optim.batch=48 --set method.queue=960 --set run.log_every=1 --set run.threads=1
      --set data.workers=0 --set checkpoint.every_minutes=0 --set data.dir="$(fm_data)")
train() { # P dir [args...] -> $rc, output in $T/out
  local P=$1 d=$2; shift 2
  timeout 120 $MPIRUN --oversubscribe -np "$P" "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml "${SETS[@]}" \
    --set run.dir="$d" "$@" >"$T/out" 2>&1
  rc=$?
}
steps_of() { python3 tools/metrics_col.py "$1" --all | tr '\n' ' '; } # every step line, repeats included
ckpts_of() { (cd "$1/checkpoints" && ls step-*.ckpt 2>/dev/null | sed 's/step-\([0-9]*\).ckpt/\1/' | sort -n | tr '\n' ' '); }

# 1. layout
R=$T/run
train 2 "$R" --set optim.max_steps=10 --set checkpoint.every_steps=2 --set checkpoint.keep_last=5 --set run.trace=true
[ $rc -eq 0 ] || { bad "first run rc $rc"; tail -5 "$T/out"; exit 1; }
for f in config.yaml metrics.jsonl checkpoints/latest trace-rank0.json trace-rank1.json; do
  [ -s "$R/$f" ] || bad "missing $R/$f"
done
[ -d "$R/eval" ] || bad "missing eval/"
[ "$(cat "$R/checkpoints/latest")" = "step-10.ckpt" ] && ok "latest names step-10.ckpt" || bad "latest: $(cat "$R/checkpoints/latest")"
[ "$(ckpts_of "$R")" = "2 4 6 8 10 " ] && ok "checkpoints every 2 steps, keep_last 5: $(ckpts_of "$R")" || bad "checkpoints: $(ckpts_of "$R")"
[ "$(steps_of "$R/metrics.jsonl")" = "1 2 3 4 5 6 7 8 9 10 " ] && ok "metrics: one line per step" || bad "metrics steps: $(steps_of "$R/metrics.jsonl")"
grep -q '^  base: 8' "$R/config.yaml" || grep -q 'base: 8' "$R/config.yaml" || bad "config.yaml lacks the resolved model.base"
cp "$R/config.yaml" "$T/config.before"

# 2. never overwritten silently
train 2 "$R" --set optim.max_steps=10
if [ $rc -eq 2 ] && grep -q -- "--resume" "$T/out" && cmp -s "$R/config.yaml" "$T/config.before"; then
  ok "second train without --resume refused (exit 2): $(grep error "$T/out" | head -1 | cut -c1-100)..."
else bad "second train without --resume: rc $rc"; tail -3 "$T/out"; fi

# 3. a changed model is refused, naming the key, before anything changes
train 2 "$R" --set optim.max_steps=10 --set model.base=16 --resume
if [ $rc -eq 2 ] && grep -q "model.base" "$T/out" && cmp -s "$R/config.yaml" "$T/config.before"; then
  ok "resume with model.base changed refused (exit 2): $(grep -o 'model.base[^.]*' "$T/out" | head -1)"
else bad "resume with model.base changed: rc $rc"; tail -3 "$T/out"; fi

# 4. ranks and cadence may change: resume the step-4 checkpoint on 3 ranks, checkpoint every 3 steps
train 3 "$R" --set optim.max_steps=10 --set checkpoint.every_steps=3 --set checkpoint.keep_last=5 \
  --resume "$R/checkpoints/step-4.ckpt"
if [ $rc -eq 0 ] && grep -q "resumed from .*step-4.ckpt at step 4" "$T/out" && grep -q "3 rank(s)" "$T/out"; then
  ok "resume on 3 ranks with checkpoint.every_steps 3 accepted"
else bad "resume on 3 ranks: rc $rc"; tail -5 "$T/out"; fi
grep -q "every_steps: 3" "$R/config.yaml" || bad "config.yaml not the resumed run's resolved config"
[ "$(steps_of "$R/metrics.jsonl")" = "1 2 3 4 5 6 7 8 9 10 " ] && ok "metrics after resuming at 4: each step once" \
  || bad "metrics steps after resume: $(steps_of "$R/metrics.jsonl")"
# 6 and 9 from the new cadence, 10 the final one; the old 8 stays until retention removes it
c=" $(ckpts_of "$R")"
if [[ $c == *" 6 "* && $c == *" 9 "* && $c == *" 10 "* ]]; then ok "checkpoints after resume: $c"
else bad "checkpoints after resume: $c (want 6, 9 and 10 among them)"; fi

# 5. retention: 4 steps per epoch, 3 epochs, a checkpoint every step, keep the last 2 + one per epoch
S=$T/snap
train 1 "$S" --set data.subset=192 --set optim.max_steps=0 --set optim.epochs=3 --set checkpoint.every_steps=1 \
  --set checkpoint.keep_last=2 --set checkpoint.snapshot_epochs=1
[ $rc -eq 0 ] || { bad "retention run rc $rc"; tail -3 "$T/out"; }
[ "$(ckpts_of "$S")" = "4 8 11 12 " ] && ok "retention keep_last 2 + snapshot per epoch: $(ckpts_of "$S")" \
  || bad "retention: $(ckpts_of "$S") (want 4 8 11 12)"

# 6. cadence by minutes (0.001 min = 60 ms; a step takes longer): checkpoints without every_steps
M=$T/min
train 1 "$M" --set optim.max_steps=8 --set checkpoint.every_steps=0 --set checkpoint.every_minutes=0.001 \
  --set checkpoint.keep_last=100
n=$(ls "$M/checkpoints" | grep -c 'step-.*ckpt')
[ $rc -eq 0 ] && [ "$n" -ge 3 ] && ok "every_minutes 0.001: $n checkpoints in 8 steps" || bad "every_minutes: rc $rc, $n checkpoints"
exit $fail
