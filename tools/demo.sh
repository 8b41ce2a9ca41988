#!/usr/bin/env bash
# `make demo`: pre-train SlimCLR-MoCov2 on Fashion-MNIST with 2 ranks (yaml/fmnist-slimclr-mocov2.yaml: a
# slimmable ResNet-18 of base 16, 150 steps of batch 256), then the linear evaluation of every width, and print the
# per-width table. Fresh each time: the demo's run directory is removed first, so a second `make demo` just works.
#
# Environment: BUILD (build), MPIRUN (mpirun), DEMO_DIR (runs/demo), DEMO_TRAIN_ARGS (extra train arguments, e.g.
# --set optim.max_steps=10 for a smoke test), DEMO_EVAL_ARGS (eval arguments; default: the probe on the first
# 30,000 training images and all 10,000 test images, to keep the demo short on 2 cores; "--max-train 0" = all).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
case $BUILD in /*) BIN=$BUILD/slimclr ;; *) BIN=./$BUILD/slimclr ;; esac
MPIRUN=${MPIRUN:-mpirun}
RUN=${DEMO_DIR:-runs/demo}
CONFIG=yaml/fmnist-slimclr-mocov2.yaml
EVAL_ARGS=${DEMO_EVAL_ARGS:---max-train 30000}
[ -x "$BIN" ] || { echo "demo: $BIN not found: run make first" >&2; exit 2; }
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_base_warn_component_unused=0

rm -rf "$RUN"
t0=$(date +%s)
echo "== demo 1/2: pre-training ($CONFIG, 2 ranks x 1 thread) into $RUN"
# --bind-to none lets the loader threads use either core; one BLIS thread per rank keeps the 2 cores busy
# shellcheck disable=SC2086
$MPIRUN --bind-to none -np 2 "$BIN" train "$CONFIG" --set run.dir="$RUN" --set run.threads=1 ${DEMO_TRAIN_ARGS:-}
t1=$(date +%s)
ckpt="$RUN/checkpoints/$(cat "$RUN/checkpoints/latest")"
echo "== demo 2/2: linear evaluation per width of $ckpt"
# the checkpoint's own config (so any DEMO_TRAIN_ARGS model change is followed); run.dir is the demo's
# shellcheck disable=SC2086
$MPIRUN -np 2 "$BIN" eval --checkpoint "$ckpt" $EVAL_ARGS
t2=$(date +%s)
echo
echo "== demo done: pre-training $((t1 - t0)) s, evaluation $((t2 - t1)) s; table: $RUN/eval/probe.md"
cat "$RUN/eval/probe.md"
