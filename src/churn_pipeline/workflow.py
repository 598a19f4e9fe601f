"""The pipeline's steps as the three notebooks call them, on either backend.

01 ``start_run`` -> ``stage_data`` -> ``deploy_etl_job`` -> ``deploy_functions``
02 ``resume_run`` -> ``plan_etl`` -> ``build_state_machine`` -> ``deploy_state_machine`` -> ``execute``
03 ``resume_run`` -> ``registry_record`` -> ``evaluate_model`` -> ``export.write_parameters``

A ``Run`` carries the parameters, the resource names and the URIs; what one
notebook learns that the next needs (data hash, execution ARN) is kept in the
run's ``run.json`` beside its other artifacts.

The shared resources (the ETL job, the functions, the state machine) have
definitions that do not depend on the run: code lives at content-addressed
keys and everything run-specific reaches them as execution input, so
concurrent runs never change each other's code and a run with nothing new
updates nothing. Every create-or-update reads first and catches only the
"not found" code (``aws_errors``); ``docs/aws-behaviours.md`` lists the
service behaviour each step relies on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import backends, bundles, data, etl, statemachine, workspace
from .aws_errors import (
    ExecutionAlreadyExists,
    ExecutionNotRedrivable,
    GlueEntityNotFound,
    LambdaResourceNotFound,
    StateMachineDoesNotExist,
)
from .errors import ExecutionFailed, PipelineError, RecordNotFound
from .storage import split_s3_uri, write_atomic

RUN_FILE = "run.json"
CURRENT_RUN_FILE = "current-run"
FUNCTION_HANDLERS = dict(zip(("query", "registry"), bundles.FUNCTION_MODULES))
FUNCTION_READY_SECONDS = 300


def resource_name(params: dict[str, Any], suffix: str, limit: int = 63) -> str:
    """``<project>-<environment>-<suffix>``, checked against the strictest limit of the services."""
    name = f"{params['project']}-{params['environment']}-{suffix}"
    if len(name) > limit or not all(c.isalnum() or c == "-" for c in name):
        raise PipelineError(
            f"resource name {name!r} (from project, environment and {suffix!r}) must be at most "
            f"{limit} letters, digits and hyphens; shorten project or environment"
        )
    return name


def registry_table(params: dict[str, Any]) -> str:
    return resource_name(params, "model-registry", limit=255)


def state_machine_name(params: dict[str, Any]) -> str:
    return resource_name(params, "training-pipeline", limit=80)


@dataclass
class Run:
    params: dict[str, Any]
    run_id: str
    backend: Any
    artifacts_dir: Path
    state: dict[str, Any] = field(default_factory=dict)

    # names and places, all derived from project, environment and run id
    @property
    def bucket(self) -> str:
        """The parameters' bucket, else the backend's default (kept so every notebook uses the same)."""
        if "bucket" not in self.state:
            self.state["bucket"] = self.params["bucket"] or self.backend.default_bucket()
        return self.state["bucket"]

    @property
    def project_prefix(self) -> str:
        """``s3://<bucket>/<project>``: every run, the staged code and the ETL records live under it."""
        return f"s3://{self.bucket}/{self.params['project']}"

    @property
    def prefix(self) -> str:
        return self.run_prefix(self.run_id)

    @property
    def model_name(self) -> str:
        return resource_name(self.params, self.run_id)

    @property
    def training_job_name(self) -> str:
        """The base of the training job names: the state machine appends ``-<redrive count>``."""
        return resource_name(self.params, self.run_id, limit=63 - statemachine.TRAINING_JOB_SUFFIX_LENGTH)

    @property
    def glue_job_name(self) -> str:
        return resource_name(self.params, "etl")

    @property
    def state_machine_name(self) -> str:
        return state_machine_name(self.params)

    @property
    def registry_table(self) -> str:
        return registry_table(self.params)

    def function_name(self, role: str) -> str:
        return resource_name(self.params, FUNCTION_HANDLERS[role].replace("_", "-"), limit=64)

    @property
    def code_prefix(self) -> str:
        """Where code is staged, under its content hash: shared by runs, never rewritten."""
        return f"{self.project_prefix}/code"

    @property
    def own_etl_output_uri(self) -> str:
        """Where this run's ETL writes (and where its manifest is, even when the ETL is reused)."""
        return f"{self.prefix}/etl"

    @property
    def etl_output_uri(self) -> str:
        """The ETL output this run trains on: its own, or the one ``plan_etl`` chose to reuse."""
        return self.state.get("etl", {}).get("output_uri") or self.own_etl_output_uri

    def etl_record_uri(self, key: str) -> str:
        """Where a finished ETL with inputs ``key`` records which run's output it is."""
        return f"{self.project_prefix}/etl-records/{key}.json"

    def run_prefix(self, run_id: str) -> str:
        return f"{self.project_prefix}/{run_id}"

    def channel_uri(self, split: str) -> str:
        """A split's folder as a training channel: the trailing slash keeps ``<split>_$folder$`` out."""
        return f"{self.etl_output_uri}/{split}/"

    @property
    def model_output_uri(self) -> str:
        return f"{self.prefix}/models"

    @property
    def training_image(self) -> str:
        return statemachine.training_image_uri(
            self.params["region"], self.params["xgboost_version"], workspace.sdk_cache()
        )

    def registry(self):
        return self.backend.registry(self.registry_table)

    def save(self) -> None:
        document = {"run_id": self.run_id, "backend": self.params["backend"], **self.state}
        write_atomic(self.artifacts_dir / RUN_FILE, json.dumps(document, indent=2, sort_keys=True))

    def write_artifact(self, name: str, content: Any) -> Path:
        """Write a JSON (or text) artifact of this run atomically."""
        text = content if isinstance(content, str) else json.dumps(content, indent=2, sort_keys=True, default=str)
        return write_atomic(self.artifacts_dir / name, text)


