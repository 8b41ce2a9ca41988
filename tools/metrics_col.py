#!/usr/bin/env python3
"""Columns of a run's metrics.jsonl, the one reader of the shell scripts (tests/sh/common.inc, tools/*.sh).

usage: metrics_col.py FILE KEY... [--index KEY] [--null keep|skip|NaN] [--all]
Prints "index value..." for each line that has the index key (default "step") and every KEY, one row per index
value in order of first appearance (a resumed run logs a step again: the last line wins; --all: every line, repeats
included), numbers exactly as written. A JSON null prints as "null" (keep), drops the row (skip) or prints "NaN" (for gnuplot). Torn or
malformed lines are skipped."""
import json
import sys


def main(argv):
    index, null, keys, path, every = "step", "keep", [], None, False
    it = iter(argv)
    for a in it:
        if a == "--index":
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
