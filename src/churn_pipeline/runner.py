"""Run the three notebooks in order with papermill and keep every artifact of the run.

``artifacts/<run-id>/`` receives the executed notebooks and their HTML, the
state machine and its execution history, the metrics, the CloudFormation
parameters (only when the model passed the gate) and ``summary.json``
(parameters, package versions, data hash, timings, status). A failed run keeps
its executed notebooks, with the failure visible in them.

``resume_notebooks`` continues a failed or interrupted run with its own
parameters: notebook 02 redrives the execution (the states that succeeded are
not run again), and the failed attempt's files move to ``attempt-<n>/`` beside
the new ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import backends, names, workspace
from .aws_errors import ExecutionDoesNotExist
from .errors import NotebookFailed, PipelineError
from .etl import spark_worker
from .notebooks import (
    MONITOR_NOTEBOOK,
    NOTEBOOKS,
    WORKFLOW_NOTEBOOK,
    Background,
    execute_notebook,
    kernel_environment,
)
from .pipeline.execution import current_state, elapsed, execution_arn
from .pipeline.monitor import MONITORING, monitor_folder
from .storage import write_atomic

#: what a new attempt replaces; the earlier attempt's copies move to attempt-<n>/
ATTEMPT_FILES = (names.RUN_SUMMARY, "execution-history.json", "metrics.json", names.DEPLOY_PARAMETERS)
PACKAGES = (
    "churn-pipeline",
    "xgboost",
    "pyspark",
    "sagemaker",
    "stepfunctions",
    "boto3",
    "papermill",
    "nbconvert",
    "pandas",
    "numpy",
)
#: what the run's summary keeps of its state
DATA_KEYS = ("data_source", "data_uri", "data_sha256", "data_format", "data_rows", "data_rows_counted", "churn_rate")


@dataclass
class RunResult:
    run_id: str
    artifacts_dir: Path
    status: str
    notebooks: list[dict[str, Any]] = field(default_factory=list)
    #: the cell that failed, with its source and error
    failure: NotebookFailed | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def error(self) -> str | None:
        return str(self.failure) if self.failure else None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def migrate_run_folder(out: Path) -> None:
    """A run folder written before the run's summary had a name of its own (``manifest.json``, the name
    the ETL's feature manifest keeps): renamed, in the run and in its earlier attempts."""
    for folder in (out, *sorted(out.glob("attempt-*"))):
        old, new = folder / "manifest.json", folder / names.RUN_SUMMARY
        if old.is_file() and not new.exists():
            os.replace(old, new)


class ExecutionProgress:
    """Follow the run's execution from this process while notebook 02 waits for it, and report each
    state it enters with the time since the notebook started."""

    def __init__(self, params: dict[str, Any], log: Callable[[str], None], poll_seconds: float = 1.0):
        self.params, self.log, self.poll_seconds = params, log, poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="execution-progress", daemon=True)

    def __enter__(self) -> ExecutionProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _follow(self) -> None:
        run_id, started, shown = self.params["run_id"], time.monotonic(), None
        try:
            backend = backends.open_backend(self.params)
            sfn = backend.client("stepfunctions")
            machine = backend.state_machine_arn(names.state_machine_name(self.params))
            arn = execution_arn(machine, run_id)
        except Exception as exc:  # progress is a courtesy: the notebook reports failures itself
            self.log(f"[{run_id}] execution progress unavailable: {exc}")
            return
        stopping = False
        while not stopping:  # one last look after the notebook ends: the state it ended in
            stopping = self._stop.wait(self.poll_seconds)
            try:
                status = sfn.describe_execution(executionArn=arn)["status"]
                state = current_state(sfn, arn) if status == "RUNNING" else status.lower()
            except Exception as exc:  # a courtesy: any failure to look is reported, never raised
                if not ExecutionDoesNotExist.matches(exc) and str(exc) != shown:  # not started yet: quiet
                    self.log(f"[{run_id}] execution progress: {exc}")
                    shown = str(exc)
                continue
            if state != shown:
                self.log(f"[{run_id}]   {elapsed(started)} state machine: {state}")
                shown = state


def progress_lines(progress: bool) -> Callable[[str], None]:
    """Where a run's progress lines go: stderr, each on a line of its own (in a terminal the cell bar's
    line is cleared first; the bar draws itself again below at its next step, and a log has no bar);
    nowhere when ``progress`` is off (--quiet)."""
    if not progress:
        return lambda message: None

    def write(message: str) -> None:
        sys.stderr.write(("\r\033[K" if sys.stderr.isatty() else "") + message + "\n")
        sys.stderr.flush()

    return write


def run_notebooks(
    params: dict[str, Any],
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    earlier: dict[str, Any] | None = None,
) -> RunResult:
    """Execute 01, 02, 03 with ``params`` (already validated); stop at the first failure. ``progress``:
    the cell bar (in a terminal) and the progress lines (``progress_lines``), unless ``log`` is given.

    ``notebooks`` and ``earlier`` (the previous attempt's summary) are for
    ``resume_notebooks``: the notebooks not run again keep their earlier entries.
    """
    log = log or progress_lines(progress)
    params = dict(params, run_id=workspace.check_run_id(params["run_id"] or workspace.new_run_id()))
    run_id = params["run_id"]
    out = workspace.artifacts_root() / run_id
    migrate_run_folder(out)
    if (out / names.RUN_SUMMARY).exists():
        raise PipelineError(f"artifacts for run {run_id!r} exist already ({out}); choose another run id")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / names.RUN_PARAMETERS, json.dumps(params, indent=2, sort_keys=True))
    kernel_environment(workspace.project_root())
    start_spark_worker(params)
    result = RunResult(run_id, out, "running")
    result.notebooks.extend(e for e in (earlier or {}).get("notebooks", []) if e["notebook"] not in notebooks)
    started = time.time()
    with Background(workspace.project_root() / "notebooks") as background:
        background.start_kernel_now()  # the first notebook's, while the worker starts and papermill loads
        for number, name in enumerate(notebooks, start=1):
            log(f"[{run_id}] {name} ...")
            following = ExecutionProgress(params, log) if name == WORKFLOW_NOTEBOOK else contextlib.nullcontext()
            with following:
                entry, result.failure = execute_notebook(
                    name, params, out, progress, background, next_kernel=number < len(notebooks)
                )
            result.notebooks.append(entry)
            log(f"[{run_id}] {name} {entry['status']} in {entry['seconds']:.1f} s")
            if result.failure:
                break
    result.status = "failed" if result.failure else "succeeded"
    summary = _summary(result, params, _read_json(out / names.RUN_STATE), earlier, started)
    write_atomic(out / names.RUN_SUMMARY, json.dumps(summary, indent=2, sort_keys=True, default=str))
    return result


