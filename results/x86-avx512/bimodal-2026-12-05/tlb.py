"""LC-ResNet-56's gated code timed in half-second windows for a minute, each window beside the TLB-shootdown and
function-call interrupts /proc/interrupts counted on both CPUs meanwhile (DAMON's physical-address monitoring and
pageout scheme run on this VM: kdamond). Usage: python3 tlb.py ARTIFACT INPUTS.pt [WINDOWS, default 120]"""
import sys, time

import numpy as np

from two_speeds import held_out, warmed

def counts():
    rows = {}
    for line in open("/proc/interrupts"):
        parts = line.split()
        if parts and parts[0] in ("TLB:", "CAL:", "RES:", "LOC:"):
            rows[parts[0][:-1]] = int(parts[1]) + int(parts[2])
    return rows

xs = held_out(sys.argv[2])
m = warmed(sys.argv[1], xs)
windows = []
for w in range(int(sys.argv[3]) if len(sys.argv) > 3 else 120):
    before, start, ts, k = counts(), time.perf_counter(), [], 0
    while time.perf_counter() - start < 0.5:
        t = time.perf_counter(); m.run(xs[k % len(xs)]); ts.append(time.perf_counter() - t); k += 1
    after = counts()
    windows.append((np.median(ts) * 1e3, {key: after[key] - before[key] for key in after}))
slow = [w for w in windows if w[0] > 1.15]
fast = [w for w in windows if w[0] <= 1.15]
for name, group in (("fast", fast), ("slow", slow)):
    if group:
        mean = {key: np.mean([w[1][key] for w in group]) for key in group[0][1]}
        print(f"{name}: {len(group)} windows, median ms {np.median([w[0] for w in group]):.3f}; interrupts per window:",
              " ".join(f"{key} {value:.0f}" for key, value in mean.items()))
print("per window (ms, TLB):", " ".join(f"{ms:.2f}/{d['TLB']}" for ms, d in windows))
