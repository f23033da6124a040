#!/usr/bin/env python3
"""Compares the named intermediates (WO_TAP) of two backends, step by step and layer by layer,
and says where they first part. For gpt-oss it also reads the router taps: where the chosen
experts differ it prints the reference backend's margin between its k-th and (k+1)-th router
logit, so a near-tie flip (an unavoidable consequence of a different summation order) is told
apart from a wrong kernel.

Usage: compare_taps.py REF_DIR OTHER_DIR [--rel 1e-4]   (needs numpy)
"""
import argparse
import glob
import os
import re

import numpy as np


def load(d):
    taps = {}
    for f in glob.glob(os.path.join(d, "*.npy")):
        m = re.match(r"(\d+)-(.+)-(-?\d+)\.npy$", os.path.basename(f))
        if m:
            taps[(int(m.group(1)), m.group(2), int(m.group(3)))] = f
    return taps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("other")
    ap.add_argument("--rel", type=float, default=1e-4)
    a = ap.parse_args()
    ra, rb = load(a.ref), load(a.other)
    keys = sorted(set(ra) & set(rb), key=lambda k: (k[0], k[2] if k[2] >= 0 else 1 << 30, k[1]))
    print(f"{len(keys)} taps in both ({len(ra)} in {a.ref}, {len(rb)} in {a.other})")
    worst_by_step = {}
    flips = []
    first_bad = None
    for key in keys:
        step, name, layer = key
        x, y = np.load(ra[key]), np.load(rb[key])
        if x.shape != y.shape:
            print(f"step {step} {name} layer {layer}: shapes {x.shape} vs {y.shape}")
            continue
        if name == "expert_ids":
            lx = np.load(ra[(step, "router", layer)]) if (step, "router", layer) in ra else None
            k = x.shape[1]
            for t in range(x.shape[0]):
                if set(x[t]) != set(y[t]):
                    margin = float("nan")
                    if lx is not None:
                        s = np.sort(lx[t])[::-1]
                        margin = float(s[k - 1] - s[k])
                    flips.append((step, layer, t, sorted(x[t].tolist()), sorted(y[t].tolist()), margin))
            continue
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        den = np.sqrt((x64 ** 2).sum()) or 1.0
        rel = float(np.sqrt(((x64 - y64) ** 2).sum()) / den)
        w = worst_by_step.get(step, (0.0, None))
        if rel > w[0]:
            worst_by_step[step] = (rel, (name, layer))
        if rel > a.rel and first_bad is None:
            first_bad = (step, name, layer, rel)
    print("step  worst rel L2  where")
    for step in sorted(worst_by_step):
        rel, where = worst_by_step[step]
        print(f"{step:4d}  {rel:11.3g}  {where[0]} layer {where[1]}")
    if first_bad:
        print(f"first tap beyond {a.rel:g}: step {first_bad[0]} {first_bad[1]} layer {first_bad[2]} rel {first_bad[3]:.3g}")
    else:
        print(f"no tap beyond {a.rel:g}")
    for step, layer, t, ex, ey, margin in flips[:20]:
        print(f"expert flip: step {step} layer {layer} token {t}: ref {ex} other {ey}; "
              f"ref margin k-th vs (k+1)-th router logit {margin:.3g}")
    print(f"{len(flips)} token-layer expert choices differ")


if __name__ == "__main__":
    main()
