"""The warm local Spark worker: job runs attach to one long-lived JVM, yet each runs its own code in a
clean session; the worker goes when idle, with its owner, or when an older package's; a worker that
dies fails its run as a Glue run whose executors were lost, and the next run starts a new one."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

from churn_pipeline import archives, synthetic, workspace
from churn_pipeline.backends.local import LocalBackend
from churn_pipeline.errors import ConfigError, EnvironmentProblem
from churn_pipeline.etl import job as etl_job
from churn_pipeline.etl import spark_worker, warm_up
from churn_pipeline.etl.split import _spark_hash_of_long, partition_keys

# --- no Spark needed ----------------------------------------------------------------------------------


def test_the_idle_time_turns_the_worker_off_or_names_its_problem(monkeypatch, tmp_path):
    monkeypatch.delenv(workspace.SPARK_WORKER_DIR_ENV, raising=False)
    monkeypatch.setenv(workspace.SPARK_WORKER_IDLE_ENV, "0")
    assert workspace.spark_worker_dir(tmp_path) is None
    monkeypatch.setenv(workspace.SPARK_WORKER_IDLE_ENV, "ten")
    with pytest.raises(ConfigError, match="CHURN_PIPELINE_SPARK_WORKER_IDLE='ten'"):
        workspace.spark_worker_dir(tmp_path)
    monkeypatch.setenv(workspace.SPARK_WORKER_IDLE_ENV, "-5")
    with pytest.raises(ConfigError, match="0 or more"):
        workspace.spark_worker_idle()
    monkeypatch.delenv(workspace.SPARK_WORKER_IDLE_ENV)
    assert workspace.spark_worker_idle() == workspace.DEFAULT_SPARK_WORKER_IDLE
    # one per home, unless one folder is named for several
    assert workspace.spark_worker_dir(tmp_path / "a") != workspace.spark_worker_dir(tmp_path / "b")
    monkeypatch.setenv(workspace.SPARK_WORKER_DIR_ENV, str(tmp_path / "shared"))
    assert workspace.spark_worker_dir(tmp_path / "a") == workspace.spark_worker_dir(tmp_path / "b")


def test_a_worker_is_keyed_by_what_its_jvm_was_started_with(monkeypatch):
    key = spark_worker.worker_key("local[*]")
    assert key == spark_worker.worker_key("local[*]")
    assert spark_worker.worker_key("local[2]") != key
    monkeypatch.setenv("CHURN_SPARK_DRIVER_MEMORY", "3g")
    assert spark_worker.worker_key("local[*]") != key
    monkeypatch.delenv("CHURN_SPARK_DRIVER_MEMORY")
    monkeypatch.setattr(spark_worker, "__version__", "0.0.1")
    assert spark_worker.worker_key("local[*]") != key


def test_partition_keys_are_found_without_spark():
    """Spark's hash of a long, checked against values Spark 3.5 gives (``SELECT hash(CAST(x AS BIGINT))``)."""
    assert [_spark_hash_of_long(x) for x in (0, 1, 2, 42, -1, 2**40 + 12345)] == [
        -1670924195,
        -1712319331,
        -797927272,
        1316951768,
        -939490007,
        -1817794248,
    ]
    for parts in (1, 3, 7, 40):
        keys = partition_keys(parts)
        assert [_spark_hash_of_long(k) % parts for k in keys] == list(range(parts))


class _Running:
    """A stand-in for the worker's JVM process."""

    def poll(self):
        return None


def _waits_until(place: Path, happens, settle: float) -> None:
    """The worker's wait is still waiting after ``settle`` seconds, and ends once ``happens()`` has run."""
    waiting = threading.Thread(target=spark_worker._wait, args=(place, _Running()))
    waiting.start()
    time.sleep(settle)
    assert waiting.is_alive()
    happens()
    waiting.join(timeout=5)
    assert not waiting.is_alive()


def test_the_worker_waits_while_a_run_is_attached_and_goes_when_idle(monkeypatch, tmp_path):
    monkeypatch.setattr(spark_worker, "POLL_SECONDS", 0.05)
    monkeypatch.setenv(workspace.SPARK_WORKER_IDLE_ENV, "0.3")
    monkeypatch.delenv(workspace.SPARK_WORKER_OWNER_ENV, raising=False)
    place = tmp_path / "key"
    (place / "runs").mkdir(parents=True)
    (place / "stop").touch()  # asked to stop, but a run (this process) is attached
    lease = place / "runs" / str(os.getpid())
    lease.touch()
    _waits_until(place, lease.unlink, settle=1.0)
    # a dead run's lease does not hold the worker
    (place / "stop").unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (place / "runs" / dead.stdout.strip()).touch()
    started = time.monotonic()
    spark_worker._wait(place, _Running())
    assert time.monotonic() - started < 3 and not list((place / "runs").iterdir())