def start_run(params: dict[str, Any]) -> Run:
    """Begin a run (notebook 01): a new run id unless one is given; it becomes the current run."""
    run_id = workspace.check_run_id(params["run_id"] or workspace.new_run_id())
    run = Run(params, run_id, backends.open_backend(params), workspace.artifacts_root() / run_id)
    run.state = {"git_commit": workspace.git_commit()}
    run.save()
    marker = workspace.home() / CURRENT_RUN_FILE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(run_id)
    return run


def resume_run(params: dict[str, Any]) -> Run:
    """Continue a run (notebooks 02, 03): the given run id, or the one notebook 01 started last."""
    run_id = params["run_id"]
    if not run_id:
        marker = workspace.home() / CURRENT_RUN_FILE
        if not marker.exists():
            raise PipelineError("no run id given and no current run: run notebook 01 first")
        run_id = marker.read_text().strip()
    workspace.check_run_id(run_id)
    artifacts = workspace.artifacts_root() / run_id
    if not (artifacts / RUN_FILE).exists():
        raise PipelineError(
            f"run {run_id!r} has not been started (no {RUN_FILE} in its artifacts); run notebook 01 first"
        )
    state = json.loads((artifacts / RUN_FILE).read_text())
    state.pop("run_id", None)
    state.pop("backend", None)
    return Run(params, run_id, backends.open_backend(params), artifacts, state)


