"""The warm Spark worker's warm-up: the ETL in the background, on the last ETL run's own input when it was
small (as the next run, after an edit of the ETL, reads it again), else on a small synthetic file. Spark
loads its classes and generates a plan's code on its first run, and Java compiles the hottest code only
after a few runs: a worker that warms up when idle spares the next job run both."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import traceback
from pathlib import Path

from .. import synthetic
from ..s3 import s3_storage
from ..storage import write_atomic
from .job import run_etl

#: the job group of the warm-up's jobs (cancelled when a run comes)
JOB_GROUP = "churn-warm-up"
#: after a run the worker warms up again, until ``TIMES`` warm-ups have finished in its life (and at most
#: twice as many started: a run cancels one), once the machine's cores were less than ``BUSY_SHARE``
#: busy with other work than the worker's over a whole ``IDLE_SECONDS`` with no run: never beside a
#: person's (or the next run's) work, which a shorter look can miss between two of its steps
IDLE_SECONDS = 3.0
TIMES = 8
BUSY_SHARE = 0.25
#: the last ETL job run's input and split settings, in the worker folder (``remember``)
LAST_ETL = "last-etl.json"
#: a warm-up reads the last run's input again only up to this size (a larger input warms Java no better
#: than a small one, and would hold the cores longer)
REPLAY_BYTES = 16 * 2**20
#: what a warm-up takes over from the last run (``run_etl``'s arguments)
REPLAYED = ("source", "train_key", "validation_key", "test_key", "train_fraction", "validation_fraction", "seed")


def _cpu_times(own: tuple[int, ...] = ()) -> tuple[int, int] | None:
    """(busy, total) CPU time of the machine so far (Linux), the time of the processes ``own`` not
    counted as busy; or None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]  # guest time is in user time
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and waiting for I/O
    return sum(fields) - idle - _process_times(own), sum(fields)


def _process_times(pids: tuple[int, ...]) -> int:
    """CPU time the processes ``pids`` have used so far, in the ticks of /proc/stat (0 for one gone)."""
    used = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()  # after the command's name, which may hold spaces
            used += int(fields[11]) + int(fields[12])  # user and system time
        except (OSError, ValueError, IndexError):
            pass
    return used


class MachineLoad:
    """How busy the machine's cores were since the last look with other work than the processes ``own``
    (the worker's: its warm-ups are not a person's work); the load average where /proc is not."""

    def __init__(self, own: tuple[int, ...] = ()):
        self.own = own
        self.last = _cpu_times(own)

    def busy_share(self) -> float:
        now = _cpu_times(self.own)
        if now is None or self.last is None:
            return os.getloadavg()[0] / (os.cpu_count() or 1)
        (busy, total), (busy_before, total_before) = now, self.last
        self.last = now
        return (busy - busy_before) / max(total - total_before, 1)


class Warmer:
    """The warm-up in a thread of its own, until ``TIMES`` have finished. A run that comes while the worker
    warms up has its cores: the warm-up's jobs are cancelled (a cancel reaches the jobs running at the
    time, so it is repeated until the warm-up has ended)."""

    def __init__(self, spark, folder: Path | None = None, own: tuple[int, ...] = ()):
        self.spark, self.folder, self.thread = spark, folder, None
        self.started = self.finished = 0
        self.load, self.looked = MachineLoad(own), time.monotonic()

    def when_idle(self) -> None:
        """Warm up again if the machine was not busy since the last look, ``IDLE_SECONDS`` ago at least
        (called while no run uses the worker)."""
        if self._wanted() and time.monotonic() - self.looked >= IDLE_SECONDS:
            self.looked = time.monotonic()
            if self.load.busy_share() < BUSY_SHARE:
                self.start()

    def _wanted(self) -> bool:
        return self.finished < TIMES and self.started < 2 * TIMES

    def start(self) -> None:
        if self._wanted() and not (self.thread and self.thread.is_alive()):
            self.started += 1
            self.thread = threading.Thread(target=self._warm_up, daemon=True)
            self.thread.start()

    def _warm_up(self) -> None:
        if warm_up(self.spark, self.folder):
            self.finished += 1

    def run_seen(self) -> None:
        """A run uses the worker: a warm-up running is cancelled, and the next look at the machine covers
        only the time after the run (its Spark work is the worker's own, so a look across it would see
        mostly idle time and miss the work that follows it)."""
        self.load.busy_share()
        self.looked = time.monotonic()
        if self.thread and self.thread.is_alive():
            self.spark.sparkContext.cancelJobGroup(JOB_GROUP)


def remember(folder: Path, settings: dict) -> None:
    """Keep an ETL job run's input and split settings for the warm-ups that follow it."""
    write_atomic(folder / LAST_ETL, json.dumps({name: settings[name] for name in REPLAYED if name in settings}))


def replayed(folder: Path | None) -> dict | None:
    """The last ETL run's settings when its input is a file here of at most ``REPLAY_BYTES``, else None."""
    try:
        settings = json.loads((folder / LAST_ETL).read_text()) if folder else None
        source = settings.get("source") if isinstance(settings, dict) else None
        if isinstance(source, str) and os.path.isfile(source) and 0 < os.path.getsize(source) <= REPLAY_BYTES:
            return {name: settings[name] for name in REPLAYED if name in settings}
    except (OSError, ValueError):  # none yet, gone or unreadable: the synthetic file serves
        pass
    return None


def warm_up(spark, folder: Path | None = None) -> bool:
    """The ETL once, in a session of its own, on the last run's input (``replayed``) or a small synthetic
    file; what it read and how long it took, in the worker's log. Whether it finished."""
    started = time.perf_counter()
    spark.sparkContext.setJobGroup(JOB_GROUP, "the worker's warm-up", interruptOnCancel=True)
    with tempfile.TemporaryDirectory(prefix="churn-warm-up-") as scratch:
        settings = replayed(folder)
        if settings is None:
            settings = {"source": str(synthetic.write_synthetic(Path(scratch) / "warm-up.csv", rows=300, seed=0))}
        try:
            run_etl(spark.newSession(), dest=f"{scratch}/etl", storage=s3_storage(), **settings)
        except Exception as exc:  # a warm-up is a courtesy: the worker serves runs all the same
            if "cancelled" in str(exc):
                print(f"warm-up stopped after {time.perf_counter() - started:.1f} s: a run came", flush=True)
            else:
                traceback.print_exc()
            return False
    print(f"warmed up on {os.path.basename(settings['source'])} in {time.perf_counter() - started:.1f} s", flush=True)
    return True
