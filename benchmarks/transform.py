"""Batch Transform mini-batches: how long one mini-batch of the scoring script takes on one core.

The container runs one model-server worker per vCPU with ``OMP_NUM_THREADS=1``
and ends a request after ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` seconds; a
mini-batch is at most ``MaxPayloadInMB`` of encoded rows. This measures the
scoring script's own path (``csv_input`` -> ``transform_predict`` ->
``transform_output``) on one thread, for the default model and a large one
(``--large-rounds`` x ``--large-depth``), without and with every reason
(``--explain`` = the model's raw columns), and prints rows per second, bytes
per row and the seconds a mini-batch of the chosen payload takes against the
timeout (``container.transform_settings``).

    python benchmarks/transform.py [--training-rows 50000] [--batch-rows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common import write_figures
from endpoint import train_model


def measure(booster, manifest: dict, body: str, explain: int) -> float:
    """Seconds for one mini-batch ``body`` through the scoring script's functions."""
    from churn_pipeline import container

    model = container.TransformModel(booster, manifest, 0.5, explain)
    started = time.perf_counter()
    lines = container.transform_predict(container.csv_input(body, "text/csv"), model)
    container.transform_output(lines, "text/csv")
    return time.perf_counter() - started


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training-rows", type=int, default=50000)
    parser.add_argument("--batch-rows", type=int, default=20000)
    parser.add_argument("--large-rounds", type=int, default=1000)
    parser.add_argument("--large-depth", type=int, default=8)
    parser.add_argument("--instance-type", default="ml.m5.xlarge")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from churn_pipeline import config, container, explain, training

    settings = container.transform_settings(args.instance_type)
    payload_mb = settings["MaxPayloadInMB"]
    timeout = int(settings["Environment"]["SAGEMAKER_MODEL_SERVER_TIMEOUT"])
    figures: dict = {
        "cpu_count": os.cpu_count(),
        "instance_type": args.instance_type,
        "settings": settings,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="churn-transform-") as scratch:
        archive, manifest_path, test_split = train_model(Path(scratch), args.training_rows)
        manifest = json.loads(manifest_path.read_text())
        features, _ = training.read_channel(test_split)
        # as the ETL's scoring mode writes them: the control-group flag, then the features
        rows = [",".join(["0", *(repr(float(v)) for v in features[i % len(features)])]) for i in range(args.batch_rows)]
        body = "\n".join(rows) + "\n"
        bytes_per_row = len(body.encode()) / len(rows)
        large = training.hyperparameters_from(
            {**config.DEFAULTS, "num_round": args.large_rounds, "max_depth": args.large_depth}
        )
        models = {
            "default (100 rounds, depth 5)": training.load_model_archive(archive),
            f"large ({args.large_rounds} rounds, depth {args.large_depth})": training.train(
                Path(scratch) / "etl" / "train", Path(scratch) / "etl" / "validation", large
            )[0],
        }
        reasons = len(explain.reason_columns(manifest))
        print(f"{args.instance_type}: {settings}")
        print(
            f"rows of {bytes_per_row:.0f} bytes: a {payload_mb} MB mini-batch holds "
            f"{payload_mb * 2**20 / bytes_per_row:,.0f} rows; model-server timeout {timeout} s"
        )
        for name, booster in models.items():
            booster.set_param({"nthread": 1})  # one thread, as each worker under the container's OMP_NUM_THREADS=1
            for k in (0, reasons):
                seconds = measure(booster, manifest, body, k)
                per_second = len(rows) / seconds
                batch_seconds = payload_mb * 2**20 / bytes_per_row / per_second
                figures["models"][f"{name}, explain={k}"] = {
                    "trees": booster.num_boosted_rounds(),
                    "rows_per_second": round(per_second),
                    "mini_batch_seconds": round(batch_seconds, 2),
                    "share_of_timeout": round(batch_seconds / timeout, 3),
                }
                print(
                    f"{name} [{booster.num_boosted_rounds()} trees], explain={k:>2}: "
                    f"{per_second:>9,.0f} rows/s on one core; "
                    f"a {payload_mb} MB mini-batch takes {batch_seconds:6.2f} s "
                    f"({batch_seconds / timeout:.1%} of the {timeout} s timeout)"
                )
    figures["bytes_per_row"] = round(bytes_per_row, 1)
    write_figures("transform", figures, args.out)
    return figures


if __name__ == "__main__":
    main()
