"""Helpers the benchmark scripts share: process-tree memory, timed runs, data files."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def tree_rss(process: psutil.Process) -> tuple[int, int, str]:
    """Resident memory of a process and all its descendants (kernels, Spark's JVM, workers), and of
    the largest one of them, with what it runs."""
    total, largest, name = 0, 0, ""
    for member in [process, *process.children(recursive=True)]:
        try:
            rss = member.memory_info().rss
            total += rss
            if rss > largest:
                largest, name = rss, _what_runs(member)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total, largest, name


def _what_runs(process: psutil.Process) -> str:
    """A short name for a process: the module or script it runs, or the JVM's main class."""
    command = process.cmdline()
    for i, part in enumerate(command):
        if part == "-m" and i + 1 < len(command):
            return command[i + 1]
        if part.endswith(".py") or part.startswith("org.apache.spark"):
            return os.path.basename(part)
    return process.name()


class PeakMemory:
    """Samples the tree RSS of ``pid`` every 50 ms in a thread while the ``with`` block runs."""

    def __init__(self, pid: int | None = None):
        self.process = psutil.Process(pid or os.getpid())
        self.peak = 0
        self.largest = 0
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            total, largest, _ = tree_rss(self.process)
            self.peak, self.largest = max(self.peak, total), max(self.largest, largest)
            time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> int:
        return round(self.peak / 2**20)


def _spark_workers(folder: Path | None) -> list[psutil.Process]:
    """The warm Spark workers under ``folder`` (a process of their own, not in the run's tree)."""
    found = []
    for state in folder.glob("*/worker.json") if folder else ():
        try:
            found.append(psutil.Process(json.loads(state.read_text())["pid"]))
        except (OSError, ValueError, KeyError, psutil.NoSuchProcess):
            pass
    return found


def measure_process(command: list[str], what: str, env: dict | None = None, spark_worker: Path | None = None) -> dict:
    """Run ``command`` from the project root; its wall time and the peak memory of its process tree and
    of its largest process (sampled every 50 ms), the trees of the Spark workers under ``spark_worker``
    counted in. A failure stops the benchmark with its stderr."""
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, largest, largest_name = 0, 0, ""
    while process.poll() is None:
        total, one, name = tree_rss(process)
        for worker in _spark_workers(spark_worker):
            worker_total, worker_one, worker_name = tree_rss(worker)
            total += worker_total
            if worker_one > one:
                one, name = worker_one, worker_name
        peak = max(peak, total)
        if one > largest:
            largest, largest_name = one, name
        time.sleep(0.05)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{what} failed:\n{process.stderr.read().decode()[-3000:]}")
    return {
        "wall_seconds": round(wall, 2),
        "peak_rss_mib": round(peak / 2**20),
        "largest_process_mib": round(largest / 2**20),
        "largest_process": largest_name,
    }


def run_pipeline(
    rows: int | None = None,
    data: str | None = None,
    run_id: str = "bench",
    extra: list[str] | None = None,
    scratch: str | None = None,
    spark_worker: bool = True,
) -> dict:
    """`churn-pipeline run` in a fresh home (or in ``scratch``, to follow an earlier run there); wall
    time, peak tree memory and the run's own figures. ``spark_worker``: job runs attach to a warm Spark
    worker of the scratch folder's own (its memory counted in), else each starts its own Spark."""
    with contextlib.ExitStack() as stack:
        if scratch is None:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="churn-bench-"))
        env = {
            **os.environ,
            "CHURN_PIPELINE_HOME": f"{scratch}/home",
            "CHURN_PIPELINE_ARTIFACTS": f"{scratch}/art",
            "CHURN_PIPELINE_PROJECT": str(ROOT),
            "CHURN_PIPELINE_SPARK_WORKER_DIR": f"{scratch}/spark-worker",
            "CHURN_PIPELINE_SPARK_WORKER_IDLE": env_idle(spark_worker),
        }
        env.pop("CHURN_PIPELINE_SPARK_WORKER_OWNER", None)
        command = [sys.executable, "-m", "churn_pipeline.cli", "run", "--run-id", run_id, "--quiet", *(extra or [])]
        if rows is not None:
            command += ["-p", f"synthetic_rows={rows}"]
        if data is not None:
            command += ["--data", data]
        measured = measure_process(command, f"run {run_id}", env, Path(scratch) / "spark-worker")
        out = Path(scratch) / "art" / run_id
        manifest = json.loads((out / "summary.json").read_text())
        history = json.loads((out / "execution-history.json").read_text())
        metrics = json.loads((out / "metrics.json").read_text())
        return {
            **measured,
            "notebooks": {n["notebook"]: n["seconds"] for n in manifest["notebooks"]},
            "states": {s["state"]: s["seconds"] for s in history["states"]},
            "etl_reused": bool((manifest.get("etl") or {}).get("reused")),
            "test_accuracy": round(metrics["test"]["accuracy"], 4),
        }


def bench_spark(master: str = "local[*]"):
    """A benchmark's Spark: a JVM of its own, which its figures include; a session of the warm worker
    only where a worker folder is named explicitly (the test suite, where the figures are not the point)."""
    if os.environ.get("CHURN_PIPELINE_SPARK_WORKER_DIR"):
        from churn_pipeline.etl.spark_worker import local_session

        return local_session(master)
    from churn_pipeline.etl.session import spark_session

    return spark_session(master)


def env_idle(spark_worker: bool) -> str:
    """The worker's idle time for a benchmark's runs: long enough to outlive a pause between runs; 0 for none."""
    return "300" if spark_worker else "0"


def synthetic_file(rows: int, seed: int = 42) -> Path:
    """A cached synthetic data file of ``rows`` customers."""
    from churn_pipeline import synthetic

    path = OUT / "data" / f"synthetic-{rows}-{seed}.csv"
    if not path.exists():
        synthetic.write_synthetic(path, rows, seed)
    return path


def write_figures(name: str, figures: dict, out: str | None = None) -> Path:
    path = Path(out) if out else OUT / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2))
    return path
