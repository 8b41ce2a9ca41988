#!/usr/bin/env bash
# `slimclr info`: the memory estimate per rank equals what `train` allocates (its start-up "MB of state per rank",
# for MoCo v2, v3 and SimCLR, 2 ranks, and with the wavefront schedule); --ranks P plans for P ranks; a batch the ranks do not divide and a MoCo v2
# queue that is not a multiple of the batch are refused with exit 2 and a message naming the key, before any
# output of the plan; --help / --version work without mpirun.
set -u
source tests/sh/common.inc
S=(--set model.base=8 --set optim.batch=48 --set method.queue=960 --set method.mlp_dim=64 --set optim.max_steps=1
   --set run.threads=1 --set data.workers=0 --set data.dir="$(fm_data)")

for m in mocov2 mocov3 simclr mocov2-wavefront mocov3-wavefront; do
  lab=$m
  case $m in *-wavefront) m=${m%-wavefront}; S+=(--set method.schedule=wavefront) ;; esac
  "$SLIMCLR_BIN" info yaml/fmnist-slimclr-$m.yaml "${S[@]}" --ranks 2 >"$T/info" 2>&1 || bad "info $m: rc $?"
  est=$(grep "train's start-up" "$T/info" | grep -o '[0-9.]* MB' | cut -d' ' -f1)
  timeout 60 $MPIRUN --oversubscribe -np 2 "$SLIMCLR_BIN" train yaml/fmnist-slimclr-$m.yaml "${S[@]}" \
    --set run.dir="$T/run-$lab" >"$T/train" 2>&1 || bad "train $lab: rc $?"
  real=$(grep -o 'model [0-9.]* MB of state' "$T/train" | cut -d' ' -f2)
  [ -n "$est" ] && [ "$est" = "$real" ] && ok "$lab: info estimates $est MB per rank, train allocates $real MB" \
    || bad "$lab: info $est MB vs train $real MB"
  for w in "width 1 " "width 0.25 " "queue\|activations" "total"; do grep -q "$w" "$T/info" || bad "$m: no '$w' line"; done
done

# one rank: the wavefront degenerates to the sequential order, so the sequential schedule runs (no extra memory)
"$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml "${S[@]}" --set method.schedule=wavefront --ranks 1 >"$T/info" 2>&1 || bad "info --ranks 1 rc $?"
grep -q "wavefront: extra activations .*not counted: one rank runs the sequential schedule" "$T/info" \
  && ok "wavefront on 1 rank: info counts no extra memory" || bad "wavefront on 1 rank: $(grep 'wavefront:' "$T/info")"
timeout 60 $MPIRUN -np 1 "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml "${S[@]}" --set method.schedule=wavefront --set optim.max_steps=2 --set run.dir="$T/run-w1" \
  >"$T/train" 2>&1 || bad "train wavefront 1 rank: rc $?"
grep -q "syncbn: .*(sequential: blocking)" "$T/train" && ok "wavefront on 1 rank: train runs the sequential schedule" \
  || bad "wavefront on 1 rank: $(grep 'syncbn:' "$T/train")"
"$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml --ranks 4 >"$T/info" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q "global batch 256 = 4 rank(s) x 64 images" "$T/info" && grep -q "64 image(s) per micro-batch" "$T/info" \
  && ok "--ranks 4 plans 64 images per rank" || bad "--ranks 4: rc $rc"

refuse() { # description, expected text, command...
  local what=$1 want=$2; shift 2
  "$@" >"$T/o" 2>"$T/e"; local rc=$?
  if [ $rc -eq 2 ] && grep -q -- "$want" "$T/e" && ! grep -q "== model" "$T/o"; then ok "$what: exit 2: $(head -1 "$T/e" | cut -c1-140)"
  else bad "$what: rc $rc, stderr: $(head -2 "$T/e")"; fi
}
refuse "batch 256 over 3 ranks" "optim.batch: 256 does not split over 3 rank" \
  "$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml --ranks 3
refuse "batch 48 over 5 ranks x accum 2" "does not split over 5 rank(s) x optim.accum 2" \
  "$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml --ranks 5 --set optim.batch=48 --set method.queue=960 --set optim.accum=2
refuse "queue 1000 with batch 256" "method.queue" \
  "$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml --set method.queue=1000
refuse "--ranks 0" "--ranks needs a rank count" "$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml --ranks 0
refuse "unknown option" "unknown option --bogus" "$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml --bogus
# under mpirun the rank count is the real one
timeout 60 $MPIRUN --oversubscribe -np 3 "$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml >"$T/o" 2>"$T/e"; rc=$?
[ $rc -ne 0 ] && grep -q "does not split over 3 rank" "$T/e" && ok "mpirun -np 3 info refused (exit $rc)" || bad "mpirun -np 3 info: rc $rc"

# help and version
"$SLIMCLR_BIN" --help | grep -q "train CONFIG.yaml \[--resume \[PATH\]\]" && ok "--help lists the commands" || bad "--help"
"$SLIMCLR_BIN" train --help | grep -q "STOPPED_BY_SIGNAL" && ok "train --help" || bad "train --help"
"$SLIMCLR_BIN" help info | grep -q -- "--ranks P" && ok "help info" || bad "help info"
"$SLIMCLR_BIN" >/dev/null 2>&1; [ $? -eq 2 ] && ok "no command: exit 2" || bad "no command exit code"
"$SLIMCLR_BIN" frobnicate >/dev/null 2>&1; [ $? -eq 2 ] && ok "unknown command: exit 2" || bad "unknown command exit code"
"$SLIMCLR_BIN" --version >"$T/v" 2>&1 || bad "--version rc $?"
for k in "^slimclr [0-9.]* (commit " "^MPI: .*Open MPI\|^MPI: .*MPICH" "^BLAS: BLIS .*config .*threading" "^ScaLAPACK: .*scalapack"; do
  grep -q "$k" "$T/v" || bad "--version lacks '$k'"
done
ok "--version: $(tr '\n' '|' <"$T/v" | cut -c1-200)"

# docs/method.md §1.3: ResNet-50 (ImageNet stem, 224) with a 1000-way classifier, per width: params (M) and MACs (G)
"$SLIMCLR_BIN" info yaml/imagenet-slimclr-mocov2-r50.yaml >"$T/r50" 2>&1
for row in "^1 .* 25\.557 *4089\.[0-9]$" "^0\.75 .* 14\.77[0-9] *232[23]\.[0-9]$" "^0\.5 .* 6\.9[12][0-9] *1052\.[0-9]$" \
           "^0\.25 .* 1\.99[0-9] *278\.[0-9]$"; do
  grep -q "$row" "$T/r50" || bad "info ResNet-50 fc-1000 row '$row' missing (docs/method.md §1.3)"
done
ok "info: ResNet-50 + fc-1000 per width matches docs/method.md §1.3"
# ResNet-101 / 152 with fc-1000 at width 1: torchvision's 44,549,160 and 60,192,808 parameters
for d in "101 44\.549" "152 60\.193"; do
  set -- $d
  "$SLIMCLR_BIN" info yaml/imagenet-slimclr-mocov2-r50.yaml --set model.depth=$1 >"$T/r$1" 2>&1
  grep -q "^1 .* $2 *[0-9.]*$" "$T/r$1" || bad "info ResNet-$1: no width-1 row with $2 M parameters (fc-1000)"
done
ok "info: ResNet-101 / 152 + fc-1000 at width 1: 44.549 / 60.193 M (torchvision)"
exit $fail
