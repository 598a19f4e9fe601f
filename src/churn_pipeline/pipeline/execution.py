"""The state machine of a run: built, started (or rejoined, or redriven), followed and judged."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from .. import archives, names, sdk, statemachine, workspace
from ..aws_errors import ExecutionAlreadyExists, ExecutionNotRedrivable
from ..errors import ExecutionFailed, PipelineError
from .etl_reuse import plan_etl
from .run import Run
from .search import search_progress, tuning_input, tuning_job_name
from .staging import stage_code


def workflow_spec(run: Run) -> statemachine.WorkflowSpec:
    """What the definition is built from: parameters and resource names, nothing of the run."""
    params = run.params
    return statemachine.WorkflowSpec(
        glue_job_name=run.glue_job_name,
        training_image=run.training_image,
        threshold=params["accuracy_threshold"],
        environment=params["environment"],
        region=params["region"],
        sagemaker_role=params["sagemaker_execution_role"],
        instance_type=params["training_instance_type"],
        instance_count=params["training_instance_count"],
        train_fraction=params["train_fraction"],
        validation_fraction=params["validation_fraction"],
        split_seed=params["split_seed"],
    )


def build_state_machine(run: Run) -> dict[str, Any]:
    """Build and validate the definition, and keep it as ``statemachine.json``."""
    if "data_uri" not in run.state:
        raise PipelineError(f"run {run.run_id!r} has no staged data: run notebook 01 first")
    definition = statemachine.definition_for(workflow_spec(run), workspace.sdk_cache())
    run.write_artifact("statemachine.json", sdk.definition_json(definition))
    return definition


def execution_input(run: Run) -> dict[str, Any]:
    """Everything run-specific the definition reads (``$$.Execution.Input``)."""
    if "function_versions" not in run.state:
        raise PipelineError(f"run {run.run_id!r} has published no function versions: run notebook 01 again")
    plan = plan_etl(run)
    return {
        "RunId": run.run_id,
        "TrainingJobName": run.training_job_name,
        "ModelName": run.model_name,
        "DataUri": run.state["data_uri"],
        "DataSha256": run.state["data_sha256"],
        "GitCommit": run.state.get("git_commit") or "",
        "ReuseEtl": plan["reused"],
        "EtlSourceRunId": plan["source_run_id"],
        "EtlKey": plan["key"],
        "EtlRecordUri": plan["record_uri"],
        "EtlOutputUri": run.etl_output_uri,
        # the ETL code this run deployed: a redrive or a later deploy never runs other code
        "EtlScript": run.state["glue_job"]["script"],
        "EtlPackage": run.state["glue_job"]["package"],
        # the function versions this run published, invoked by qualified ARN (row LAMBDA-VERSIONS)
        "QueryFunction": run.state["function_versions"]["query"],
        "RegistryFunction": run.state["function_versions"]["registry"],
        # the model Save Model creates runs the endpoint's script with this run's manifest and decision
        "SourceDirUri": stage_code(run, "endpoint-source.tar.gz", archives.source_dir()),
        "ManifestUri": f"{run.own_etl_output_uri}/{names.FEATURE_MANIFEST}",
        "DecisionUri": run.decision_uri,
        # the baseline the ETL wrote beside the output this run trains on (a reused one's own)
        "BaselineStatisticsUri": f"{run.etl_output_uri}/{names.BASELINE_STATISTICS}",
        "BaselineConstraintsUri": f"{run.etl_output_uri}/{names.BASELINE_CONSTRAINTS}",
        "TrainUri": run.channel_uri("train"),
        "ValidationUri": run.channel_uri("validation"),
        "ModelOutputUri": run.model_output_uri,
        **tuning_input(run),
    }


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of execution ``name`` of a state machine (or of one of its versions)."""
    parts = state_machine_arn.split(":")
    return ":".join(parts[:5] + ["execution", parts[6], name])


def elapsed(started: float) -> str:
    """``MM:SS`` since ``started`` (a ``time.monotonic()`` reading)."""
    minutes, seconds = divmod(int(time.monotonic() - started), 60)
    return f"{minutes:02d}:{seconds:02d}"


def current_state(sfn, execution_arn: str) -> str | None:
    """The state an execution last entered, from the newest events of its history."""
    events = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=20)["events"]
    return next((e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e), None)


