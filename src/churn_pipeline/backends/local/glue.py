"""Local Glue: jobs as documents, job runs as a process running the job's script on local Spark (the warm
Spark worker's, ``etl.spark_worker``, unless ``CHURN_PIPELINE_SPARK_WORKER_IDLE`` is 0)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from typing import Any

from ...aws_errors import (
    GlueAlreadyExists,
    GlueConcurrentRunsExceeded,
    GlueEntityNotFound,
    GlueIdempotentParameterMismatch,
    GlueInvalidInput,
)
from ...workspace import HOME_ENV, SPARK_ATTACH_ENV, process_alive, spark_worker_dir
from .common import JsonStore, now

#: worker types Glue runs Spark (glueetl) jobs on; G.025X is for streaming jobs only
SPARK_WORKER_TYPES = (
    "Standard",
    "G.1X",
    "G.2X",
    "G.4X",
    "G.8X",
    "G.12X",
    "G.16X",
    "R.1X",
    "R.2X",
    "R.4X",
    "R.8X",
    "Z.2X",
)
#: what a job document holds besides its definition
_BOOKKEEPING = ("Name", "CreatedOn", "LastModifiedOn")


def _last_error(log: str) -> str:
    """The exception line a failed job printed last (what Glue shows as ErrorMessage)."""
    lines = [line for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Problem)\b", line)]
    return (errors or lines or ["the job failed without output"])[-1][:2000]


def _check_definition(definition: dict[str, Any], operation: str) -> None:
    for required in ("Role", "Command"):
        if not definition.get(required):
            raise GlueInvalidInput.error(f"{required} is required", operation)
    worker = definition.get("WorkerType")
    if definition["Command"].get("Name") == "glueetl" and worker and worker not in SPARK_WORKER_TYPES:
        raise GlueInvalidInput.error(f"Worker type {worker} is not supported for glueetl jobs", operation)


class LocalGlue:
    def __init__(self, backend):
        self.backend = backend
        self.jobs = JsonStore(backend.home / "glue" / "jobs")
        self.runs = JsonStore(backend.home / "glue" / "runs")

    @staticmethod
    def _definition(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if k not in _BOOKKEEPING}

    def create_job(self, Name: str, **definition: Any) -> dict:
        """As Glue: the same request again is refused as existing, another definition as a mismatch."""
        _check_definition(definition, "CreateJob")
        if self.jobs.exists(Name):
            if self._definition(self.jobs.read(Name)) != definition:
                raise GlueIdempotentParameterMismatch.error(
                    "Job already submitted with different configuration", "CreateJob"
                )
            raise GlueAlreadyExists.error(f"Job with name {Name} already exists", "CreateJob")
        self.jobs.write(Name, {"Name": Name, **definition, "CreatedOn": now()})
        return {"Name": Name}

    def update_job(self, JobName: str, JobUpdate: dict) -> dict:
        """``JobUpdate`` replaces the whole definition: what it leaves out is reset, not kept."""
        job = self.get_job(JobName)["Job"]
        _check_definition(JobUpdate, "UpdateJob")
        self.jobs.write(JobName, {"Name": JobName, **JobUpdate, "CreatedOn": job["CreatedOn"], "LastModifiedOn": now()})
        return {"JobName": JobName}

    def get_job(self, JobName: str) -> dict:
        if not self.jobs.exists(JobName):
            raise GlueEntityNotFound.error(f"Job {JobName} not found", "GetJob")
        return {"Job": self.jobs.read(JobName)}

    def _running(self, job_name: str) -> int:
        return sum(
            1
            for name in self.runs.names()
            if (run := self.runs.read(name))["JobName"] == job_name
            and run["JobRunState"] == "RUNNING"
            and process_alive(run.get("Pid"))
        )

    def start_job_run(self, JobName: str, Arguments: dict | None = None, **_: Any) -> dict:
        """Run the job's script to completion on local Spark (Glue runs it asynchronously).

        ``Arguments`` override the job's ``DefaultArguments`` for this run only;
        ``--scriptLocation`` overrides the job's script and ``--extra-py-files`` goes on the script's
        import path, as on Glue (contract row GLUE-RUN-CODE).
        """
        job = self.get_job(JobName)["Job"]
        limit = job.get("ExecutionProperty", {}).get("MaxConcurrentRuns", 1)
        if self._running(JobName) >= limit:
            raise GlueConcurrentRunsExceeded.error(f"Concurrent runs exceeded for {JobName}", "StartJobRun")
        arguments = {**job.get("DefaultArguments", {}), **(Arguments or {})}
        run_id = "jr_" + hashlib.sha256(f"{JobName}{time.time_ns()}".encode()).hexdigest()[:32]
        store = self.backend.mirror
        script = store.localize(arguments.get("--scriptLocation") or job["Command"]["ScriptLocation"])
        command = [sys.executable, script, "--JOB_NAME", JobName, "--JOB_RUN_ID", run_id]
        for name, value in arguments.items():
            command += [name, store.localize(str(value))]
        python_path = [store.localize(p) for p in arguments.get("--extra-py-files", "").split(",") if p]
        log_path = self.backend.home / "glue" / "logs" / f"{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        run = {
            "Id": run_id,
            "JobName": JobName,
            "Arguments": arguments,
            "StartedOn": now(),
            "JobRunState": "RUNNING",
            "Pid": os.getpid(),
            "LogFile": str(log_path),
        }
        self.runs.write(run_id, run)
        started = time.perf_counter()
        environment = {
            **os.environ,
            HOME_ENV: str(self.backend.home),
            "PYTHONPATH": os.pathsep.join(python_path + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
        worker = spark_worker_dir(self.backend.home)
        if worker:
            environment[SPARK_ATTACH_ENV] = str(worker)
        # A job runs in its own process, as on Glue: its output stays out of the caller, and its Spark is
        # the warm worker's (a JVM of its own when the worker is off).
        with open(log_path, "wb") as log:
            finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        if finished.returncode == 0:
            run["JobRunState"] = "SUCCEEDED"
        else:
            run.update(JobRunState="FAILED", ErrorMessage=_last_error(log_path.read_text(errors="replace")))
        run.update(CompletedOn=now(), ExecutionTime=round(time.perf_counter() - started, 3))
        run.pop("Pid")
        self.runs.write(run_id, run)
        return {"JobRunId": run_id}

    def get_job_run(self, JobName: str, RunId: str) -> dict:
        if not self.runs.exists(RunId):
            raise GlueEntityNotFound.error(f"Job run {RunId} not found", "GetJobRun")
        return {"JobRun": self.runs.read(RunId)}
