#!/usr/bin/env python3
"""Summarises Nsight Compute's per-SASS-instruction source counters (scripts/gpu-check NCU_SRC=1:
`ncu --import src.ncu-rep --page source --print-source sass --csv`): per kernel, the warp
instructions executed, the stall samples, the instructions with the most samples, and those with
the most excess shared-memory wavefronts and global sectors (bank conflicts, misaligned loads).

Usage: ncu_stalls.py src-sass.csv[.gz] [--top 10]   (standard library only)
"""
import argparse
import csv
import gzip
import io
import re


def sections(text):
    """(kernel name, rows as dicts) for each kernel of the export, first instance only."""
    seen = set()
    for part in re.split(r'\n(?="Kernel Name")', text):
        lines = part.split("\n")
        name = lines[0].split('","')[-1].strip('",') if lines[0].startswith('"Kernel Name"') else ""
        rows = list(csv.reader(io.StringIO("\n".join(lines[1:]))))
        if not name or len(rows) < 2 or name in seen:
            continue
        seen.add(name)
        head = rows[0]
        yield name, [dict(zip(head, r)) for r in rows[1:] if len(r) == len(head)]


def num(row, key):
    try:
        return float(row.get(key, 0) or 0)
    except ValueError:
        return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    opener = gzip.open if a.csv.endswith(".gz") else open
    with opener(a.csv, "rt") as f:
        text = f.read()
    stall = "Warp Stall Sampling (All Samples)"
    for name, rows in sections(text):
        samples = sum(num(r, stall) for r in rows)
        instr = sum(num(r, "Instructions Executed") for r in rows)
        if samples == 0:
            continue
        short = re.sub(r"wo::cuda::(<unnamed>::)?", "", name)[:100]
        print(f"== {short}: {instr:,.0f} warp instructions, {samples:,.0f} stall samples")
        for r in sorted(rows, key=lambda r: -num(r, stall))[: a.top]:
            print(f"  {100 * num(r, stall) / samples:5.1f}%  {r.get('Source', '').strip()[:80]}")
        for key, label in (("L1 Wavefronts Shared Excessive", "shared wavefronts"),
                           ("L2 Theoretical Sectors Global Excessive", "global sectors")):
            worst = [r for r in sorted(rows, key=lambda r: -num(r, key))[:3] if num(r, key) > 0]
            for r in worst:
                print(f"  excess {label} {num(r, key):,.0f}: {r.get('Source', '').strip()[:70]}")


if __name__ == "__main__":
    main()
