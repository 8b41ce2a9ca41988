#!/usr/bin/env bash
# The vector-ISA switch and the portable build: SLIMCLR_ISA=avx2|avx512 forces a path (--version and info say
# which, and which BLIS context runs), an unknown value exits 2 listing the accepted ones, avx512 on a CPU without
# it exits 2 naming the missing feature; the CPU check and main are built without AVX instructions (so an older
# CPU gets the message, not SIGILL); the library is built for x86-64-v3 unless ARCH was given.
set -u
source tests/sh/common.inc
det=$(SLIMCLR_ISA= "$SLIMCLR_BIN" --version 2>&1 | grep -o 'vector ISA [a-z0-9]*' | cut -d' ' -f3)
[ -n "$det" ] && ok "--version: vector ISA $det" || bad "--version names no vector ISA"

for isa in avx2 avx512; do
  SLIMCLR_ISA=$isa "$SLIMCLR_BIN" --version >"$T/o" 2>"$T/e"; rc=$?
  if [ "$isa" = avx512 ] && [ "$det" != avx512 ]; then
    [ $rc -eq 2 ] && grep -q "SLIMCLR_ISA=avx512, but this CPU .* lacks AVX512" "$T/e" \
      && ok "avx512 refused on this CPU: $(cat "$T/e")" || bad "avx512 on a CPU without it: rc $rc $(cat "$T/e")"
    continue
  fi
  [ $rc -eq 0 ] && grep -q "vector ISA $isa (SLIMCLR_ISA)" "$T/o" && grep -q "$isa path: BLIS .* context" "$T/o" \
    && ok "SLIMCLR_ISA=$isa: $(grep -o "$isa path: [^,]*" "$T/o")" || bad "SLIMCLR_ISA=$isa: rc $rc $(cat "$T/o" "$T/e")"
  SLIMCLR_ISA=$isa "$SLIMCLR_BIN" info yaml/fmnist-slimclr-mocov2.yaml --ranks 2 >"$T/o" 2>&1
  grep -q "== kernels: ISA path $isa" "$T/o" && ok "info: $(grep '== kernels' "$T/o" | cut -c1-120)" \
    || bad "info under SLIMCLR_ISA=$isa: no kernels line"
done
[ "$det" = avx512 ] || echo "skipped: the avx512 path (this CPU lacks it)"

for v in AVX2 sse 512 "avx2 "; do
  SLIMCLR_ISA="$v" "$SLIMCLR_BIN" --version >"$T/o" 2>"$T/e"; rc=$?
  [ $rc -eq 2 ] && grep -q "expected avx2 or avx512" "$T/e" && [ ! -s "$T/o" ] && ok "SLIMCLR_ISA='$v': exit 2" \
    || bad "SLIMCLR_ISA='$v': rc $rc, $(cat "$T/e")"
done
SLIMCLR_ISA=bad "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml >"$T/o" 2>"$T/e"; rc=$?
[ $rc -eq 2 ] && grep -q "expected avx2 or avx512" "$T/e" && ok "train refuses a bad SLIMCLR_ISA before MPI" \
  || bad "train with SLIMCLR_ISA=bad: rc $rc"

# no AVX/AVX2/AVX-512 register in the code that checks the CPU (xmm: SSE2, baseline x86-64)
for o in "$BUILD/src/core/cpu.o" "$BUILD/src/cli/main.o"; do
  n=$(objdump -d "$o" | grep -c '%[yz]mm')
  [ "$n" -eq 0 ] && ok "$(basename "$o"): no ymm/zmm instruction" || bad "$(basename "$o"): $n ymm/zmm instructions"
done
exit $fail
