"""The baseline's cost in the ETL: the whole ETL job (check, encode, split, write, baseline) against the
baseline's own Spark pass (figures per numeric column with percentiles; counts per categorical value)
over the same training rows, in one process and one Spark session.

    python benchmarks/baseline.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from common import bench_spark, synthetic_file, write_figures

from churn_pipeline.etl import job as etl_job


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from churn_pipeline.etl.baseline import baseline, training_rows
    from churn_pipeline.etl.source import Source
    from churn_pipeline.etl.split import cut_values, plan_segments
    from churn_pipeline.etl.validation import scan
    from churn_pipeline.s3 import s3_storage

    path = str(synthetic_file(args.rows))
    spark = bench_spark("local[*]")
    with tempfile.TemporaryDirectory(prefix="churn-baseline-") as scratch:
        started = time.perf_counter()
        manifest = etl_job.run_etl(spark, path, f"{scratch}/etl")
        etl_seconds = time.perf_counter() - started
        # the same training rows again, for the baseline's pass alone
        storage = s3_storage()
        lines = Source(spark, path, storage)
        summary, counts, _ = scan(lines, manifest["seed"])
        bounds = {"train": (0.0, 0.7), "validation": (0.7, 0.9), "test": (0.9, 1.0)}
        segments, quantiles = plan_segments(bounds, storage.size(path), etl_job.PART_BYTES)
        cuts, _ = cut_values(lines, manifest["seed"], counts, quantiles[:-1])
        train = [number for number, (key, _) in enumerate(segments) if key == "train"]
        started = time.perf_counter()
        statistics = baseline(
            training_rows(lines, manifest["seed"], cuts, train), *lines.format.monitored_columns(), summary.categories
        )
        baseline_seconds = time.perf_counter() - started
    spark.stop()
    figures = {
        "cpu_count": os.cpu_count(),
        "rows": args.rows,
        "training_rows": statistics["dataset"]["item_count"],
        "etl_seconds": round(etl_seconds, 1),
        "baseline_seconds": round(baseline_seconds, 1),
        "baseline_share_of_etl": round(baseline_seconds / etl_seconds, 3),
    }
    print(
        f"{args.rows:,} rows ({figures['training_rows']:,} training): the whole ETL {etl_seconds:.1f} s, "
        "the baseline's "
        f"pass alone {baseline_seconds:.1f} s ({baseline_seconds / etl_seconds:.0%} of the ETL, which includes it)"
    )
    write_figures("baseline", figures, args.out)
    return figures


if __name__ == "__main__":
    main()