def start_spark_worker(params: dict[str, Any]) -> None:
    """On the local backend, the warm Spark worker starting (and warming up) while the first notebooks
    run, so the ETL state rarely waits for Spark's start; nothing when one lives or it is turned off."""
    folder = workspace.spark_worker_dir(workspace.home()) if params["backend"] == "local" else None
    if folder:
        spark_worker.ensure_started(folder, params["spark_master"], wait=False)


def _summary(result: RunResult, params, run_state, earlier, started: float) -> dict[str, Any]:
    """The run's ``summary.json``: parameters, package versions, data, decisions, timings, status."""
    return {
        "run_id": result.run_id,
        "status": result.status,
        "error": result.error,
        "parameters": params,
        "packages": package_versions(),
        "data": {k: run_state.get(k) for k in DATA_KEYS},
        "git_commit": run_state.get("git_commit"),
        "etl": run_state.get("etl"),
        "decision": run_state.get("decision"),
        "execution_status": run_state.get("execution_status"),
        "redriven": run_state.get("redriven", 0),
        "attempt": (earlier or {}).get("attempt", 0) + 1 if earlier is not None else 1,
        "notebooks": result.notebooks,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 2),
    }


def resume_notebooks(run_id: str, progress: bool = True, log: Callable[[str], None] | None = None) -> RunResult:
    """Continue a failed or interrupted run with the parameters it started with.

    Notebook 01 runs again only if it did not finish; 02 and 03 always do (02
    redrives the execution). The earlier attempt's copies of what is run again
    move to ``attempt-<n>/``.
    """
    workspace.check_run_id(run_id)
    out = workspace.artifacts_root() / run_id
    if not (out / names.RUN_PARAMETERS).exists():
        raise PipelineError(
            f"run {run_id!r} has no {names.RUN_PARAMETERS} in {out}: it was not started by "
            "`churn-pipeline run`, so there is nothing to resume"
        )
    migrate_run_folder(out)
    earlier = _read_json(out / names.RUN_SUMMARY)
    if earlier.get("status") == "succeeded":
        raise PipelineError(f"run {run_id!r} succeeded: there is nothing to resume (start a new run to train again)")
    notebooks = NOTEBOOKS[1:] if "functions" in _read_json(out / names.RUN_STATE) else NOTEBOOKS
    number = _next_attempt(out)
    attempt = out / f"attempt-{number}"
    attempt.mkdir()
    for name in notebooks:
        for path in (out / name, (out / name).with_suffix(".html")):
            if path.exists():
                shutil.move(str(path), attempt / path.name)
    for name in ATTEMPT_FILES:
        if (out / name).exists():
            shutil.move(str(out / name), attempt / name)
    for name in (names.RUN_STATE, names.RUN_PARAMETERS):
        if (out / name).exists():
            shutil.copy2(out / name, attempt / name)
    params = dict(json.loads((out / names.RUN_PARAMETERS).read_text()), resume=True)
    log = log or progress_lines(progress)
    log(f"[{run_id}] resuming: the earlier attempt is kept in {attempt.name}/; running {', '.join(notebooks)}")
    return run_notebooks(
        params, progress=progress, log=log, notebooks=notebooks, earlier={**earlier, "attempt": number}
    )


def _next_attempt(out: Path) -> int:
    numbers = [int(p.name.split("-")[1]) for p in out.glob("attempt-*") if p.name.split("-")[1].isdigit()]
    return max(numbers, default=0) + 1


@dataclass
class MonitorResult:
    monitor_id: str
    artifacts_dir: Path
    #: ``monitoring.json``; None when the notebook failed before writing it
    report: dict[str, Any] | None
    failure: NotebookFailed | None = None


def run_monitor(
    params: dict[str, Any], monitor: dict[str, Any], progress: bool = True, log: Callable[[str], None] | None = None
) -> MonitorResult:
    """Execute notebook 04 with the pipeline's ``params`` and the monitor's own (``monitor``) into
    ``artifacts/monitor-<id>/``, kept with its HTML like a run's notebooks."""
    monitor_id = workspace.check_run_id(monitor.get("monitor_id") or workspace.new_run_id())
    out = monitor_folder(monitor_id)
    log = log or progress_lines(progress)
    kernel_environment(workspace.project_root())
    log(f"[monitor-{monitor_id}] {MONITOR_NOTEBOOK} ...")
    entry, failure = execute_notebook(MONITOR_NOTEBOOK, {**params, **monitor, "monitor_id": monitor_id}, out, progress)
    log(f"[monitor-{monitor_id}] {MONITOR_NOTEBOOK} {entry['status']} in {entry['seconds']:.1f} s")
    report = _read_json(out / MONITORING) or None
    return MonitorResult(monitor_id, out, None if failure else report, failure)
