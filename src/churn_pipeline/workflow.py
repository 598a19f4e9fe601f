"""The pipeline's steps as the three notebooks call them, on either backend.

01 ``start_run`` -> ``stage_data`` -> ``deploy_etl_job`` -> ``deploy_functions``
02 ``resume_run`` -> ``build_state_machine`` -> ``deploy_state_machine`` -> ``execute``
03 ``resume_run`` -> ``registry_record`` -> ``evaluate_model`` -> ``export.write_parameters``

A ``Run`` carries the parameters, the resource names and the URIs; what one
notebook learns that the next needs (data hash, execution ARN) is kept in the
run's ``run.json`` beside its other artifacts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import ClientError

from . import backends, bundles, data, statemachine, workspace
from .errors import ExecutionFailed, PipelineError, RecordNotFound
from .storage import split_s3_uri, write_atomic

RUN_FILE = "run.json"
CURRENT_RUN_FILE = "current-run"
FUNCTION_HANDLERS = dict(zip(("query", "registry"), bundles.FUNCTION_MODULES))


def resource_name(params: dict[str, Any], suffix: str, limit: int = 63) -> str:
    """``<project>-<environment>-<suffix>``, checked against the strictest limit of the services."""
    name = f"{params['project']}-{params['environment']}-{suffix}"
    if len(name) > limit or not all(c.isalnum() or c == "-" for c in name):
        raise PipelineError(f"resource name {name!r} (from project, environment and {suffix!r}) must be at most "
                            f"{limit} letters, digits and hyphens; shorten project or environment")
    return name


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
    def prefix(self) -> str:
        return f"s3://{self.bucket}/{self.params['project']}/{self.run_id}"

    @property
    def training_job_name(self) -> str:
        return resource_name(self.params, self.run_id)

    model_name = training_job_name

    @property
    def glue_job_name(self) -> str:
        return resource_name(self.params, "etl")

    @property
    def state_machine_name(self) -> str:
        return resource_name(self.params, "training-pipeline", limit=80)

    @property
    def registry_table(self) -> str:
        return resource_name(self.params, "model-registry", limit=255)

    def function_name(self, role: str) -> str:
        return resource_name(self.params, FUNCTION_HANDLERS[role].replace("_", "-"), limit=64)

    @property
    def etl_output_uri(self) -> str:
        return f"{self.prefix}/etl"

    @property
    def model_output_uri(self) -> str:
        return f"{self.prefix}/models"

    @property
    def training_image(self) -> str:
        statemachine.import_sdks()
        from sagemaker import image_uris

        return image_uris.retrieve("xgboost", self.params["region"], self.params["xgboost_version"])

    def registry(self):
        return self.backend.registry(self.registry_table)

    def save(self) -> None:
        document = {"run_id": self.run_id, "backend": self.params["backend"], **self.state}
        write_atomic(self.artifacts_dir / RUN_FILE, json.dumps(document, indent=2, sort_keys=True))

    def write_artifact(self, name: str, content: Any) -> Path:
        """Write a JSON (or text) artifact of this run atomically."""
        text = content if isinstance(content, str) else json.dumps(content, indent=2, sort_keys=True, default=str)
        return write_atomic(self.artifacts_dir / name, text)


def _backend_for(params: dict[str, Any]):
    cls = backends.backend_class(params["backend"])
    return cls(workspace.home()) if params["backend"] == "local" else cls(params, home=workspace.home() / "cache")


def start_run(params: dict[str, Any]) -> Run:
    """Begin a run (notebook 01): a new run id unless one is given; it becomes the current run."""
    run_id = workspace.check_run_id(params["run_id"] or workspace.new_run_id())
    run = Run(params, run_id, _backend_for(params), workspace.artifacts_root() / run_id)
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
        raise PipelineError(f"run {run_id!r} has not been started (no {RUN_FILE} in its artifacts); "
                            "run notebook 01 first")
    state = json.loads((artifacts / RUN_FILE).read_text())
    state.pop("run_id", None)
    state.pop("backend", None)
    return Run(params, run_id, _backend_for(params), artifacts, state)


def _create_or_update(create: Callable[[], Any], update: Callable[[], Any], exists_codes: set[str]) -> str:
    """Create; on an "already exists" code only, update. Everything else propagates."""
    try:
        create()
        return "created"
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in exists_codes:
            raise
    update()
    return "updated"


def stage_data(run: Run) -> data.DataSummary:
    """Validate the input data and copy it to the run's prefix; generate synthetic data when none is named."""
    params = run.params
    source = params["data"]
    if not source:
        source = str(workspace.home() / "data" / f"synthetic-{params['synthetic_rows']}-{params['synthetic_seed']}.csv")
        if not Path(source).exists():
            data.write_synthetic(source, params["synthetic_rows"], params["synthetic_seed"])
    summary = data.validate_file(source, run.backend.s3_client() if source.startswith("s3://") else None)
    name = Path(source.split("?")[0]).name or "data.csv"
    staged_uri = f"{run.prefix}/raw/{name}"
    digest = run.backend.stage_file(source, staged_uri)
    run.backend.stage_bytes(data.summary_document(summary, digest).encode(), staged_uri + data.SUMMARY_SUFFIX)
    run.state.update(data_source=params["data"] or f"synthetic(rows={params['synthetic_rows']}, "
                     f"seed={params['synthetic_seed']})", data_uri=staged_uri, data_sha256=digest,
                     data_format=summary.format, data_rows=summary.rows, churn_rate=round(summary.churn_rate, 4))
    run.save()
    return summary