def stage_data(run: Run) -> data.DataProfile:
    """Check the header and the first rows of the input and copy it to the run's prefix; generate
    synthetic data when none is named. Every row is validated by the ETL job, on Spark."""
    params = run.params
    source = params["data"]
    if not source:
        source = str(workspace.home() / "data" / f"synthetic-{params['synthetic_rows']}-{params['synthetic_seed']}.csv")
        if not Path(source).exists():
            data.write_synthetic(source, params["synthetic_rows"], params["synthetic_seed"])
    profile = data.profile_file(source, run.backend.s3_client() if source.startswith("s3://") else None)
    name = Path(source.split("?")[0]).name or "data.csv"
    staged_uri = f"{run.prefix}/raw/{name}"
    digest = run.backend.stage_file(source, staged_uri)
    run.state.update(
        data_source=params["data"] or f"synthetic(rows={params['synthetic_rows']}, seed={params['synthetic_seed']})",
        data_uri=staged_uri,
        data_sha256=digest,
        data_format=profile.summary.format,
        data_rows=profile.rows,
        data_rows_counted=profile.complete,
        churn_rate=round(profile.summary.churn_rate, 4),
    )
    run.save()
    return profile


def stage_code(run: Run, name: str, content: bytes) -> str:
    """Stage ``content`` at ``<code prefix>/<stem>-<sha256[:16]><suffix>`` (once; the key names the content)."""
    stem, dot, suffix = name.partition(".")
    uri = f"{run.code_prefix}/{stem}-{hashlib.sha256(content).hexdigest()[:16]}{dot}{suffix}"
    if not run.backend.object_exists(uri):
        run.backend.stage_bytes(content, uri)
    return uri


def etl_job_definition(run: Run) -> dict[str, Any]:
    """The whole Glue job definition (UpdateJob replaces a job's definition with what it is given)."""
    script_uri = stage_code(run, "glue_etl.py", (workspace.project_root() / "code" / "glue_etl.py").read_bytes())
    package_uri = stage_code(run, "churn_pipeline.zip", bundles.package_archive())
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


def deploy_etl_job(run: Run) -> str:
    """Create the Glue job, or update it when its definition differs; returns created/updated/unchanged.

    Glue answers CreateJob for an existing name with another definition with
    IdempotentParameterMismatchException, never with an update: read first.
    """
    glue = run.backend.client("glue")
    definition = etl_job_definition(run)
    try:
        current = glue.get_job(JobName=run.glue_job_name)["Job"]
    except Exception as exc:
        if not GlueEntityNotFound.matches(exc):
            raise
        glue.create_job(Name=run.glue_job_name, **definition)
        outcome = "created"
    else:
        outcome = "unchanged"
        if _differs(definition, current):
            glue.update_job(JobName=run.glue_job_name, JobUpdate=definition)
            outcome = "updated"
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
    """Create both functions from one bundle, or update what differs; returns {function: outcome}."""
    bundle = bundles.function_bundle()
    bucket, key = split_s3_uri(stage_code(run, "functions.zip", bundle))
    code_sha256 = base64.b64encode(hashlib.sha256(bundle).digest()).decode()
    lambda_client = run.backend.client("lambda")
    roles = {"query": run.params["lambda_role"], "registry": run.params["model_registry_lambda_role"]}
    outcomes = {}
    for role, module in FUNCTION_HANDLERS.items():
        name = run.function_name(role)
        settings = {
            "Role": roles[role],
            "Handler": f"{module}.handler",
            "Runtime": run.params["lambda_runtime"],
            "Timeout": 60,
            "MemorySize": 256,
            "Environment": {"Variables": run.backend.function_environment(run.registry_table)},
        }
        try:  # read it once ready: an update a previous build started may still be in progress
            current = wait_for_function(run, name)
        except Exception as exc:
            if not LambdaResourceNotFound.matches(exc):
                raise
            lambda_client.create_function(FunctionName=name, Code={"S3Bucket": bucket, "S3Key": key}, **settings)
            wait_for_function(run, name)
            outcomes[name] = "created"
            continue
        outcomes[name] = "unchanged"
        if current.get("CodeSha256") != code_sha256:
            lambda_client.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key=key)
            wait_for_function(run, name)
            outcomes[name] = "updated"
        if _differs(settings, current):
            lambda_client.update_function_configuration(FunctionName=name, **settings)
            wait_for_function(run, name)
            outcomes[name] = "updated"
    run.state["functions"] = outcomes
    run.save()
    return outcomes


