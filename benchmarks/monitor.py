"""Monitoring at scale: a `score` output of ``--rows`` customers, with outcomes, counted by the monitor's
Spark passes (drift, score drift, outcome counts) against the ETL's validation pass over the same rows,
each in a process of its own (JVM start included), in the same run: ``--rounds`` rounds, each part once
per round in a rotating order, medians and each round's ratios reported.

A model is trained on ``--training-rows`` synthetic customers; ``--rows`` others (seed 43) are scored by
`churn-pipeline score` with the default control group, and their outcomes simulated (offers prevent 30 %
of churn). The monitor's process counts everything notebook 04 needs; the validation process checks
every row as the ETL's first pass does.

    python benchmarks/monitor.py [--rows 10000000] [--training-rows 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median as statistics_median

from common import bench_spark, measure_process, synthetic_file, write_figures
from endpoint import train_model
from score import score_command


def count(window_path: str, statistics_path: str, scores_path: str, outcomes: str) -> None:
    """The monitor's passes over one window (run in a process of its own)."""
    from churn_pipeline import decisions
    from churn_pipeline.etl import monitor_pass

    spark = bench_spark("local[*]")
    window = {"kind": "scores", **decisions.read_window(window_path)}
    statistics = json.loads(Path(statistics_path).read_text())
    score_statistics = json.loads(Path(scores_path).read_text())
    monitor_pass.count_windows(spark, [window], statistics, score_statistics, "" if outcomes == "-" else outcomes)


def validate(path: str) -> None:
    from churn_pipeline.etl.validation import validate as check

    check(bench_spark("local[*]"), path)


def score_statistics(model: Path, test: Path) -> dict:
    from churn_pipeline import evaluation, monitoring, training

    booster, tally = training.load_model_archive(model), evaluation.ScoreTally()
    for features, labels in training.iter_channel(test):
        tally.add(labels, booster.inplace_predict(features))
    feature = monitoring.numeric_feature("score", tally.score_figures(monitoring.SKETCH_QUANTILES))
    return monitoring.statistics_document(int(tally.counts.sum()), [feature])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--training-rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="each part measured this many times, alternated")
    parser.add_argument("--out")
    parser.add_argument("--count", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--validate", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.count:
        return count(*args.count)
    if args.validate:
        return validate(args.validate)
    from churn_pipeline import synthetic

    customers = synthetic_file(args.rows, seed=43)
    me = [sys.executable, str(Path(__file__).resolve())]
    with tempfile.TemporaryDirectory(prefix="churn-monitor-") as scratch:
        scratch = Path(scratch)
        model, manifest, test = train_model(scratch, args.training_rows)
        scored = scratch / "scores.csv"
        score = measure_process(score_command(model, manifest, customers, scored, "--date", "2026-11-29"), "score")
        started = time.perf_counter()
        outcomes = synthetic.simulate_outcomes(scored, scratch / "outcomes.csv", 0.3, 5)
        simulate_seconds = time.perf_counter() - started
        (scratch / "scores-baseline.json").write_text(json.dumps(score_statistics(model, test)))
        statistics = scratch / "etl" / "baseline" / "statistics.json"
        count_command = [*me, "--count", str(scored), str(statistics), str(scratch / "scores-baseline.json")]
        commands = {
            "monitor": [*count_command, str(outcomes.path)],
            "monitor_without_outcomes": [*count_command, "-"],
            "validation": [*me, "--validate", str(customers)],
        }
        rounds = []
        for number in range(args.rounds):  # each round in another order: no part always runs first
            first = number % len(commands)
            names = list(commands)[first:] + list(commands)[:first]
            measured = {name: measure_process(commands[name], f"{name} (round {number + 1})") for name in names}
            rounds.append(measured)
    median = {name: statistics_median([r[name]["wall_seconds"] for r in rounds]) for name in commands}
    figures = {
        "cpu_count": os.cpu_count(),
        "rows": args.rows,
        "score": score,
        "simulate_outcomes_seconds": round(simulate_seconds, 1),
        "rounds": rounds,
        **{name: rounds[-1][name] for name in commands},
        "median_seconds": median,
        "ratios_by_round": [
            {
                k: round(r[k]["wall_seconds"] / r["validation"]["wall_seconds"], 2)
                for k in ("monitor", "monitor_without_outcomes")
            }
            for r in rounds
        ],
        "monitor_over_validation": round(median["monitor"] / median["validation"], 2),
        "without_outcomes_over_validation": round(median["monitor_without_outcomes"] / median["validation"], 2),
        "largest_process_mib": max(r[k]["largest_process_mib"] for r in rounds for k in commands),
    }
    print(
        f"{args.rows:,} scored customers, {args.rounds} round(s), median wall time: the monitor's passes with "
        f"outcomes {median['monitor']:.1f} s, without (drift and data quality) "
        f"{median['monitor_without_outcomes']:.1f} s, "
        f"the ETL's validation pass {median['validation']:.1f} s: ratios {figures['monitor_over_validation']:.2f} / "
        f"{figures['without_outcomes_over_validation']:.2f} (by round {figures['ratios_by_round']}); largest "
        f"process {figures['largest_process_mib']:,} MiB"
    )
    write_figures("monitor", figures, args.out)
    return figures


if __name__ == "__main__":
    main()