def start_or_rejoin(run: Run) -> str:
    """Start the run's execution, named after the run; if it exists, rejoin or redrive it.

    StartExecution is idempotent only while the first execution runs with the
    same input; once it has closed the name is refused (ExecutionAlreadyExists).
    Then: running -> wait for it, succeeded -> continue with it; failed, aborted
    or timed out -> with ``resume``, redrive it (RedriveExecution: the states that
    succeeded are not run again), otherwise stop and say which state failed and
    how to go on.
    """
    sfn = run.backend.client("stepfunctions")
    version_arn = run.state["state_machine"]["version_arn"]
    try:
        return sfn.start_execution(
            stateMachineArn=version_arn, name=run.run_id, input=json.dumps(execution_input(run))
        )["executionArn"]
    except ClientError as exc:
        if not ExecutionAlreadyExists.matches(exc):
            raise
    existing = execution_arn(version_arn, run.run_id)
    described = sfn.describe_execution(executionArn=existing)
    if described["status"] in ("RUNNING", "SUCCEEDED"):
        return existing
    history = run.backend.execution_history(existing)
    ended = (
        f"execution {existing} of run {run.run_id!r} ended {described['status']} in state "
        f"{history.get('failedState') or '?'}: {described.get('error') or '?'}: {described.get('cause') or ''}"
    )
    if described.get("error") == statemachine.GATE_ERROR:
        raise PipelineError(
            f"{ended}. The model did not pass the accuracy gate, and redriving would judge the "
            "same model again: start a new run (other hyper-parameters or data) to try again."
        )
    if not run.params["resume"]:
        raise PipelineError(
            f"{ended}. An execution name is used once: resume the run "
            f"(`churn-pipeline run --resume {run.run_id}`) to continue it from that state, or "
            "start a new run (a new run id, notebook 01)."
        )
    try:
        sfn.redrive_execution(executionArn=existing)
    except ClientError as exc:
        if not ExecutionNotRedrivable.matches(exc):
            raise
        raise PipelineError(f"{ended}; it cannot be redriven: {exc}. Start a new run.") from exc
    run.state["redriven"] = described.get("redriveCount", 0) + 1
    run.save()
    return existing


def execute(run: Run, poll_seconds: float = 5.0, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the execution (or rejoin the run's existing one), wait, keep its history.

    Returns the execution record; a failed execution is returned too (its
    history saved) so the notebook can show it before ``raise_if_failed``.
    """
    arn = start_or_rejoin(run)
    run.state["execution_arn"] = arn
    run.save()
    if not run.params["wait_for_execution"]:
        history = run.backend.execution_history(arn)
        run.write_artifact("execution-history.json", history)
        return history
    described = wait_for_execution(run, arn, poll_seconds, progress)
    history = run.backend.execution_history(arn)
    run.write_artifact("execution-history.json", history)
    run.state["execution_status"] = described["status"]
    run.save()
    return history


def wait_for_execution(
    run: Run, arn: str, poll_seconds: float = 5.0, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """Poll until the execution closes (at most ``execution_timeout_minutes``), showing each state it
    enters; its last description."""
    sfn = run.backend.client("stepfunctions")
    started_at = time.monotonic()
    deadline = started_at + run.params["execution_timeout_minutes"] * 60
    shown = None
    while True:
        described = sfn.describe_execution(executionArn=arn)
        redriving = described.get("redriveCount", 0) < run.state.get("redriven", 0)  # not visible yet
        if described["status"] != "RUNNING" and not redriving:
            return described
        current = current_state(sfn, arn)
        if current == statemachine.STATE_TUNE:
            tuning_job = tuning_job_name(run, described.get("redriveCount", 0))
            current = f"{current}: {search_progress(run.backend.client('sagemaker'), tuning_job)}"
        if current != shown:
            progress(f"[{elapsed(started_at)}] {current or 'starting'} ...")
            shown = current
        if time.monotonic() > deadline:
            raise PipelineError(
                f"execution {arn} still running after {run.params['execution_timeout_minutes']} minutes"
            )
        time.sleep(poll_seconds)


def raise_if_failed(history: dict[str, Any]) -> None:
    """Raise ExecutionFailed, naming the failing state, error and cause, unless the execution succeeded
    (or still runs, when the run did not wait for it)."""
    if history["status"] not in ("SUCCEEDED", "RUNNING"):
        raise ExecutionFailed(
            history.get("failedState") or "?", history.get("error") or "?", job_failure(history.get("cause") or "")
        )


def job_failure(cause: str) -> str:
    """A failed ``.sync`` task's cause is the job's description (Glue's JobRun, SageMaker's
    DescribeTrainingJob): its own message (``ErrorMessage``, ``FailureReason``) is what a person needs."""
    try:
        described = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(described, dict):
        for field in ("ErrorMessage", "FailureReason"):
            if described.get(field):
                return str(described[field])
    return cause