def test_the_worker_warms_up_when_idle_after_a_run_not_before(monkeypatch, tmp_path):
    """An idle worker warms up again once a run has left it idle for a while, never before a first run."""
    monkeypatch.setattr(spark_worker, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(warm_up, "IDLE_SECONDS", 0.2)
    monkeypatch.setenv(workspace.SPARK_WORKER_IDLE_ENV, "1.5")
    monkeypatch.delenv(workspace.SPARK_WORKER_OWNER_ENV, raising=False)
    place = tmp_path / "key"
    (place / "runs").mkdir(parents=True)
    seen: list[tuple[str, float]] = []
    started = time.monotonic()

    def run_for_a_while():
        time.sleep(0.6)  # idle, never used: no warm-up yet
        lease = place / "runs" / str(os.getpid())
        lease.touch()
        time.sleep(0.3)
        lease.unlink()

    threading.Thread(target=run_for_a_while).start()
    spark_worker._wait(
        place,
        _Running(),
        on_run=lambda: seen.append(("run", time.monotonic() - started)),
        on_idle=lambda: seen.append(("idle", time.monotonic() - started)),
    )
    kinds = [kind for kind, _ in seen]
    assert kinds[0] == "run" and "idle" in kinds and kinds.index("idle") > kinds.index("run")
    left = max(at for kind, at in seen if kind == "run")
    assert min(at for kind, at in seen if kind == "idle") >= left + 0.2


def test_the_warmer_warms_up_a_few_times_and_one_at_a_time(monkeypatch):
    started: list[int] = []
    release = threading.Event()
    monkeypatch.setattr(warm_up, "warm_up", lambda spark, folder: (started.append(1), release.wait(5))[1])
    warmer = warm_up.Warmer(spark=None)
    warmer.start()
    warmer.start()  # one is warming up: no second
    assert len(started) == 1
    for _ in range(warm_up.TIMES + 2):
        release.set()
        warmer.thread.join(5)
        release.clear()
        warmer.start()
    release.set()
    assert len(started) == warm_up.TIMES


def test_a_warm_up_a_run_cancelled_does_not_count_yet_failures_are_bounded(monkeypatch):
    outcomes = iter([False, True, *[False] * 20])
    monkeypatch.setattr(warm_up, "warm_up", lambda spark, folder: next(outcomes))
    warmer = warm_up.Warmer(spark=None)
    for _ in range(3 * warm_up.TIMES):
        warmer.start()
        warmer.thread.join(5)
    assert warmer.finished == 1 and warmer.started == 2 * warm_up.TIMES


def test_the_warm_ups_read_the_last_runs_input_again_when_it_is_a_small_file_here(monkeypatch, tmp_path):
    source = tmp_path / "customers.csv"
    source.write_text("State,Account Length\nNY,1\n")
    settings = {"source": str(source), "seed": 7, "train_fraction": 0.6, "S3_DEST": "not kept"}
    monkeypatch.setattr(spark_worker, "_ATTACHED", {(tmp_path / "worker", "local[*]"): None})
    (tmp_path / "worker").mkdir()
    spark_worker.remember_etl(settings)
    assert warm_up.replayed(tmp_path / "worker") == {"source": str(source), "seed": 7, "train_fraction": 0.6}
    assert warm_up.replayed(None) is None and warm_up.replayed(tmp_path / "none") is None
    monkeypatch.setattr(warm_up, "REPLAY_BYTES", 10)  # too large to read again: the synthetic file serves
    assert warm_up.replayed(tmp_path / "worker") is None
    monkeypatch.undo()
    for other in ("s3://b/customers.csv", str(tmp_path / "gone.csv")):
        warm_up.remember(tmp_path / "worker", {"source": other})
        assert warm_up.replayed(tmp_path / "worker") is None
    warm_up.remember(tmp_path / "worker", {"source": str(tmp_path)})  # a folder: not a file to read again
    assert warm_up.replayed(tmp_path / "worker") is None
    for text in ("{not json", "[1]"):
        (tmp_path / "worker" / warm_up.LAST_ETL).write_text(text)
        assert warm_up.replayed(tmp_path / "worker") is None
    # a process with a Spark of its own keeps nothing; a worker folder it cannot write to does not fail it
    monkeypatch.setattr(spark_worker, "_ATTACHED", {})
    spark_worker.remember_etl(settings)
    monkeypatch.setattr(spark_worker, "_ATTACHED", {(tmp_path / "file", "local[*]"): None})
    (tmp_path / "file").write_text("")
    spark_worker.remember_etl(settings)


def test_an_idle_worker_warms_up_only_while_the_machine_is_not_busy_with_other_work(monkeypatch):
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        load, own = warm_up.MachineLoad(), warm_up.MachineLoad(own=(busy.pid,))
        (_, total_before), used_before = warm_up._cpu_times(), warm_up._process_times((busy.pid,))
        time.sleep(0.5)
        whole, others = load.busy_share(), own.busy_share()
        (_, total_after), used_after = warm_up._cpu_times(), warm_up._process_times((busy.pid,))
        assert whole >= 0.9 / (os.cpu_count() or 1)
        # the worker's own processes (its warm-ups) do not make the machine busy: the busy share without
        # them is less by their share, however much of a core they got beside other tests
        assert used_after > used_before
        assert whole - others == pytest.approx((used_after - used_before) / (total_after - total_before), abs=0.05)
    finally:
        busy.kill()
        busy.wait()
    started: list[int] = []
    monkeypatch.setattr(warm_up, "warm_up", lambda spark, folder: started.append(1))
    monkeypatch.setattr(warm_up, "IDLE_SECONDS", 0.3)
    warmer = warm_up.Warmer(spark=None)
    monkeypatch.setattr(warmer.load, "busy_share", lambda: 0.0)
    warmer.when_idle()  # a look covers a whole idle stretch: none yet
    assert not started
    time.sleep(0.3)
    monkeypatch.setattr(warmer.load, "busy_share", lambda: warm_up.BUSY_SHARE)
    warmer.when_idle()
    assert not started
    time.sleep(0.3)
    monkeypatch.setattr(warmer.load, "busy_share", lambda: 0.0)
    warmer.when_idle()
    warmer.thread.join(5)
    assert started == [1]


def test_a_run_restarts_the_warmers_look_at_the_machine(monkeypatch):
    """The look after a run covers only the time after it: the run's Spark work is the worker's own, and a
    look across it would see mostly idle time."""
    started: list[int] = []
    monkeypatch.setattr(warm_up, "warm_up", lambda spark, folder: started.append(1))
    monkeypatch.setattr(warm_up, "IDLE_SECONDS", 0.3)
    warmer = warm_up.Warmer(spark=None)
    looks: list[int] = []
    monkeypatch.setattr(warmer.load, "busy_share", lambda: looks.append(1) or 0.0)
    time.sleep(0.3)
    warmer.run_seen()  # the window starts again here
    warmer.when_idle()  # less than IDLE_SECONDS after the run: no look, no warm-up
    assert looks == [1] and not started


def test_the_worker_goes_with_its_owner_or_its_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(spark_worker, "POLL_SECONDS", 0.05)
    monkeypatch.setenv(workspace.SPARK_WORKER_IDLE_ENV, "600")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    monkeypatch.setenv(workspace.SPARK_WORKER_OWNER_ENV, str(owner.pid))
    place = tmp_path / "key"
    place.mkdir()
    _waits_until(place, lambda: (owner.kill(), owner.wait()), settle=0.5)
    monkeypatch.delenv(workspace.SPARK_WORKER_OWNER_ENV)
    place.rmdir()
    spark_worker._wait(place, _Running())  # returns: its folder is gone


def test_a_full_disk_fails_the_start_with_the_folder_named(monkeypatch, tmp_path):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spark_worker, "_spawn", no_space)
    with pytest.raises(EnvironmentProblem, match=r"cannot start the local Spark worker in .*No space left"):
        spark_worker.ensure_started(tmp_path / "worker", "local[1]")
    assert spark_worker.workers(tmp_path / "worker") == {}


