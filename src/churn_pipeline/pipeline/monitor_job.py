"""The monitor's Spark work for windows in S3, run where they lie: a request written to the
environment's ``monitoring/<monitor id>/`` folder, a run of the ETL job in its monitor or retrain mode
(this package's code, pinned by the run's ``--scriptLocation`` and ``--extra-py-files``), its answer
read back. Glue's role reads and writes only under the environment's folder, so every window must lie
there (scores under ``scores/``, captures under the stack's capture prefix); outcomes are staged into
the request's folder.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import names
from ..backends import open_backend
from ..errors import PipelineError
from ..etl import monitor_pass
from .deploy import deploy_etl_job
from .run import Run

#: where monitor requests and answers go, under the environment's folder
MONITORING_FOLDER = "monitoring"
#: JobRunState values after which a job run changes no more (row GLUE-RUN-STATES)
FINISHED = ("SUCCEEDED", "FAILED", "ERROR", "TIMEOUT", "STOPPED", "EXPIRED")
POLL_SECONDS = 15.0


def in_s3(locations: list[str]) -> bool:
    """Whether the windows lie in S3 (the ETL job counts them) or on this machine (local Spark does);
    a mix is refused: one monitor reads them in one place."""
    remote = [location.startswith("s3://") for location in locations]
    if any(remote) and not all(remote):
        raise PipelineError("windows in S3 and on this machine are monitored apart: name one kind at a time")
    return bool(remote) and all(remote)


def request_folder(run: Run, monitor_id: str, mode: str) -> str:
    return f"{run.environment_prefix}/{MONITORING_FOLDER}/{monitor_id}/{mode}/"


def run_job(
    params: dict[str, Any],
    monitor_id: str,
    mode: str,
    request: dict[str, Any],
    artifacts: Path,
    progress: Callable[[str], None] = print,
) -> tuple[Run, str]:
    """Run the ETL job in ``mode`` over ``request`` (whose ``windows`` and ``outcomes`` hold ``s3://``
    locations); (the run that deployed the job, the request's folder), once the job has succeeded."""
    run = Run(params, monitor_id, open_backend(params), artifacts)
    kept = artifacts / names.RUN_STATE  # a monitor's earlier job run (monitor, then retrain) stays recorded
    if kept.exists():
        run.state = {k: v for k, v in json.loads(kept.read_text()).items() if k not in ("run_id", "backend")}
    root = f"{run.environment_prefix}/"
    folder = request_folder(run, monitor_id, mode)
    store = run.backend.store
    if store.objects_under(folder):
        raise PipelineError(f"{folder} holds an earlier request of monitor {monitor_id!r}: choose another monitor id")
    windows = []
    for window in request["windows"]:
        _check_under(window, root)
        windows.append(monitor_pass.rebased(window, root, ""))
    sent = {**request, "windows": windows}
    if request.get("outcomes"):  # staged: the Glue role reads under the environment's folder alone
        store.stage(f"{folder}outcomes.csv", request["outcomes"], run.backend.inputs)
        sent["outcomes"] = monitor_pass.relocated(f"{folder}outcomes.csv", root, "")
    if request.get("training_data"):
        if not request["training_data"].startswith(root):
            raise PipelineError(
                f"the model was trained on {request['training_data']}, outside {root}, where the ETL job's role "
                "reads: retrain it from a window on this machine"
            )
        sent["training_data"] = monitor_pass.relocated(request["training_data"], root, "")
    store.write_text(folder + monitor_pass.REQUEST, json.dumps(sent, indent=2))
    deploy_etl_job(run)
    job = run.state["glue_job"]
    glue = run.backend.client("glue")
    arguments = {
        "--ETL_MODE": mode,
        "--S3_SOURCE": root,
        "--S3_DEST": folder,
        "--scriptLocation": job["script"],
        "--extra-py-files": job["package"],
    }
    job_run_id = glue.start_job_run(JobName=job["name"], Arguments=arguments)["JobRunId"]
    progress(f"[monitor-{monitor_id}] ETL job {job['name']} ({mode}): run {job_run_id}")
    finished = _wait(glue, job["name"], job_run_id)
    run.state["job_runs"] = {**run.state.get("job_runs", {}), mode: job_run_id}
    run.save()
    if finished["JobRunState"] != "SUCCEEDED":
        raise PipelineError(
            f"the ETL job's {mode} run {job_run_id} ended {finished['JobRunState']}: "
            f"{finished.get('ErrorMessage', 'no message')}"
        )
    return run, folder


def _check_under(window: dict[str, Any], root: str) -> None:
    for key in monitor_pass.LOCATION_KEYS:
        if key in window and not window[key].startswith(root):
            raise PipelineError(
                f"{window[key]}: the ETL job's role reads only under {root}; monitor windows kept there "
                "(`score --out` under its scores/, the endpoint's captures under its capture prefix)"
            )


def _wait(glue, job_name: str, job_run_id: str) -> dict[str, Any]:
    while True:
        job_run = glue.get_job_run(JobName=job_name, RunId=job_run_id)["JobRun"]
        if job_run["JobRunState"] in FINISHED:
            return job_run
        time.sleep(POLL_SECONDS)


def job_counts(params, monitor_id, windows, statistics, score_statistics, outcomes, artifacts, progress=print):
    """``monitor_pass.count_windows`` of windows in S3, counted by the ETL job."""
    request = {"windows": windows, "statistics": statistics, "score_statistics": score_statistics}
    run, folder = run_job(params, monitor_id, "monitor", {**request, "outcomes": outcomes}, artifacts, progress)
    answer = run.backend.store.read_text(folder + monitor_pass.COUNTS)
    if answer is None:
        raise PipelineError(f"the ETL job's monitor run wrote no {monitor_pass.COUNTS} under {folder}")
    return json.loads(answer)


def job_retraining(params, monitor_id, training_data, window, outcomes, artifacts, progress=print) -> dict:
    """The new training file for a window in S3, written by the ETL job: ``retraining.csv`` in the
    monitor's folder; its location and how many customers were added."""
    request = {"windows": [window], "outcomes": outcomes, "training_data": training_data}
    run, folder = run_job(params, monitor_id, "retrain", request, artifacts, progress)
    store = run.backend.store
    parts = [uri for uri in store.objects_under(folder + monitor_pass.RETRAINING) if "/part-" in uri]
    if len(parts) != 1:
        raise PipelineError(f"the ETL job's retrain run wrote {len(parts)} parts under {folder}, not one")
    target = f"{folder}retraining.csv"
    store.stage(target, parts[0])
    store.remove_prefix(folder + monitor_pass.RETRAINING)
    summary = json.loads(store.read_text(folder + monitor_pass.RETRAINING_SUMMARY) or "{}")
    return {"path": target, "training_data": training_data, "added": summary.get("added", 0)}


#: the pipeline variable a retraining build trains on (``cloudformation/pipeline.yml``, row CP-VARIABLES)
TRAINING_DATA_VARIABLE = "TrainingData"


def start_pipeline(params: dict[str, Any], pipeline: str, training_data: str, windows: list[str]) -> tuple[str, bool]:
    """Start the CI/CD pipeline ``pipeline``: on ``training_data`` (its ``TrainingData`` variable, which
    the build passes to ``churn-pipeline run --data``), or with none on the data its parameters name.
    Once per set of windows: windows that started it already (a fixed scores folder judged again the
    next day, against the model that scored it) do not start it again. (The execution id, whether it was
    started now.)"""
    if training_data and not training_data.startswith("s3://"):
        raise PipelineError(f"{training_data}: a pipeline's build reads its training data from S3")
    backend = open_backend(params)
    digest = hashlib.sha256(json.dumps(sorted(windows)).encode()).hexdigest()[:32]
    marker = (
        f"{Run(params, 'monitor', backend, Path('.')).environment_prefix}/{MONITORING_FOLDER}/started/{digest}.json"
    )
    earlier = backend.store.read_text(marker)
    if earlier is not None:
        return json.loads(earlier)["execution"], False
    # the API takes a list of at least one variable, or none at all
    variables = {"variables": [{"name": TRAINING_DATA_VARIABLE, "value": training_data}]} if training_data else {}
    started = backend.client("codepipeline").start_pipeline_execution(name=pipeline, **variables)
    execution = started["pipelineExecutionId"]
    record = {"windows": windows, "pipeline": pipeline, "execution": execution, "training_data": training_data}
    backend.store.write_text(marker, json.dumps(record, indent=2))
    return execution, True


def run_data(params: dict[str, Any], location: str) -> str:
    """The retraining file as a run's ``data``: the local backend's S3 is its store's folder."""
    if params["backend"] == "local" and location.startswith("s3://"):
        return str(open_backend(params).store.local_path(location))
    return location
