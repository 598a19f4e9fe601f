"""A warm local Spark: one long-lived JVM that local job runs attach to, so a run pays for its own work and
not for Spark's start (8-9 s) and first, unwarmed jobs (another 10-15 s).

The worker is a process of its own (``python -m churn_pipeline.etl.spark_worker FOLDER MASTER``): it starts
Spark's JVM, warms it (``warm_up``) and waits. A job run stays a fresh Python process, its script and
package imported anew as Glue loads them per run, and works in a new SparkSession of the worker's JVM
(no temporary views, cached tables or SQL settings of an earlier run). The worker exits when nothing has
used it for ``CHURN_PIPELINE_SPARK_WORKER_IDLE`` seconds, when the process named by
``CHURN_PIPELINE_SPARK_WORKER_OWNER`` exits, when its folder goes, or when asked to stop with no run
attached; its JVM exits with it.

``FOLDER/<key>/`` holds one worker: ``lock`` (held for the worker's life: the only proof it lives),
``worker.json`` (its gateway, once the JVM is up), ``runs/<pid>`` (one per attached process), ``stop``,
``worker.log`` and ``spark.log``. The key names what the JVM was started with (package version, this
module's and the session's code, Python, master, settings): a run that needs other ones starts a worker of
its own, and asks the idle others to stop.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import EnvironmentProblem, SparkWorkerLostError
from ..workspace import (
    SPARK_ATTACH_ENV,
    SPARK_WORKER_OWNER_ENV,
    home,
    process_alive,
    spark_worker_dir,
    spark_worker_idle,
)
from . import session, warm_up

STATE = "worker.json"
#: how often the worker looks at its runs, its owner and its folder
POLL_SECONDS = 0.5
#: how long a run waits for a new worker's JVM before it gives up
START_SECONDS = 180.0
#: the package's code, in the environment of the Python workers a run's UDFs start: Spark keeps one pool
#: of Python workers per environment, so other code never reuses a worker that imported earlier code
CODE_ENV = "CHURN_PIPELINE_CODE"


def _code_of(module) -> bytes:
    return module.__loader__.get_data(module.__file__)


def package_digest() -> str:
    """The package's code as a digest (from a folder or from the zip a job run imports it from)."""
    digest = hashlib.sha256()
    pending = [resources.files(__package__.split(".")[0])]
    while pending:
        for entry in sorted(pending.pop().iterdir(), key=lambda e: e.name):
            if entry.is_dir():
                pending.append(entry)
            elif entry.name.endswith(".py"):
                digest.update(entry.name.encode() + entry.read_bytes())
    return digest.hexdigest()[:16]


