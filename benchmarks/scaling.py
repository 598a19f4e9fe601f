"""Overhead and scaling: the pipeline against the same work done bare in one Python process.

Bare: the Spark transform, XGBoost training, test evaluation and a registry
write, called directly in one process on the same file. Pipeline:
`churn-pipeline run --data FILE`. For each size: ETL, training and total
times, peak memory and test accuracy; then the fitted exponent b of
time ~ rows^b between the sizes.

    python benchmarks/scaling.py --rows 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

from common import PeakMemory, run_pipeline, synthetic_file, write_figures


def bare(path, scratch) -> dict:
    """The pipeline's work without notebooks, kernels, state machine or staging."""
    import xgboost as xgb

    from churn_pipeline import config, etl, evaluation, training
    from churn_pipeline.registry import RegistryRecord, SqliteRegistry

    timings = {}
    with PeakMemory() as memory:
        started = time.perf_counter()
        spark = etl.spark_session("local[*]")
        etl.transform(spark, str(path), f"{scratch}/etl")
        spark.stop()
        timings["etl_seconds"] = time.perf_counter() - started
        t0 = time.perf_counter()
        hyperparameters = training.hyperparameters_from(config.DEFAULTS)
        booster, final = training.train(f"{scratch}/etl/train", f"{scratch}/etl/validation", hyperparameters)
        training.save_model_archive(booster, f"{scratch}/model/model.tar.gz")
        timings["train_seconds"] = time.perf_counter() - t0
        features, labels = training.read_channel(f"{scratch}/etl/test")
        result = evaluation.evaluate(labels, booster.predict(xgb.DMatrix(features)))
        SqliteRegistry(f"{scratch}/registry.db").register(RegistryRecord(
            run_id="bare", created_at="", environment="bench", algorithm="xgboost", model_name="bare",
            model_data_url=f"{scratch}/model/model.tar.gz", training_job_name="bare",
            metrics=training.metrics_by_name(training.final_metric_data_list(final, "")),
            hyperparameters=hyperparameters, data_uri=str(path), data_sha256="", threshold=0.9, status="approved"))
        timings["total_seconds"] = time.perf_counter() - started
    return {**{k: round(v, 2) for k, v in timings.items()}, "peak_rss_mib": memory.mib,
            "test_accuracy": round(result["accuracy"], 4)}


def exponent(sizes, values) -> float | None:
    """Least-squares slope of log(value) on log(rows)."""
    if len(sizes) < 2:
        return None
    xs, ys = [math.log(s) for s in sizes], [math.log(max(v, 1e-6)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs), 2)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    rows = []
    for size in args.rows:
        path = synthetic_file(size)
        with tempfile.TemporaryDirectory(prefix="churn-bare-") as scratch:
            # each bare run in its own process, so the JVM and memory of one size do not carry over
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(1) as pool:
                bare_figures = pool.apply(bare, (path, scratch))
        pipeline = run_pipeline(data=str(path), run_id=f"scale-{size}")
        rows.append({"rows": size, "bare": bare_figures,
                     "pipeline": {"total_seconds": pipeline["wall_seconds"], "peak_rss_mib": pipeline["peak_rss_mib"],
                                  "etl_seconds": pipeline["states"]["ETL"],
                                  "train_seconds": pipeline["states"]["Model Training"],
                                  "test_accuracy": pipeline["test_accuracy"]},
                     "overhead_ratio": round(pipeline["wall_seconds"] / bare_figures["total_seconds"], 2)})
        print(f"{size:>9} rows: bare {bare_figures['total_seconds']:.1f} s, pipeline {pipeline['wall_seconds']:.1f} s "
              f"(x{rows[-1]['overhead_ratio']})", file=sys.stderr)
    sizes = [r["rows"] for r in rows]
    figures = {"cpu_count": os.cpu_count(), "sizes": rows,
               "exponents": {"pipeline_total": exponent(sizes, [r["pipeline"]["total_seconds"] for r in rows]),
                             "bare_etl": exponent(sizes, [r["bare"]["etl_seconds"] for r in rows]),
                             "bare_train": exponent(sizes, [r["bare"]["train_seconds"] for r in rows])}}
    path = write_figures("scaling", figures, args.out)
    print(f"{'rows':>9} | {'bare ETL':>8} {'train':>7} {'total':>7} {'MiB':>6} | {'pipe ETL':>8} {'train':>7} "
          f"{'total':>7} {'MiB':>6} {'test acc':>8} | {'ratio':>5}")
    for r in rows:
        b, p = r["bare"], r["pipeline"]
        print(f"{r['rows']:>9} | {b['etl_seconds']:>8.1f} {b['train_seconds']:>7.1f} {b['total_seconds']:>7.1f} "
              f"{b['peak_rss_mib']:>6} | {p['etl_seconds']:>8.1f} {p['train_seconds']:>7.1f} {p['total_seconds']:>7.1f} "
              f"{p['peak_rss_mib']:>6} {p['test_accuracy']:>8.4f} | {r['overhead_ratio']:>5.2f}")
    print(f"fitted exponents (time ~ rows^b): {figures['exponents']} -> {path}")
    return figures


if __name__ == "__main__":
    main()
