"""Scale: the pipeline against its floor, the same work done bare in one Python process.

Bare: the Spark job (every row validated, encoded, split and written as
parts), then XGBoost training alone on those parts (the pipeline's streaming
reader, in process), then the test evaluation. Pipeline: `churn-pipeline run
--data FILE`, notebooks, state machine and all. For each size: ETL, training
and total times, notebook 01's time, peak memory of the process tree and of
its largest process, and test accuracy; at up to 1M rows also the accuracy of
training on the channels loaded whole (an in-memory DMatrix); then the fitted
exponent b of time ~ rows^b across the sizes.

    python benchmarks/scaling.py --rows 1000000 3000000 10000000
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

from common import PeakMemory, bench_spark, run_pipeline, synthetic_file, write_figures

from churn_pipeline.etl import job as etl_job

#: the in-memory comparison loads whole channels: only up to this size
IN_MEMORY_MAX_ROWS = 1_000_000


def bare(path, scratch, rows: int) -> dict:
    """The pipeline's work without notebooks, kernels, state machine, staging or processes of its own."""
    import xgboost as xgb

    from churn_pipeline import config, evaluation, training

    timings = {}
    hyperparameters = training.hyperparameters_from(config.DEFAULTS)
    with PeakMemory() as memory:
        started = time.perf_counter()
        spark = bench_spark("local[*]")
        etl_job.run_etl(spark, str(path), f"{scratch}/etl")
        spark.stop()
        timings["etl_seconds"] = time.perf_counter() - started
        t0 = time.perf_counter()
        booster, _ = training.train(f"{scratch}/etl/train", f"{scratch}/etl/validation", hyperparameters)
        timings["train_seconds"] = time.perf_counter() - t0
        tally = evaluation.ScoreTally()
        for features, labels in training.iter_channel(f"{scratch}/etl/test"):
            tally.add(labels, booster.inplace_predict(features))
        timings["total_seconds"] = time.perf_counter() - started
    figures = {
        **{k: round(v, 2) for k, v in timings.items()},
        "peak_rss_mib": memory.mib,
        "largest_process_mib": round(memory.largest / 2**20),
        "test_accuracy": round(tally.result()["accuracy"], 4),
    }
    if rows <= IN_MEMORY_MAX_ROWS:  # the same training on channels loaded whole, for the accuracy
        x_train, y_train = training.read_channel(f"{scratch}/etl/train")
        x_val, y_val = training.read_channel(f"{scratch}/etl/validation")
        x_test, y_test = training.read_channel(f"{scratch}/etl/test")
        t0 = time.perf_counter()
        whole = xgb.train(
            training._booster_params(hyperparameters),
            xgb.DMatrix(x_train, label=y_train),
            num_boost_round=int(hyperparameters["num_round"]),
            evals=[(xgb.DMatrix(x_val, label=y_val), "validation")],
            verbose_eval=False,
        )
        figures["in_memory_train_seconds"] = round(time.perf_counter() - t0, 2)
        figures["in_memory_test_accuracy"] = round(
            evaluation.evaluate(y_test, whole.inplace_predict(x_test))["accuracy"], 4
        )
    return figures


def exponent(sizes, values) -> float | None:
    """Least-squares slope of log(value) on log(rows)."""
    if len(sizes) < 2:
        return None
    xs, ys = [math.log(s) for s in sizes], [math.log(max(v, 1e-6)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs), 2)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    rows = []
    for size in args.rows:
        path = synthetic_file(size)
        with tempfile.TemporaryDirectory(prefix="churn-bare-") as scratch:
            # each bare run in its own process, so the JVM and memory of one size do not carry over
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(1) as pool:
                bare_figures = pool.apply(bare, (path, scratch, size))
        pipeline = run_pipeline(data=str(path), run_id=f"scale-{size}")
        floor = bare_figures["etl_seconds"] + bare_figures["train_seconds"]
        rows.append(
            {
                "rows": size,
                "bare": bare_figures,
                "pipeline": {
                    "total_seconds": pipeline["wall_seconds"],
                    "peak_rss_mib": pipeline["peak_rss_mib"],
                    "largest_process_mib": pipeline["largest_process_mib"],
                    "largest_process": pipeline["largest_process"],
                    "notebook_01_seconds": pipeline["notebooks"]["01-etl-setup.ipynb"],
                    "etl_seconds": pipeline["states"]["ETL"],
                    "train_seconds": pipeline["states"]["Model Training"],
                    "test_accuracy": pipeline["test_accuracy"],
                },
                "ratio_to_floor": round(pipeline["wall_seconds"] / floor, 2),
            }
        )
        print(
            f"{size:>9} rows: bare ETL + training {floor:.1f} s, pipeline {pipeline['wall_seconds']:.1f} s "
            f"(x{rows[-1]['ratio_to_floor']})",
            file=sys.stderr,
            flush=True,
        )
    sizes = [r["rows"] for r in rows]
    figures = {
        "cpu_count": os.cpu_count(),
        "sizes": rows,
        "exponents": {
            "pipeline_total": exponent(sizes, [r["pipeline"]["total_seconds"] for r in rows]),
            "bare_etl": exponent(sizes, [r["bare"]["etl_seconds"] for r in rows]),
            "bare_train": exponent(sizes, [r["bare"]["train_seconds"] for r in rows]),
        },
    }
    path = write_figures("scaling", figures, args.out)
    print(
        f"{'rows':>9} | {'bare ETL':>8} {'train':>7} {'MiB':>6} {'acc':>6} {'in-mem':>6} | {'nb01':>5} "
        f"{'pipe ETL':>8} {'train':>7} {'total':>7} {'tree MiB':>8} {'max MiB':>7} {'acc':>6} | {'ratio':>5}"
    )
    for r in rows:
        b, p = r["bare"], r["pipeline"]
        in_memory = f"{b['in_memory_test_accuracy']:.4f}" if "in_memory_test_accuracy" in b else "-"
        print(
            f"{r['rows']:>9} | {b['etl_seconds']:>8.1f} {b['train_seconds']:>7.1f} {b['largest_process_mib']:>6} "
            f"{b['test_accuracy']:.4f} {in_memory:>6} | {p['notebook_01_seconds']:>5.1f} {p['etl_seconds']:>8.1f} "
            f"{p['train_seconds']:>7.1f} {p['total_seconds']:>7.1f} {p['peak_rss_mib']:>8} "
            f"{p['largest_process_mib']:>7} {p['test_accuracy']:.4f} | {r['ratio_to_floor']:>5.2f}"
        )
    print(f"largest process per size: {[r['pipeline']['largest_process'] for r in rows]}")
    print(f"fitted exponents (time ~ rows^b): {figures['exponents']} -> {path}")
    return figures


if __name__ == "__main__":
    main()