def deploy_etl_job(run: Run) -> str:
    """Stage ``code/glue_etl.py`` and create or update the Glue job; returns created/updated."""
    script_uri = f"{run.prefix}/code/glue_etl.py"
    run.backend.stage_file(str(workspace.project_root() / "code" / "glue_etl.py"), script_uri)
    glue = run.backend.client("glue")
    definition = {"Role": run.params["glue_role"], "GlueVersion": "5.0",
                  "Command": {"Name": "glueetl", "ScriptLocation": script_uri, "PythonVersion": "3"},
                  **run.backend.prepare_glue_job(run)}
    outcome = _create_or_update(lambda: glue.create_job(Name=run.glue_job_name, **definition),
                                lambda: glue.update_job(JobName=run.glue_job_name, JobUpdate=definition),
                                {"AlreadyExistsException"})
    run.state["glue_job"] = {"name": run.glue_job_name, "script": script_uri, "outcome": outcome}
    run.save()
    return outcome


def deploy_functions(run: Run) -> dict[str, str]:
    """Create or update both functions from one bundle; returns {function: created/updated}."""
    bundle_uri = f"{run.prefix}/code/functions.zip"
    run.backend.stage_bytes(bundles.function_bundle(), bundle_uri)
    bucket, key = split_s3_uri(bundle_uri)
    lambda_client = run.backend.client("lambda")
    roles = {"query": run.params["lambda_role"], "registry": run.params["model_registry_lambda_role"]}
    outcomes = {}
    for role, module in FUNCTION_HANDLERS.items():
        name = run.function_name(role)
        settings = {"Role": roles[role], "Handler": f"{module}.handler", "Runtime": run.params["lambda_runtime"],
                    "Timeout": 60, "MemorySize": 256,
                    "Environment": {"Variables": run.backend.function_environment(run)}}
        code = {"S3Bucket": bucket, "S3Key": key}

        def update(name=name, settings=settings, code=code):
            lambda_client.update_function_code(FunctionName=name, **code)
            run.backend.wait_for_function(name)
            lambda_client.update_function_configuration(FunctionName=name, **settings)
            run.backend.wait_for_function(name)

        outcomes[name] = _create_or_update(
            lambda: lambda_client.create_function(FunctionName=name, Code=code, **settings), update,
            {"ResourceConflictException"})
    run.state["functions"] = outcomes
    run.save()
    return outcomes


def workflow_spec(run: Run) -> statemachine.WorkflowSpec:
    from .training import hyperparameters_from

    params = run.params
    return statemachine.WorkflowSpec(
        glue_job_name=run.glue_job_name, raw_data_uri=run.state["data_uri"], etl_output_uri=run.etl_output_uri,
        model_output_uri=run.model_output_uri, training_image=run.training_image,
        query_function=run.function_name("query"), registry_function=run.function_name("registry"),
        threshold=params["accuracy_threshold"], environment=params["environment"], region=params["region"],
        sagemaker_role=params["sagemaker_execution_role"], hyperparameters=hyperparameters_from(params),
        instance_type=params["training_instance_type"], instance_count=params["training_instance_count"],
        train_fraction=params["train_fraction"], validation_fraction=params["validation_fraction"],
        split_seed=params["split_seed"])


def build_state_machine(run: Run) -> dict[str, Any]:
    """Build and validate the definition, and keep it as ``statemachine.json``."""
    if "data_uri" not in run.state:
        raise PipelineError(f"run {run.run_id!r} has no staged data: run notebook 01 first")
    definition = statemachine.build_definition(workflow_spec(run))
    run.write_artifact("statemachine.json", statemachine.definition_json(definition))
    return definition


