# Shared by the fault scripts (sourced): environment, a tiny fast training configuration, helpers.
set -u
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun}
case $BUILD in /*) absb=$BUILD ;; *) absb=$PWD/$BUILD ;; esac
SLIMCLR_BIN=${SLIMCLR_BIN:-$absb/slimclr}
CKPT_VERIFY=${CKPT_VERIFY:-$absb/tests/faults/ckpt_verify}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_base_warn_component_unused=0
CFG=${CFG:-yaml/fmnist-slimclr-mocov2.yaml}
# a small model and batch: about 0.2 s per step on 2 ranks of a loaded 2-core machine
SMALL=(--set model.base=8 --set optim.batch=16 --set method.queue=320 --set optim.max_steps=12
       --set run.log_every=1 --set checkpoint.every_steps=2 --set checkpoint.every_minutes=0
       --set data.workers=1 --set optim.lr=0.02)
MPI_NP() { local np=$1; shift; "$MPIRUN" --oversubscribe --bind-to none -np "$np" "$@"; }
# the same for a background job: `MPI_BG 2 ... &` makes $! the mpirun process itself (exec in the subshell)
MPI_BG() { local np=$1; shift; exec "$MPIRUN" --oversubscribe --bind-to none -np "$np" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
# loss of step N in a metrics.jsonl (the last line for that step: a resumed run appends)
loss_at() { grep "\"step\":$2," "$1" | tail -1 | sed 's/.*"loss":\([^,]*\),.*/\1/'; }
# mk_small_idx SRC_DIR DST_DIR N: the first N images and labels of an IDX set, as plain IDX files
mk_small_idx() {
  local src=$1 dst=$2 n=$3 hex
  mkdir -p "$dst"
  hex=$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)))
  { printf '\x00\x00\x08\x03'; printf "$hex"; printf '\x00\x00\x00\x1c\x00\x00\x00\x1c'
    gzip -dc "$src/train-images-idx3-ubyte.gz" | tail -c +17 | head -c $((n * 784)); } >"$dst/train-images-idx3-ubyte"
  { printf '\x00\x00\x08\x01'; printf "$hex"
    gzip -dc "$src/train-labels-idx1-ubyte.gz" | tail -c +9 | head -c "$n"; } >"$dst/train-labels-idx1-ubyte"
}
