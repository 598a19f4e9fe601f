"""End to end: `churn-pipeline run` on synthetic data, a first run and the next iterations, with and
without the warm Spark worker.

Each round starts in fresh local homes (data generated, every resource created, as on a new machine).
Without the worker (each ETL job run starts its own Spark): a *first* run, then a *second* run in the
same home with other hyper-parameters, which reuses the first run's ETL output. With the worker (the
home's own, started by the first run while its first notebooks run): the same two, then an *edited*
run whose ETL runs again (``reuse_etl=false``: as after an edit of the ETL code, the definition
unchanged), on the warm worker. Wall time and peak memory (the largest sum of resident memory over the
whole process tree: CLI, kernels, Spark's JVM, the worker; sampled every 50 ms) per run; the ratios
are measured within a round.

    python benchmarks/e2e.py --runs 3 [--rows 5000] [--only worker] [--edit-pause 60]

``--edit-pause``: seconds between the second and the edited run with the worker, as a person takes to
edit the ETL (an idle worker warms up meanwhile); by default the runs follow one another at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from common import env_idle, run_pipeline, write_figures

SECOND_RUN = ["-p", "max_depth=4", "-p", "eta=0.3"]
#: the ETL runs again with the definition unchanged, as after an edit of the ETL code (which changes only
#: the execution input's script and package, and so the ETL key); another split seed would also change
#: the definition (the split's settings are in it) and add its SDK build to the run
EDITED_RUN = ["-p", "reuse_etl=false"]


def _round(rows: int, index: int, only: str | None, edit_pause: float = 0.0) -> dict:
    found: dict = {}
    if only != "worker":
        with tempfile.TemporaryDirectory(prefix="churn-bench-") as scratch:
            cold = run_pipeline(rows=rows, run_id=f"first-{index}", scratch=scratch, spark_worker=False)
            reused = run_pipeline(
                rows=rows, run_id=f"second-{index}", extra=SECOND_RUN, scratch=scratch, spark_worker=False
            )
        found["without worker"] = {"first": cold, "second": reused}
    with tempfile.TemporaryDirectory(prefix="churn-bench-") as scratch:
        runs = {}
        for kind, extra in (("first", []), ("second", SECOND_RUN), ("edited", EDITED_RUN)):
            if kind == "edited":
                time.sleep(edit_pause)
            runs[kind] = run_pipeline(rows=rows, run_id=f"{kind}-{index}", extra=extra, scratch=scratch)
    found["with worker"] = runs
    if "without worker" in found:
        cold = found["without worker"]["first"]
        found["ratios"] = {
            "first run, worker / none": runs["first"]["wall_seconds"] / cold["wall_seconds"],
            "ETL state, warm worker / cold": runs["edited"]["states"]["ETL"] / cold["states"]["ETL"],
            "edited run / cold first run": runs["edited"]["wall_seconds"] / cold["wall_seconds"],
            "second / first, none": found["without worker"]["second"]["wall_seconds"] / cold["wall_seconds"],
        }
    return found


def _print_round(index: int, found: dict) -> None:
    for mode in ("without worker", "with worker"):
        for kind, r in found.get(mode, {}).items():
            nb = list(r["notebooks"].values())
            etl = r["states"].get("ETL")
            print(
                f"{index:>5} {mode:>14} {kind:>6} {r['wall_seconds']:>7.1f} {r['peak_rss_mib']:>9} {nb[0]:>7.1f} "
                f"{nb[1]:>7.1f} {nb[2]:>7.1f} {'-' if etl is None else f'{etl:.1f}':>6} "
                f"{r['states']['Model Training']:>7.2f} {'reused' if r['etl_reused'] else 'ran':>7}"
            )
    for name, ratio in found.get("ratios", {}).items():
        print(f"{index:>5} {name}: {ratio:.2f}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--only", choices=["worker"], help="only the runs with the worker")
    parser.add_argument("--edit-pause", type=float, default=0.0, help="seconds before the edited run")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if not 0 <= args.edit_pause < float(env_idle(True)):  # the worker would exit first: a cold edited run
        parser.error(f"--edit-pause must be 0 or more and under the worker's idle time, {env_idle(True)} s")
    rounds = [_round(args.rows, i, args.only, args.edit_pause) for i in range(args.runs)]
    runs = [r for found in rounds for mode in ("without worker", "with worker") for r in found.get(mode, {}).values()]
    figures = {
        "rows": args.rows,
        "edit_pause_seconds": args.edit_pause,
        "rounds": rounds,
        "cpu_count": os.cpu_count(),
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    }
    if args.only is None:
        figures["median_ratios"] = {
            name: statistics.median(found["ratios"][name] for found in rounds) for name in rounds[0]["ratios"]
        }
    path = write_figures("e2e", figures, args.out)
    print(
        f"end to end: {args.rows} synthetic rows, {args.runs} rounds in fresh homes, {os.cpu_count()} cores; "
        f"second: {' '.join(SECOND_RUN)}, edited: {' '.join(EDITED_RUN)} ({args.edit_pause:.0f} s after the second)"
    )
    print(
        f"{'round':>5} {'mode':>14} {'run':>6} {'wall s':>7} {'peak MiB':>9} {'nb01 s':>7} {'nb02 s':>7} "
        f"{'nb03 s':>7} {'ETL s':>6} {'train s':>7} {'ETL':>7}"
    )
    for index, found in enumerate(rounds):
        _print_round(index, found)
    for name, ratio in figures.get("median_ratios", {}).items():
        print(f"median {name}: {ratio:.2f}")
    print(f"max peak {figures['max_peak_rss_mib']} MiB -> {path}")
    return figures


if __name__ == "__main__":
    main()