def etl_key(run: Run) -> str:
    """What makes two ETL outputs the same: the data, the ETL code and the package it ships (their
    content-addressed names), the split fractions and the seed."""
    glue = run.state.get("glue_job")
    if not glue:
        raise PipelineError(f"run {run.run_id!r} has no ETL job: run notebook 01 first")
    inputs = {
        "data_sha256": run.state["data_sha256"],
        "script": glue["script"].rsplit("/", 1)[-1],
        "package": glue["package"].rsplit("/", 1)[-1],
        "train_fraction": run.params["train_fraction"],
        "validation_fraction": run.params["validation_fraction"],
        "split_seed": run.params["split_seed"],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]


def plan_etl(run: Run) -> dict[str, Any]:
    """Decide, once per run, whether the execution runs the ETL or reuses an identical earlier output.

    The decision goes to the state machine as execution input (its Choice
    state skips the ETL job); it is kept in ``run.json``, so a resumed run
    keeps it. A reused output's manifest is copied beside this run's model
    (``<run>/etl/manifest.json``) with the run it came from.
    """
    if "etl" in run.state:
        return run.state["etl"]
    key = etl_key(run)
    plan = {
        "key": key,
        "record_uri": run.etl_record_uri(key),
        "reused": False,
        "source_run_id": run.run_id,
        "output_uri": run.own_etl_output_uri,
    }
    if not run.params["reuse_etl"]:
        plan["reason"] = "reuse_etl is false"
    elif not run.backend.object_exists(plan["record_uri"]):
        plan["reason"] = "no earlier ETL with this data, ETL code, split fractions and seed"
    else:
        source = json.loads(run.backend.local_copy(plan["record_uri"]).read_text())["run_id"]
        output_uri = f"{run.run_prefix(source)}/etl"
        manifest_uri = f"{output_uri}/{etl.MANIFEST_NAME}"
        if source == run.run_id or not run.backend.object_exists(manifest_uri):
            plan["reason"] = f"the earlier ETL output of run {source} is gone"
        else:
            manifest = json.loads(run.backend.local_copy(manifest_uri).read_text())
            manifest["reused_from"] = {"run_id": source, "output_uri": output_uri}
            run.backend.stage_bytes(
                json.dumps(manifest, indent=2).encode(), f"{run.own_etl_output_uri}/{etl.MANIFEST_NAME}"
            )
            plan.update(
                reused=True,
                source_run_id=source,
                output_uri=output_uri,
                reason=f"run {source} ran the ETL on the same data, ETL code, split fractions and seed",
            )
    run.state["etl"] = plan
    run.save()
    return plan


