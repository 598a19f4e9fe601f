"""Batch scoring: `churn-pipeline score` on synthetic customers, with and without reasons.

A model is trained on synthetic data (the pipeline's default hyper-parameters);
the customers to score are another seeded synthetic file. Each point is one
`churn-pipeline score` process (Spark's JVM and Python workers included in its
memory). The floor is XGBoost alone on the same rows, in this process, after the
features are in memory: prediction, and prediction with SHAP contributions.

    python benchmarks/score.py [--rows 1000000] [--explain 0 3] [--training-rows 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import measure_process, synthetic_file, write_figures
from endpoint import train_model

#: rows of the in-process floor (it holds the matrix in memory)
FLOOR_ROWS = 200_000


def score_command(model: Path, manifest: Path, data: Path, out: Path, *options: str) -> list[str]:
    """`churn-pipeline score` of ``data`` with a model file and its manifest, in a process of its own."""
    command = [sys.executable, "-m", "churn_pipeline.cli", "score", "--model", str(model), "--manifest"]
    return [*command, str(manifest), "--data", str(data), "--out", str(out), *options]


def score_once(model: Path, manifest: Path, data: Path, out: Path, explain: int) -> dict:
    command = score_command(model, manifest, data, out, "--explain", str(explain), "--overwrite")
    measured = measure_process(command, f"score --explain {explain}")
    return {"explain": explain, **measured, "output_mib": round(out.stat().st_size / 2**20, 1)}


def floor(model: Path, manifest: Path, data: Path, rows: int) -> dict:
    """XGBoost alone on ``rows`` encoded rows (one thread per core): predict, and predict with contributions."""
    import csv
    import json

    from churn_pipeline import explain, features, training

    spec = json.loads(manifest.read_text())
    with open(data, newline="") as handle:
        records = [r for _, r in zip(range(rows), csv.DictReader(handle))]
    matrix = features.encode_records(features.encoding_of(spec), records)
    booster = training.load_model_archive(model)
    t0 = time.perf_counter()
    booster.inplace_predict(matrix)
    predict = time.perf_counter() - t0
    t0 = time.perf_counter()
    explain.contributions(booster, matrix, spec)
    contributions = time.perf_counter() - t0
    return {
        "rows": rows,
        "predict_rows_per_s": round(rows / predict),
        "contribs_rows_per_s": round(rows / contributions),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--explain", type=int, nargs="+", default=[0, 3])
    parser.add_argument("--training-rows", type=int, default=5000)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    customers = synthetic_file(args.rows, seed=99)
    results = []
    with tempfile.TemporaryDirectory(prefix="churn-score-") as scratch:
        model, manifest, _ = train_model(Path(scratch), args.training_rows)
        ceiling = floor(model, manifest, customers, min(args.rows, FLOOR_ROWS))
        for explain in args.explain:
            point = score_once(model, manifest, customers, Path(scratch) / "scores.csv", explain)
            point["rows_per_s"] = round(args.rows / point["wall_seconds"])
            results.append(point)
    figures = {"cpu_count": os.cpu_count(), "rows": args.rows, "results": results, "floor": ceiling}
    path = write_figures("score", figures, args.out)
    print(f"score: {args.rows:,} customers, {os.cpu_count()} cores; one `churn-pipeline score` process per line")
    print(f"{'explain':>7} {'wall s':>8} {'rows/s':>9} {'peak MiB':>9} {'largest MiB':>12}  largest process")
    for r in results:
        print(
            f"{r['explain']:>7} {r['wall_seconds']:>8.1f} {r['rows_per_s']:>9,} {r['peak_rss_mib']:>9,} "
            f"{r['largest_process_mib']:>12,}  {r['largest_process']}"
        )
    print(
        f"floor (XGBoost alone, {ceiling['rows']:,} rows in memory, all cores): predict "
        f"{ceiling['predict_rows_per_s']:,} rows/s, with contributions {ceiling['contribs_rows_per_s']:,} rows/s"
    )
    print(f"-> {path}")
    return figures


if __name__ == "__main__":
    main()
