#!/usr/bin/env bash
# export -> PyTorch: tools/slimclr_torch.py (standard library + numpy + torch, no `safetensors` package) loads a
# safetensors export of width 0.5 and its features of 64 test images equal `slimclr features` of the checkpoint at
# width 0.5 (relative max difference < 1e-4). Needs Debian's python3-torch and python3-numpy (/usr/bin/python3):
# skipped with a message (and passed) when they are missing.
source tests/sh/common.inc
PY=${PYTHON:-/usr/bin/python3}
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "SKIP: $PY cannot import torch and numpy (apt-get install python3-torch python3-numpy to run this test)"
  exit 0
fi
W=$T
D=$W/data
small_trained_run "$W" 3
REF=$W/run/checkpoints/step-3.ckpt
"$SLIMCLR_BIN" export --checkpoint "$REF" --width 0.5 --out "$W/w05.safetensors" >"$W/exp.log" 2>&1 || { cat "$W/exp.log"; fail "export"; }
"$SLIMCLR_BIN" features --checkpoint "$REF" --width 0.5 --split test --max 64 --out "$W/f.npy" >"$W/feat.log" 2>&1 \
  || { cat "$W/feat.log"; fail "features"; }
info=$("$SLIMCLR_BIN" info "$W/run/config.yaml")
mean=$(echo "$info" | sed -nE 's/^data\.mean +\[([0-9.]+)\].*/\1/p'); std=$(echo "$info" | sed -nE 's/^data\.std +\[([0-9.]+)\].*/\1/p')
"$PY" - "$W/w05.safetensors" "$D/t10k-images-idx3-ubyte" "$W/f.npy" "$mean" "$std" <<'PYEOF'
import sys
import numpy as np
import torch
sys.path.insert(0, "tools")
from slimclr_torch import load_slimclr
st, idx, fpath, mean, std = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
model, meta = load_slimclr(st)
model.eval()
raw = np.fromfile(idx, np.uint8)[16:16 + 64 * 784].reshape(64, 1, 28, 28).astype(np.float32)
x = torch.from_numpy((raw / 255.0 - mean) / std).float()
with torch.no_grad():
    got = model(x).numpy()
want = np.load(fpath)
assert got.shape == want.shape, (got.shape, want.shape)
rel = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
print("width %s: %d x %d features, max |PyTorch - slimclr| / max |slimclr| = %.2e" % (meta.get("width"), got.shape[0],
                                                                                      got.shape[1], rel))
sys.exit(0 if rel < 1e-4 else 1)
PYEOF
rc=$?
[ $rc -eq 0 ] && echo "ok: safetensors export -> tools/slimclr_torch.py -> the same features" || echo "FAIL: round trip (rc $rc)"
exit $rc