def workflow_spec(run: Run) -> statemachine.WorkflowSpec:
    """What the definition is built from: parameters and resource names, nothing of the run."""
    params = run.params
    return statemachine.WorkflowSpec(
        glue_job_name=run.glue_job_name,
        training_image=run.training_image,
        query_function=run.function_name("query"),
        registry_function=run.function_name("registry"),
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
    run.write_artifact("statemachine.json", statemachine.definition_json(definition))
    return definition


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
    text = statemachine.definition_json(definition)
    role = run.params["workflow_execution_role"]
    arn = run.backend.state_machine_arn(name)
    try:
        current = sfn.describe_state_machine(stateMachineArn=arn)
    except Exception as exc:
        if not StateMachineDoesNotExist.matches(exc):
            raise
        version_arn = sfn.create_state_machine(name=name, definition=text, roleArn=role, publish=True)[
            "stateMachineVersionArn"
        ]
        outcome = "created"
    else:
        outcome = "unchanged"
        if current["definition"] != text or current["roleArn"] != role:
            sfn.update_state_machine(stateMachineArn=arn, definition=text, roleArn=role)
            outcome = "updated"
        latest = _latest_version(sfn, arn)
        if latest is not None and latest["definition"] == text and latest["roleArn"] == role:
            version_arn = latest["stateMachineArn"]
        else:
            version_arn = sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"]
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


def execution_input(run: Run) -> dict[str, Any]:
    """Everything run-specific the definition reads (``$$.Execution.Input``)."""
    from .training import hyperparameters_from

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
        "TrainUri": run.channel_uri("train"),
        "ValidationUri": run.channel_uri("validation"),
        "ModelOutputUri": run.model_output_uri,
        "HyperParameters": hyperparameters_from(run.params),
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
    except Exception as exc:
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
    except Exception as exc:
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


def registry_record(run: Run):
    """The registry record of this run; a clear error when the gate did not let it through."""
    try:
        return run.registry().get(run.run_id)
    except RecordNotFound:
        status = run.state.get("execution_status", "not run")
        raise PipelineError(
            f"run {run.run_id!r} has no registry record (execution status: {status}); "
            "only a model that passes the accuracy gate is registered"
        ) from None


#: test rows whose SHAP contributions make notebook 03's summary (the split is in seeded-hash order,
#: so its first rows are a random sample)
REASONS_SAMPLE_ROWS = 2000
#: points of the cost curve notebook 03 draws
COST_CURVE_POINTS = 200


def evaluate_model(run: Run, record) -> dict[str, Any]:
    """Score the held-out test split with the registered model, batch by batch; choose the cutoff by cost
    and summarise the reasons on a sample; keep ``metrics.json``.

    A run whose record holds another decision (other costs) is refused before anything is written."""
    import numpy as np

    from . import evaluation, explain, training
    from .registry import check_decision

    manifest = json.loads(run.backend.local_copy(f"{run.own_etl_output_uri}/{etl.MANIFEST_NAME}").read_text())
    rows = sum(manifest["rows"].values())  # every row, counted by the ETL job
    run.state.update(data_rows=rows, data_rows_counted=True, churn_rate=round(manifest["positives"] / rows, 4))
    run.save()
    booster = training.load_model_archive(run.backend.local_copy(record.model_data_url))
    tally, sample, sampled = evaluation.ScoreTally(), [], 0
    for features, labels in training.iter_channel(run.backend.local_copy(run.channel_uri("test"))):
        tally.add(labels, booster.inplace_predict(features))
        if sampled < REASONS_SAMPLE_ROWS:
            sample.append(features[: REASONS_SAMPLE_ROWS - sampled])
            sampled += len(sample[-1])
    decision = tally.cost_cutoff(run.params["retention_offer_cost"], run.params["churn_loss"])
    if record.decision is not None:
        check_decision(record, decision, "the registry")
    cutoffs, costs = tally.expected_costs(run.params["retention_offer_cost"], run.params["churn_loss"])
    step = max(1, tally.bins // COST_CURVE_POINTS)
    per_column, _ = explain.contributions(booster, np.concatenate(sample), manifest)
    fpr, tpr = tally.roc()
    importance = evaluation.feature_importance(booster, manifest["features"])
    metrics = {
        "run_id": run.run_id,
        "threshold": record.threshold,
        "training": record.metrics,
        "test": tally.result(),
        "decision": decision,
        "reasons": {
            "rows": sampled,
            "mean_abs_contribution": [
                {"column": c, "value": v}
                for c, v in explain.mean_absolute(per_column, explain.reason_columns(manifest))
            ],
        },
        "feature_importance": [{"feature": f, "gain": g} for f, g in importance[:20]],
    }
    run.write_artifact("metrics.json", metrics)
    rows = max(1, int(tally.counts.sum()))
    return {
        **metrics,
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "manifest": manifest,
        "cost_curve": {"cutoff": cutoffs[::step].tolist(), "cost_per_customer": (costs[::step] / rows).tolist()},
    }


def record_decision(run: Run, decision: dict[str, float]):
    """Write the cost-chosen cutoff into the registry record (once) and the run's state; the record."""
    record = run.registry().record_decision(run.run_id, decision)
    run.state["decision"] = decision
    run.save()
    return record