def deploy_state_machine(run: Run, definition: dict[str, Any]) -> str:
    """Create or update the state machine with exactly the JSON in ``statemachine.json``, and publish it.

    The run executes the published version, so a concurrent run that updates
    the state machine in between cannot change what this run executes.
    """
    sfn = run.backend.client("stepfunctions")
    text = statemachine.definition_json(definition)
    role = run.params["workflow_execution_role"]
    arn = run.backend.state_machine_arn(run.state_machine_name)
    published: dict[str, str] = {}

    def create():
        published.update(sfn.create_state_machine(name=run.state_machine_name, definition=text, roleArn=role,
                                                  publish=True))

    def update():
        published.update(sfn.update_state_machine(stateMachineArn=arn, definition=text, roleArn=role,
                                                  publish=True))

    # Update first: the ARN is known, and a create of an existing name is not an update everywhere
    # (some implementations return the existing machine unchanged).
    try:
        update()
        outcome = "updated"
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "StateMachineDoesNotExist":
            raise
        create()
        outcome = "created"
    run.state["state_machine"] = {"name": run.state_machine_name, "arn": arn, "outcome": outcome,
                                  "version_arn": published["stateMachineVersionArn"]}
    run.save()
    return outcome


def execution_input(run: Run) -> dict[str, Any]:
    return {"RunId": run.run_id, "TrainingJobName": run.training_job_name, "ModelName": run.model_name,
            "DataUri": run.state["data_uri"], "DataSha256": run.state["data_sha256"],
            "GitCommit": run.state.get("git_commit") or ""}


def current_state(sfn, execution_arn: str) -> str | None:
    """The state an execution last entered, from the newest events of its history."""
    events = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=20)["events"]
    return next((e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e), None)


def execute(run: Run, poll_seconds: float = 5.0, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the execution (named after the run, so a retry is idempotent), wait, keep its history.

    Returns the execution record; a failed execution is returned too (its
    history saved) so the notebook can show it before ``raise_if_failed``.
    """
    sfn = run.backend.client("stepfunctions")
    arn = run.state["state_machine"]["version_arn"]
    started = sfn.start_execution(stateMachineArn=arn, name=run.run_id, input=json.dumps(execution_input(run)))
    execution_arn = started["executionArn"]
    run.state["execution_arn"] = execution_arn
    run.save()
    if not run.params["wait_for_execution"]:
        history = run.backend.execution_history(execution_arn)
        run.write_artifact("execution-history.json", history)
        return history
    started_at = time.monotonic()
    deadline = started_at + run.params["execution_timeout_minutes"] * 60
    shown = None
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            break
        current = current_state(sfn, execution_arn)
        if current != shown:
            minutes, seconds = divmod(int(time.monotonic() - started_at), 60)
            progress(f"[{minutes:02d}:{seconds:02d}] {current or 'starting'} ...")
            shown = current
        if time.monotonic() > deadline:
            raise PipelineError(f"execution {execution_arn} still running after "
                                f"{run.params['execution_timeout_minutes']} minutes")
        time.sleep(poll_seconds)
    history = run.backend.execution_history(execution_arn)
    run.write_artifact("execution-history.json", history)
    run.state["execution_status"] = described["status"]
    run.save()
    return history


def raise_if_failed(history: dict[str, Any]) -> None:
    """Raise ExecutionFailed, naming the failing state, error and cause, unless the execution succeeded
    (or still runs, when the run did not wait for it)."""
    if history["status"] not in ("SUCCEEDED", "RUNNING"):
        raise ExecutionFailed(history.get("failedState") or "?", history.get("error") or "?",
                              history.get("cause") or "")


def registry_record(run: Run):
    """The registry record of this run; a clear error when the gate did not let it through."""
    try:
        return run.registry().get(run.run_id)
    except RecordNotFound:
        status = run.state.get("execution_status", "not run")
        raise PipelineError(f"run {run.run_id!r} has no registry record (execution status: {status}); "
                            "only a model that passes the accuracy gate is registered") from None


def evaluate_model(run: Run, record) -> dict[str, Any]:
    """Score the held-out test split with the registered model; keep ``metrics.json``."""
    import xgboost as xgb

    from . import evaluation, training

    manifest = json.loads(run.backend.local_copy(f"{run.etl_output_uri}/manifest.json").read_text())
    booster = training.load_model_archive(run.backend.local_copy(record.model_data_url))
    features, labels = training.read_channel(run.backend.local_copy(f"{run.etl_output_uri}/test"))
    probabilities = booster.predict(xgb.DMatrix(features))
    test = evaluation.evaluate(labels, probabilities)
    fpr, tpr = evaluation.roc_curve(labels, probabilities)
    importance = evaluation.feature_importance(booster, manifest["features"])
    metrics = {"run_id": run.run_id, "threshold": record.threshold, "training": record.metrics, "test": test,
               "feature_importance": [{"feature": f, "gain": g} for f, g in importance[:20]]}
    run.write_artifact("metrics.json", metrics)
    return {**metrics, "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()}, "manifest": manifest}
