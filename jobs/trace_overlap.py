#!/usr/bin/env python3
"""How much of the gradient allreduce ran while the main thread computed the backward, and how much of the SyncBN
reductions' time the main thread spent waiting.

usage: jobs/trace_overlap.py RUN_DIR/trace-rank*.json
Reads the Chrome traces `slimclr train --set run.trace=true` writes (core/trace.h: complete events, ts/dur in us,
tid 0 = main, tid 1 = comm, tid 2 = the SyncBN reductions in flight). Per rank, skipping the first step (warm-up:
everything before the end of the first "optimizer" span):
- gradient buckets: the allreduce time (events "allreduce b<i> ...", either thread), the part of it inside the
  main thread's backward ("backward full", sequential schedule; "backward wavefront"), and the part inside its
  wait ("wait allreduce");
- SyncBN: per step, the time the main thread waited ("syncbn wait", exposed) against the time during which at least
  one reduction was in flight (the union of the "syncbn in flight" spans, start to observed completion; the same
  spans when they block, the sequential schedule);
  overlap = 1 - exposed / in flight, and the spread of the per-step exposed time.
Prints lines per rank; exit 2 when a file has no allreduce events after the first step.
"""
import json
import sys


def intersect(a0, a1, spans):
    """length of [a0, a1) covered by the sorted, non-overlapping spans"""
    s = 0.0
    for b0, b1 in spans:
        if b1 <= a0:
            continue
        if b0 >= a1:
            break
        s += min(a1, b1) - max(a0, b0)
    return s


def merged(spans):
    out = []
    for b0, b1 in sorted(spans):
        if out and b0 <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b1)
        else:
            out.append([b0, b1])
    return out


def analyse(path):
    with open(path) as f:
        ev = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    opt_ends = sorted(e["ts"] + e["dur"] for e in ev if e["name"] == "optimizer" and e["tid"] == 0)
    t_skip = opt_ends[0] if opt_ends else 0.0
    ar = [(e["ts"], e["ts"] + e["dur"], e["tid"]) for e in ev if e["name"].startswith("allreduce b") and e["ts"] >= t_skip]
    bwd = merged([(e["ts"], e["ts"] + e["dur"]) for e in ev
                  if e["name"] in ("backward full", "backward wavefront") and e["tid"] == 0])
    wait = merged([(e["ts"], e["ts"] + e["dur"]) for e in ev if e["name"] == "wait allreduce" and e["tid"] == 0])
    tot = sum(a1 - a0 for a0, a1, _ in ar)
    in_bwd = sum(intersect(a0, a1, bwd) for a0, a1, _ in ar)
    in_wait = sum(intersect(a0, a1, wait) for a0, a1, _ in ar)
    on_comm = sum(1 for *_, tid in ar if tid == 1)
    # SyncBN per step (steps end at the optimizer spans' ends)
    steps = []
    for a, b in zip(opt_ends, opt_ends[1:]):
        ex = sum(e["dur"] for e in ev if e["name"] == "syncbn wait" and e["tid"] == 0 and a <= e["ts"] < b)
        fl = sum(y - x for x, y in merged([(e["ts"], e["ts"] + e["dur"]) for e in ev
                                            if e["name"] == "syncbn in flight" and a <= e["ts"] < b]))
        steps.append((ex, fl))
    return len(ar), on_comm, tot, in_bwd, in_wait, steps


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: jobs/trace_overlap.py RUN_DIR/trace-rank*.json")
    rc = 0
    for p in sys.argv[1:]:
        try:
            n, on_comm, tot, in_bwd, in_wait, steps = analyse(p)
        except (OSError, ValueError, KeyError) as e:
            print(f"trace_overlap: {p}: cannot read a trace: {e}", file=sys.stderr)
            rc = 2
            continue
        if n == 0 or tot <= 0:
            print(f"trace_overlap: {p}: no allreduce events after the first step (1 rank, or run.trace off?)",
                  file=sys.stderr)
            rc = 2
            continue
        print(f"{p}: {n} bucket allreduces ({on_comm} on the comm thread) after the first step, "
              f"{tot / 1e3:.1f} ms in all; inside 'backward full': {100 * in_bwd / tot:.1f}%, "
              f"inside the main thread's wait: {100 * in_wait / tot:.1f}%")
        if steps and sum(fl for _, fl in steps) > 0:
            ex = [e / 1e3 for e, _ in steps]
            fl = sum(f for _, f in steps) / 1e3 / len(steps)
            mean = sum(ex) / len(ex)
            print(f"{p}: SyncBN over {len(steps)} step(s): exposed {mean:.1f} ms/step (min {min(ex):.1f}, max "
                  f"{max(ex):.1f}), in flight {fl:.1f} ms/step, overlap {max(0.0, 100 * (1 - mean / fl)):.1f}%")
    sys.exit(rc)


if __name__ == "__main__":
    main()