def test_a_live_worker_is_known_by_its_lock_not_by_its_files(tmp_path):
    place = tmp_path / "key"
    place.mkdir()
    (place / "worker.json").write_text(json.dumps({"pid": 1, "port": 1, "secret": "s", "key": "key"}))
    assert spark_worker.read_state(place) is None  # a dead worker's file
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(600)",
            str(place / "lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert spark_worker.read_state(place)["port"] == 1
        assert list(spark_worker.workers(tmp_path)) == ["key"]
    finally:
        holder.kill()
        holder.wait()
    assert spark_worker.read_state(place) is None


# --- job runs on a worker -----------------------------------------------------------------------------

SCRIPT = """
import json, sys
from churn_pipeline.etl import spark_worker
spark = spark_worker.local_session("local[*]")
print("SEEN " + json.dumps({
    "views": sorted(t.name for t in spark.catalog.listTables()),
    "partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    "cached": spark.sparkContext._jsc.getPersistentRDDs().size(),
    "worker": spark_worker.read_state(
        __import__("pathlib").Path(__import__("os").environ["CHURN_PIPELINE_SPARK_ATTACH"])
        / spark_worker.worker_key("local[*]"))["pid"],
}))
spark.range(10).createOrReplaceTempView("left_behind")
spark.range(5).cache().count()
spark.conf.set("spark.sql.shuffle.partitions", "7")
"""


def _package(edit: tuple[str, str, str] | None = None) -> bytes:
    """The package archive, with one edit (file, old text, new text) when asked."""
    original = zipfile.ZipFile(io.BytesIO(archives.package_archive()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as edited:
        for item in original.infolist():
            content = original.read(item)
            if edit and item.filename == edit[0]:
                assert edit[1].encode() in content
                content = content.replace(edit[1].encode(), edit[2].encode())
            edited.writestr(item, content)
    return buffer.getvalue()


@pytest.fixture
def worker_on(monkeypatch):
    """The worker, even in a session run with it turned off (then a worker of the test's home)."""
    if os.environ.get(workspace.SPARK_WORKER_IDLE_ENV) == "0":
        monkeypatch.setenv(workspace.SPARK_WORKER_IDLE_ENV, "60")


def _glue(tmp_path, package: bytes, script: str | None = None):
    backend = LocalBackend(None, tmp_path / "home")
    backend.store.put("s3://b/pkg.zip", package)
    backend.store.put("s3://b/job.py", script.encode() if script else (ROOT / "code" / "glue_etl.py").read_bytes())
    glue = backend.client("glue")
    glue.create_job(
        Name="etl",
        Role="r",
        Command={"Name": "glueetl", "ScriptLocation": "s3://b/job.py"},
        DefaultArguments={"--extra-py-files": "s3://b/pkg.zip"},
        ExecutionProperty={"MaxConcurrentRuns": 2},
    )
    return backend, glue


def _run(glue, **arguments) -> dict:
    run_id = glue.start_job_run(JobName="etl", Arguments=arguments)["JobRunId"]
    return glue.get_job_run(JobName="etl", RunId=run_id)["JobRun"]


def _seen(run: dict) -> dict:
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    return json.loads(re.search(r"^SEEN (.*)$", Path(run["LogFile"]).read_text(), re.M).group(1))


@pytest.mark.spark
def test_runs_share_the_worker_in_clean_sessions_and_at_once(worker_on, tmp_path):
    """GLUE-RUN-ISOLATED: views, cached data and settings of one run are gone for the next; two runs at
    once (MaxConcurrentRuns 2) share one worker."""
    _, glue = _glue(tmp_path, archives.package_archive(), SCRIPT)
    first = _seen(_run(glue))
    second = _seen(_run(glue))
    assert second == {"views": [], "partitions": "4", "cached": 0, "worker": first["worker"]}
    runs: list[dict] = []
    both = [threading.Thread(target=lambda: runs.append(_run(glue))) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    assert {_seen(run)["worker"] for run in runs} == {first["worker"]}


def _digest(folder: Path) -> str:
    """The ETL output's bytes: part names (which carry a random id) and the manifest's ``source`` (a path
    that differs by test) left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = path.read_bytes()
        if path.name == "manifest.json":
            content = re.sub(rb'\n  "source": "[^"]*",', b"", content)
        digest.update(re.sub(r"-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "", str(path.relative_to(folder))).encode())
        digest.update(content)
    return digest.hexdigest()


#: the ETL output of ``synthetic.write_synthetic(rows=1500, seed=7)`` on local[2]: any change to an output
#: byte for the same input shows here (a change meant to alter the output updates it, and says why).
#: Last changed by the totals (``data.TOTALS``): two features more in every split and the manifest, and
#: the four charges they add up in the baseline.
SYNTHETIC_1500_ETL_DIGEST = "673acb8619ce1cb0fdc1d4414b0daa7a841db7457e996a0a890b34d0dc102817"


@pytest.mark.spark
def test_the_worker_runs_the_edited_package_and_writes_the_same_bytes(worker_on, spark, synthetic_csv, tmp_path):
    """GLUE-RUN-ISOLATED: an edit to the ETL between two runs on one warm worker shows in the second run's output; the
    worker's output is byte for byte the output of a Spark of the process's own."""
    backend, glue = _glue(tmp_path, archives.package_archive())
    source = "s3://b/data.csv"
    backend.store.put(source, synthetic_csv.read_bytes())
    assert _run(glue, **{"--S3_SOURCE": source, "--S3_DEST": "s3://b/plain"})["JobRunState"] == "SUCCEEDED"
    etl_job.run_etl(spark, backend.mirror.localize(source), str(tmp_path / "own"))
    plain = backend.mirror.localize("s3://b/plain")
    assert _digest(Path(plain)) == _digest(tmp_path / "own") == SYNTHETIC_1500_ETL_DIGEST
    backend.store.put(
        "s3://b/pkg.zip", _package(("churn_pipeline/etl/job.py", '"seed": seed,', '"seed": seed, "edited": 1,'))
    )
    run = _run(glue, **{"--S3_SOURCE": source, "--S3_DEST": "s3://b/edited"})
    assert run["JobRunState"] == "SUCCEEDED"
    assert json.loads(Path(backend.mirror.localize("s3://b/edited/manifest.json")).read_text())["edited"] == 1
    assert "edited" not in json.loads(Path(plain, "manifest.json").read_text())


@pytest.mark.spark
def test_a_warm_up_runs_the_etl_on_the_last_runs_input(spark, tmp_path, capsys):
    source = synthetic.write_synthetic(tmp_path / "remembered.csv", rows=200, seed=5)
    warm_up.remember(tmp_path, {"source": str(source), "seed": 3})
    finished: list[bool] = []
    # in a thread of its own, as in the worker: the warm-up's job group stays out of this thread's jobs
    warming = threading.Thread(target=lambda: finished.append(warm_up.warm_up(spark, tmp_path)))
    warming.start()
    warming.join(120)
    assert finished == [True]
    assert "warmed up on remembered.csv in" in capsys.readouterr().out


@pytest.mark.spark
def test_an_older_packages_worker_is_replaced_and_a_killed_one_fails_its_run(worker_on, monkeypatch, tmp_path):
    monkeypatch.setenv(workspace.SPARK_WORKER_DIR_ENV, str(tmp_path / "own-worker"))
    backend, glue = _glue(
        tmp_path, _package(("churn_pipeline/__init__.py", '__version__ = "', '__version__ = "0.0.0+old')), SCRIPT
    )
    old = _seen(_run(glue))["worker"]
    backend.store.put("s3://b/pkg.zip", archives.package_archive())
    new = _seen(_run(glue))["worker"]
    assert new != old
    deadline = time.monotonic() + 30
    while any(s and s["pid"] == old for s in spark_worker.workers(tmp_path / "own-worker").values()):
        assert time.monotonic() < deadline, "the older package's worker did not stop"
        time.sleep(0.2)
    # a run whose worker dies under it
    source = "s3://b/big.csv"
    backend.store.put(source, synthetic.write_synthetic(tmp_path / "big.csv", rows=60000, seed=3).read_bytes())
    backend.store.put("s3://b/etl.py", (ROOT / "code" / "glue_etl.py").read_bytes())
    runs: list[dict] = []
    running = threading.Thread(
        target=lambda: runs.append(
            _run(glue, **{"--scriptLocation": "s3://b/etl.py", "--S3_SOURCE": source, "--S3_DEST": "s3://b/o"})
        )
    )
    running.start()
    [state] = spark_worker.workers(tmp_path / "own-worker").values()
    leases = tmp_path / "own-worker" / state["key"] / "runs"
    while running.is_alive() and not list(leases.glob("*")):
        time.sleep(0.05)
    os.kill(state["jvm_pid"], signal.SIGKILL)
    running.join()
    assert runs[0]["JobRunState"] == "FAILED"
    assert runs[0]["ErrorMessage"].startswith("churn_pipeline.errors.SparkWorkerLostError: the local Spark worker")
    assert _seen(_run(glue))["worker"] not in (old, new)