def worker_key(master: str) -> str:
    """What a worker's JVM was started with, as a short digest: a run attaches only to its own kind."""
    import pyspark

    described = {
        "package": __version__,
        "pyspark": pyspark.__version__,
        "python": sys.executable,
        "master": master,
        "settings": session.settings(),
        "code": [hashlib.sha256(_code_of(m)).hexdigest() for m in (session, warm_up, sys.modules[__name__])],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def _try_lock(path: Path):
    """The file at ``path`` open and exclusively locked, or None when a live process holds it."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def is_alive(place: Path) -> bool:
    """Whether a worker lives in ``place`` (one key's folder): its lock is held."""
    if not (place / "lock").exists():
        return False
    handle = _try_lock(place / "lock")
    if handle is None:
        return True
    handle.close()
    return False


def read_state(place: Path) -> dict[str, Any] | None:
    """The live worker's gateway in ``place``, or None (no worker, or its JVM not up yet)."""
    if not is_alive(place):
        return None
    try:
        return json.loads((place / STATE).read_text())
    except (OSError, ValueError):
        return None


def workers(folder: Path) -> dict[str, dict[str, Any] | None]:
    """Every live worker under ``folder``: key -> its state (None while its JVM starts)."""
    if not folder.is_dir():
        return {}
    return {place.name: read_state(place) for place in sorted(folder.iterdir()) if is_alive(place)}


def ensure_started(folder: Path, master: str, wait: bool = True) -> dict[str, Any] | None:
    """Start a worker of this kind under ``folder`` unless one lives; with ``wait``, its state once its
    JVM is up (a worker that dies first is reported with its log's last lines). A worker started ahead
    of time (not waited for) warms up with a small ETL; one a run waits for serves that run at once."""
    place = folder / worker_key(master)
    try:
        place.mkdir(parents=True, exist_ok=True)
        started = None if is_alive(place) else _spawn(folder, place, master, warm_at_start=not wait)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot start the local Spark worker in {place}: {exc}") from exc
    if not wait:
        return None
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        state = read_state(place)
        if state:
            return state
        if started is not None and started.poll() is not None and not is_alive(place):
            raise EnvironmentProblem(
                f"the local Spark worker did not start (exit {started.returncode}); its log {place / 'worker.log'} "
                f"ends: {_tail(place / 'worker.log')}"
            )
        time.sleep(0.1)
    raise EnvironmentProblem(f"the local Spark worker in {place} did not start within {START_SECONDS:.0f} s")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(no log)"


def _spawn(folder: Path, place: Path, master: str, warm_at_start: bool) -> subprocess.Popen:
    """The worker, in a session of its own (a run's end or Ctrl-C does not end it) and quiet."""
    with open(place / "worker.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", __name__, str(folder), master, *(["--warm-up"] if warm_at_start else [])],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(folder: Path, wait_seconds: float = 30.0) -> int:
    """Ask every worker under ``folder`` to stop (each once no run is attached) and wait for them;
    the number that were alive."""
    alive = list(workers(folder))
    for key in alive:
        (folder / key / "stop").touch()
    deadline = time.monotonic() + wait_seconds
    while any(is_alive(folder / key) for key in alive) and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(alive)


# --- a job run's side ----------------------------------------------------------------------------------


def local_session(master: str, app_name: str = "churn-etl"):
    """Local Spark for a job run, a notebook or the CLI: a new session of the warm worker (the one the
    local Glue names for a job run, ``CHURN_PIPELINE_SPARK_ATTACH``, else the local home's), one per
    process; with the worker turned off, a Spark of this process's own."""
    from pyspark import SparkContext

    named = os.environ.get(SPARK_ATTACH_ENV)
    folder = Path(named) if named else spark_worker_dir(home())
    if folder is None or (SparkContext._active_spark_context and not _ATTACHED):  # a Spark of its own serves
        return session.spark_session(master, app_name)
    if (folder, master) not in _ATTACHED:
        _ATTACHED[(folder, master)] = attach(folder, master)
    return _ATTACHED[(folder, master)]


#: this process's session of each worker it attached to
_ATTACHED: dict[tuple[Path, str], Any] = {}


def attach(folder: Path, master: str):
    """A new, clean session of the worker under ``folder`` (started if none lives), held as this
    process's run until it exits."""
    session.require_java()
    state = ensure_started(folder, master)
    place = folder / state["key"]
    lease = place / "runs" / str(os.getpid())
    try:
        lease.parent.mkdir(exist_ok=True)
        lease.write_text(str(state["pid"]))
    except OSError as exc:
        raise EnvironmentProblem(f"cannot record this run with the local Spark worker ({lease}): {exc}") from exc
    atexit.register(lease.unlink, missing_ok=True)
    _report_a_lost_worker(place, state)
    spark = _connect(state)
    # Data an earlier run cached could be stale (its files rewritten since); a live run's cache only
    # costs it a re-read, so every attach starts from none.
    spark.catalog.clearCache()
    return spark


def remember_etl(settings: dict[str, Any]) -> None:
    """An ETL run's input and split settings, kept for the warm-ups of the worker this process attached
    to (none when it has a Spark of its own). A courtesy: a folder it cannot write to does not fail the run."""
    for folder, _ in _ATTACHED:
        try:
            warm_up.remember(folder, settings)
        except OSError as exc:
            print(f"the warm-ups will not read this input again: {exc}", file=sys.stderr)


def _connect(state: dict[str, Any]):
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    # Python workers (scoring's mapInPandas) run this interpreter, which has the package
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["PYSPARK_GATEWAY_PORT"] = str(state["port"])
    os.environ["PYSPARK_GATEWAY_SECRET"] = state["secret"]
    try:
        gateway = launch_gateway()
    finally:  # a process this run starts gets a Spark of its own, not this gateway
        del os.environ["PYSPARK_GATEWAY_PORT"], os.environ["PYSPARK_GATEWAY_SECRET"]
    SparkContext._ensure_initialized(gateway=gateway)
    jvm = gateway.jvm
    context = SparkContext(
        gateway=gateway,
        jsc=jvm.org.apache.spark.api.java.JavaSparkContext(jvm.org.apache.spark.SparkContext.getOrCreate()),
    )
    # the worker's Spark serves other processes: stopping this process's session leaves it running
    context.stop = lambda: None
    # Python workers the JVM starts for this process import this process's package, and only its code
    context.environment["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    context.environment[CODE_ENV] = package_digest()
    spark = SparkSession(
        context, jsparkSession=jvm.org.apache.spark.sql.SparkSession.builder().getOrCreate().newSession()
    )
    for name, value in session.SESSION_SETTINGS.items():
        spark.conf.set(name, value)
    return spark


def _report_a_lost_worker(place: Path, state: dict[str, Any]) -> None:
    """A run that fails because the worker died says so last, as a Glue run whose executors were lost."""
    previous = sys.excepthook

    def lost() -> bool:  # a killed JVM is reaped by its worker within a poll, which then exits
        deadline = time.monotonic() + 4 * POLL_SECONDS + 1
        while time.monotonic() < deadline:
            if not is_alive(place):
                return True
            time.sleep(0.1)
        return False

    def report(kind, error, trace):
        previous(kind, error, trace)
        if lost():
            error = SparkWorkerLostError(
                f"the local Spark worker (pid {state['pid']}) exited during this job run, which failed with "
                f"{kind.__name__}; the next run starts a new worker (its log: {place / 'worker.log'})"
            )
            print(f"{type(error).__module__}.{type(error).__name__}: {error}", file=sys.stderr)

    sys.excepthook = report


# --- the worker's side ---------------------------------------------------------------------------------


def serve(folder: Path, master: str, warm_at_start: bool = False) -> int:
    """Be the worker of this kind under ``folder`` (exit 0 at once when one already lives)."""
    place = folder / worker_key(master)
    place.mkdir(parents=True, exist_ok=True)
    lock = _try_lock(place / "lock")
    if lock is None:
        return 0
    (place / "stop").unlink(missing_ok=True)
    spark = session.spark_session(master, "churn-spark-worker", str(place / "spark.log"))
    gateway = spark.sparkContext._gateway
    state = {
        "pid": os.getpid(),
        "jvm_pid": gateway.proc.pid,
        "port": gateway.gateway_parameters.port,
        "secret": gateway.gateway_parameters.auth_token,
        "key": place.name,
        "master": master,
    }
    try:
        _write_private(place / STATE, json.dumps(state))  # the secret opens the JVM
        for key, other in workers(folder).items():
            if key != place.name and other and other["master"] == master:  # an older package's: stops once idle
                (folder / key / "stop").touch()
        warmer = warm_up.Warmer(spark, folder, own=(os.getpid(), gateway.proc.pid))
        if warm_at_start:
            warmer.start()
        _wait(place, gateway.proc, on_run=warmer.run_seen, on_idle=warmer.when_idle)
    finally:
        (place / STATE).unlink(missing_ok=True)
    return 0


def _write_private(path: Path, text: str) -> None:
    """``text`` to ``path``, whole or not at all, readable by this user only from its first byte."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.replace(partial, path)


def _live_runs(place: Path) -> int:
    live = 0
    for lease in (place / "runs").glob("*") if (place / "runs").is_dir() else ():
        if process_alive(int(lease.name)):
            live += 1
        else:
            lease.unlink(missing_ok=True)
    return live


def _wait(place: Path, jvm: subprocess.Popen, on_run=lambda: None, on_idle=lambda: None) -> None:
    """Until idle long enough, the owner gone, the folder gone, asked to stop (and no run attached), or
    the JVM dead; ``on_run`` is called at each look that sees a run, ``on_idle`` at each look that sees
    none for ``warm_up.IDLE_SECONDS`` after one."""
    idle_seconds = spark_worker_idle()
    owner = int(os.environ.get(SPARK_WORKER_OWNER_ENV) or 0)
    last_used, used = time.monotonic(), False
    while True:
        time.sleep(POLL_SECONDS)
        if not place.is_dir() or jvm.poll() is not None or (owner and not process_alive(owner)):
            return
        if _live_runs(place):
            on_run()
            last_used, used = time.monotonic(), True
        elif (place / "stop").exists() or time.monotonic() - last_used > idle_seconds:
            return
        elif used and time.monotonic() - last_used >= warm_up.IDLE_SECONDS:
            on_idle()


if __name__ == "__main__":
    sys.exit(serve(Path(sys.argv[1]), sys.argv[2], warm_at_start="--warm-up" in sys.argv[3:]))
