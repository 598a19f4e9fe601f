"""The warm Spark worker's warm-up: the ETL on a small synthetic file, in the background. Spark loads its
classes and generates a plan's code on its first run, and Java compiles the hottest code only after a
few runs: a worker that warms up when idle spares the next job run both."""

from __future__ import annotations

import os
import tempfile
import threading
import time
import traceback
from pathlib import Path

from .. import synthetic
from ..s3 import s3_storage
from .job import run_etl

#: the job group of the warm-up's jobs (cancelled when a run comes)
JOB_GROUP = "churn-warm-up"
#: after a run the worker warms up again, up to ``TIMES`` in its life, once the machine's cores were less
#: than ``BUSY_SHARE`` busy over a whole ``IDLE_SECONDS`` with no run: never beside a person's (or the
#: next run's) work, which a shorter look can miss between two of its steps
IDLE_SECONDS = 3.0
TIMES = 3
BUSY_SHARE = 0.25


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) CPU time of the machine so far (Linux), or None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]  # guest time is in user time
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and waiting for I/O
    return sum(fields) - idle, sum(fields)


class MachineLoad:
    """How busy the machine's cores were since the last look (load average where /proc is not)."""

    def __init__(self):
        self.last = _cpu_times()

    def busy_share(self) -> float:
        now = _cpu_times()
        if now is None or self.last is None:
            return os.getloadavg()[0] / (os.cpu_count() or 1)
        (busy, total), (busy_before, total_before) = now, self.last
        self.last = now
        return (busy - busy_before) / max(total - total_before, 1)


class Warmer:
    """The warm-up in a thread of its own, at most ``TIMES`` times. A run that comes while the worker
    warms up has its cores: the warm-up's jobs are cancelled (a cancel reaches the jobs running at the
    time, so it is repeated until the warm-up has ended)."""

    def __init__(self, spark):
        self.spark, self.started, self.thread = spark, 0, None
        self.load, self.looked = MachineLoad(), time.monotonic()

    def when_idle(self) -> None:
        """Warm up again if the machine was not busy since the last look, ``IDLE_SECONDS`` ago at least
        (called while no run uses the worker)."""
        if self.started < TIMES and time.monotonic() - self.looked >= IDLE_SECONDS:
            self.looked = time.monotonic()
            if self.load.busy_share() < BUSY_SHARE:
                self.start()

    def start(self) -> None:
        if self.started < TIMES and not (self.thread and self.thread.is_alive()):
            self.started += 1
            self.thread = threading.Thread(target=warm_up, args=(self.spark,), daemon=True)
            self.thread.start()

    def cancel(self) -> None:
        if self.thread and self.thread.is_alive():
            self.spark.sparkContext.cancelJobGroup(JOB_GROUP)


def warm_up(spark) -> None:
    """The ETL once on a small synthetic file, in a session of its own; how long it took, in the
    worker's log."""
    started = time.perf_counter()
    spark.sparkContext.setJobGroup(JOB_GROUP, "the worker's warm-up", interruptOnCancel=True)
    with tempfile.TemporaryDirectory(prefix="churn-warm-up-") as scratch:
        data = synthetic.write_synthetic(Path(scratch) / "warm-up.csv", rows=300, seed=0)
        try:
            run_etl(spark.newSession(), str(data), f"{scratch}/etl", storage=s3_storage())
        except Exception as exc:  # a warm-up is a courtesy: the worker serves runs all the same
            if "cancelled" not in str(exc):
                traceback.print_exc()
            print(f"warm-up stopped after {time.perf_counter() - started:.1f} s: a run came", flush=True)
            return
    print(f"warmed up in {time.perf_counter() - started:.1f} s", flush=True)
