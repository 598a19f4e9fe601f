"""Endpoint load: latency (p50, p99) and throughput of `churn-pipeline serve` on loopback.

A model is trained on synthetic data; the endpoint runs as its own process
tree (gunicorn master and workers); the load comes from a separate process
whose threads each keep one HTTP connection open. The in-process `predict` of
the same model on the same payload is the ceiling.

With ``--explain 3`` the requests ask for the three largest reasons per row
(``X-Amzn-SageMaker-Custom-Attributes: explain=3``, answered as JSON).

    python benchmarks/endpoint.py [--concurrency 1 8 32] [--payload-rows 1 100] [--explain 0 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import ROOT, bench_spark, synthetic_file, write_figures

from churn_pipeline.etl import job as etl_job


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def request_headers(explain: int) -> dict[str, str]:
    headers = {"Content-Type": "text/csv"}
    if explain:
        headers.update({"Accept": "application/json", "X-Amzn-SageMaker-Custom-Attributes": f"explain={explain}"})
    return headers


def generate_load(port: int, body: bytes, concurrency: int, seconds: float, explain: int = 0) -> dict:
    """Runs in its own process: `concurrency` threads, each POSTing over one keep-alive connection."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            connection.request("POST", "/invocations", body=body, headers=request_headers(explain))
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors[0] += 1
            mine.append(time.perf_counter() - t0)
        connection.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


def train_model(scratch: Path, rows: int) -> tuple[Path, Path, Path]:
    from churn_pipeline import config, training

    spark = bench_spark("local[*]")
    etl_job.run_etl(spark, str(synthetic_file(rows)), str(scratch / "etl"))
    spark.stop()
    booster, _ = training.train(
        scratch / "etl" / "train", scratch / "etl" / "validation", training.hyperparameters_from(config.DEFAULTS)
    )
    return (
        training.save_model_archive(booster, scratch / "model.tar.gz"),
        scratch / "etl" / "manifest.json",
        scratch / "etl" / "test",
    )


def in_process_ceiling(model, manifest, matrix, seconds: float, explain: int = 0) -> dict:
    from churn_pipeline import inference, serving

    served = serving.load_served_model(model, manifest)
    request = inference.Request(rows=matrix.tolist(), explain=str(explain) if explain else None)
    latencies = []
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        inference.output_fn(inference.predict_fn(request, served), "application/json")
        latencies.append(time.perf_counter() - t0)
    return {
        "calls": len(latencies),
        "throughput_rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 99) * 1000, 3),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--payload-rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--explain", type=int, nargs="+", default=[0, 3], help="reasons asked per row (0: none)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--training-rows", type=int, default=5000)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from churn_pipeline import training
    from churn_pipeline.deployments import free_port

    with tempfile.TemporaryDirectory(prefix="churn-endpoint-") as scratch:
        model, manifest, test_split = train_model(Path(scratch), args.training_rows)
        features, _ = training.read_channel(test_split)
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "churn_pipeline.cli",
                "serve",
                "--model",
                str(model),
                "--manifest",
                str(manifest),
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            results = []
            context = multiprocessing.get_context("spawn")
            for explain in args.explain:
                for rows in args.payload_rows:
                    matrix = features[:rows]
                    body = "\n".join(",".join(repr(float(v)) for v in row) for row in matrix).encode()
                    ceiling = in_process_ceiling(model, manifest, matrix, min(args.seconds, 2.0), explain)
                    for concurrency in args.concurrency:
                        with context.Pool(1) as pool:
                            pool.apply(generate_load, (port, body, concurrency, 0.5, explain))  # warm-up
                            load = pool.apply(generate_load, (port, body, concurrency, args.seconds, explain))
                        results.append(
                            {
                                "explain": explain,
                                "payload_rows": rows,
                                "concurrency": concurrency,
                                **load,
                                "in_process": ceiling,
                            }
                        )
        finally:
            server.terminate()
            server.wait(30)
    figures = {
        "cpu_count": os.cpu_count(),
        "workers": args.workers,
        "seconds_per_point": args.seconds,
        "results": results,
    }
    path = write_figures("endpoint", figures, args.out)
    print(f"endpoint: {args.workers} workers, {os.cpu_count()} cores, load from a separate process on loopback")
    print(
        f"{'explain':>7} {'rows':>5} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} | "
        f"{'in-process p50 ms':>17} {'calls/s':>9}"
    )
    for r in results:
        print(
            f"{r['explain']:>7} {r['payload_rows']:>5} {r['concurrency']:>5} {r['throughput_rps']:>9.1f} "
            f"{r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['errors']:>7} | {r['in_process']['p50_ms']:>17.3f} "
            f"{r['in_process']['throughput_rps']:>9.1f}"
        )
    print(f"-> {path}")
    return figures


if __name__ == "__main__":
    main()
