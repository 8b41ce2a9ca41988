#!/usr/bin/env python3
"""Columns of a run's metrics.jsonl, the one reader of the shell scripts (tests/sh/common.inc, tools/*.sh).

usage: metrics_col.py FILE KEY... [--index KEY] [--null keep|skip|NaN] [--all]
       metrics_col.py FILE --wait STEP [--timeout SECONDS] [--pid PID]
Prints "index value..." for each line that has the index key (default "step") and every KEY, one row per index
value in order of first appearance (a resumed run logs a step again: the last line wins; --all: every line, repeats
included), numbers exactly as written. A JSON null prints as "null" (keep), drops the row (skip) or prints "NaN" (for gnuplot). Torn or
malformed lines are skipped.
--wait: polls FILE (every 20 ms) until it holds a line of step STEP or later and prints that step (exit 0), or
gives up after SECONDS (default 60) or once process PID is gone (exit 1): how a test waits for a running job."""
import json
import os
import sys
import time


def steps(path):
    try:
        lines = open(path).read().split("\n")
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict) and isinstance(o.get("step"), int):
            out.append(o["step"])
    return out


def wait(path, step, timeout, pid):
    end = time.monotonic() + timeout
    while True:
        alive = True
        if pid:
            try:
                os.kill(pid, 0)
            except OSError:
                alive = False
        got = [s for s in steps(path) if s >= step]
        if got:
            print(got[0])
            return 0
        if not alive or time.monotonic() > end:
            return 1
        time.sleep(0.02)


def main(argv):
    index, null, keys, path, every = "step", "keep", [], None, False
    until, timeout, pid = None, 60.0, 0
    it = iter(argv)
    for a in it:
        if a == "--wait":
            until = int(next(it))
        elif a == "--timeout":
            timeout = float(next(it))
        elif a == "--pid":
            pid = int(next(it))
        elif a == "--index":
            index = next(it)
        elif a == "--null":
            null = next(it)
        elif a == "--all":
            every = True
        elif path is None:
            path = a
        else:
            keys.append(a)
    if path is None or null not in ("keep", "skip", "NaN"):
        sys.exit(__doc__)
    if until is not None:
        sys.exit(wait(path, until, timeout, pid))
    rows, seq = {}, []
    for line in open(path):
        try:
            o = json.loads(line, parse_float=str, parse_int=str)
        except ValueError:
            continue
        if not isinstance(o, dict) or index not in o or not all(k in o for k in keys):
            continue
        vals = [o[k] for k in keys]
        if null == "skip" and any(v is None for v in vals):
            continue
        row = [("null" if null == "keep" else "NaN") if v is None else str(v) for v in vals]
        rows[o[index]] = row
        seq.append((o[index], row))
    for i, vals in (seq if every else rows.items()):
        print(i, *vals)


if __name__ == "__main__":
    main(sys.argv[1:])
