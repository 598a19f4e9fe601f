"""The shared resources (the ETL job, the functions, the state machine), created or updated.

Their definitions do not depend on the run: code lives at content-addressed
keys and everything run-specific reaches them as execution input, so
concurrent runs never change each other's code and a run with nothing new
updates nothing. Every create-or-update reads first and catches only the
"not found" code (``aws_errors``); ``docs/aws-behaviours.md`` lists the
service behaviour each step relies on.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from .. import archives, names, sdk, workspace
from ..aws_errors import (
    AwsErrorCode,
    GlueEntityNotFound,
    LambdaCodeChanged,
    LambdaResourceNotFound,
    StateMachineDoesNotExist,
)
from ..errors import PipelineError
from ..storage import split_s3_uri
from .run import Run
from .staging import stage_code

FUNCTION_READY_SECONDS = 300


def etl_job_definition(run: Run) -> dict[str, Any]:
    """The whole Glue job definition (UpdateJob replaces a job's definition with what it is given)."""
    script_uri = stage_code(run, "glue_etl.py", (workspace.project_root() / "code" / "glue_etl.py").read_bytes())
    package_uri = stage_code(run, "churn_pipeline.zip", archives.package_archive())
    params = run.params
    return {
        "Role": params["glue_role"],
        "GlueVersion": "5.0",
        "Command": {"Name": "glueetl", "ScriptLocation": script_uri, "PythonVersion": "3"},
        "WorkerType": params["glue_worker_type"],
        "NumberOfWorkers": params["glue_number_of_workers"],
        "Timeout": params["glue_timeout_minutes"],
        "ExecutionProperty": {"MaxConcurrentRuns": params["glue_max_concurrent_runs"]},
        "DefaultArguments": {
            "--extra-py-files": package_uri,
            "--job-language": "python",
            "--enable-metrics": "true",
            **run.backend.glue_default_arguments(),
        },
    }


def _differs(wanted: dict[str, Any], current: dict[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in wanted.items())


Current = TypeVar("Current")
Outcome = TypeVar("Outcome")


def create_or_update(
    read: Callable[[], Current],
    not_found: type[AwsErrorCode],
    create: Callable[[], Outcome],
    update: Callable[[Current], Outcome],
) -> Outcome:
    """``update(read())``, or ``create()`` when the read answers ``not_found``'s code: every other
    error (a denied read, throttling) is raised, never taken for a missing resource."""
    try:
        current = read()
    except ClientError as exc:
        if not not_found.matches(exc):
            raise
        return create()
    return update(current)


def deploy_etl_job(run: Run) -> str:
    """Create the Glue job, or update it when its definition differs; returns created/updated/unchanged.

    Glue answers CreateJob for an existing name with another definition with
    IdempotentParameterMismatchException, never with an update: read first.
    """
    glue = run.backend.client("glue")
    definition = etl_job_definition(run)

    def create() -> str:
        glue.create_job(Name=run.glue_job_name, **definition)
        return "created"

    def update(current: dict[str, Any]) -> str:
        if not _differs(definition, current["Job"]):
            return "unchanged"
        glue.update_job(JobName=run.glue_job_name, JobUpdate=definition)
        return "updated"

    outcome = create_or_update(lambda: glue.get_job(JobName=run.glue_job_name), GlueEntityNotFound, create, update)
    run.state["glue_job"] = {
        "name": run.glue_job_name,
        "script": definition["Command"]["ScriptLocation"],
        "package": definition["DefaultArguments"]["--extra-py-files"],
        "outcome": outcome,
    }
    run.save()
    return outcome


def wait_for_function(run: Run, name: str) -> dict[str, Any]:
    """Wait until a function is Active and its last update Successful (Lambda refuses to invoke a
    Pending function and to change one whose update is InProgress)."""
    functions = run.backend.client("lambda")
    deadline = time.monotonic() + FUNCTION_READY_SECONDS
    while True:
        configuration = functions.get_function_configuration(FunctionName=name)
        state = configuration.get("State")
        status = configuration.get("LastUpdateStatus", "Successful")
        if state == "Active" and status == "Successful":
            return configuration
        if state == "Failed" or status == "Failed":
            raise PipelineError(
                f"function {name}: {state or status}: "
                f"{configuration.get('LastUpdateStatusReason') or configuration.get('StateReason')}"
            )
        if time.monotonic() > deadline:
            raise PipelineError(
                f"function {name} not ready after {FUNCTION_READY_SECONDS} s (state {state}, last update {status})"
            )
        time.sleep(run.backend.function_poll_seconds())


def deploy_functions(run: Run) -> dict[str, str]:
    """Create both functions from one archive, or update what differs; returns {function: outcome}."""
    archive = archives.function_archive()
    bucket, key = split_s3_uri(stage_code(run, "functions.zip", archive))
    code = {"S3Bucket": bucket, "S3Key": key, "CodeSha256": base64.b64encode(hashlib.sha256(archive).digest()).decode()}
    outcomes = {}
    versions = {}
    for role in names.FUNCTION_MODULES:
        outcomes[run.function_name(role)] = _deploy_function(run, role, code)
        versions[role] = publish_function(run, run.function_name(role), code["CodeSha256"])
    run.state["functions"] = outcomes
    run.state["function_versions"] = versions
    run.save()
    return outcomes


def publish_function(run: Run, name: str, code_sha256: str) -> str:
    """The qualified ARN of a version holding exactly this code (row LAMBDA-VERSIONS): the execution
    invokes it, so a later deploy, even during a redrive, never changes what this run's states run.
    Lambda publishes nothing new when nothing changed, and refuses when another build has replaced
    the code in between (``CodeSha256`` no longer matches)."""
    try:
        published = run.backend.client("lambda").publish_version(FunctionName=name, CodeSha256=code_sha256)
    except ClientError as exc:
        if not LambdaCodeChanged.matches(exc):
            raise
        raise PipelineError(
            f"function {name}: another build replaced its code while this run published it; nothing of this "
            "run has started: run notebook 01 again"
        ) from exc
    return published["FunctionArn"]


def _deploy_function(run: Run, role: str, code: dict[str, str]) -> str:
    """One function created, or its code and settings updated where they differ (each change waited for:
    Lambda refuses a change while another is in progress)."""
    functions = run.backend.client("lambda")
    name = run.function_name(role)
    roles = {"query": run.params["lambda_role"], "registry": run.params["model_registry_lambda_role"]}
    settings = {
        "Role": roles[role],
        "Handler": f"{names.FUNCTION_MODULES[role]}.handler",
        "Runtime": run.params["lambda_runtime"],
        "Timeout": 60,
        "MemorySize": 256,
        "Environment": {"Variables": run.backend.function_environment(run.registry_table)},
    }
    location = {"S3Bucket": code["S3Bucket"], "S3Key": code["S3Key"]}

    def create() -> str:
        functions.create_function(FunctionName=name, Code=location, **settings)
        wait_for_function(run, name)
        return "created"

    def update(current: dict[str, Any]) -> str:
        outcome = "unchanged"
        if current.get("CodeSha256") != code["CodeSha256"]:
            functions.update_function_code(FunctionName=name, **location)
            wait_for_function(run, name)
            outcome = "updated"
        if _differs(settings, current):
            functions.update_function_configuration(FunctionName=name, **settings)
            wait_for_function(run, name)
            outcome = "updated"
        return outcome

    # read once ready: an update a previous build started may still be in progress
    return create_or_update(lambda: wait_for_function(run, name), LambdaResourceNotFound, create, update)


def _latest_version(sfn, arn: str) -> dict[str, Any] | None:
    """The newest published version, described (ListStateMachineVersions lists newest first)."""
    versions = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    if not versions:
        return None
    return sfn.describe_state_machine(stateMachineArn=versions[0]["stateMachineVersionArn"])


def prune_versions(sfn, arn: str, keep: int) -> list[str]:
    """Delete published versions beyond the newest ``keep`` (a state machine holds at most 1,000;
    deleting a version does not stop executions running on it)."""
    versions = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    deleted = [v["stateMachineVersionArn"] for v in versions[keep:]]
    for version_arn in deleted:
        sfn.delete_state_machine_version(stateMachineVersionArn=version_arn)
    return deleted


def deploy_state_machine(run: Run, definition: dict[str, Any], name: str | None = None) -> str:
    """Create or update the state machine with exactly the JSON in ``statemachine.json``; publish a
    version only when that differs from the latest version. Returns created/updated/unchanged.

    The run executes the published version, so a concurrent run that updates
    the state machine in between cannot change what this run executes.
    """
    sfn = run.backend.client("stepfunctions")
    name = name or run.state_machine_name
    text = sdk.definition_json(definition)
    role = run.params["workflow_execution_role"]
    arn = run.backend.state_machine_arn(name)

    def create() -> tuple[str, str]:
        created = sfn.create_state_machine(name=name, definition=text, roleArn=role, publish=True)
        return "created", created["stateMachineVersionArn"]

    def update(current: dict[str, Any]) -> tuple[str, str]:
        outcome = "unchanged"
        if current["definition"] != text or current["roleArn"] != role:
            sfn.update_state_machine(stateMachineArn=arn, definition=text, roleArn=role)
            outcome = "updated"
        latest = _latest_version(sfn, arn)
        if latest is not None and latest["definition"] == text and latest["roleArn"] == role:
            return outcome, latest["stateMachineArn"]
        return outcome, sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"]

    outcome, version_arn = create_or_update(
        lambda: sfn.describe_state_machine(stateMachineArn=arn), StateMachineDoesNotExist, create, update
    )
    deleted = prune_versions(sfn, arn, run.params["state_machine_versions_to_keep"])
    run.state["state_machine"] = {
        "name": name,
        "arn": arn,
        "outcome": outcome,
        "version_arn": version_arn,
        "versions_deleted": len(deleted),
    }
    run.save()
    return outcome
