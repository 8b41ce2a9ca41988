#!/usr/bin/env bash
# MoCo v2's key allgather starts right after the key encoder's forward of the step's last micro-batch
# (ssl/step.c keys_final) and lands in the queue only at its next reader: the queue every loss reads, and so the
# losses and parameters, must be those of the reference placement SLIMCLR_KEY_GATHER=blocking (a blocking
# allgather at the step's end, enqueued at once), bitwise, on 2 and 3 ranks: sequential, accum 2 (the gather starts
# after the second micro-batch, the queue is read by the first), shuffle BN (the keys come from another gather),
# wavefront (the key encoder is one of the interleaved passes), wavefront with accum 2. 20 steps of 24 images and a
# queue of 240: the queue wraps, every slot is written by the gather. A wrong value of the switch: exit 2, named.
set -u
source tests/sh/common.inc
variants=("seq:" "acc2:--set optim.accum=2" "shuf:--set method.bn=shuffle" "wave:--set method.schedule=wavefront"
          "waveacc2:--set method.schedule=wavefront --set optim.accum=2")
for P in 2 3; do
  for v in "${variants[@]}"; do
    name=${v%%:*}; args=${v#*:}
    [ $P -eq 3 ] && [ $name = shuf ] && continue   # shuffle BN's own gathers: 2 ranks suffice
    run_train mocov2 $P "$TMPD/$name-$P" $args
    [ $rc -eq 0 ] || { bad "$name on $P ranks: exit $rc"; tail -3 "$TMPD/$name-$P.log"; continue; }
    SLIMCLR_KEY_GATHER=blocking run_train mocov2 $P "$TMPD/$name-$P-ref" $args
    [ $rc -eq 0 ] || { bad "$name on $P ranks, blocking reference: exit $rc"; tail -3 "$TMPD/$name-$P-ref.log"; continue; }
    check "$name P=$P losses bitwise the blocking gather's" $CMP metrics "$TMPD/$name-$P-ref/metrics.jsonl" \
      "$TMPD/$name-$P/metrics.jsonl" 0
    for sec in queue queue.ptr q.params k.params; do
      check "$name P=$P $sec bitwise the blocking gather's" $CMP ckpt "$TMPD/$name-$P-ref/checkpoints/step-20.ckpt" \
        "$TMPD/$name-$P/checkpoints/step-20.ckpt" $sec 0
    done
  done
done
SLIMCLR_KEY_GATHER=early run_train mocov2 1 "$TMPD/badenv"
if [ $rc -eq 2 ] && grep -q "SLIMCLR_KEY_GATHER: 'early'; expected 'blocking'" "$TMPD/badenv.log"; then
  ok "SLIMCLR_KEY_GATHER=early refused (exit 2, named)"
else bad "SLIMCLR_KEY_GATHER=early: exit $rc"; tail -3 "$TMPD/badenv.log"; fi
exit $fail
