#!/usr/bin/env bash
# Every bad input of tests/README.md's table: a clear message, exit 2, no training started.
exec bash tests/faults/bad_inputs.sh
