#!/usr/bin/env bash
# train_equiv.sh for MoCo v3 and SimCLR (rank-count independence with bn: sync, 1-4 ranks, 20 steps). KNOWN
# FAILURE at the time of writing: losses agree to 1e-7 for ~10 steps, then drift past 1e-4 (docs/scaling.md, "Open").
EQUIV_METHODS="mocov3 simclr" exec bash tests/sh/train_equiv.sh
