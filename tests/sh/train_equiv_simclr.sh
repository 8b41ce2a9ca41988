#!/usr/bin/env bash
# train_equiv.sh for SimCLR (rank-count independence with bn: sync, 1-4 ranks, 20 steps); MoCo v3:
# train_equiv_heads.sh.
EQUIV_METHODS="simclr" exec bash tests/sh/train_equiv.sh
