"""End-to-end benchmark: `churn-pipeline run` on synthetic data, wall time and peak memory.

Prints a table and writes the figures as JSON. Each run gets a fresh local
home (so the synthetic data is generated and every resource created, as on a
new machine); peak memory is the largest sum of resident memory over the
whole process tree (CLI, kernels, Spark JVM), sampled every 50 ms.

    python benchmarks/e2e.py --runs 3 [--rows 5000] [--out benchmarks/out/e2e.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def one_run(rows: int, index: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="churn-bench-") as scratch:
        env = {**os.environ, "CHURN_PIPELINE_HOME": f"{scratch}/home", "CHURN_PIPELINE_ARTIFACTS": f"{scratch}/art",
               "CHURN_PIPELINE_PROJECT": str(ROOT)}
        run_id = f"bench-{index}"
        command = [sys.executable, "-m", "churn_pipeline.cli", "run", "--run-id", run_id, "--quiet",
                   "-p", f"synthetic_rows={rows}"]
        started = time.perf_counter()
        process = psutil.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process))
            time.sleep(0.05)
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"run {run_id} failed:\n{process.stderr.read().decode()[-3000:]}")
        out = Path(scratch) / "art" / run_id
        manifest = json.loads((out / "manifest.json").read_text())
        history = json.loads((out / "execution-history.json").read_text())
        metrics = json.loads((out / "metrics.json").read_text())
        return {"wall_seconds": round(wall, 2), "peak_rss_mib": round(peak / 2**20),
                "notebooks": {n["notebook"]: n["seconds"] for n in manifest["notebooks"]},
                "states": {s["state"]: s["seconds"] for s in history["states"]},
                "test_accuracy": round(metrics["test"]["accuracy"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "e2e.json"))
    args = parser.parse_args()
    runs = [one_run(args.rows, i) for i in range(args.runs)]
    summary = {"rows": args.rows, "runs": runs, "cpu_count": os.cpu_count(),
               "median_wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
               "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"end to end, {args.rows} synthetic rows, {args.runs} runs, {os.cpu_count()} cores")
    print(f"{'run':>4} {'wall s':>8} {'peak MiB':>9} {'01 s':>6} {'02 s':>6} {'03 s':>6} {'ETL s':>6} {'train s':>8}"
          f" {'test acc':>9}")
    for i, r in enumerate(runs):
        nb = list(r["notebooks"].values())
        print(f"{i:>4} {r['wall_seconds']:>8.1f} {r['peak_rss_mib']:>9} {nb[0]:>6.1f} {nb[1]:>6.1f} {nb[2]:>6.1f} "
              f"{r['states']['ETL']:>6.1f} {r['states']['Model Training']:>8.2f} {r['test_accuracy']:>9.4f}")
    print(f"median wall {summary['median_wall_seconds']:.1f} s, max peak {summary['max_peak_rss_mib']} MiB")
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
