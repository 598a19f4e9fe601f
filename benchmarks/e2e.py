"""End to end: `churn-pipeline run` on synthetic data, wall time and peak memory, per notebook and state.

Each run gets a fresh local home (data generated, every resource created, as on
a new machine); peak memory is the largest sum of resident memory over the
whole process tree (CLI, kernels, Spark's JVM), sampled every 50 ms.

    python benchmarks/e2e.py --runs 3 [--rows 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics

from common import run_pipeline, write_figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    runs = [run_pipeline(rows=args.rows, run_id=f"bench-{i}") for i in range(args.runs)]
    figures = {"rows": args.rows, "runs": runs, "cpu_count": os.cpu_count(),
               "median_wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
               "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}
    path = write_figures("e2e", figures, args.out)
    print(f"end to end: {args.rows} synthetic rows, {args.runs} runs, {os.cpu_count()} cores")
    print(f"{'run':>4} {'wall s':>7} {'peak MiB':>9} {'nb01 s':>7} {'nb02 s':>7} {'nb03 s':>7}  "
          + "  ".join(f"{s[:12]:>12}" for s in runs[0]["states"]))
    for i, r in enumerate(runs):
        nb = list(r["notebooks"].values())
        print(f"{i:>4} {r['wall_seconds']:>7.1f} {r['peak_rss_mib']:>9} {nb[0]:>7.1f} {nb[1]:>7.1f} {nb[2]:>7.1f}  "
              + "  ".join(f"{v:>12.2f}" for v in r["states"].values()))
    print(f"median wall {figures['median_wall_seconds']:.1f} s, max peak {figures['max_peak_rss_mib']} MiB -> {path}")
    return figures


if __name__ == "__main__":
    main()
