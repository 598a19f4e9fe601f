"""End to end: `churn-pipeline run` on synthetic data, a first run and the next iteration.

Each pair starts in a fresh local home (data generated, every resource created,
as on a new machine): the *first* run, then a *second* run in the same home with
other hyper-parameters, which reuses the first run's ETL output and the
state-machine definition already built. Wall time and peak memory (the largest
sum of resident memory over the whole process tree: CLI, kernels, Spark's JVM,
sampled every 50 ms) per run; the ratio second/first is measured within a pair.

    python benchmarks/e2e.py --runs 3 [--rows 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from common import run_pipeline, write_figures

SECOND_RUN = ["-p", "max_depth=4", "-p", "eta=0.3"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    pairs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="churn-bench-") as scratch:
            first = run_pipeline(rows=args.rows, run_id=f"first-{i}", scratch=scratch)
            second = run_pipeline(rows=args.rows, run_id=f"second-{i}", extra=SECOND_RUN, scratch=scratch)
        pairs.append(
            {"first": first, "second": second, "ratio": round(second["wall_seconds"] / first["wall_seconds"], 3)}
        )
    runs = [p[k] for p in pairs for k in ("first", "second")]
    figures = {
        "rows": args.rows,
        "pairs": pairs,
        "cpu_count": os.cpu_count(),
        "median_first_seconds": statistics.median(p["first"]["wall_seconds"] for p in pairs),
        "median_second_seconds": statistics.median(p["second"]["wall_seconds"] for p in pairs),
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    }
    path = write_figures("e2e", figures, args.out)
    print(
        f"end to end: {args.rows} synthetic rows, {args.runs} pairs (first run, then {' '.join(SECOND_RUN)} "
        f"in the same home), {os.cpu_count()} cores"
    )
    print(
        f"{'pair':>4} {'run':>6} {'wall s':>7} {'peak MiB':>9} {'nb01 s':>7} {'nb02 s':>7} {'nb03 s':>7} "
        f"{'ETL s':>6} {'train s':>7} {'ETL':>7}"
    )
    for i, pair in enumerate(pairs):
        for kind in ("first", "second"):
            r = pair[kind]
            nb = list(r["notebooks"].values())
            etl = r["states"].get("ETL")
            print(
                f"{i:>4} {kind:>6} {r['wall_seconds']:>7.1f} {r['peak_rss_mib']:>9} {nb[0]:>7.1f} {nb[1]:>7.1f} "
                f"{nb[2]:>7.1f} {'-' if etl is None else f'{etl:.1f}':>6} {r['states']['Model Training']:>7.2f} "
                f"{'reused' if r['etl_reused'] else 'ran':>7}"
            )
        print(f"{i:>4} second/first = {pair['ratio']:.2f}")
    print(
        f"median first {figures['median_first_seconds']:.1f} s, median second "
        f"{figures['median_second_seconds']:.1f} s, median ratio {figures['median_ratio']:.2f}, "
        f"max peak {figures['max_peak_rss_mib']} MiB -> {path}"
    )
    return figures


if __name__ == "__main__":
    main()
