#!/usr/bin/env bash
# train_equiv.sh for MoCo v3 (rank-count independence with bn: sync, 1-4 ranks, 20 steps, with the chaos controls).
# The settings (tests/sh/common.inc) keep the runs out of the chaotic regime where a 1e-7 perturbation on one rank
# alone already moves the losses by 1e-4 (docs/scaling.md). SimCLR: train_equiv_simclr.sh (a script each, so that
# the test runner can run them side by side).
EQUIV_METHODS="mocov3" exec bash tests/sh/train_equiv.sh
